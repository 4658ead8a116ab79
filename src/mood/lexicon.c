/* lexicon.c — loading and looking up the mood lexicon (see lexicon.h). */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lexicon.h"
#include "util.h"

struct lex_slot {
	char *key;
	struct lex_entry e;
};

struct lexicon {
	struct lex_slot *slots;
	size_t cap, n; /* cap is a power of two; load factor kept under 1/2 */
};

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

/* The slot holding key, or the empty slot where it would go. */
static struct lex_slot *slot_find(const struct lexicon *lx, const char *key)
{
	size_t i = (size_t)fnv1a(key) & (lx->cap - 1);
	for (;;) {
		struct lex_slot *s = &lx->slots[i];
		if (!s->key || strcmp(s->key, key) == 0)
			return s;
		i = (i + 1) & (lx->cap - 1);
	}
}

static void grow(struct lexicon *lx)
{
	struct lex_slot *old = lx->slots;
	size_t oldcap = lx->cap;
	lx->cap = oldcap ? oldcap * 2 : 1024;
	lx->slots = xcalloc(lx->cap, sizeof *lx->slots);
	for (size_t i = 0; i < oldcap; i++)
		if (old[i].key)
			*slot_find(lx, old[i].key) = old[i];
	free(old);
}

/* The entry for key, created empty when absent. */
static struct lex_entry *entry_for(struct lexicon *lx, const char *key)
{
	if ((lx->n + 1) * 2 > lx->cap)
		grow(lx);
	struct lex_slot *s = slot_find(lx, key);
	if (!s->key) {
		s->key = xstrdup(key);
		memset(&s->e, 0, sizeof s->e);
		lx->n++;
	}
	return &s->e;
}

const struct lex_entry *lexicon_get(const struct lexicon *lx, const char *key)
{
	if (!lx->cap)
		return NULL;
	const struct lex_slot *s = slot_find(lx, key);
	return s->key ? &s->e : NULL;
}

size_t lexicon_size(const struct lexicon *lx)
{
	return lx->n;
}

void lexicon_free(struct lexicon *lx)
{
	if (!lx)
		return;
	for (size_t i = 0; i < lx->cap; i++)
		free(lx->slots[i].key);
	free(lx->slots);
	free(lx);
}

