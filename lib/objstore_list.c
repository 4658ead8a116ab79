/* objstore_list.c — listing the objects under a prefix (objstore.h): S3's
 * ListObjectsV2 signed like every other request, or a walk of the file://
 * store's directories. Kept apart from objstore.c, which holds the
 * single-object operations. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "http.h"
#include "objstore.h"
#include "objstore_int.h"
#include "util.h"

#define LIST_MAX_RESPONSE (16u << 20)
#define LIST_MAX_PAGES 100000

/* RFC 3986 encoding of a query value: all but unreserved characters as
 * %XX. S3 signs the canonical query, which is this, sorted by name. */
static void list_encode(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		    *p == '-' || *p == '_' || *p == '.' || *p == '~') {
			buf_append(b, p, 1);
		} else {
			char e[3] = { '%', hex[*p >> 4], hex[*p & 15] };
			buf_append(b, e, 3);
		}
	}
}

/* XML's five entities back to characters, in place. */
static void list_unescape(char *s)
{
	static const struct { const char *ent; char c; } ents[] = {
		{ "&amp;", '&' }, { "&lt;", '<' }, { "&gt;", '>' }, { "&quot;", '"' }, { "&apos;", '\'' },
	};
	char *w = s;
	for (const char *r = s; *r;) {
		size_t i, n = sizeof ents / sizeof ents[0];
		for (i = 0; i < n && strncmp(r, ents[i].ent, strlen(ents[i].ent)) != 0; i++)
			;
		if (i < n) {
			*w++ = ents[i].c;
			r += strlen(ents[i].ent);
		} else {
			*w++ = *r++;
		}
	}
	*w = '\0';
}

/* S3's LastModified, "2026-12-02T15:04:05.123Z", as seconds since the
 * epoch; -1 when it is not that. */
static double list_parse_time(const char *s)
{
	struct tm tm = { 0 };
	const char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!end)
		return -1;
	double frac = 0;
	if (*end == '.') {
		double scale = 0.1;
		for (end++; *end >= '0' && *end <= '9'; end++, scale /= 10)
			frac += (*end - '0') * scale;
	}
	if (*end != 'Z' && strcmp(end, "+00:00") != 0)
		return -1;
	time_t t = timegm(&tm);
	return t == (time_t)-1 ? -1 : (double)t + frac;
}

/* One page of ListObjectsV2: fn for each <Contents>; *next gets the
 * continuation token when the listing is truncated (else ""). 1: fn
 * stopped, 0: go on, -1: error. */
static int list_s3_page(struct objstore *os, const char *prefix, const char *token, char *next,
			size_t nextcap, int (*fn)(void *, const struct objstore_entry *), void *ud,
			struct objstore_error *err)
{
	struct buf url = { 0 };
	objstore_endpoint_base(os, &url);
	buf_printf(&url, "/?");
	if (token && *token) {
		buf_printf(&url, "continuation-token=");
		list_encode(&url, token);
		buf_printf(&url, "&");
	}
	/* the prefix asked of the server stops before its first '/': moto
	 * (5.2) checks the signature of a query holding %2F against '/', so it
	 * refuses such a listing however it is signed; the rest is filtered
	 * here (S3 lists in key order either way) */
	buf_printf(&url, "list-type=2&prefix=");
	char *head = xstrdup(prefix);
	head[strcspn(head, "/")] = '\0';
	list_encode(&url, head);
	free(head);
	char hex[65], sha[96];
	objstore_sha256_hex("", 0, hex);
	snprintf(sha, sizeof sha, "x-amz-content-sha256: %s", hex);
	const char *headers[] = { sha, NULL };
	struct http_request req = {
		.method = "GET", .url = url.data, .headers = headers, .max_response = LIST_MAX_RESPONSE,
		.aws_sigv4 = os->sigv4, .userpwd = os->userpwd,
	};
	struct http_response r;
	http_perform(&req, &r);
	buf_free(&url);
	int rc = objstore_s3_outcome("LIST", prefix, &r, 0, err) == OBJSTORE_OK ? 0 : -1;
	next[0] = '\0';
	const char *xml = r.body.data ? r.body.data : "";
	if (rc == 0 && !strstr(xml, "<ListBucketResult")) {
		objstore_set_error(err, r.status, 0, "malformed", "LIST %s: the answer is not a ListBucketResult",
				   prefix);
		rc = -1;
	}
	for (const char *p = xml; rc == 0 && (p = strstr(p, "<Contents>")) != NULL;) {
		const char *e = strstr(p, "</Contents>");
		if (!e) {
			objstore_set_error(err, r.status, 0, "malformed", "LIST %s: an unclosed <Contents>", prefix);
			rc = -1;
			break;
		}
		size_t n = (size_t)(e - p);
		char *one = xmalloc(n + 1);
		memcpy(one, p, n);
		one[n] = '\0';
		char key[1200], size[32], when[64];
		objstore_xml_field(one, "Key", key, sizeof key);
		objstore_xml_field(one, "Size", size, sizeof size);
		objstore_xml_field(one, "LastModified", when, sizeof when);
		free(one);
		list_unescape(key);
		long long sz = 0;
		double mtime = list_parse_time(when);
		if (!key[0] || util_parse_long(size, 0, (long long)1 << 50, &sz) != NUM_OK || mtime < 0) {
			objstore_set_error(err, r.status, 0, "malformed", "LIST %s: an entry without a key, size or time",
					   prefix);
			rc = -1;
			break;
		}
		struct objstore_entry ent = { key, (size_t)sz, mtime };
		if (strncmp(key, prefix, strlen(prefix)) == 0 && fn(ud, &ent) != 0)
			rc = 1;
		p = e;
	}
	if (rc == 0) {
		char trunc[16];
		objstore_xml_field(xml, "IsTruncated", trunc, sizeof trunc);
		if (strcmp(trunc, "true") == 0) {
			objstore_xml_field(xml, "NextContinuationToken", next, nextcap);
			list_unescape(next);
			if (!next[0]) {
				objstore_set_error(err, r.status, 0, "malformed",
						   "LIST %s: truncated without a continuation token", prefix);
				rc = -1;
			}
		}
	}
	http_response_free(&r);
	return rc;
}

