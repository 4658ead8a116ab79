/* embed_local.c — character n-gram feature hashing into 1024 dimensions
 * (see embed_local.h for the algorithm and what it promises). */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "embed_local.h"
#include "stem.h"

/* 64-bit FNV-1a of n bytes, the feature kind mixed in first so that a
 * word and one of its n-grams of the same text hash apart. */
static uint64_t fnv1a(char kind, const char *s, size_t n)
{
	uint64_t h = 14695981039346656037ULL;
	h = (h ^ (unsigned char)kind) * 1099511628211ULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
	return h;
}

static void add_feature(float *v, char kind, const char *s, size_t n, float w)
{
	uint64_t h = fnv1a(kind, s, n);
	v[h % EMBED_LOCAL_DIM] += (h >> 63) ? -w : w;
}

/* The n-grams of "^word$" by code points: starts[] holds the byte offset
 * of each code point, plus the end. */
static void add_word(float *v, const char *word, size_t len)
{
	char padded[260];
	if (len > sizeof padded - 3)
		len = sizeof padded - 3;
	padded[0] = '^';
	memcpy(padded + 1, word, len);
	padded[len + 1] = '$';
	size_t plen = len + 2, starts[260], ncp = 0;
	for (size_t b = 0; b < plen; b++)
		if (((unsigned char)padded[b] & 0xC0) != 0x80)
			starts[ncp++] = b;
	starts[ncp] = plen;
	add_feature(v, 'w', word, len, 2.0f);
	for (size_t n = 3; n <= 4; n++)
		for (size_t i = 0; i + n <= ncp; i++)
			add_feature(v, (char)('0' + n), padded + starts[i], starts[i + n] - starts[i], 1.0f);
}

int embed_local(const char *text, size_t len, float out[EMBED_LOCAL_DIM])
{
	memset(out, 0, EMBED_LOCAL_DIM * sizeof *out);
	struct stem_tokens t = { 0 };
	size_t bad;
	int rc = -1;
	if (stem_tokenize(text, len, &t, &bad) == 0) {
		size_t words = 0;
		for (size_t i = 0; i < t.n; i++)
			if (t.v[i].kind == STEM_WORD || t.v[i].kind == STEM_NUMBER) {
				add_word(out, t.v[i].text, t.v[i].len);
				words++;
			}
		double norm = 0;
		for (size_t i = 0; i < EMBED_LOCAL_DIM; i++)
			norm += (double)out[i] * out[i];
		if (words && norm > 0) {
			float inv = (float)(1.0 / sqrt(norm));
			for (size_t i = 0; i < EMBED_LOCAL_DIM; i++)
				out[i] *= inv;
			rc = 0;
		}
	}
	stem_tokens_free(&t);
	return rc;
}
