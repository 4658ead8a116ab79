/* classify.c — the local mood classifier (see classify.h). The weights
 * below are the documented rules of unde-mood(1), tuned on
 * t/fixtures/mood/labelled.jsonl. */
#include "config.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classify.h"
#include "util.h"

#define NEG_SCOPE 3        /* words a negation reaches */
#define NEG_FLIP 0.7       /* a negated sentiment turns and weakens */
#define CON_BEFORE 0.5     /* weight of what came before a contrast */
#define CON_AFTER 1.3      /* and of what follows it */
#define CAPS_BOOST 1.25
#define ELONG_BOOST 1.2
#define EXCL_BOOST 0.08    /* per '!', up to four */

static double clamp01(double v)
{
	return v < 0 ? 0 : v > 1 ? 1 : v;
}

/* Probabilistic OR: two cues of 0.5 make 0.75, never past 1. */
static double combine(double a, double b)
{
	return 1 - (1 - clamp01(a)) * (1 - clamp01(b));
}

struct tok {
	const struct stem_token *t;
	char stem[256];
};

/* Look the word at i up: three-word phrase, two-word phrase, exact word,
 * stem, stem of the squeezed word. Returns the entry and sets *span. */
static const struct lex_entry *lookup(const struct lexicon *lx, struct stemmer *st,
				      const struct tok *v, size_t n, size_t i, size_t *span)
{
	char key[800];
	for (size_t m = 3; m >= 2; m--) {
		size_t o = 0, k;
		size_t j = i;
		for (k = 0; k < m; k++, j++) {
			/* a comma inside a phrase is kept out of it: "ага, конечно" */
			while (k && j < n && v[j].t->kind == STEM_PUNCT && strcmp(v[j].t->text, ",") == 0)
				j++;
			if (j >= n || v[j].t->kind != STEM_WORD)
				break;
			int w = snprintf(key + o, sizeof key - o, "%s%s", k ? " " : "", v[j].stem);
			if (w < 0 || (size_t)w >= sizeof key - o)
				break;
			o += (size_t)w;
		}
		if (k < m)
			continue;
		const struct lex_entry *e = lexicon_get(lx, key);
		if (e) {
			*span = j - i;
			return e;
		}
	}
	*span = 1;
	snprintf(key, sizeof key, "=%s", v[i].t->text);
	const struct lex_entry *e = lexicon_get(lx, key);
	if (e)
		return e;
	if ((e = lexicon_get(lx, v[i].stem)))
		return e;
	if ((e = lexicon_get(lx, v[i].t->text)))
		return e;
	if (v[i].t->flags & STEM_TOK_ELONGATED) {
		char sq[256], sst[256];
		int l = stem_squeeze(v[i].t->text, sq, sizeof sq);
		if (l > 0 && stemmer_stem(st, sq, (size_t)l, sst, sizeof sst) >= 0) {
			snprintf(key, sizeof key, "=%s", sq);
			if ((e = lexicon_get(lx, key)) || (e = lexicon_get(lx, sst)))
				return e;
		}
	}
	return NULL;
}

/* An emoji or emoticon's entry; an emoji with modifiers falls back to its
 * first code point ("👍🏽" → "👍"). */
static const struct lex_entry *lookup_symbol(const struct lexicon *lx, const struct stem_token *t)
{
	const struct lex_entry *e = lexicon_get(lx, t->text);
	if (e || t->kind != STEM_EMOJI)
		return e;
	unsigned char c = (unsigned char)t->text[0];
	size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
	if (n >= t->len)
		return NULL;
	char first[8];
	memcpy(first, t->text, n);
	first[n] = '\0';
	return lexicon_get(lx, first);
}

static int is_negating_word(const char *w, size_t len)
{
	return len > 3 && strcmp(w + len - 3, "n't") == 0;
}

int mood_classify(const struct lexicon *lx, struct stemmer *st, const char *text, size_t len,
		  struct mood_reading *out, size_t *bad_offset)
{
	assert(lx && st && out);
	memset(out, 0, sizeof *out);
	struct stem_tokens toks;
	if (stem_tokenize(text, len, &toks, bad_offset) != 0) {
		stem_tokens_free(&toks);
		return -1;
	}
	size_t n = toks.n;
	struct tok *v = xcalloc(n ? n : 1, sizeof *v);
	size_t words = 0, caps_words = 0;
	for (size_t i = 0; i < n; i++) {
		v[i].t = &toks.v[i];
		if (toks.v[i].kind == STEM_WORD) {
			if (stemmer_stem(st, toks.v[i].text, toks.v[i].len, v[i].stem, sizeof v[i].stem) < 0)
				snprintf(v[i].stem, sizeof v[i].stem, "%s", toks.v[i].text);
			words++;
			if (toks.v[i].flags & STEM_TOK_CAPS)
				caps_words++;
		}
	}

