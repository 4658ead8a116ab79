/* providers.h — the remote mood classifiers: DeepSeek (OpenAI-compatible
 * chat completions, JSON output) and Gemini (generateContent, JSON mime
 * type). Each is asked for the seven numbers of a mood_frame as JSON; an
 * answer that is not that JSON, or has a number outside [0,1], is a
 * failure of that provider, as is any HTTP error or passing the deadline. */
#ifndef UNDE_MOOD_PROVIDERS_H
#define UNDE_MOOD_PROVIDERS_H

#include "classify.h"

struct mood_provider {
	const char *name;   /* "deepseek" | "gemini" */
	const char *model;
	const char *api_key;
	const char *base_url;
};

/* Fill p for a provider name from the environment: key_var names the key
 * variable (MOOD_LLM_API_KEY…), model_var the model. Returns 0, or -1 for
 * an unknown provider name. A provider without a key is skipped (api_key
 * NULL). */
int mood_provider_config(struct mood_provider *p, const char *name, const char *model_var,
			 const char *default_model, const char *key_var);

/* Ask p about text within timeout_ms. Returns 0 with *out filled, or -1
 * with a short machine code in code ("timeout", "http_429", "bad_answer",
 * "out_of_range", "unreachable") and a message for the log. */
int mood_provider_ask(const struct mood_provider *p, const char *text, long timeout_ms,
		      struct mood_reading *out, char *code, size_t codelen, char *msg, size_t msglen);

/* Parse a provider's JSON answer (the model's text). Exposed for tests. */
int mood_parse_answer(const char *text, struct mood_reading *out, char *code, size_t codelen);

#endif
