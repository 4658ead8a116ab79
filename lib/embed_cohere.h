/* embed_cohere.h — the embedding provider chain unde-embed and unde-llm
 * share: Cohere Embed v2 (wire format in shared/upstreams.md §5) through
 * lib/provider.h, then the local n-gram embedder (lib/embed_local.h).
 *
 * unde-embed stores messages' vectors with input_type "search_document";
 * unde-llm embeds the user's query with "search_query", by the same model
 * (EMBEDDING_PROVIDER, EMBEDDING_MODEL), so the shard's search
 * (shard_search_model) compares the query only with messages embedded by
 * the model that embedded it:
 *
 *   struct embed_conf ec;
 *   embed_conf_load(&ec, NULL);
 *   struct chain_result res;
 *   json_t *v = embed_text(&ec, "юбка", "search_query", deadline_in(500), &res);
 *   // v: the vector (owned by res.answer); res.answer's "model" names it
 *   chain_result_free(&res);
 *
 * A chain input is {"texts":[…≤96], "input_type"}; every answer is
 * {"model", "vectors":[[dim floats]…]} with one vector per text, checked:
 * a wrong count or dimension is a malformed answer, never used. */
#ifndef UNDE_EMBED_COHERE_H
#define UNDE_EMBED_COHERE_H

#include <stddef.h>

#include <jansson.h>

#include "deadline.h"
#include "provider.h"

#define EMBED_BATCH 96 /* texts per Cohere call (its limit) */

struct embed_conf {
	const char *model; /* EMBEDDING_MODEL, or --model */
	long dim;          /* EMBEDDING_DIM */
	size_t expect;     /* vectors the current call must answer */
	int local_only;    /* EMBEDDING_PROVIDER=local, or the model is the local one */
	long timeout_ms;   /* EMBEDDING_TIMEOUT (s) × 1000 */
};

/* Cohere as a lib/provider.h provider (COHERE_API_URL, COHERE_API_KEY). */
extern const struct provider embed_cohere;

/* The chain's local stand-in: lib/embed_local.h for every text. */
json_t *embed_local_answer(void *ud, const json_t *in, char *why, size_t whylen);

/* Read EMBEDDING_PROVIDER (cohere | local), EMBEDDING_MODEL (model_opt
 * first when not NULL), EMBEDDING_DIM and EMBEDDING_TIMEOUT into c;
 * conf_die (exit 78) on a bad value. */
void embed_conf_load(struct embed_conf *c, const char *model_opt);

/* Embed one text as input_type through Cohere (unless local_only) then
 * the local embedder, under dl (and c->timeout_ms). The vector (a JSON
 * array living in res->answer, whose "model" names who embedded it), or
 * NULL with res's reason when nobody could (the local embedder refuses a
 * text without a word). Free res with chain_result_free. */
const json_t *embed_text(struct embed_conf *c, const char *text, const char *input_type,
			 struct deadline dl, struct chain_result *res);

#endif
