/* providers.h — the remote mood classifiers as lib/provider.h providers:
 * DeepSeek (OpenAI-compatible chat completions, response_format
 * json_object) and Gemini (generateContent, responseMimeType
 * application/json), run by chain_run with the local classifier as the
 * chain's stand-in. Each is asked for the seven numbers of a mood_frame as
 * JSON; an answer that is not that JSON, or has a number outside [0,1], is
 * a malformed answer (a failure of that provider), as is any HTTP error or
 * passing the deadline. */
#ifndef UNDE_MOOD_PROVIDERS_H
#define UNDE_MOOD_PROVIDERS_H

#include "classify.h"
#include "provider.h"

/* One role of the chain (MOOD_LLM_*, then MOOD_FALLBACK_*). */
struct mood_provider {
	struct provider p; /* name "deepseek" | "gemini", key_var MOOD_<ROLE>_API_KEY */
	const char *model;
};

#define MOOD_MAX_PROVIDERS 2

/* The chain, its providers and what the last call left: the chain's ud. */
struct mood_chain {
	struct mood_provider role[MOOD_MAX_PROVIDERS];
	const struct provider *list[MOOD_MAX_PROVIDERS + 1];
	int n;
	struct chain chain;
	const struct lexicon *lexicon; /* the local stand-in's */
	struct stemmer *stemmer;
	struct mood_reading reading; /* the answer of whoever answered */
	char local_why[160];         /* why the local classifier refused */
};

/* Set the chain up with no remote provider (the local classifier only). */
void mood_chain_init(struct mood_chain *c, const struct lexicon *lx, struct stemmer *st);

/* Add provider name (deepseek | gemini) in the next role: key_var names the
 * key variable (MOOD_LLM_API_KEY…), model_var the model. Returns 0, or -1
 * for an unknown provider name. A provider without a key is not added
 * (*added 0). */
int mood_chain_add(struct mood_chain *c, const char *name, const char *model_var,
		   const char *key_var, int *added);

/* Parse a provider's JSON answer (the model's text). Exposed for tests. */
int mood_parse_answer(const char *text, struct mood_reading *out, char *code, size_t codelen);

#endif
