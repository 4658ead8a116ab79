/* objstore.c — S3 via libcurl's SigV4, or files; see objstore.h. */
#include "config.h"

#include <assert.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <openssl/evp.h>

#include "conf.h"
#include "http.h"
#include "log.h"
#include "objstore.h"
#include "objstore_int.h"
#include "util.h"

#define OBJSTORE_DEFAULT_MAX (64u << 20)

void objstore_set_error(struct objstore_error *err, long status, int retryable,
			       const char *code, const char *fmt, ...)
{
	if (!err)
		return;
	err->http_status = status;
	err->retryable = retryable;
	snprintf(err->code, sizeof err->code, "%s", code);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof err->message, fmt, ap);
	va_end(ap);
}

void objstore_clear_error(struct objstore_error *err)
{
	if (err)
		memset(err, 0, sizeof *err);
}

/* --- configuration ------------------------------------------------------- */

/* Hetzner's endpoints are https://<location>.your-objectstorage.com and
 * sign with the location as region; AWS's are s3.<region>.amazonaws.com. */
static void objstore_default_region(const char *host, char *out, size_t len)
{
	const char *hz = ".your-objectstorage.com";
	size_t hl = strcspn(host, ":"), zl = strlen(hz);
	if (hl > zl && strncasecmp(host + hl - zl, hz, zl) == 0 && memchr(host, '.', hl) == host + hl - zl) {
		snprintf(out, len, "%.*s", (int)(hl - zl), host);
		return;
	}
	if (strncasecmp(host, "s3.", 3) == 0) {
		const char *dot = strchr(host + 3, '.');
		if (dot && strncasecmp(dot, ".amazonaws.com", 14) == 0) {
			snprintf(out, len, "%.*s", (int)(dot - host - 3), host + 3);
			return;
		}
	}
	snprintf(out, len, "us-east-1");
}

/* S3's rules for bucket names (3–63 of a-z, 0-9, '.', '-'), which also keep
 * the name safe as a directory and as a host label. */
static int objstore_bucket_valid(const char *b)
{
	size_t n = strlen(b);
	if (n < 3 || n > 63 || b[0] == '.' || b[0] == '-' || b[n - 1] == '.' || b[n - 1] == '-')
		return 0;
	for (const char *p = b; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '-'))
			return 0;
	return strstr(b, "..") == NULL;
}

static char *objstore_strip_slashes(const char *s)
{
	char *d = xstrdup(s);
	size_t n = strlen(d);
	while (n && d[n - 1] == '/')
		d[--n] = '\0';
	return d;
}

struct objstore *objstore_open(void)
{
	return objstore_open_bucket("S3_BUCKET", "unde-images");
}

struct objstore *objstore_open_bucket(const char *bucket_var, const char *default_bucket)
{
	assert(bucket_var && default_bucket);
	struct objstore *os = xcalloc(1, sizeof *os);
	const char *endpoint = conf_require("S3_ENDPOINT");
	const char *bucket = conf_str(bucket_var, default_bucket);
	if (!objstore_bucket_valid(bucket))
		conf_die(bucket_var, "not a valid bucket name (3-63 of a-z 0-9 . -)");
	os->bucket = xstrdup(bucket);
	/* the public base URL is the catalog bucket's; a private bucket has none */
	const char *pub = strcmp(bucket_var, "S3_BUCKET") == 0 ? conf_str("S3_PUBLIC_URL", NULL) : NULL;
	if (pub && *pub) {
		if (strncmp(pub, "http://", 7) != 0 && strncmp(pub, "https://", 8) != 0 &&
		    strncmp(pub, "file://", 7) != 0)
			conf_die("S3_PUBLIC_URL", "must be an http://, https:// or file:// URL");
		os->public_base = objstore_strip_slashes(pub);
	}

	if (strncmp(endpoint, "file://", 7) == 0) {
		const char *path = endpoint + 7;
		if (strncmp(path, "localhost/", 10) == 0)
			path += 9;
		if (path[0] != '/')
			conf_die("S3_ENDPOINT", "a file:// endpoint needs an absolute path (file:///dir)");
		os->local = 1;
		os->root = objstore_strip_slashes(path);
		if (!*os->root) {
			free(os->root);
			os->root = xstrdup("/");
		}
		struct stat st;
		if (stat(os->root, &st) != 0 || !S_ISDIR(st.st_mode))
			conf_die("S3_ENDPOINT", "the directory of the file:// endpoint does not exist");
		return os;
	}

