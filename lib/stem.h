/* stem.h — words out of chat text, and their Snowball stems.
 *
 * Two parts that text classifiers share (the mood lexicon, the memory
 * classifier of the shard):
 *
 *   stem_tokenize()  splits UTF-8 text into tokens: words (Latin and
 *                    Cyrillic letters, lower-cased, ё folded to е, inner
 *                    apostrophes and hyphens kept), numbers, emoji (one token
 *                    per emoji sequence, with its modifiers and ZWJ joins),
 *                    ASCII emoticons (":)", ":-(", ":D", "xD", "<3", and the
 *                    Russian chat smiles "))" / "((" — runs of two or more),
 *                    and punctuation runs ("!!!", "?!", "...").
 *   stemmer_stem()   stems one lower-cased word with Debian's libstemmer
 *                    (Snowball): Russian for Cyrillic words, English for Latin
 *                    ones, the majority script for mixed words.
 *
 * Tokens carry flags a classifier wants: all capitals in the original, a
 * letter repeated three or more times ("sooo", "оченьььь"). Invalid UTF-8
 * is refused, never guessed at. */
#ifndef UNDE_STEM_H
#define UNDE_STEM_H

#include <stddef.h>

enum stem_kind {
	STEM_WORD,     /* letters: text is lower-cased, letter runs of 3+ cut to 2 */
	STEM_NUMBER,   /* digits, with inner '.', ',' or ':' ("18:30", "2.5") */
	STEM_EMOJI,    /* one emoji sequence, bytes as in the input */
	STEM_EMOTICON, /* ":)", ":-(", ";)", ":D", "xD", "<3", ")))", "((" … */
	STEM_PUNCT,    /* a run of ! ? . , ; : — text is the run ("?!", "...") */
};

enum stem_script {
	STEM_SCRIPT_NONE,     /* not a word */
	STEM_SCRIPT_LATIN,
	STEM_SCRIPT_CYRILLIC,
	STEM_SCRIPT_MIXED,    /* both (homoglyph typing, "iPhoneа") */
};

#define STEM_TOK_CAPS      0x1u /* a word of 2+ letters, all upper-case in the input */
#define STEM_TOK_ELONGATED 0x2u /* a letter repeated 3+ times in the input */
#define STEM_TOK_CAPITAL   0x4u /* a word whose first letter was upper-case */

struct stem_token {
	enum stem_kind kind;
	enum stem_script script;
	unsigned flags;
	const char *text; /* NUL-terminated, owned by the token list */
	size_t len;       /* strlen(text) */
	size_t offset;    /* byte offset of the token in the input */
	size_t raw_len;   /* its length in the input */
	int latin_letters, cyrillic_letters; /* for words: counts per script */
};

struct stem_tokens {
	struct stem_token *v;
	size_t n, cap;
	char *arena; /* every token's text, NUL-separated */
	size_t arena_len, arena_cap;
};

/* Tokenize len bytes of UTF-8. On success fills out (which the caller
 * frees with stem_tokens_free, also after a failure) and returns 0; on
 * invalid UTF-8 returns -1 and sets *bad_offset to the first bad byte. */
int stem_tokenize(const char *text, size_t len, struct stem_tokens *out, size_t *bad_offset);
void stem_tokens_free(struct stem_tokens *t);

/* Copy word into buf with every run of 2+ equal letters cut to one
 * ("оооочень" → "очень", "sooo" → "so"): the second lookup a lexicon tries
 * for an elongated word. Returns the length, or -1 when buf is too small. */
int stem_squeeze(const char *word, char *buf, size_t bufsz);

/* The script of a lower-cased UTF-8 word. */
enum stem_script stem_script_of(const char *word, size_t len);

/* One Russian and one English Snowball stemmer. Not thread-safe: one per
 * thread (commands here are single-threaded filters). */
struct stemmer;
/* NULL only if libstemmer lacks Russian or English (a broken install). */
struct stemmer *stemmer_new(void);
void stemmer_free(struct stemmer *s);
/* Stem a lower-cased word (as stem_tokenize makes them) into buf, by its
 * script. Returns the stem's length, or -1 when buf is too small; a word
 * of no known script is copied as it is. */
int stemmer_stem(struct stemmer *s, const char *word, size_t len, char *buf, size_t bufsz);

#endif
