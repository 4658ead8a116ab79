/* parse.h — the strict HTTP/1.1 request parser of unde-httpd.
 *
 * Pure functions, no I/O and no allocation: bytes in, a request description
 * or an HTTP status out, so the whole module can be fuzzed and unit-tested
 * alone. It follows RFC 9112 and refuses, rather than guesses, whenever a
 * message could be read two ways:
 *
 *   - lines end in CRLF only: a bare CR or a bare LF is an error, and so is
 *     a NUL or another control byte anywhere in the head;
 *   - request line: METHOD SP origin-form-target SP HTTP/1.x, single spaces;
 *   - field lines: token ":" OWS value OWS; whitespace before the colon and
 *     obs-fold (a line starting with SP/HTAB) are errors;
 *   - framing: Content-Length and Transfer-Encoding together, differing
 *     Content-Lengths, a non-numeric length, a Transfer-Encoding whose last
 *     coding is not chunked, or any Transfer-Encoding in HTTP/1.0 are errors;
 *   - HTTP/1.1 requests carry exactly one Host.
 *
 * Every position is an offset into the caller's buffer (struct hp_span), so
 * the caller may copy the head elsewhere and keep using the result.
 * Errors are returned as negative HTTP status codes (-400, -431, …) with a
 * static message for people. */
#ifndef UNDE_HTTPD_PARSE_H
#define UNDE_HTTPD_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define HP_MAX_HEADERS 100
#define HP_MAX_METHOD 32

struct hp_limits {
	size_t max_request_line; /* request line without its CRLF: longer is 431 */
	size_t max_head;         /* whole head, request line to the empty line: 431 */
	uint64_t max_body;       /* declared or decoded body size: larger is 413 */
};

struct hp_span {
	uint32_t off, len;
};

struct hp_header {
	struct hp_span name, value;
};

enum hp_body { HP_BODY_NONE, HP_BODY_LENGTH, HP_BODY_CHUNKED };

struct hp_request {
	size_t head_len;       /* bytes up to and including the empty line */
	struct hp_span method;
	struct hp_span target; /* as sent */
	struct hp_span path;   /* target up to '?', still percent-encoded */
	struct hp_span query;  /* after '?', without it; len 0 when none */
	int minor;             /* HTTP/1.minor: 0 or 1 */
	unsigned nheaders;
	struct hp_header headers[HP_MAX_HEADERS];
	enum hp_body body;
	uint64_t content_length;
	int keep_alive;        /* the connection may serve another request */
	int expect_continue;   /* Expect: 100-continue */
	int has_request_id;
	struct hp_span request_id; /* X-Request-Id value */
};

/* Parse the head at the start of buf[0..len). Returns the head's length
 * (> 0) with req filled in, 0 when more bytes are needed (nothing wrong so
 * far), or a negative HTTP status with *why set. Bytes after the head (the
 * body, a pipelined request) are not looked at. Leading empty lines are
 * skipped, as RFC 9112 §2.2 asks. */
long hp_parse_head(const char *buf, size_t len, const struct hp_limits *lim,
		   struct hp_request *req, const char **why);

/* Is c a token character (RFC 9110 §5.6.2)? */
int hp_tchar(unsigned char c);

/* Case-insensitive comparison of a span of buf with a NUL-terminated name. */
int hp_span_eq(const char *buf, struct hp_span s, const char *name);

/* Decode a percent-encoded path into out (NUL-terminated). Refuses (-400)
 * an encoded NUL or '/', a backslash, a control byte, and any "." or ".."
 * segment, so no traversal can reach a route. Returns the decoded length. */
long hp_decode_path(const char *path, size_t len, char *out, size_t outcap, const char **why);

/* Walk a query string: a=1&b=x%20y. Each call decodes the next parameter
 * (percent escapes and '+' as space) into key/val (NUL-terminated). Returns
 * 1 with a parameter, 0 at the end, or -400 on a bad escape, an encoded NUL
 * or a parameter too long for the buffers. *pos starts at 0. */
int hp_query_next(const char *q, size_t len, size_t *pos, char *key, size_t keycap,
		  size_t *keylen, char *val, size_t valcap, size_t *vallen, const char **why);

/* Incremental decoder of a chunked request body (RFC 9112 §7.1): chunk
 * sizes in hex, extensions and trailer fields read and dropped, bare CR/LF
 * and oversize lines refused. Zero it before the first call. */
struct hp_chunked {
	int state;
	uint64_t remaining; /* bytes left in the current chunk */
	uint64_t total;     /* decoded so far */
	size_t line;        /* length of the size or trailer line read so far */
	size_t trailers;    /* bytes of trailer section so far */
	int digits;         /* hex digits of the current size */
};

/* Feed in[0..len). Decoded bytes are written to out, which must have room
 * for len bytes. *used is the input consumed, *made the bytes written.
 * Returns 1 when the body is complete (the rest of in is not consumed), 0
 * when more input is needed, -413 when the decoded size passes max_body,
 * or -400 on malformed input. */
int hp_chunked_feed(struct hp_chunked *c, const char *in, size_t len, uint64_t max_body,
		    char *out, size_t *used, size_t *made, const char **why);

/* The reason phrase of a status code ("Not Found"). */
const char *hp_reason(int status);

#endif