	const char *rest;
	if (strncmp(endpoint, "https://", 8) == 0) {
		os->scheme = xstrdup("https");
		rest = endpoint + 8;
	} else if (strncmp(endpoint, "http://", 7) == 0) {
		os->scheme = xstrdup("http");
		rest = endpoint + 7;
	} else {
		conf_die("S3_ENDPOINT", "must be an https://, http:// or file:/// URL");
	}
	size_t hl = strcspn(rest, "/?#");
	if (hl == 0 || memchr(rest, '@', hl) || rest[hl] == '?' || rest[hl] == '#')
		conf_die("S3_ENDPOINT", "must be scheme://host[:port][/path], without credentials or query");
	os->hostport = xmalloc(hl + 1);
	memcpy(os->hostport, rest, hl);
	os->hostport[hl] = '\0';
	os->basepath = objstore_strip_slashes(rest + hl);

	const char *style = conf_str("S3_ADDRESSING_STYLE", "path");
	if (strcmp(style, "virtual") == 0)
		os->virtual_host = 1;
	else if (strcmp(style, "path") != 0)
		conf_die("S3_ADDRESSING_STYLE", "must be path or virtual");
	if (os->virtual_host && strchr(os->bucket, '.'))
		conf_die(bucket_var, "a bucket with dots cannot be used with virtual-host addressing");

	char region[64];
	const char *r = conf_str("S3_REGION", NULL);
	if (r && *r) {
		for (const char *p = r; *p; p++)
			if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
				conf_die("S3_REGION", "must be lower-case letters, digits and '-'");
		if (strlen(r) >= sizeof region)
			conf_die("S3_REGION", "too long");
		snprintf(region, sizeof region, "%s", r);
	} else {
		objstore_default_region(os->hostport, region, sizeof region);
	}
	snprintf(os->sigv4, sizeof os->sigv4, "aws:amz:%s:s3", region);

	const char *ak = conf_require("S3_ACCESS_KEY");
	const char *sk = conf_require("S3_SECRET_KEY");
	if (strchr(ak, ':'))
		conf_die("S3_ACCESS_KEY", "must not contain ':'");
	size_t ul = strlen(ak) + strlen(sk) + 2;
	os->userpwd = xmalloc(ul);
	snprintf(os->userpwd, ul, "%s:%s", ak, sk);
	return os;
}

void objstore_close(struct objstore *os)
{
	if (!os)
		return;
	if (os->userpwd) {
		/* the secret does not outlive the store */
		volatile char *p = os->userpwd;
		while (*p)
			*p++ = '\0';
	}
	free(os->userpwd);
	free(os->root);
	free(os->bucket);
	free(os->scheme);
	free(os->hostport);
	free(os->basepath);
	free(os->public_base);
	free(os);
}

const char *objstore_provider(const struct objstore *os) { return os->local ? "local" : "s3"; }

const char *objstore_bucket(const struct objstore *os) { return os->bucket; }

/* --- the S3 backend ------------------------------------------------------- */

/* One S3 request's strings, alive for the duration of the transfer. */
struct s3_call {
	char *url;
	char sha_header[96];
	char type_header[160];
	const char *headers[3];
	struct http_request req;
};

void objstore_sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
	for (unsigned int i = 0; i < mdlen && i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	out[64] = '\0';
}

static void s3_call_init(struct objstore *os, struct s3_call *c, const char *method, const char *key,
			 const void *body, size_t len, const char *content_type, size_t max)
{
	memset(c, 0, sizeof *c);
	c->url = objstore_request_url(os, key);
	char hex[65];
	objstore_sha256_hex(body ? body : "", body ? len : 0, hex);
	snprintf(c->sha_header, sizeof c->sha_header, "x-amz-content-sha256: %s", hex);
	size_t h = 0;
	c->headers[h++] = c->sha_header;
	if (strcmp(method, "PUT") == 0) {
		int n = snprintf(c->type_header, sizeof c->type_header, "Content-Type: %s",
				 content_type ? content_type : "application/octet-stream");
		if (n < 0 || (size_t)n >= sizeof c->type_header)
			snprintf(c->type_header, sizeof c->type_header,
				 "Content-Type: application/octet-stream");
		c->headers[h++] = c->type_header;
	}
	c->headers[h] = NULL;
	c->req.method = method;
	c->req.url = c->url;
	c->req.headers = c->headers;
	c->req.body = body;
	c->req.body_len = body ? len : 0;
	c->req.max_response = max;
	c->req.aws_sigv4 = os->sigv4;
	c->req.userpwd = os->userpwd;
}