static int parse_num(const char *s, double min, double max, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* Build the lookup key of a term: words tokenized and stemmed as the text
 * will be, joined by one space; "=word" stays exact; an emoji or emoticon
 * stays as lib/stem writes it. Returns 0, or -1 when the term is not 1–3
 * tokens. */
static int term_key(struct stemmer *st, const char *term, char *key, size_t keylen, int *words)
{
	if (term[0] == '=') {
		snprintf(key, keylen, "%s", term);
		*words = 1;
		return 0;
	}
	struct stem_tokens t;
	if (stem_tokenize(term, strlen(term), &t, NULL) != 0 || t.n == 0 || t.n > 3) {
		stem_tokens_free(&t);
		return -1;
	}
	if (!strchr(term, ' ') && (t.n > 1 || t.v[0].kind == STEM_PUNCT)) {
		/* an emoticon written as lib/stem normalises it (":d", "t_t") */
		stem_tokens_free(&t);
		snprintf(key, keylen, "%s", term);
		*words = 1;
		return 0;
	}
	size_t o = 0;
	key[0] = '\0';
	for (size_t i = 0; i < t.n; i++) {
		char stem[256];
		const char *w = t.v[i].text;
		if (t.v[i].kind == STEM_WORD) {
			if (stemmer_stem(st, w, t.v[i].len, stem, sizeof stem) < 0)
				goto bad;
			w = stem;
		} else if (t.n > 1) {
			goto bad;
		}
		int n = snprintf(key + o, keylen - o, "%s%s", i ? " " : "", w);
		if (n < 0 || (size_t)n >= keylen - o)
			goto bad;
		o += (size_t)n;
	}
	/* an emoticon is one token of its own; a word that tokenizes to
	 * something else than itself (e.g. ":)" inside text) is as written */
	if (t.n == 1 && t.v[0].kind != STEM_WORD)
		snprintf(key, keylen, "%s", t.v[0].text);
	*words = (int)t.n;
	stem_tokens_free(&t);
	return 0;
bad:
	stem_tokens_free(&t);
	return -1;
}

struct lexicon *lexicon_load(const char *path, struct stemmer *st, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	struct lexicon *lx = xcalloc(1, sizeof *lx);
	char line[1024];
	long lineno = 0;
	while (fgets(line, sizeof line, f)) {
		lineno++;
		size_t l = strlen(line);
		if (l && line[l - 1] == '\n')
			line[--l] = '\0';
		else if (!feof(f)) {
			snprintf(err, errlen, "%s:%ld: line too long", path, lineno);
			goto fail;
		}
		if (line[0] == '#' || line[0] == '\0')
			continue;
		char *cols[5] = {0};
		int nc = 0;
		for (char *p = line; nc < 5;) {
			cols[nc++] = p;
			char *tab = strchr(p, '\t');
			if (!tab)
				break;
			*tab = '\0';
			p = tab + 1;
		}
		if (nc < 3 || nc > 4) {
			snprintf(err, errlen, "%s:%ld: want TERM KIND VALUE [AROUSAL], TAB-separated",
				 path, lineno);
			goto fail;
		}
		char key[512];
		int words;
		if (term_key(st, cols[0], key, sizeof key, &words) != 0) {
			snprintf(err, errlen, "%s:%ld: term '%s' is not 1 to 3 words", path, lineno,
				 cols[0]);
			goto fail;
		}
		const char *kind = cols[1];
		double v, a = -1;
		int sent = strcmp(kind, "s") == 0;
		if (parse_num(cols[2], sent ? -1 : 0, sent ? 1 : 3, &v) != 0 ||
		    (nc == 4 && (!sent || parse_num(cols[3], 0, 1, &a) != 0))) {
			snprintf(err, errlen, "%s:%ld: bad value for '%s'", path, lineno, cols[0]);
			goto fail;
		}
		struct lex_entry *e = entry_for(lx, key);
		e->words = words;
		if (sent) {
			e->kinds |= LEX_SENT, e->valence = v;
			e->arousal = a >= 0 ? a : 0.2 + 0.5 * (v < 0 ? -v : v);
		} else if (strcmp(kind, "int") == 0 && v >= 1) {
			e->kinds |= LEX_INT, e->mult = v;
		} else if (strcmp(kind, "soft") == 0 && v <= 1) {
			e->kinds |= LEX_SOFT, e->mult = v;
		} else if (strcmp(kind, "neg") == 0) {
			e->kinds |= LEX_NEG;
		} else if (strcmp(kind, "con") == 0) {
			e->kinds |= LEX_CON;
		} else if (strcmp(kind, "urg") == 0 && v <= 1) {
			e->kinds |= LEX_URG, e->urg = v;
		} else if (strcmp(kind, "fat") == 0 && v <= 1) {
			e->kinds |= LEX_FAT, e->fat = v;
		} else if (strcmp(kind, "fru") == 0 && v <= 1) {
			e->kinds |= LEX_FRU, e->fru = v;
		} else if (strcmp(kind, "unc") == 0 && v <= 1) {
			e->kinds |= LEX_UNC, e->unc = v;
		} else if (strcmp(kind, "cer") == 0 && v <= 1) {
			e->kinds |= LEX_CER, e->cer = v;
		} else if (strcmp(kind, "shift") == 0) {
			e->kinds |= LEX_SHIFT;
		} else if (strcmp(kind, "brk") == 0) {
			e->kinds |= LEX_BRK;
		} else if (strcmp(kind, "sarc") == 0 && v <= 1) {
			e->kinds |= LEX_SARC, e->sarc = v;
		} else {
			snprintf(err, errlen, "%s:%ld: unknown kind '%s' or value out of range", path,
				 lineno, kind);
			goto fail;
		}
	}
	if (ferror(f)) {
		snprintf(err, errlen, "%s: read error", path);
		goto fail;
	}
	fclose(f);
	return lx;
fail:
	fclose(f);
	lexicon_free(lx);
	return NULL;
}
