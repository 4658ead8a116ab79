/* embed_local.h — the local embedder: text → a unit vector of
 * EMBED_LOCAL_DIM floats, computed here, deterministic on every host.
 *
 * It is the stand-in of the embedding provider chain (unde-embed stores
 * what it computes; unde-llm embeds its queries with the same function so
 * that a query and the messages it searches come from one model). Feature
 * hashing of character n-grams: each word (lib/stem.h's tokens: lower-case,
 * ё→е, numbers kept) is padded as "^word$" and cut into its character
 * 3-grams and 4-grams, plus the word itself; each feature's 64-bit FNV-1a
 * hash picks a dimension (h mod 1024) and a sign (the top bit); the vector
 * is the sum, L2-normalised. Similar spellings ("пальто"/"пальтишко",
 * "linen"/"linnen") share n-grams and so land near each other by cosine; it
 * knows no synonyms and no translation, which is why a provider comes
 * first. Its name, stored in messages.embedding_model, is
 * EMBED_LOCAL_MODEL; change the name when the algorithm changes. */
#ifndef UNDE_EMBED_LOCAL_H
#define UNDE_EMBED_LOCAL_H

#include <stddef.h>

#define EMBED_LOCAL_DIM 1024
#define EMBED_LOCAL_MODEL "local-ngram-v1"

/* Embed text (UTF-8, len bytes) into out. Returns 0, or -1 for invalid
 * UTF-8 or a text without any word or number (out is then all zeros). */
int embed_local(const char *text, size_t len, float out[EMBED_LOCAL_DIM]);

#endif
