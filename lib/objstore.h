/* objstore.h — S3-compatible object storage, or a directory standing in for it.
 *
 * What it promises:
 *  - PUT, GET, HEAD and DELETE of whole objects by key, against any
 *    S3-compatible endpoint (Hetzner, AWS, moto), signed with AWS SigV4 by
 *    libcurl itself (CURLOPT_AWS_SIGV4) plus the x-amz-content-sha256
 *    header S3 insists on (the SHA-256 of the payload, computed here);
 *  - path style (https://host/bucket/key, the default) or virtual-host
 *    style (https://bucket.host/key), as S3_ADDRESSING_STYLE says;
 *  - the embedded default: S3_ENDPOINT=file:///dir keeps each object as the
 *    file dir/<bucket>/<key>, written to a temporary file in the same
 *    directory and renamed into place, so a reader never sees half an
 *    object and a killed writer leaves at most a hidden ".*.tmp.*" file;
 *  - keys are checked before use (no empty, "." or ".." segments, no
 *    leading or doubled "/", no control characters), so a key from the
 *    data can never leave the bucket on either backend;
 *  - many PUTs or GETs at once through lib/http's multi interface;
 *  - secrets never in errors or logs.
 *
 * Configuration (spec §3, §5, §7): S3_ENDPOINT, S3_ACCESS_KEY,
 * S3_SECRET_KEY, S3_BUCKET (default unde-images), S3_REGION (default: the
 * location of a Hetzner endpoint such as hel1, else us-east-1),
 * S3_ADDRESSING_STYLE (path|virtual), S3_PUBLIC_URL (the base URL objects
 * are published under; default derived from the endpoint). */
#ifndef UNDE_OBJSTORE_H
#define UNDE_OBJSTORE_H

#include <stddef.h>

#include "util.h"

struct objstore;

enum objstore_status {
	OBJSTORE_OK = 0,
	OBJSTORE_NOT_FOUND = 1, /* GET or HEAD of a key that is not there */
	OBJSTORE_ERROR = -1,    /* see struct objstore_error */
};

struct objstore_error {
	long http_status;  /* 0 when no HTTP answer was had */
	int retryable;     /* transport failure, 429 or 5xx: worth trying later */
	char code[64];     /* S3's <Code> (SignatureDoesNotMatch, NoSuchBucket),
			      or transport, invalid_key, io, too_large */
	char message[320]; /* for people; never holds a secret */
};

struct objstore_info {
	size_t size;
	char etag[128];
	char content_type[128];
};

/* Read the S3_* variables and return a store. A missing or invalid setting
 * is a configuration error: logged naming the variable, exit 78. */
struct objstore *objstore_open(void);
/* The same store with another bucket, named by the variable bucket_var
 * (default_bucket when unset): several buckets in one process, e.g. the
 * catalog's S3_BUCKET and the private S3_USER_MEDIA_BUCKET
 * (unde-user-media, spec §7). Only the S3_BUCKET store uses S3_PUBLIC_URL;
 * another bucket's objects are addressed at the endpoint (private: read
 * back signed, with objstore_get). objstore_open() is
 * objstore_open_bucket("S3_BUCKET", "unde-images"). */
struct objstore *objstore_open_bucket(const char *bucket_var, const char *default_bucket);
void objstore_close(struct objstore *os);

/* "s3", or "local" for the file:// stand-in. */
const char *objstore_provider(const struct objstore *os);
const char *objstore_bucket(const struct objstore *os);

/* 1 when key is acceptable (see above), else 0. */
int objstore_key_valid(const char *key);

/* Store len bytes under key with this Content-Type (NULL:
 * application/octet-stream). Returns OBJSTORE_OK or OBJSTORE_ERROR. */
int objstore_put(struct objstore *os, const char *key, const void *data, size_t len,
		 const char *content_type, struct objstore_error *err);

/* Fetch the object into out (appended; at most max bytes, 0: 64 MiB).
 * Returns OBJSTORE_OK, OBJSTORE_NOT_FOUND or OBJSTORE_ERROR. */
int objstore_get(struct objstore *os, const char *key, struct buf *out, size_t max,
		 struct objstore_error *err);

/* Size, ETag and Content-Type without the body (info may be NULL). */
int objstore_head(struct objstore *os, const char *key, struct objstore_info *info,
		  struct objstore_error *err);

/* Remove the object; removing a missing key succeeds, as in S3. */
int objstore_delete(struct objstore *os, const char *key, struct objstore_error *err);

/* One object of a listing: its key, size and when it was last written
 * (seconds since the epoch, with S3's milliseconds). */
struct objstore_entry {
	const char *key;
	size_t size;
	double mtime;
};
/* Call fn for every object whose key starts with prefix: S3's
 * ListObjectsV2, page after page, in key order; on file:// a walk of the
 * directories, in no particular order, leaving out hidden files (the
 * temporary files of writes in progress). fn returns 0 to go on, non-zero
 * to stop. Returns OBJSTORE_OK (also when fn stopped it) or
 * OBJSTORE_ERROR. */
int objstore_list(struct objstore *os, const char *prefix,
		  int (*fn)(void *ud, const struct objstore_entry *e), void *ud,
		  struct objstore_error *err);

/* Many PUTs at once: each item's status and err are filled in. Returns how
 * many failed. */
struct objstore_put_item {
	const char *key;
	const void *data;
	size_t len;
	const char *content_type;
	int status;
	struct objstore_error err;
};
size_t objstore_put_many(struct objstore *os, struct objstore_put_item *items, size_t n,
			 int max_concurrent);

/* Many GETs at once into each item's body (which the caller frees). */
struct objstore_get_item {
	const char *key;
	size_t max; /* 0: 64 MiB */
	struct buf body;
	int status;
	struct objstore_error err;
};
size_t objstore_get_many(struct objstore *os, struct objstore_get_item *items, size_t n,
			 int max_concurrent);

/* The URL the object is published under (caller frees): S3_PUBLIC_URL/key,
 * else the endpoint's path- or virtual-host-style URL, or file:///dir/bucket/key. */
char *objstore_url(const struct objstore *os, const char *key);

/* The key of a URL made by objstore_url (or any URL of this bucket on this
 * endpoint), or NULL when the URL is not one of this store's (caller frees). */
char *objstore_key_from_url(const struct objstore *os, const char *url);

#endif
