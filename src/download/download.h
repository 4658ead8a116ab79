/* download.h — unde-download's products and run state, shared by its
 * photo path (photos.c: fetched, checked, stored) and its run (main.c:
 * input, claims, the queue's windows, the database). */
#ifndef UNDE_DOWNLOAD_H
#define UNDE_DOWNLOAD_H

#include <stddef.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "../catalog/claim.h"
#include "http.h"
#include "objstore.h"

/* One product being worked on. */
struct dl_product {
	json_t *rec;            /* borrowed: the record from the batch */
	long long id;
	char brand[64];
	char external_id[101];
	char *urls_json;        /* original_image_urls as the database has it */
	size_t nphotos;
	char *urls[16];
	struct http_response resp[16];
	int fetched;            /* the photos were requested */
	const char *types[16];  /* each photo's image type, once checked */
	int uploaded;           /* every photo is in the store */
	char err_code[48];      /* set when the product cannot be done */
	char err_msg[512];
	int err_status;
	int err_permanent;      /* retrying cannot cure it (sql/staging/0003) */
};

/* Products of the queue taken together (see dl_fill_window). */
struct dl_window {
	struct dl_product *p;
	size_t start, len;
};

struct dl_state {
	PGconn *db;
	struct objstore *os;
	struct claim claim;
	long timeout_s, max_retries, concurrency, max_photos, max_bytes;
	int include_permanent;  /* --include-permanent */
	const char *user_agent;
	char ua_header[300];
	char file_root[4096];   /* DOWNLOAD_FILE_ROOT, resolved; "": file:// is off */
	json_t *batch;          /* the queue taken by --pending / --retry-failed */
	size_t cursor;          /* index of the next record of batch */
	struct dl_window *win;  /* stored products of batch[win->start …] */
	struct dl_window *next; /* the following ones, fetched, not yet stored */
	/* for §19's metrics */
	long photos, photos_failed, products_done, products_failed;
	double bytes, fetch_ms;
};

/* A photo URL as logs and error messages show it: without its query
 * string and fragment, which on signed CDN URLs carry tokens. */
const char *dl_url_shown(const char *url, char *out, size_t len);

/* Record why product p cannot be done (the first reason counts): its
 * error line's status and code, and whether retrying can cure it. */
void dl_product_error(struct dl_product *p, int status, int permanent, const char *code,
		      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Fill p from a database row: brand, external_id, original_image_urls
 * (at most DOWNLOAD_MAX_PHOTOS http(s) or, with DOWNLOAD_FILE_ROOT,
 * file:// ones); p's error is set when it cannot be done. */
void dl_product_from_row(struct dl_state *s, struct dl_product *p, const char *brand,
			 const char *external_id, const char *urls_json);

void dl_product_free(struct dl_product *p);

/* Fetch every photo of the n products at once, CONCURRENT_DOWNLOADS at a
 * time (file:// ones read in place); products already failed are skipped. */
void dl_fetch(struct dl_state *s, struct dl_product *ps, size_t n);

/* Check the fetched photos of n products and upload every product whose
 * photos are all good, whole or not at all. */
void dl_store(struct dl_state *s, struct dl_product *ps, size_t n);

#endif
