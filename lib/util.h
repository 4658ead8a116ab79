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

#endif
