/* embed.h — what unde-embed's two modules share: the configuration and
 * the provider chain's pieces (cohere.c). */
#ifndef UNDE_EMBED_H
#define UNDE_EMBED_H

#include <stddef.h>

#include <jansson.h>

#include "provider.h"

#define EMBED_BATCH 96 /* texts per Cohere call (its limit) */

struct embed_conf {
	const char *model; /* EMBEDDING_MODEL, or --model */
	long dim;          /* EMBEDDING_DIM */
	size_t expect;     /* vectors the current call must answer */
};

extern const struct provider embed_cohere;
/* The chain's local stand-in: lib/embed_local.h for every text. */
json_t *embed_local_answer(void *ud, const json_t *in, char *why, size_t whylen);

#endif
