/* embed.h — what unde-embed's modules share: the configuration, the
 * embedding chain (lib/embed_cohere.h), the snippet chain (snippet.c) and
 * the batched store (store.c). */
#ifndef UNDE_EMBED_H
#define UNDE_EMBED_H

#include <stddef.h>

#include <jansson.h>

#include <libpq-fe.h>

#include "provider.h"

/* the embedding chain (struct embed_conf, embed_cohere, embed_local_answer)
 * is lib/embed_cohere.h's: unde-llm embeds its queries with it too */
#include "embed_cohere.h"

/* ---- memory_snippet (snippet.c) ---- */

#define SNIPPET_MAX_CHARS 80  /* the spec's card length */
#define SNIPPET_MAX_PROVIDERS 2

struct snippet_chain {
	struct provider list[SNIPPET_MAX_PROVIDERS]; /* SNIPPET_PROVIDERS, in order */
	const struct provider *order[SNIPPET_MAX_PROVIDERS + 1]; /* those with a key */
	size_t n, live;
	struct chain chain;
	const char *gemini_model, *deepseek_model;
	long timeout_ms;     /* SNIPPET_TIMEOUT, per message */
	int outage;          /* messages in a row no provider made a card for */
	long by_llm, by_rule, fallbacks;
};

/* Read SNIPPET_PROVIDERS and the rest (conf_die on a bad value). */
void snippet_init(struct snippet_chain *sc);
/* The card for a user message (malloc'd), or NULL when neither a provider
 * nor the rule made one; provider gets who made it ("gemini", "deepseek",
 * or "local" for the rule). */
char *snippet_make(struct snippet_chain *sc, const char *content, char *provider, size_t plen);

/* ---- storing the enrichment (store.c) ---- */

#define STORE_BATCH 128 /* records per UPDATE statement (EMBED_STORE_BATCH) */

/* Store what embed_records and the snippets left on each record of recs
 * ("_vector", "embedding_model", "_snippet"), all on the shard behind c:
 * one UPDATE per batch records (1..1000), and when one fails, each of its
 * records again alone, so a bad record fails by itself and nothing else
 * is lost. Each record gets "_stored" (true; false when forgotten or
 * erased meanwhile, "_snippet_null" when it has no snippet) or
 * "_store_error" {"status","code","message"}. Returns the statements sent. */
long embed_store(PGconn *c, json_t *recs, size_t batch);

#endif
