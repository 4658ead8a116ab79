/* lexicon.h — unde-mood's sentiment lexicon (src/mood/lexicon.tsv).
 *
 * Loaded once per process: every term is stemmed with the same Snowball
 * stemmer the classifier uses on the text, so a lookup by stem finds all
 * inflected forms. A term may carry several kinds at once ("ужасно" is both
 * a negative word and an intensifier; "😴" is negative and a fatigue cue). */
#ifndef UNDE_MOOD_LEXICON_H
#define UNDE_MOOD_LEXICON_H

#include <stddef.h>

#include "stem.h"

#define LEX_SENT   0x001u
#define LEX_INT    0x002u
#define LEX_SOFT   0x004u
#define LEX_NEG    0x008u
#define LEX_CON    0x010u
#define LEX_URG    0x020u
#define LEX_FAT    0x040u
#define LEX_FRU    0x080u
#define LEX_UNC    0x100u
#define LEX_CER    0x200u
#define LEX_SHIFT  0x400u
#define LEX_BRK    0x800u
#define LEX_SARC   0x1000u

struct lex_entry {
	unsigned kinds;
	double valence, arousal; /* LEX_SENT */
	double mult;             /* LEX_INT / LEX_SOFT */
	double urg, fat, fru, unc, cer, sarc;
	int words;               /* 1 for a single term, 2–3 for a phrase */
};

struct lexicon;

/* Load path. Returns NULL after writing why into err ("PATH:LINE: what"). */
struct lexicon *lexicon_load(const char *path, struct stemmer *st, char *err, size_t errlen);
void lexicon_free(struct lexicon *lx);
size_t lexicon_size(const struct lexicon *lx);

/* The entry for key (a stem, "stem stem" for a phrase, "=word" for an
 * exact word, or an emoji/emoticon text), or NULL. */
const struct lex_entry *lexicon_get(const struct lexicon *lx, const char *key);

#endif