	double pos = 0, neg = 0;          /* sentiment sums */
	double weight = 1;                /* current clause weight */
	double mult = 1;                  /* pending intensifier/softener */
	int neg_left = 0, neg_then_int = 0;
	double fru = 0, urg = 0, fat = 0, unc = 0, cer = 0, sarc = 0;
	double arousal_sum = 0;
	int sent_n = 0, excl = 0, quest = 0, interrobang = 0, ellipsis = 0, elong = 0;
	int shift = 0, brk = 0;

	for (size_t i = 0; i < n;) {
		const struct stem_token *t = v[i].t;
		if (t->kind == STEM_PUNCT) {
			int clause_end = 0;
			for (size_t k = 0; k < t->len; k++) {
				char c = t->text[k];
				excl += c == '!';
				quest += c == '?';
				clause_end |= c == '!' || c == '?' || c == ',' || c == ';' ||
					      (c == '.' && t->len == 1);
			}
			if (strchr(t->text, '!') && strchr(t->text, '?'))
				interrobang = 1;
			if (strstr(t->text, "..."))
				ellipsis++, clause_end = 1;
			if (clause_end) {
				if (neg_left > 0 && neg_then_int)
					neg -= 0.35 * weight; /* "не очень." / "not really." */
				neg_left = 0, neg_then_int = 0, mult = 1;
			}
			i++;
			continue;
		}
		if (t->kind == STEM_NUMBER) {
			if (strchr(t->text, ':'))
				urg = combine(urg, 0.3); /* a clock time: "к 18:30" */
			i++;
			continue;
		}
		if (t->kind == STEM_EMOJI || t->kind == STEM_EMOTICON) {
			const struct lex_entry *e = lookup_symbol(lx, t);
			if (e) {
				double rep = t->kind == STEM_EMOTICON && t->raw_len > 2 ? 1.2 : 1;
				if (e->kinds & LEX_SENT) {
					double s = e->valence * rep;
					if (s > 0)
						pos += s;
					else
						neg += s;
					arousal_sum += e->arousal;
					sent_n++;
				}
				if (e->kinds & LEX_FRU)
					fru = combine(fru, e->fru);
				if (e->kinds & LEX_URG)
					urg = combine(urg, e->urg);
				if (e->kinds & LEX_FAT)
					fat = combine(fat, e->fat);
				if (t->kind == STEM_EMOJI && strcmp(t->text, "🙄") == 0)
					sarc = sarc > 0.6 ? sarc : 0.6;
			}
			i++;
			continue;
		}
		/* a word */
		size_t span = 1;
		const struct lex_entry *e = lookup(lx, st, v, n, i, &span);
		if (t->flags & STEM_TOK_ELONGATED)
			elong++;
		if (!e) {
			if (is_negating_word(t->text, t->len)) {
				neg_left = NEG_SCOPE, neg_then_int = 0;
			} else if (neg_left > 0) {
				neg_left--;
			}
			i++;
			continue;
		}
		unsigned k = e->kinds;
		int negated = neg_left > 0;
		if (span > 1) {
			/* "не то", "not great": a phrase carrying its own negation */
			char first[300];
			snprintf(first, sizeof first, "=%s", t->text);
			const struct lex_entry *f0 = lexicon_get(lx, first);
			if (f0 && (f0->kinds & LEX_NEG))
				negated = 0;
		}
		if (k & LEX_NEG) {
			neg_left = NEG_SCOPE, neg_then_int = 0;
			i += span;
			continue;
		}
		if (k & LEX_CON) {
			pos *= CON_BEFORE, neg *= CON_BEFORE;
			weight = CON_AFTER;
			neg_left = 0, mult = 1;
			i += span;
			continue;
		}
		if ((k & LEX_SENT) && (k & (LEX_INT | LEX_SOFT)) && i + span < n &&
		    v[i + span].t->kind == STEM_WORD) {
			/* "ужасно красиво": a sentiment word before another one intensifies */
			size_t s2;
			const struct lex_entry *nx = lookup(lx, st, v, n, i + span, &s2);
			if (nx && (nx->kinds & LEX_SENT))
				k &= ~LEX_SENT;
		}
		if (k & LEX_SENT) {
			double s = e->valence * mult;
			if (t->flags & STEM_TOK_CAPS)
				s *= CAPS_BOOST;
			if (t->flags & STEM_TOK_ELONGATED)
				s *= ELONG_BOOST;
			if (negated)
				s = -NEG_FLIP * s;
			s *= weight;
			if (s > 0)
				pos += s;
			else
				neg += s;
			arousal_sum += e->arousal;
			sent_n++;
			mult = 1;
			neg_then_int = 0;
		} else if (k & (LEX_INT | LEX_SOFT)) {
			mult *= e->mult;
			if (negated && (k & LEX_INT))
				neg_then_int = 1;
		}
		if ((k & LEX_FRU) && !negated) {
			fru = combine(fru, e->fru);
			neg -= 0.5 * e->fru * weight;
		}
		if ((k & LEX_URG) && !negated)
			urg = combine(urg, e->urg);
		if ((k & LEX_FAT) && !negated) {
			fat = combine(fat, e->fat);
			neg -= 0.4 * e->fat * weight; /* tiredness is an unpleasant state */
		}
		if (k & LEX_UNC)
			unc += e->unc;
		if (k & LEX_CER) {
			if (negated)
				unc += e->cer;
			else
				cer += e->cer;
		}
		if (k & LEX_SHIFT)
			shift = 1;
		if (k & LEX_BRK)
			brk = 1;
		if ((k & LEX_SARC) && e->sarc > sarc)
			sarc = e->sarc;
		if (neg_left > 0 && !(k & (LEX_INT | LEX_SOFT)))
			neg_left -= (int)span;
		if (neg_left < 0)
			neg_left = 0;
		i += span;
	}
	if (neg_left > 0 && neg_then_int)
		neg -= 0.35 * weight;

