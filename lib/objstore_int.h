/* objstore_int.h — what lib/objstore.c shares with the other files of the
 * object store (objstore_file.c, objstore_key.c, objstore_list.c): the
 * store's settings and the helpers every backend uses. Not for commands:
 * they use objstore.h. */
#ifndef UNDE_OBJSTORE_INT_H
#define UNDE_OBJSTORE_INT_H

#include "http.h"
#include "objstore.h"
#include "util.h"

struct objstore {
	int local;              /* file:// backend */
	char *root;             /* local: the directory holding <bucket>/ */
	char *bucket;
	char *scheme;           /* "http" or "https" */
	char *hostport;         /* "hel1.your-objectstorage.com", "127.0.0.1:9000" */
	char *basepath;         /* "" or "/prefix" (no trailing slash) */
	int virtual_host;
	char *public_base;      /* S3_PUBLIC_URL without trailing slash, or NULL */
	char sigv4[128];        /* "aws:amz:<region>:s3" */
	char *userpwd;          /* "<access>:<secret>": never logged */
};

/* Fill err (may be NULL) in. */
void objstore_set_error(struct objstore_error *err, long status, int retryable, const char *code,
			const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void objstore_clear_error(struct objstore_error *err);
/* The base every object URL of the endpoint starts with (no trailing '/'). */
void objstore_endpoint_base(const struct objstore *os, struct buf *b);
/* The URL requests for key go to (malloc'd; objstore_key.c). */
char *objstore_request_url(const struct objstore *os, const char *key);
/* The text between <tag> and </tag> of an S3 XML body, or "". */
void objstore_xml_field(const char *xml, const char *tag, char *out, size_t len);
/* An S3 answer as OBJSTORE_*; missing_ok: a 404 is NOT_FOUND. */
int objstore_s3_outcome(const char *method, const char *key, const struct http_response *r,
			int missing_ok, struct objstore_error *err);
/* The file:// backend (objstore_file.c): the file of key (caller frees),
 * and the four operations with objstore.h's contract. */
char *objstore_file_path(const struct objstore *os, const char *key);
int objstore_file_put(struct objstore *os, const char *key, const void *data, size_t len,
		      struct objstore_error *err);
int objstore_file_get(struct objstore *os, const char *key, struct buf *out, size_t max,
		      struct objstore_error *err);
int objstore_file_head(struct objstore *os, const char *key, struct objstore_info *info,
		       struct objstore_error *err);
int objstore_file_delete(struct objstore *os, const char *key, struct objstore_error *err);
void objstore_sha256_hex(const void *data, size_t len, char out[65]);

#endif
