/* jscan.c — a validating JSON scan of request bodies; see jscan.h. */
#include "config.h" /* _GNU_SOURCE: qsort_r */

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jscan.h"
#include "util.h"

#define JSCAN_MAX_DEPTH 2048 /* jansson's own limit */

struct scan {
	struct jscan *s;
	const char *t;
	size_t n, i;
	int depth;
	const char *why;
};

static int scan_fail(struct scan *p, const char *why)
{
	p->why = why;
	return -1;
}

static void scan_ws(struct scan *p)
{
	while (p->i < p->n && (p->t[p->i] == ' ' || p->t[p->i] == '\t' || p->t[p->i] == '\n' ||
			       p->t[p->i] == '\r'))
		p->i++;
}

/* The length of the valid UTF-8 character at s[0..n), or 0. */
static size_t scan_utf8(const unsigned char *s, size_t n)
{
	size_t len = s[0] < 0x80 ? 1 : (s[0] & 0xe0) == 0xc0 ? 2 : (s[0] & 0xf0) == 0xe0 ? 3
		   : (s[0] & 0xf8) == 0xf0 ? 4 : 0;
	if (len == 0 || len > n || (len == 2 && s[0] < 0xc2) || (len == 4 && s[0] > 0xf4))
		return 0;
	for (size_t i = 1; i < len; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	if ((len == 3 && s[0] == 0xe0 && s[1] < 0xa0) || (len == 3 && s[0] == 0xed && s[1] > 0x9f) ||
	    (len == 4 && s[0] == 0xf0 && s[1] < 0x90) || (len == 4 && s[0] == 0xf4 && s[1] > 0x8f))
		return 0;
	return len;
}

/* Four hex digits at t[0..4), or -1. */
static long scan_hex4(const char *t)
{
	long v = 0;
	for (int k = 0; k < 4; k++) {
		int h = util_hexval(t[k]);
		if (h < 0)
			return -1;
		v = v * 16 + h;
	}
	return v;
}

static void scan_arena_put(struct jscan *s, const void *b, size_t n)
{
	if (s->acap - s->alen < n) {
		size_t cap = s->acap ? s->acap : 256;
		while (cap - s->alen < n)
			cap *= 2;
		s->arena = xrealloc(s->arena, cap);
		s->acap = cap;
	}
	memcpy(s->arena + s->alen, b, n);
	s->alen += n;
}

static void scan_arena_cp(struct jscan *s, uint32_t cp)
{
	unsigned char b[4];
	size_t n;
	if (cp < 0x80) {
		b[0] = (unsigned char)cp;
		n = 1;
	} else if (cp < 0x800) {
		b[0] = (unsigned char)(0xc0 | cp >> 6);
		b[1] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		b[0] = (unsigned char)(0xe0 | cp >> 12);
		b[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
		b[2] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		b[0] = (unsigned char)(0xf0 | cp >> 18);
		b[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
		b[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
		b[3] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	scan_arena_put(s, b, n);
}

/* Decode the (already checked) string body t[from..to) into the arena. */
static void scan_decode(struct jscan *s, const char *t, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++) {
		if (t[i] != '\\') {
			scan_arena_put(s, t + i, 1);
			continue;
		}
		char e = t[++i];
		const char *simple = strchr("\"\\/bfnrt", e);
		if (simple) {
			static const char out[] = "\"\\/\b\f\n\r\t";
			scan_arena_put(s, &out[simple - "\"\\/bfnrt"], 1);
			continue;
		}
		uint32_t cp = (uint32_t)scan_hex4(t + i + 1);
		i += 4;
		if (cp >= 0xd800 && cp <= 0xdbff) {
			uint32_t lo = (uint32_t)scan_hex4(t + i + 3);
			cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			i += 6;
		}
		scan_arena_cp(s, cp);
	}
}

/* A string at t[i] == '"': checked, and *escaped says whether its body
 * (t[*from..*to)) holds escapes. */
static int scan_string(struct scan *p, size_t *from, size_t *to, int *escaped)
{
	const char *t = p->t;
	size_t i = p->i + 1;
	*from = i;
	*escaped = 0;
	for (;;) {
		if (i >= p->n)
			return scan_fail(p, "unterminated string");
		unsigned char c = (unsigned char)t[i];
		if (c == '"')
			break;
		if (c < 0x20)
			return scan_fail(p, "control character in a string");
		if (c == '\\') {
			*escaped = 1;
			if (i + 1 >= p->n)
				return scan_fail(p, "unterminated string");
			char e = t[i + 1];
			if (e && strchr("\"\\/bfnrt", e)) {
				i += 2;
				continue;
			}
			if (e != 'u' || i + 6 > p->n)
				return scan_fail(p, "invalid escape in a string");
			long cp = scan_hex4(t + i + 2);
			if (cp < 0)
				return scan_fail(p, "invalid \\u escape in a string");
			if (cp == 0)
				return scan_fail(p, "\\u0000 is not allowed in a string");
			if (cp >= 0xdc00 && cp <= 0xdfff)
				return scan_fail(p, "lone low surrogate in a string");
			i += 6;
			if (cp >= 0xd800 && cp <= 0xdbff) {
				long lo = i + 6 <= p->n && t[i] == '\\' && t[i + 1] == 'u'
						  ? scan_hex4(t + i + 2) : -1;
				if (lo < 0xdc00 || lo > 0xdfff)
					return scan_fail(p, "unpaired high surrogate in a string");
				i += 6;
			}
			continue;
		}
		size_t k = scan_utf8((const unsigned char *)t + i, p->n - i);
		if (!k)
			return scan_fail(p, "invalid UTF-8 in a string");
		i += k;
	}
	*to = i;
	p->i = i + 1;
	return 0;
}

static int scan_number(struct scan *p)
{
	const char *t = p->t;
	size_t i = p->i, n = p->n;
	if (i < n && t[i] == '-')
		i++;
	if (i < n && t[i] == '0') {
		i++;
	} else if (i < n && t[i] >= '1' && t[i] <= '9') {
		while (i < n && t[i] >= '0' && t[i] <= '9')
			i++;
	} else {
		return scan_fail(p, "invalid number");
	}
	if (i < n && t[i] == '.') {
		size_t d = ++i;
		while (i < n && t[i] >= '0' && t[i] <= '9')
			i++;
		if (i == d)
			return scan_fail(p, "invalid number");
	}
	if (i < n && (t[i] == 'e' || t[i] == 'E')) {
		i++;
		if (i < n && (t[i] == '+' || t[i] == '-'))
			i++;
		size_t d = i;
		while (i < n && t[i] >= '0' && t[i] <= '9')
			i++;
		if (i == d)
			return scan_fail(p, "invalid number");
	}
	p->i = i;
	return 0;
}

static const char *scan_key_bytes(const struct jscan *s, const struct jscan_key *k)
{
	return k->in_arena ? s->arena + k->off : s->text + k->off;
}

static int scan_key_cmp(const void *a, const void *b, void *ctx)
{
	const struct jscan *s = ctx;
	const struct jscan_key *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = n ? memcmp(scan_key_bytes(s, x), scan_key_bytes(s, y), n) : 0;
	return c ? c : (x->len > y->len) - (x->len < y->len);
}

static int scan_value(struct scan *p);

static int scan_object(struct scan *p)
{
	struct jscan *s = p->s;
	if (++p->depth > JSCAN_MAX_DEPTH)
		return scan_fail(p, "nested too deep");
	size_t from = s->nkeys, arena0 = s->alen;
	p->i++;
	scan_ws(p);
	if (p->i < p->n && p->t[p->i] == '}') {
		p->i++;
	} else {
		for (;;) {
			scan_ws(p);
			if (p->i >= p->n || p->t[p->i] != '"')
				return scan_fail(p, "object key expected");
			size_t ks, ke;
			int esc;
			if (scan_string(p, &ks, &ke, &esc) != 0)
				return -1;
			struct jscan_key k = { ks, ke - ks, 0, 0, 0 };
			if (esc) {
				k.off = s->alen;
				scan_decode(s, p->t, ks, ke);
				k.len = s->alen - k.off;
				k.in_arena = 1;
			}
			if (s->nkeys == s->capkeys) {
				s->capkeys = s->capkeys ? 2 * s->capkeys : 16;
				s->keys = xrealloc(s->keys, s->capkeys * sizeof *s->keys);
			}
			size_t ki = s->nkeys;
			s->keys[s->nkeys++] = k;
			int is_rid = p->depth == 1 && k.len == 10 &&
				     memcmp(scan_key_bytes(s, &k), "request_id", 10) == 0;
			scan_ws(p);
			if (p->i >= p->n || p->t[p->i] != ':')
				return scan_fail(p, "':' expected after an object key");
			p->i++;
			scan_ws(p);
			size_t vs = p->i;
			if (scan_value(p) != 0)
				return -1;
			s->keys[ki].vs = vs;
			s->keys[ki].ve = p->i;
			if (is_rid) {
				s->has_rid = 1;
				s->rid_off = vs;
				s->rid_end = p->i;
				s->rid_is_string = p->t[vs] == '"';
				if (s->rid_is_string) {
					size_t a0 = s->alen;
					scan_decode(s, p->t, vs + 1, p->i - 1);
					s->ridlen = s->alen - a0;
					if (s->ridlen)
						memcpy(s->rid, s->arena + a0,
						       s->ridlen < sizeof s->rid ? s->ridlen
										 : sizeof s->rid - 1);
					s->rid[s->ridlen < sizeof s->rid ? s->ridlen : sizeof s->rid - 1] = '\0';
					s->alen = a0;
				}
			}
			scan_ws(p);
			if (p->i < p->n && p->t[p->i] == ',') {
				p->i++;
				continue;
			}
			if (p->i < p->n && p->t[p->i] == '}') {
				p->i++;
				break;
			}
			return scan_fail(p, "',' or '}' expected in an object");
		}
	}
	size_t n = s->nkeys - from;
	if (n > 1)
		qsort_r(s->keys + from, n, sizeof *s->keys, scan_key_cmp, s);
	for (size_t k = from + 1; k < s->nkeys; k++)
		if (scan_key_cmp(&s->keys[k - 1], &s->keys[k], s) == 0)
			return scan_fail(p, "duplicate object key");
	if (p->depth == 1) {
		s->top_from = from;
		s->top_n = n;
	} else {
		/* Closed: its keys are not needed any more. */
		s->nkeys = from;
		s->alen = arena0;
	}
	p->depth--;
	return 0;
}

static int scan_array(struct scan *p)
{
	if (++p->depth > JSCAN_MAX_DEPTH)
		return scan_fail(p, "nested too deep");
	p->i++;
	scan_ws(p);
	if (p->i < p->n && p->t[p->i] == ']') {
		p->i++;
		p->depth--;
		return 0;
	}
	for (;;) {
		scan_ws(p);
		if (scan_value(p) != 0)
			return -1;
		scan_ws(p);
		if (p->i < p->n && p->t[p->i] == ',') {
			p->i++;
			continue;
		}
		if (p->i < p->n && p->t[p->i] == ']') {
			p->i++;
			p->depth--;
			return 0;
		}
		return scan_fail(p, "',' or ']' expected in an array");
	}
}

static int scan_value(struct scan *p)
{
	if (p->i >= p->n)
		return scan_fail(p, "value expected");
	char c = p->t[p->i];
	if (c == '{')
		return scan_object(p);
	if (c == '[')
		return scan_array(p);
	if (c == '"') {
		size_t a, b;
		int e;
		return scan_string(p, &a, &b, &e);
	}
	if (c == '-' || (c >= '0' && c <= '9'))
		return scan_number(p);
	static const char *const lits[] = { "true", "false", "null" };
	for (size_t k = 0; k < 3; k++) {
		size_t l = strlen(lits[k]);
		if (p->n - p->i >= l && memcmp(p->t + p->i, lits[k], l) == 0) {
			p->i += l;
			return 0;
		}
	}
	return scan_fail(p, "invalid value");
}

int jscan_object(struct jscan *s, const char *text, size_t len, const char **why, size_t *where)
{
	memset(s, 0, sizeof *s);
	s->text = text;
	s->len = len;
	struct scan p = { s, text, len, 0, 0, NULL };
	scan_ws(&p);
	int is_object = p.i < len && text[p.i] == '{';
	int rc = scan_value(&p);
	if (rc == 0) {
		scan_ws(&p);
		if (p.i != len)
			rc = scan_fail(&p, "end of input expected after the value");
	}
	if (rc == 0 && !is_object)
		rc = scan_fail(&p, "request body must be a JSON object");
	*why = p.why;
	*where = p.i;
	return rc;
}

const struct jscan_key *jscan_find(const struct jscan *s, const char *key, size_t keylen)
{
	size_t lo = s->top_from, hi = s->top_from + s->top_n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct jscan_key *k = &s->keys[mid];
		size_t n = k->len < keylen ? k->len : keylen;
		int c = n ? memcmp(scan_key_bytes(s, k), key, n) : 0;
		if (!c)
			c = (k->len > keylen) - (k->len < keylen);
		if (c == 0)
			return k;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

int jscan_has_key(const struct jscan *s, const char *key, size_t keylen)
{
	return jscan_find(s, key, keylen) != NULL;
}

void jscan_free(struct jscan *s)
{
	free(s->keys);
	free(s->arena);
	s->keys = NULL;
	s->arena = NULL;
}
