/* util.h — small things every command needs: checked allocation, clocks,
 * random bytes and UUIDs, and a growable byte buffer. Allocation failure is
 * fatal (exit 70 with a log line): a command that cannot allocate cannot
 * keep its promises anyway, and callers stay free of unchecked NULLs. */
#ifndef UNDE_UTIL_H
#define UNDE_UTIL_H

#include <stddef.h>
#include <stdint.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

/* Milliseconds on the monotonic clock. */
double util_now_ms(void);
/* Seconds since the epoch, with fractions. */
double util_wall_seconds(void);

/* Fill buf with cryptographically random bytes (OpenSSL). Returns 0 or -1. */
int util_random_bytes(void *buf, size_t n);
/* A random UUID v4 in canonical text form (37 bytes with the NUL). */
void util_uuid4(char out[37]);
/* A random double in [0, 1). */
double util_random_unit(void);

/* The value of one hex digit (either case), or -1. Inline, so code built
 * without libunde (the httpd parser's fuzzer) can use it too. */
static inline int util_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

struct buf {
	char *data;
	size_t len, cap;
	size_t limit; /* 0: unbounded */
};
/* Append n bytes. Returns 0, or -1 when the buffer's limit would be passed. */
int buf_append(struct buf *b, const void *p, size_t n);
void buf_free(struct buf *b);

/* The growable printf buffer ("strbuf"): append formatted text, sized from
 * the output itself (vsnprintf twice), so no line is ever cut at a fixed
 * array's end and nothing abort()s on a long value. The data stays
 * NUL-terminated. Returns 0, or -1 when b->limit would be passed (b is then
 * unchanged). */
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Empty b, keeping its memory. */
void buf_reset(struct buf *b);
/* Hand b's text to the caller (an empty string when nothing was added);
 * b is left empty. */
char *buf_take(struct buf *b);

/* Replace path with len bytes of data, atomically: written to a temporary
 * file made with mkstemp (O_EXCL) in path's directory, fsync'd, renamed
 * over path. A symlink planted at path is replaced, never followed; a
 * reader never sees half a file. mode: e.g. 0644. Returns 0 or -1 (errno
 * set; the temporary file is gone). */
int util_replace_file(const char *path, const void *data, size_t len, unsigned mode);

/* How a number operand failed to parse (see util_parse_long). */
enum num_status { NUM_OK = 0, NUM_EMPTY, NUM_JUNK, NUM_TOO_SMALL, NUM_TOO_LARGE };

/* The one bounded argv/env number parser (strtonum-like): base 10, the
 * whole string, no leading or trailing spaces, within [min, max]. *out is
 * set only on NUM_OK. */
enum num_status util_parse_long(const char *s, long long min, long long max, long long *out);
/* A phrase for people ("is not a number", "is below the minimum"). */
const char *util_num_status_text(enum num_status st);

#endif