	/* sarcasm: a strong lead-in turns the praise; a weak one only when
	 * the message also complains */
	/* a message in capitals is shouted: it sharpens a complaint */
	if (words >= 3 && caps_words * 5 >= words * 3 && pos + neg <= 0)
		neg -= 0.25;
	int complains = neg < -0.2 || fru > 0.2 || interrobang;
	if (sarc >= 0.8 && pos <= 0) {
		/* the praise was inside the lead-in itself ("просто супер") */
		neg -= 0.5 * sarc;
		out->sarcasm = 1;
	}
	if (pos > 0 && (sarc >= 0.8 || (sarc > 0 && complains))) {
		neg -= 0.8 * pos;
		pos = 0;
		out->sarcasm = 1;
		fru = combine(fru, 0.3);
	}

	double total = pos + neg;
	if (excl)
		total *= 1 + EXCL_BOOST * (excl > 4 ? 4 : excl);
	double compound = total / sqrt(total * total + 1.0);
	double caps_ratio = words >= 2 ? (double)caps_words / (double)words : 0;
	double mean_arousal = sent_n ? arousal_sum / sent_n : 0.2;
	double negativity = compound < 0 ? -compound : 0;

	out->compound = compound;
	out->valence = clamp01(0.5 + 0.5 * compound);
	out->arousal = clamp01(0.2 + 0.35 * mean_arousal + 0.07 * (excl > 4 ? 4 : excl) +
			       0.25 * caps_ratio + 0.25 * urg + 0.15 * fabs(compound) +
			       0.05 * (elong > 2 ? 2 : elong) + 0.1 * interrobang - 0.25 * fat);
	out->frustration = clamp01(combine(combine(fru, negativity * (0.35 + 0.4 * out->arousal)),
					   0.25 * interrobang + 0.3 * caps_ratio * (compound < 0)));
	out->urgency = clamp01(urg > 0 ? combine(urg, 0.04 * (excl > 3 ? 3 : excl)) : 0);
	out->fatigue = clamp01(combine(fat, 0.08 * (ellipsis > 2 ? 2 : ellipsis)));
	out->confidence =
	    clamp01(0.6 + 0.3 * cer - 0.4 * unc - 0.07 * (quest > 3 ? 3 : quest) - 0.1 * fat);
	out->dominance = clamp01(0.5 + 0.2 * cer - 0.2 * unc - 0.04 * (quest > 3 ? 3 : quest) +
				 0.1 * (compound > 0 ? compound : 0) - 0.1 * out->fatigue -
				 0.1 * negativity * (1 - out->arousal));
	out->topic_shift = shift;
	out->thread_break = brk;
	out->sentiment_terms = sent_n;
	free(v);
	stem_tokens_free(&toks);
	return 0;
}