/* The text between <tag> and </tag> of an S3 XML error body, or "". */
void objstore_xml_field(const char *xml, const char *tag, char *out, size_t len)
{
	char open[40], close[40];
	snprintf(open, sizeof open, "<%s>", tag);
	snprintf(close, sizeof close, "</%s>", tag);
	out[0] = '\0';
	const char *a = xml ? strstr(xml, open) : NULL;
	if (!a)
		return;
	a += strlen(open);
	const char *b = strstr(a, close);
	if (!b)
		return;
	size_t n = (size_t)(b - a);
	if (n >= len)
		n = len - 1;
	memcpy(out, a, n);
	out[n] = '\0';
	for (char *p = out; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
}

/* Turn an S3 answer into OBJSTORE_*; missing_ok: a 404 is NOT_FOUND (GET, HEAD). */
int objstore_s3_outcome(const char *method, const char *key, const struct http_response *r,
			       int missing_ok, struct objstore_error *err)
{
	if (r->status == 0) {
		objstore_set_error(err, 0, 1, "transport", "%s %s: %s", method, key, r->error);
		return OBJSTORE_ERROR;
	}
	if (r->status >= 200 && r->status < 300)
		return OBJSTORE_OK;
	char code[64], msg[200];
	objstore_xml_field(r->body.data, "Code", code, sizeof code);
	objstore_xml_field(r->body.data, "Message", msg, sizeof msg);
	if (!code[0])
		snprintf(code, sizeof code, "%s",
			 r->status == 404 ? "NoSuchKey" : r->status == 403 ? "AccessDenied" : "HTTP");
	if (r->status == 404 && missing_ok && strcmp(code, "NoSuchBucket") != 0) {
		objstore_set_error(err, 404, 0, code, "no object %s", key);
		return OBJSTORE_NOT_FOUND;
	}
	objstore_set_error(err, r->status, http_status_retryable(r->status), code, "%s %s: HTTP %ld %s%s%s",
			   method, key, r->status, code, msg[0] ? ": " : "", msg);
	return OBJSTORE_ERROR;
}

/* --- the operations -------------------------------------------------------- */

static int objstore_check_key(const char *key, struct objstore_error *err)
{
	if (objstore_key_valid(key))
		return 0;
	objstore_set_error(err, 0, 0, "invalid_key", "invalid object key");
	return -1;
}

size_t objstore_put_many(struct objstore *os, struct objstore_put_item *items, size_t n,
			 int max_concurrent)
{
	size_t failed = 0;
	if (os->local) {
		for (size_t i = 0; i < n; i++) {
			objstore_clear_error(&items[i].err);
			items[i].status = objstore_check_key(items[i].key, &items[i].err) != 0
				? OBJSTORE_ERROR
				: objstore_file_put(os, items[i].key, items[i].data, items[i].len, &items[i].err);
			failed += items[i].status != OBJSTORE_OK;
		}
		return failed;
	}
	struct s3_call *calls = xcalloc(n ? n : 1, sizeof *calls);
	struct http_request *reqs = xcalloc(n ? n : 1, sizeof *reqs);
	struct http_response *resps = xcalloc(n ? n : 1, sizeof *resps);
	size_t *idx = xcalloc(n ? n : 1, sizeof *idx), m = 0;
	for (size_t i = 0; i < n; i++) {
		objstore_clear_error(&items[i].err);
		if (objstore_check_key(items[i].key, &items[i].err) != 0) {
			items[i].status = OBJSTORE_ERROR;
			failed++;
			continue;
		}
		/* an empty object still needs a body pointer, or http.c sends none */
		s3_call_init(os, &calls[m], "PUT", items[i].key, items[i].data ? items[i].data : "",
			     items[i].len, items[i].content_type, 0);
		reqs[m] = calls[m].req;
		idx[m++] = i;
	}
	http_perform_many(reqs, resps, m, max_concurrent);
	for (size_t j = 0; j < m; j++) {
		struct objstore_put_item *it = &items[idx[j]];
		it->status = objstore_s3_outcome("PUT", it->key, &resps[j], 0, &it->err);
		failed += it->status != OBJSTORE_OK;
		http_response_free(&resps[j]);
		free(calls[j].url);
	}
	free(calls);
	free(reqs);
	free(resps);
	free(idx);
	return failed;
}

size_t objstore_get_many(struct objstore *os, struct objstore_get_item *items, size_t n,
			 int max_concurrent)
{
	size_t failed = 0;
	if (os->local) {
		for (size_t i = 0; i < n; i++) {
			objstore_clear_error(&items[i].err);
			memset(&items[i].body, 0, sizeof items[i].body);
			items[i].status = objstore_check_key(items[i].key, &items[i].err) != 0
				? OBJSTORE_ERROR
				: objstore_file_get(os, items[i].key, &items[i].body,
						    items[i].max ? items[i].max : OBJSTORE_DEFAULT_MAX,
						    &items[i].err);
			if (items[i].status != OBJSTORE_OK) {
				buf_free(&items[i].body);
				failed++;
			}
		}
		return failed;
	}
	struct s3_call *calls = xcalloc(n ? n : 1, sizeof *calls);
	struct http_request *reqs = xcalloc(n ? n : 1, sizeof *reqs);
	struct http_response *resps = xcalloc(n ? n : 1, sizeof *resps);
	size_t *idx = xcalloc(n ? n : 1, sizeof *idx), m = 0;
	for (size_t i = 0; i < n; i++) {
		objstore_clear_error(&items[i].err);
		memset(&items[i].body, 0, sizeof items[i].body);
		if (objstore_check_key(items[i].key, &items[i].err) != 0) {
			items[i].status = OBJSTORE_ERROR;
			failed++;
			continue;
		}
		s3_call_init(os, &calls[m], "GET", items[i].key, NULL, 0, NULL,
			     items[i].max ? items[i].max : OBJSTORE_DEFAULT_MAX);
		reqs[m] = calls[m].req;
		idx[m++] = i;
	}
	http_perform_many(reqs, resps, m, max_concurrent);
	for (size_t j = 0; j < m; j++) {
		struct objstore_get_item *it = &items[idx[j]];
		it->status = objstore_s3_outcome("GET", it->key, &resps[j], 1, &it->err);
		if (it->status == OBJSTORE_OK) {
			it->body = resps[j].body; /* handed over */
			memset(&resps[j].body, 0, sizeof resps[j].body);
		} else {
			failed++;
		}
		http_response_free(&resps[j]);
		free(calls[j].url);
	}
	free(calls);
	free(reqs);
	free(resps);
	free(idx);
	return failed;
}

int objstore_put(struct objstore *os, const char *key, const void *data, size_t len,
		 const char *content_type, struct objstore_error *err)
{
	struct objstore_put_item it = { .key = key, .data = data, .len = len,
					.content_type = content_type };
	objstore_put_many(os, &it, 1, 1);
	if (err)
		*err = it.err;
	return it.status;
}

int objstore_get(struct objstore *os, const char *key, struct buf *out, size_t max,
		 struct objstore_error *err)
{
	struct objstore_get_item it = { .key = key, .max = max };
	objstore_get_many(os, &it, 1, 1);
	if (err)
		*err = it.err;
	if (it.status == OBJSTORE_OK) {
		buf_append(out, it.body.data ? it.body.data : "", it.body.len);
		buf_free(&it.body);
	}
	return it.status;
}

int objstore_head(struct objstore *os, const char *key, struct objstore_info *info,
		  struct objstore_error *err)
{
	objstore_clear_error(err);
	if (info)
		memset(info, 0, sizeof *info);
	if (objstore_check_key(key, err) != 0)
		return OBJSTORE_ERROR;
	if (os->local)
		return objstore_file_head(os, key, info, err);
	struct s3_call c;
	s3_call_init(os, &c, "HEAD", key, NULL, 0, NULL, 0);
	struct http_response r;
	http_perform(&c.req, &r);
	int rc = objstore_s3_outcome("HEAD", key, &r, 1, err);
	if (rc == OBJSTORE_OK && info) {
		snprintf(info->etag, sizeof info->etag, "%s", r.etag);
		snprintf(info->content_type, sizeof info->content_type, "%s", r.content_type);
		info->size = r.content_length > 0 ? (size_t)r.content_length : 0;
	}
	http_response_free(&r);
	free(c.url);
	return rc;
}

int objstore_delete(struct objstore *os, const char *key, struct objstore_error *err)
{
	objstore_clear_error(err);
	if (objstore_check_key(key, err) != 0)
		return OBJSTORE_ERROR;
	if (os->local)
		return objstore_file_delete(os, key, err);
	struct s3_call c;
	s3_call_init(os, &c, "DELETE", key, NULL, 0, NULL, 0);
	struct http_response r;
	http_perform(&c.req, &r);
	int rc = objstore_s3_outcome("DELETE", key, &r, 0, err);
	http_response_free(&r);
	free(c.url);
	return rc;
}
