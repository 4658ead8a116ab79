/* stem.c — the chat-text tokenizer and the Snowball wrapper (see stem.h). */
#include "config.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libstemmer.h>

#include "stem.h"
#include "util.h"

/* Decode one UTF-8 sequence at s (n bytes left). Returns its length and
 * sets *cp, or 0 for an invalid sequence (overlong, surrogate, past
 * U+10FFFF, truncated). */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
	if (n == 0)
		return 0;
	unsigned c = s[0];
	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	size_t len;
	uint32_t v, min;
	if ((c & 0xE0) == 0xC0) {
		len = 2, v = c & 0x1F, min = 0x80;
	} else if ((c & 0xF0) == 0xE0) {
		len = 3, v = c & 0x0F, min = 0x800;
	} else if ((c & 0xF8) == 0xF0) {
		len = 4, v = c & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		v = (v << 6) | (s[i] & 0x3F);
	}
	if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
		return 0;
	*cp = v;
	return len;
}

/* Encode cp as UTF-8 into out (4 bytes room). Returns the length. */
static size_t utf8_encode(uint32_t cp, char *out)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xC0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xE0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		out[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (char)(0xF0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	out[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

static int is_latin(uint32_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= 0xC0 && c <= 0xFF && c != 0xD7 && c != 0xF7);
}

static int is_cyrillic(uint32_t c)
{
	return c >= 0x400 && c <= 0x4FF && !(c >= 0x482 && c <= 0x489);
}

/* Lower-case a Latin or Cyrillic letter; ё/Ё fold to е. Sets *upper when
 * the letter was a capital. */
static uint32_t letter_lower(uint32_t c, int *upper)
{
	*upper = 0;
	if (c >= 'A' && c <= 'Z') {
		*upper = 1;
		return c + 0x20;
	}
	if (c >= 0xC0 && c <= 0xDE && c != 0xD7) {
		*upper = 1;
		return c + 0x20;
	}
	if (c >= 0x410 && c <= 0x42F) {
		*upper = 1;
		return c + 0x20;
	}
	if (c >= 0x400 && c <= 0x40F) {
		*upper = 1;
		c += 0x50;
	}
	if (c >= 0x460 && c <= 0x4FF && c != 0x4C0 && !(c >= 0x482 && c <= 0x489)) {
		/* paired blocks: capital even, small odd (ӁӂӃ… from 04C1 are odd/even) */
		int odd_capital = c >= 0x4C1 && c <= 0x4CE;
		if (odd_capital ? (c & 1) : !(c & 1)) {
			*upper = 1;
			c += 1;
		}
	}
	if (c == 0x451)
		c = 0x435;
	return c;
}

static int is_letter(uint32_t c)
{
	return is_latin(c) || is_cyrillic(c);
}

static int is_emoji_base(uint32_t c)
{
	return (c >= 0x1F000 && c <= 0x1FAFF) || (c >= 0x2600 && c <= 0x27BF) ||
	       (c >= 0x2B05 && c <= 0x2B55) || c == 0x231A || c == 0x231B ||
	       (c >= 0x23E9 && c <= 0x23FA) || c == 0x2122 || c == 0x2139 ||
	       (c >= 0x2194 && c <= 0x21AA) || c == 0x3030 || c == 0x303D;
}

/* Code points that extend an emoji: variation selectors, skin tones,
 * keycap, tag characters. */
static int is_emoji_modifier(uint32_t c)
{
	return c == 0xFE0F || c == 0xFE0E || (c >= 0x1F3FB && c <= 0x1F3FF) || c == 0x20E3 ||
	       (c >= 0xE0020 && c <= 0xE007F);
}

static int is_punct(uint32_t c)
{
	return c == '!' || c == '?' || c == '.' || c == ',' || c == ';' || c == ':' || c == 0x2026;
}

/* Append n bytes to the arena; returns the offset where they start. */
static size_t arena_put(struct stem_tokens *t, const char *p, size_t n)
{
	if (t->arena_len + n + 1 > t->arena_cap) {
		size_t cap = t->arena_cap ? t->arena_cap * 2 : 256;
		while (cap < t->arena_len + n + 1)
			cap *= 2;
		t->arena = xrealloc(t->arena, cap);
		t->arena_cap = cap;
	}
	size_t off = t->arena_len;
	memcpy(t->arena + off, p, n);
	t->arena[off + n] = '\0';
	t->arena_len += n + 1;
	return off;
}

/* Add a token whose text is already in the arena at text_off (kept in
 * .text as an offset until stem_tokenize ends and the arena stops moving). */
static struct stem_token *token_add(struct stem_tokens *t, enum stem_kind kind, size_t text_off,
				    size_t text_len, size_t offset, size_t raw_len)
{
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 32;
		t->v = xrealloc(t->v, t->cap * sizeof *t->v);
	}
	struct stem_token *k = &t->v[t->n++];
	memset(k, 0, sizeof *k);
	k->kind = kind;
	k->script = STEM_SCRIPT_NONE;
	k->text = (const char *)(uintptr_t)text_off;
	k->len = text_len;
	k->offset = offset;
	k->raw_len = raw_len;
	return k;
}

static void token_add_text(struct stem_tokens *t, enum stem_kind kind, const char *text,
			   size_t offset, size_t raw_len)
{
	size_t n = strlen(text);
	token_add(t, kind, arena_put(t, text, n), n, offset, raw_len);
}

/* ASCII emoticons, longest first where one is a prefix of another; the
 * first field is matched case-sensitively, the second is the token text. */
static const struct {
	const char *raw, *text;
} emoticons[] = {
	{":'-(", ":'("}, {":'(", ":'("}, {":-)", ":)"}, {":-(", ":("}, {":-D", ":d"},
	{":-P", ":p"},   {":-p", ":p"},  {";-)", ";)"}, {":-/", ":/"}, {":-|", ":|"},
	{":-*", ":*"},   {":-O", ":o"},  {":-o", ":o"}, {"</3", "</3"}, {"^_^", "^_^"},
	{"T_T", "t_t"},  {"-_-", "-_-"}, {"o_O", "o_o"}, {"O_o", "o_o"}, {":)", ":)"},
	{":(", ":("},    {":D", ":d"},   {":P", ":p"},  {":p", ":p"},   {";)", ";)"},
	{":/", ":/"},    {":|", ":|"},   {":*", ":*"},  {":O", ":o"},   {":o", ":o"},
	{"<3", "<3"},    {"=)", ":)"},   {"=(", ":("},  {"^^", "^_^"},  {"xD", "xd"},
	{"XD", "xd"},
};

/* Match an emoticon at p. Returns its raw length (extended over a
 * repeated last character: ":)))", "xDDD") and its text, or 0. Letter
 * emoticons (xD, T_T, o_O) must stand alone, ":/" must not start "://". */
static size_t match_emoticon(const char *s, size_t len, size_t i, const char **text)
{
	for (size_t e = 0; e < sizeof emoticons / sizeof emoticons[0]; e++) {
		size_t n = strlen(emoticons[e].raw);
		if (i + n > len || memcmp(s + i, emoticons[e].raw, n) != 0)
			continue;
		unsigned char first = (unsigned char)s[i];
		unsigned char last = (unsigned char)s[i + n - 1];
		int lettery = (first >= 'A' && first <= 'z' && first != '^' && first != '_');
		if (lettery && i > 0 && (unsigned char)s[i - 1] >= 0x80)
			continue;
		if (lettery && i > 0 && ((s[i - 1] | 0x20) >= 'a' && (s[i - 1] | 0x20) <= 'z'))
			continue;
		size_t end = i + n;
		if (last == ')' || last == '(' || last == 'D' || last == 'P' || last == 'p')
			while (end < len && (unsigned char)s[end] == last)
				end++;
		if (strcmp(emoticons[e].raw, ":/") == 0 && end < len && s[end] == '/')
			continue;
		if (lettery && end < len &&
		    (((s[end] | 0x20) >= 'a' && (s[end] | 0x20) <= 'z') ||
		     (unsigned char)s[end] >= 0x80))
			continue;
		*text = emoticons[e].text;
		return end - i;
	}
	return 0;
}

int stem_tokenize(const char *text, size_t len, struct stem_tokens *out, size_t *bad_offset)
{
	assert(out && (text || len == 0));
	memset(out, 0, sizeof *out);
	const unsigned char *s = (const unsigned char *)text;
	size_t i = 0;
	int paren_depth = 0;
	int rc = 0;
	char wordbuf[1024];
	while (i < len) {
		uint32_t c;
		size_t n = utf8_decode(s + i, len - i, &c);
		if (n == 0) {
			if (bad_offset)
				*bad_offset = i;
			rc = -1;
			break;
		}
		if (c < 0x80) {
			const char *etext;
			size_t m = match_emoticon(text, len, i, &etext);
			if (m) {
				token_add_text(out, STEM_EMOTICON, etext, i, m);
				i += m;
				continue;
			}
		}
		if (is_letter(c)) {
			/* a word: letters with inner apostrophes and hyphens */
			size_t start = i, wl = 0;
			int letters = 0, uppers = 0, first_upper = 0, lat = 0, cyr = 0;
			uint32_t prev = 0;
			int run = 0, elongated = 0;
			while (i < len) {
				uint32_t d;
				size_t m = utf8_decode(s + i, len - i, &d);
				if (m == 0)
					break;
				if (is_letter(d)) {
					int up;
					uint32_t lo = letter_lower(d, &up);
					if (letters == 0)
						first_upper = up;
					letters++;
					uppers += up;
					if (is_latin(d))
						lat++;
					else
						cyr++;
					run = (lo == prev) ? run + 1 : 1;
					prev = lo;
					if (run >= 3) {
						elongated = 1;
					} else if (wl + 4 < sizeof wordbuf) {
						wl += utf8_encode(lo, wordbuf + wl);
					}
					i += m;
					continue;
				}
				/* inner joiners: ' ’ ʼ - followed by a letter */
				if (d == '\'' || d == 0x2019 || d == 0x2BC || d == '-') {
					uint32_t e;
					size_t m2 = utf8_decode(s + i + m, len - i - m, &e);
					if (m2 && is_letter(e) && wl + 1 < sizeof wordbuf) {
						wordbuf[wl++] = d == '-' ? '-' : '\'';
						prev = 0;
						run = 0;
						i += m;
						continue;
					}
				}
				break;
			}
			struct stem_token *k =
			    token_add(out, STEM_WORD, arena_put(out, wordbuf, wl), wl, start, i - start);
			k->latin_letters = lat;
			k->cyrillic_letters = cyr;
			k->script = lat && cyr ? STEM_SCRIPT_MIXED
				    : cyr      ? STEM_SCRIPT_CYRILLIC
					       : STEM_SCRIPT_LATIN;
			if (letters >= 2 && uppers == letters)
				k->flags |= STEM_TOK_CAPS;
			if (first_upper)
				k->flags |= STEM_TOK_CAPITAL;
			if (elongated)
				k->flags |= STEM_TOK_ELONGATED;
			continue;
		}
		if (c >= '0' && c <= '9') {
			size_t start = i;
			while (i < len && ((s[i] >= '0' && s[i] <= '9') ||
					   ((s[i] == '.' || s[i] == ',' || s[i] == ':') && i + 1 < len &&
					    s[i + 1] >= '0' && s[i + 1] <= '9')))
				i++;
			token_add(out, STEM_NUMBER, arena_put(out, text + start, i - start), i - start,
				  start, i - start);
			continue;
		}
		if (is_emoji_base(c) || (c >= 0x1F1E6 && c <= 0x1F1FF)) {
			size_t start = i;
			i += n;
			int flag = c >= 0x1F1E6 && c <= 0x1F1FF;
			for (;;) {
				uint32_t d;
				size_t m = utf8_decode(s + i, len - i, &d);
				if (m == 0)
					break;
				if (is_emoji_modifier(d)) {
					i += m;
					continue;
				}
				if (flag && d >= 0x1F1E6 && d <= 0x1F1FF) {
					flag = 0;
					i += m;
					continue;
				}
				if (d == 0x200D) {
					uint32_t e;
					size_t m2 = utf8_decode(s + i + m, len - i - m, &e);
					if (m2 && is_emoji_base(e)) {
						i += m + m2;
						continue;
					}
				}
				break;
			}
			token_add(out, STEM_EMOJI, arena_put(out, text + start, i - start), i - start,
				  start, i - start);
			continue;
		}
		if (c == ')' || c == '(') {
			size_t start = i;
			while (i < len && s[i] == c)
				i++;
			size_t runlen = i - start;
			if (c == '(') {
				/* an opening paren is one that a ')' closes later on */
				if (runlen == 1 && memchr(text + i, ')', len - i)) {
					paren_depth++;
					continue;
				}
				token_add_text(out, STEM_EMOTICON, runlen >= 2 ? "((" : "(", start, runlen);
			} else {
				if (runlen == 1 && paren_depth > 0) {
					paren_depth--;
					continue;
				}
				token_add_text(out, STEM_EMOTICON, runlen >= 2 ? "))" : ")", start, runlen);
			}
			continue;
		}
		if (is_punct(c)) {
			size_t start = i, pl = 0;
			char pbuf[16];
			while (i < len) {
				uint32_t d;
				size_t m = utf8_decode(s + i, len - i, &d);
				if (m == 0 || !is_punct(d))
					break;
				if (d == 0x2026) {
					if (pl + 3 < sizeof pbuf) {
						memcpy(pbuf + pl, "...", 3);
						pl += 3;
					}
				} else if (pl + 1 < sizeof pbuf) {
					pbuf[pl++] = (char)d;
				}
				i += m;
			}
			token_add(out, STEM_PUNCT, arena_put(out, pbuf, pl), pl, start, i - start);
			continue;
		}
		i += n; /* spaces, quotes, symbols: separators */
	}
	for (size_t k = 0; k < out->n; k++)
		out->v[k].text = out->arena + (size_t)(uintptr_t)out->v[k].text;
	return rc;
}

void stem_tokens_free(struct stem_tokens *t)
{
	if (!t)
		return;
	free(t->v);
	free(t->arena);
	memset(t, 0, sizeof *t);
}

int stem_squeeze(const char *word, char *buf, size_t bufsz)
{
	const unsigned char *s = (const unsigned char *)word;
	size_t len = strlen(word), i = 0, o = 0;
	uint32_t prev = 0;
	while (i < len) {
		uint32_t c;
		size_t n = utf8_decode(s + i, len - i, &c);
		if (n == 0) {
			c = s[i];
			n = 1;
		}
		if (c != prev || !is_letter(c)) {
			if (o + n >= bufsz)
				return -1;
			memcpy(buf + o, word + i, n);
			o += n;
		}
		prev = c;
		i += n;
	}
	if (o >= bufsz)
		return -1;
	buf[o] = '\0';
	return (int)o;
}

enum stem_script stem_script_of(const char *word, size_t len)
{
	const unsigned char *s = (const unsigned char *)word;
	int lat = 0, cyr = 0;
	for (size_t i = 0; i < len;) {
		uint32_t c;
		size_t n = utf8_decode(s + i, len - i, &c);
		if (n == 0)
			return STEM_SCRIPT_NONE;
		if (is_latin(c))
			lat++;
		else if (is_cyrillic(c))
			cyr++;
		i += n;
	}
	return lat && cyr ? STEM_SCRIPT_MIXED
	       : cyr      ? STEM_SCRIPT_CYRILLIC
	       : lat      ? STEM_SCRIPT_LATIN
			  : STEM_SCRIPT_NONE;
}

struct stemmer {
	struct sb_stemmer *ru, *en;
};

struct stemmer *stemmer_new(void)
{
	struct stemmer *s = xcalloc(1, sizeof *s);
	s->ru = sb_stemmer_new("russian", "UTF_8");
	s->en = sb_stemmer_new("english", "UTF_8");
	if (!s->ru || !s->en) {
		stemmer_free(s);
		return NULL;
	}
	return s;
}

void stemmer_free(struct stemmer *s)
{
	if (!s)
		return;
	if (s->ru)
		sb_stemmer_delete(s->ru);
	if (s->en)
		sb_stemmer_delete(s->en);
	free(s);
}

int stemmer_stem(struct stemmer *s, const char *word, size_t len, char *buf, size_t bufsz)
{
	assert(s && word && buf);
	const unsigned char *s8 = (const unsigned char *)word;
	int lat = 0, cyr = 0;
	for (size_t i = 0; i < len;) {
		uint32_t c;
		size_t n = utf8_decode(s8 + i, len - i, &c);
		if (n == 0) {
			lat = cyr = 0;
			break;
		}
		if (is_latin(c))
			lat++;
		else if (is_cyrillic(c))
			cyr++;
		i += n;
	}
	const char *out = word;
	size_t outlen = len;
	if ((lat || cyr) && len <= 512) {
		struct sb_stemmer *st = cyr >= lat ? s->ru : s->en;
		const sb_symbol *r = sb_stemmer_stem(st, (const sb_symbol *)word, (int)len);
		if (r) {
			out = (const char *)r;
			outlen = (size_t)sb_stemmer_length(st);
		}
	}
	if (outlen + 1 > bufsz)
		return -1;
	memcpy(buf, out, outlen);
	buf[outlen] = '\0';
	return (int)outlen;
}
