/* util.c — checked allocation, clocks, randomness, buffers; see util.h. */
#include "config.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "log.h"
#include "util.h"

/* GnuTLS initialises itself in a library constructor (random pools, CPU
 * probing) whenever it is loaded, and libcurl's and libpq's dependencies
 * (librtmp, libldap) load it into every command, which never uses it: our
 * TLS is OpenSSL's. This is what gnutls.h's GNUTLS_SKIP_GLOBAL_INIT
 * defines: the constructor returns at once, and a library that does use
 * GnuTLS still calls gnutls_global_init() itself. ~0.7 M instructions of
 * each process start's ~12 M (callgrind), on every online request. */
int _gnutls_global_init_skip(void);
int _gnutls_global_init_skip(void)
{
	return 1;
}

static void util_out_of_memory(size_t n)
{
	log_event(LOG_ERROR, "out of memory", json_pack("{s:I}", "bytes", (json_int_t)n));
	exit(EX_SOFTWARE);
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		util_out_of_memory(n);
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		util_out_of_memory(n * size);
	return p;
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		util_out_of_memory(n);
	return q;
}

char *xstrdup(const char *s)
{
	char *p = strdup(s);
	if (!p)
		util_out_of_memory(strlen(s));
	return p;
}

double util_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

double util_wall_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int util_random_bytes(void *buf, size_t n)
{
	return RAND_bytes(buf, (int)n) == 1 ? 0 : -1;
}

void util_uuid4(char out[37])
{
	unsigned char b[16];
	if (util_random_bytes(b, sizeof b) != 0) {
		log_msg(LOG_ERROR, "no random bytes for a UUID");
		exit(EX_OSERR);
	}
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(out, 37,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
		 b[12], b[13], b[14], b[15]);
}

double util_random_unit(void)
{
	uint64_t r = 0;
	if (util_random_bytes(&r, sizeof r) != 0)
		r = (uint64_t)rand();
	return (double)(r >> 11) / 9007199254740992.0;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
	if (b->limit && b->len + n > b->limit)
		return -1;
	if (b->len + n + 1 > b->cap) {
		size_t ncap = b->cap ? b->cap : 256;
		while (ncap < b->len + n + 1)
			ncap *= 2;
		b->data = xrealloc(b->data, ncap);
		b->cap = ncap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

void buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

void buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

char *buf_take(struct buf *b)
{
	char *s = b->data ? b->data : xstrdup("");
	b->data = NULL;
	b->len = b->cap = 0;
	return s;
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	char small[256];
	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof small, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n < sizeof small)
		return buf_append(b, small, (size_t)n);
	if (b->limit && b->len + (size_t)n > b->limit)
		return -1;
	char *big = xmalloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	int rc = buf_append(b, big, (size_t)n);
	free(big);
	return rc;
}

enum num_status util_parse_long(const char *s, long long min, long long max, long long *out)
{
	assert(min <= max);
	if (!s || !*s)
		return NUM_EMPTY;
	if (!(isdigit((unsigned char)*s) || ((*s == '-' || *s == '+') && isdigit((unsigned char)s[1]))))
		return NUM_JUNK;
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (*end)
		return NUM_JUNK;
	if ((errno == ERANGE && v == LLONG_MIN) || v < min)
		return NUM_TOO_SMALL;
	if (errno == ERANGE || v > max)
		return NUM_TOO_LARGE;
	*out = v;
	return NUM_OK;
}

const char *util_num_status_text(enum num_status st)
{
	switch (st) {
	case NUM_OK: return "is fine";
	case NUM_EMPTY: return "is empty";
	case NUM_JUNK: return "is not a whole number";
	case NUM_TOO_SMALL: return "is below the minimum";
	case NUM_TOO_LARGE: return "is above the maximum";
	}
	return "is invalid";
}

int util_replace_file(const char *path, const void *data, size_t len, unsigned mode)
{
	size_t pl = strlen(path);
	char *tmp = xmalloc(pl + 16);
	snprintf(tmp, pl + 16, "%s.tmpXXXXXX", path);
	int fd = mkstemp(tmp); /* O_CREAT|O_EXCL: never an existing file or link */
	if (fd < 0) {
		free(tmp);
		return -1;
	}
	const char *p = data;
	size_t off = 0;
	int ok = fchmod(fd, (mode_t)mode) == 0;
	while (ok && off < len) {
		ssize_t w = write(fd, p + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			ok = 0;
		else
			off += (size_t)w;
	}
	ok = ok && fsync(fd) == 0;
	int saved = errno;
	ok = close(fd) == 0 && ok;
	if (ok && rename(tmp, path) != 0) {
		saved = errno;
		ok = 0;
	}
	if (!ok) {
		unlink(tmp);
		errno = saved;
	}
	free(tmp);
	return ok ? 0 : -1;
}