/* Walk dir (the file of key prefix rel, "" or ending in '/'), calling fn
 * for the files whose key starts with prefix. 1 stopped, 0, -1 error. */
static int list_walk(const char *dir, const char *rel, const char *prefix,
		     int (*fn)(void *, const struct objstore_entry *), void *ud,
		     struct objstore_error *err)
{
	DIR *d = opendir(dir);
	if (!d) {
		if (errno == ENOENT || errno == ENOTDIR)
			return 0;
		objstore_set_error(err, 0, 0, "io", "cannot list %s: %s", rel[0] ? rel : "the bucket",
				   strerror(errno));
		return -1;
	}
	int rc = 0;
	struct dirent *de;
	while (rc == 0 && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue; /* ".", "..", and the hidden files of writes in progress */
		struct buf key = { 0 }, path = { 0 };
		buf_printf(&key, "%s%s", rel, de->d_name);
		buf_printf(&path, "%s/%s", dir, de->d_name);
		struct stat st;
		size_t common = key.len < strlen(prefix) ? key.len : strlen(prefix);
		if (strncmp(key.data, prefix, common) != 0 || lstat(path.data, &st) != 0) {
			/* not under the prefix, or gone since readdir */
		} else if (S_ISDIR(st.st_mode)) {
			buf_printf(&key, "/");
			rc = list_walk(path.data, key.data, prefix, fn, ud, err);
		} else if (S_ISREG(st.st_mode) && key.len >= strlen(prefix)) {
			struct objstore_entry ent = { key.data, (size_t)st.st_size,
						      (double)st.st_mtim.tv_sec + st.st_mtim.tv_nsec / 1e9 };
			rc = fn(ud, &ent) != 0;
		}
		buf_free(&key);
		buf_free(&path);
	}
	closedir(d);
	return rc;
}

int objstore_list(struct objstore *os, const char *prefix,
		  int (*fn)(void *ud, const struct objstore_entry *e), void *ud,
		  struct objstore_error *err)
{
	objstore_clear_error(err);
	if (!prefix)
		prefix = "";
	if (strlen(prefix) > 1024 || strchr(prefix, '\n')) {
		objstore_set_error(err, 0, 0, "invalid_key", "invalid prefix");
		return OBJSTORE_ERROR;
	}
	if (os->local) {
		char *root = objstore_file_path(os, "");
		root[strlen(root) - 1] = '\0'; /* "<root>/<bucket>/" without its '/' */
		int rc = list_walk(root, "", prefix, fn, ud, err);
		free(root);
		return rc < 0 ? OBJSTORE_ERROR : OBJSTORE_OK;
	}
	char token[1200] = "", next[1200];
	for (long page = 0; page < LIST_MAX_PAGES; page++) {
		int rc = list_s3_page(os, prefix, token, next, sizeof next, fn, ud, err);
		if (rc < 0)
			return OBJSTORE_ERROR;
		if (rc > 0 || !next[0])
			return OBJSTORE_OK;
		snprintf(token, sizeof token, "%s", next);
	}
	objstore_set_error(err, 0, 0, "too_large", "LIST %s: more than %d pages", prefix, LIST_MAX_PAGES);
	return OBJSTORE_ERROR;
}
