/* jscan.h — checking a request body without building it.
 *
 * unde-httpd passes the client's body on as text, and a command's answer
 * back as text; for the body it only needs to know
 * that the body is one valid JSON object with no key given twice (at any
 * depth), which top-level keys it has, and where its top-level request_id
 * is; for an answer, that it is one object, and its request_id, stage and
 * error members (jscan_find; only those small values are then decoded).
 * Building a jansson tree for that cost ~50 bytes per value (a 1 MiB
 * body of small numbers took ~30 MB); this scanner keeps 16 bytes per key
 * of the objects still open, and nothing per array element or number.
 * It accepts what jansson's decoder accepts (RFC 8259, UTF-8, no \u0000,
 * paired surrogates, nesting up to 2048), except that it does not refuse
 * numbers too large for a C double or long long: the command will. */
#ifndef UNDE_HTTPD_JSCAN_H
#define UNDE_HTTPD_JSCAN_H

#include <stddef.h>

struct jscan_key {
	size_t off, len; /* the decoded key: in the body text, or in the arena */
	int in_arena;
	size_t vs, ve;   /* its value's span in the text */
};

struct jscan {
	const char *text;
	size_t len;
	/* After jscan_object: the top-level keys, sorted by their bytes. */
	struct jscan_key *keys;
	size_t nkeys, capkeys, top_from, top_n;
	char *arena;           /* decoded keys that had escapes */
	size_t alen, acap;
	/* the top-level request_id: value span in text, and whether it is a
	 * string (its decoded value then in rid / ridlen) */
	int has_rid, rid_is_string;
	size_t rid_off, rid_end;
	char rid[129];
	size_t ridlen;         /* > 128: too long to be an id */
};

/* Check text[0..len) is one JSON object. Returns 0, or -1 with why (static
 * text) and *where (byte offset) set. jscan_free afterwards either way. */
int jscan_object(struct jscan *s, const char *text, size_t len, const char **why, size_t *where);

/* The top-level member with this (decoded) key, or NULL. */
const struct jscan_key *jscan_find(const struct jscan *s, const char *key, size_t keylen);
int jscan_has_key(const struct jscan *s, const char *key, size_t keylen);

void jscan_free(struct jscan *s);

#endif
