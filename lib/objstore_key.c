/* objstore_key.c — the object store's keys and their URLs: which keys are
 * valid, the URL a key is requested at or published as, and the key back
 * from such a URL; see objstore.h. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "objstore.h"
#include "objstore_int.h"
#include "util.h"

#define OBJSTORE_KEY_MAX 1024

int objstore_key_valid(const char *key)
{
	size_t n = key ? strlen(key) : 0;
	if (n == 0 || n > OBJSTORE_KEY_MAX || key[0] == '/' || key[n - 1] == '/')
		return 0;
	for (const char *p = key; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c < 0x20 || c == 0x7f || c == '\\')
			return 0;
	}
	/* every segment: not empty, not "." and not ".." */
	for (const char *seg = key; seg;) {
		const char *end = strchr(seg, '/');
		size_t len = end ? (size_t)(end - seg) : strlen(seg);
		if (len == 0 || (len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.'))
			return 0;
		seg = end ? end + 1 : NULL;
	}
	return 1;
}

/* S3's URI encoding of a key: everything but unreserved characters and '/'
 * as %XX. libcurl signs the path as sent, which is what S3 expects. */
static void objstore_encode_key(struct buf *b, const char *key)
{
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		    *p == '-' || *p == '_' || *p == '.' || *p == '~' || *p == '/') {
			buf_append(b, p, 1);
		} else {
			char e[3] = { '%', hex[*p >> 4], hex[*p & 15] };
			buf_append(b, e, 3);
		}
	}
}

static void objstore_append(struct buf *b, const char *s) { buf_append(b, s, strlen(s)); }

/* objstore_endpoint_base: see objstore_int.h. */
void objstore_endpoint_base(const struct objstore *os, struct buf *b)
{
	if (os->local) {
		objstore_append(b, "file://");
		if (strcmp(os->root, "/") != 0)
			objstore_append(b, os->root);
		objstore_append(b, "/");
		objstore_append(b, os->bucket);
		return;
	}
	objstore_append(b, os->scheme);
	objstore_append(b, "://");
	if (os->virtual_host) {
		objstore_append(b, os->bucket);
		objstore_append(b, ".");
		objstore_append(b, os->hostport);
		objstore_append(b, os->basepath);
	} else {
		objstore_append(b, os->hostport);
		objstore_append(b, os->basepath);
		objstore_append(b, "/");
		objstore_append(b, os->bucket);
	}
}

/* objstore_request_url: see objstore_int.h. */
char *objstore_request_url(const struct objstore *os, const char *key)
{
	struct buf b = { 0 };
	objstore_endpoint_base(os, &b);
	objstore_append(&b, "/");
	objstore_encode_key(&b, key);
	return b.data;
}

char *objstore_url(const struct objstore *os, const char *key)
{
	if (!os->public_base)
		return objstore_request_url(os, key);
	struct buf b = { 0 };
	objstore_append(&b, os->public_base);
	objstore_append(&b, "/");
	objstore_encode_key(&b, key);
	return b.data;
}

/* Percent-decode s into a new string, or NULL when it is malformed. */
static char *objstore_decode(const char *s)
{
	size_t n = strlen(s);
	char *out = xmalloc(n + 1), *o = out;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%') {
			int hi = i + 2 < n + 1 ? util_hexval(s[i + 1]) : -1;
			int lo = hi >= 0 ? util_hexval(s[i + 2]) : -1;
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
				free(out);
				return NULL;
			}
			*o++ = (char)(hi * 16 + lo);
			i += 2;
		} else if (s[i] == '?' || s[i] == '#') {
			break;
		} else {
			*o++ = s[i];
		}
	}
	*o = '\0';
	return out;
}

static char *objstore_key_after(const char *url, const char *base)
{
	size_t n = strlen(base);
	if (strncmp(url, base, n) != 0 || url[n] != '/')
		return NULL;
	char *key = objstore_decode(url + n + 1);
	if (key && !objstore_key_valid(key)) {
		free(key);
		key = NULL;
	}
	return key;
}

char *objstore_key_from_url(const struct objstore *os, const char *url)
{
	if (!url)
		return NULL;
	char *key = NULL;
	if (os->public_base)
		key = objstore_key_after(url, os->public_base);
	if (!key) {
		struct buf b = { 0 };
		objstore_endpoint_base(os, &b);
		key = objstore_key_after(url, b.data);
		buf_free(&b);
	}
	return key;
}
