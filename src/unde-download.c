/* unde-download — product photos from the brands' CDNs into object storage
 * (spec §3, §17.1).
 *
 *   unde-apify … | unde-download            the products given on stdin
 *   unde-download --pending [--limit 200]   image_status 'pending' rows
 *   unde-download --retry-failed            rows whose download failed
 *
 * Per product: up to DOWNLOAD_MAX_PHOTOS (5) photos, fetched with libcurl's
 * multi interface (CONCURRENT_DOWNLOADS transfers in flight, across several
 * products when taking a queue), each checked to really be a whole image,
 * uploaded to originals/{brand}/{external_id}/{n}.jpg, then one UPDATE sets
 * image_urls and image_status 'uploaded' — or image_status 'error' with
 * error_message. Nothing touches the disk: photos live in memory between
 * the CDN and the store.
 *
 * Claims (sql/staging/0002): a run marks the rows it works on, so two runs
 * never take the same product, and it changes a product's status only while
 * it still holds the claim and the product still has the photos it fetched. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>

#include <curl/curl.h>

#include "catalog/claim.h"
#include "conf.h"
#include "filter.h"
#include "http.h"
#include "image.h"
#include "log.h"
#include "metrics.h"
#include "objstore.h"
#include "pg.h"
#include "status.h"
#include "util.h"

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

/* --- input ----------------------------------------------------------------- */

static int dl_record_id(const json_t *rec, long long *id)
{
	const json_t *v = json_object_get(rec, "id");
	if (json_is_integer(v)) {
		*id = json_integer_value(v);
		return *id > 0 ? 0 : -1;
	}
	if (json_is_string(v)) {
		char *end;
		*id = strtoll(json_string_value(v), &end, 10);
		return (*end || end == json_string_value(v) || *id <= 0) ? -1 : 0;
	}
	return -1;
}

/* brand and external_id become parts of object keys: a slug and an id of
 * safe characters, as unde-apify writes them. */
static int dl_key_part_ok(const char *s, int id)
{
	if (!*s || strlen(s) > 100 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
		      (id && ((*s >= 'A' && *s <= 'Z') || *s == '-' || *s == '_' || *s == '.'))))
			return 0;
	return 1;
}

/* A photo URL as logs and error messages show it: without its query
 * string and fragment, which on signed CDN URLs carry tokens. */
static const char *dl_url_shown(const char *url, char *out, size_t len)
{
	size_t n = strcspn(url, "?#");
	snprintf(out, len, "%.*s%s", (int)(n < 400 ? n : 400), url, n > 400 ? "…" : "");
	return out;
}

/* Record why product p cannot be done (the first reason counts): its
 * error line's status and code, and whether retrying can cure it. */
static void dl_product_error(struct dl_product *p, int status, int permanent, const char *code,
			     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void dl_product_error(struct dl_product *p, int status, int permanent, const char *code,
			     const char *fmt, ...)
{
	if (p->err_code[0])
		return; /* the first reason is the one that counts */
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->err_msg, sizeof p->err_msg, fmt, ap);
	va_end(ap);
	snprintf(p->err_code, sizeof p->err_code, "%s", code);
	p->err_status = status;
	p->err_permanent = permanent;
}

/* Fill p from a database row: brand, external_id, original_image_urls. */
static void dl_product_from_row(struct dl_state *s, struct dl_product *p, const char *brand,
				const char *external_id, const char *urls_json)
{
	snprintf(p->brand, sizeof p->brand, "%s", brand);
	snprintf(p->external_id, sizeof p->external_id, "%s", external_id);
	p->urls_json = urls_json ? xstrdup(urls_json) : NULL;
	if (!dl_key_part_ok(p->brand, 0) || !dl_key_part_ok(p->external_id, 1)) {
		dl_product_error(p, EX_DATAERR, 1, "invalid_field",
				 "brand or external_id cannot be part of an object key");
		return;
	}
	json_t *urls = p->urls_json ? json_loads(p->urls_json, 0, NULL) : NULL;
	size_t i;
	json_t *u;
	json_array_foreach(urls, i, u)
	{
		if (p->nphotos >= (size_t)s->max_photos)
			break;
		const char *us = json_string_value(u);
		if (us && (strncmp(us, "http://", 7) == 0 || strncmp(us, "https://", 8) == 0 ||
			   (s->file_root[0] && strncmp(us, "file:///", 8) == 0)))
			p->urls[p->nphotos++] = xstrdup(us);
	}
	json_decref(urls);
	if (!p->nphotos)
		dl_product_error(p, EX_DATAERR, 1, "no_images",
				 s->file_root[0] ? "the product has no http(s) or file:// photo URL"
						 : "the product has no http(s) photo URL (file:// ones need"
						   " DOWNLOAD_FILE_ROOT)");
}

static void dl_product_free(struct dl_product *p)
{
	for (size_t i = 0; i < p->nphotos; i++) {
		free(p->urls[i]);
		if (p->fetched)
			http_response_free(&p->resp[i]);
	}
	free(p->urls_json);
	memset(p, 0, sizeof *p);
}

/* --- fetching ------------------------------------------------------------------- */

/* A file:// photo under DOWNLOAD_FILE_ROOT, read here and answered as an
 * HTTP server would (200 with the bytes, 404 missing, 403 outside the root
 * or not a regular file, 413 past DOWNLOAD_MAX_BYTES), so the rest of the
 * path cannot tell the difference. For local catalogues and the demo. */
static void dl_read_file_url(const struct dl_state *s, const char *url, struct http_response *r)
{
	memset(r, 0, sizeof *r);
	r->content_length = -1;
	r->retry_after_ms = -1;
	r->attempts = 1;
	char *path = curl_unescape(url + 7, 0), real[4096];
	size_t rootlen = strlen(s->file_root);
	struct stat st;
	FILE *f = NULL;
	if (!path || !realpath(path, real)) {
		r->status = path && errno == ENOENT ? 404 : 403;
	} else if (strncmp(real, s->file_root, rootlen) != 0 ||
		   (rootlen > 1 && real[rootlen] != '/') ||
		   stat(real, &st) != 0 || !S_ISREG(st.st_mode)) {
		r->status = 403;
	} else if (st.st_size > s->max_bytes) {
		r->status = 413;
	} else if (!(f = fopen(real, "rb"))) {
		r->status = 403;
	} else {
		char chunk[65536];
		size_t got;
		r->status = 200;
		buf_append(&r->body, "", 0);
		while ((got = fread(chunk, 1, sizeof chunk, f)) > 0)
			if (buf_append(&r->body, chunk, got) != 0 ||
			    r->body.len > (size_t)s->max_bytes) {
				r->status = 413;
				break;
			}
		if (ferror(f))
			r->status = 403;
		fclose(f);
		if (r->status != 200)
			buf_free(&r->body);
	}
	if (r->status != 200)
		snprintf(r->error, sizeof r->error, "HTTP %ld", r->status);
	curl_free(path);
}

/* Fetch every photo of the n products at once, CONCURRENT_DOWNLOADS at a time
 * (file:// ones read in place). */
static void dl_fetch(struct dl_state *s, struct dl_product *ps, size_t n)
{
	size_t total = 0;
	for (size_t i = 0; i < n; i++)
		if (!ps[i].err_code[0])
			total += ps[i].nphotos;
	if (!total)
		return;
	const char *headers[] = { "Accept: image/webp,image/jpeg,image/png;q=0.9,*/*;q=0.5",
				  s->user_agent ? s->ua_header : NULL, NULL };
	struct http_request *reqs = xcalloc(total, sizeof *reqs);
	struct http_response *resps = xcalloc(total, sizeof *resps);
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (ps[i].err_code[0])
			continue;
		for (size_t j = 0; j < ps[i].nphotos; j++, k++) {
			if (strncmp(ps[i].urls[j], "file://", 7) == 0)
				continue; /* reqs[k].url stays NULL: read below */
			reqs[k].url = ps[i].urls[j];
			reqs[k].headers = headers;
			reqs[k].timeout_ms = s->timeout_s * 1000;
			reqs[k].max_attempts = (int)s->max_retries + 1;
			reqs[k].max_response = (size_t)s->max_bytes;
		}
	}
	double t0 = util_now_ms();
	size_t nlocal = 0;
	for (k = 0; k < total; k++)
		nlocal += reqs[k].url == NULL;
	if (nlocal < total) {
		/* the HTTP ones, packed, then their answers put back in place */
		struct http_request *hreq = xcalloc(total - nlocal, sizeof *hreq);
		struct http_response *hresp = xcalloc(total - nlocal, sizeof *hresp);
		size_t h = 0;
		for (k = 0; k < total; k++)
			if (reqs[k].url)
				hreq[h++] = reqs[k];
		http_perform_many(hreq, hresp, h, (int)s->concurrency);
		for (k = 0, h = 0; k < total; k++)
			if (reqs[k].url)
				resps[k] = hresp[h++];
		free(hreq);
		free(hresp);
	}
	k = 0;
	for (size_t i = 0; i < n; i++) {
		if (ps[i].err_code[0])
			continue;
		for (size_t j = 0; j < ps[i].nphotos; j++, k++)
			if (!reqs[k].url)
				dl_read_file_url(s, ps[i].urls[j], &resps[k]);
	}
	s->fetch_ms += util_now_ms() - t0;
	k = 0;
	for (size_t i = 0; i < n; i++) {
		if (ps[i].err_code[0])
			continue;
		ps[i].fetched = 1;
		for (size_t j = 0; j < ps[i].nphotos; j++, k++) {
			ps[i].resp[j] = resps[k];
			s->bytes += (double)resps[k].body.len;
		}
	}
	free(reqs);
	free(resps);
}

/* --- the database ------------------------------------------------------------ */

/* The product's final UPDATE, only while this run holds it and its photos
 * are still the ones fetched. Returns 1 done, 0 superseded, -1 db error. */
static int dl_finish(struct dl_state *s, const struct dl_product *p, const char *image_urls,
		     const char *error)
{
	char ids[24];
	snprintf(ids, sizeof ids, "%lld", p->id);
	return image_urls
	       ? claim_finish(&s->claim, ids,
			      "image_urls = $4::jsonb, image_status = 'uploaded', error_message = NULL,"
			      " error_permanent = false",
			      "original_image_urls", p->urls_json, image_urls)
	       : claim_finish(&s->claim, ids,
			      p->err_permanent
			      ? "image_status = 'error', error_message = $4, error_permanent = true"
			      : "image_status = 'error', error_message = $4, error_permanent = false",
			      "original_image_urls", p->urls_json, error);
}

/* --- one product ----------------------------------------------------------- */

static int dl_fail(struct dl_state *s, struct filter_run *run, struct dl_product *p)
{
	s->products_failed++;
	if (p->id && strcmp(p->err_code, "database_unavailable") != 0) {
		char msg[600];
		snprintf(msg, sizeof msg, "%s: %s", p->err_code, p->err_msg);
		if (dl_finish(s, p, NULL, msg) < 0)
			return filter_fail(run, EX_UNAVAILABLE, "database_unavailable",
					   "%s (and the database refused the error status: %s)", p->err_msg,
					   pg_last_error(s->db));
	}
	return filter_fail(run, p->err_status ? p->err_status : EX_SOFTWARE, p->err_code, "%s",
			   p->err_msg);
}

/* Check the fetched photos of n products and upload those of every product
 * whose photos are all good, all in one go (CONCURRENT_DOWNLOADS at a
 * time). A product is uploaded whole: when one of its photos cannot be
 * stored, the ones that were are removed again. */
static void dl_store(struct dl_state *s, struct dl_product *ps, size_t n)
{
	size_t total = 0;
	for (size_t k = 0; k < n; k++) {
		struct dl_product *p = &ps[k];
		if (p->err_code[0] || !p->fetched)
			continue;
		for (size_t i = 0; i < p->nphotos; i++) {
			struct http_response *r = &p->resp[i];
			char why[200], url[420];
			s->photos++;
			dl_url_shown(p->urls[i], url, sizeof url);
			if (r->status == 0) {
				s->photos_failed++;
				dl_product_error(p, status_exit_for_http(0, r->timed_out), 0,
						 r->timed_out ? "photo_timeout" : "photo_unreachable",
						 "photo %zu (%s): %s after %d attempts", i + 1, url,
						 r->error, r->attempts);
			} else if (r->status != 200) {
				/* a 4xx (404, 403, 410 …) stays: the URL is wrong or gone;
				 * 5xx, 408 and 429 may pass */
				int temporary = http_status_retryable(r->status) || r->status >= 500 ||
						r->status == 408;
				s->photos_failed++;
				dl_product_error(p, temporary ? EX_TEMPFAIL : EX_DATAERR, !temporary,
						 r->status == 404 ? "photo_not_found" : "photo_http_error",
						 "photo %zu (%s): HTTP %ld", i + 1, url, r->status);
			} else if (!(p->types[i] = image_sniff(r->body.data, r->body.len, r->content_type, why,
							       sizeof why))) {
				/* another format stays what it is; a bot wall, an empty
				 * or cut body may be gone next time */
				s->photos_failed++;
				dl_product_error(p, EX_DATAERR,
						 strncmp(why, IMAGE_UNSUPPORTED, strlen(IMAGE_UNSUPPORTED)) == 0,
						 "not_an_image", "photo %zu (%s): %s", i + 1, url, why);
			}
		}
		if (!p->err_code[0])
			total += p->nphotos;
	}
	if (!total)
		return;
	struct objstore_put_item *items = xcalloc(total, sizeof *items);
	char (*keys)[256] = xcalloc(total, sizeof *keys);
	size_t m = 0;
	for (size_t k = 0; k < n; k++) {
		struct dl_product *p = &ps[k];
		if (p->err_code[0] || !p->fetched)
			continue;
		for (size_t i = 0; i < p->nphotos; i++, m++) {
			snprintf(keys[m], sizeof keys[m], "originals/%s/%s/%zu.jpg", p->brand, p->external_id,
				 i + 1);
			items[m] = (struct objstore_put_item){ .key = keys[m], .data = p->resp[i].body.data,
							       .len = p->resp[i].body.len,
							       .content_type = p->types[i] };
		}
	}
	objstore_put_many(s->os, items, total, (int)s->concurrency);
	m = 0;
	for (size_t k = 0; k < n; k++) {
		struct dl_product *p = &ps[k];
		if (p->err_code[0] || !p->fetched)
			continue;
		size_t first = m;
		for (size_t i = 0; i < p->nphotos; i++, m++)
			if (items[m].status != OBJSTORE_OK)
				dl_product_error(p, items[m].err.retryable ? EX_TEMPFAIL : EX_UNAVAILABLE, 0,
						 "storage_error", "upload of %s: %s", keys[m],
						 items[m].err.message);
		if (p->err_code[0]) {
			/* nothing half-uploaded stays behind */
			for (size_t j = first; j < m; j++)
				if (items[j].status == OBJSTORE_OK)
					objstore_delete(s->os, keys[j], NULL);
		} else {
			p->uploaded = 1;
		}
		for (size_t i = 0; i < p->nphotos; i++)
			buf_free(&p->resp[i].body); /* in the store now, or not wanted */
	}
	free(items);
	free(keys);
}

/* Mark one product: image_urls and 'uploaded', or 'error'; and its line. */
static int dl_complete(struct dl_state *s, struct filter_run *run, struct dl_product *p, json_t *rec)
{
	if (p->err_code[0] || !p->uploaded) {
		if (!p->err_code[0])
			dl_product_error(p, EX_SOFTWARE, 0, "internal", "the product was not stored");
		return dl_fail(s, run, p);
	}
	json_t *urls = json_array();
	for (size_t i = 0; i < p->nphotos; i++) {
		char key[256];
		snprintf(key, sizeof key, "originals/%s/%s/%zu.jpg", p->brand, p->external_id, i + 1);
		char *u = objstore_url(s->os, key);
		json_array_append_new(urls, json_string(u));
		free(u);
	}
	char *urls_text = json_dumps(urls, JSON_COMPACT);
	int done = dl_finish(s, p, urls_text, NULL);
	free(urls_text);
	if (done < 0) {
		json_decref(urls);
		s->products_failed++;
		return filter_fail(run, pg_connection_lost(s->db) ? EX_UNAVAILABLE : EX_SOFTWARE,
				   "database_unavailable", "photos uploaded, but the row was not updated: %s",
				   pg_last_error(s->db));
	}
	if (!done) {
		json_decref(urls);
		s->products_failed++;
		return filter_fail(run, EX_TEMPFAIL, "superseded",
				   "the product's photos changed or another run took it over meanwhile");
	}
	s->products_done++;
	json_object_set_new(rec, "image_urls", urls);
	json_object_set_new(rec, "image_status", json_string("uploaded"));
	json_object_set_new(rec, "provider", json_string(objstore_provider(s->os)));
	return 0;
}

/* A record from stdin: claim its row, then fetch and finish it. */
static int dl_one_from_stdin(struct dl_state *s, struct filter_run *run, json_t *rec, long long id)
{
	struct dl_product p = { .rec = rec, .id = id };
	PGresult *row = NULL;
	char err[512];
	char ids[24];
	snprintf(ids, sizeof ids, "%lld", id);
	int c = claim_one(&s->claim, ids,
			  "brand, external_id, original_image_urls::text, image_status, image_urls::text",
			  &row, err, sizeof err);
	if (c == -2)
		return filter_fail(run, pg_connection_lost(s->db) ? EX_UNAVAILABLE : EX_SOFTWARE,
				   "database_unavailable", "%s", err);
	if (c < 0)
		return filter_fail(run, EX_DATAERR, "not_found", "%s", err);
	if (c == 0)
		return filter_fail(run, EX_TEMPFAIL, "busy", "product %lld is being worked on by another run", id);
	const char *status = PQgetvalue(row, 0, 3);
	if (strcmp(status, "uploaded") == 0 || strcmp(status, "collage_ready") == 0 ||
	    (strcmp(status, "error") == 0 && !PQgetisnull(row, 0, 4))) {
		/* its photos are already up (an 'error' with image_urls failed at
		 * the collage): pass it on as it is, nothing fetched again */
		json_t *urls = json_loads(PQgetvalue(row, 0, 4), 0, NULL);
		json_object_set_new(rec, "image_urls", urls ? urls : json_null());
		json_object_set_new(rec, "image_status", json_string(status));
		PQclear(row);
		claim_release(&s->claim, ids);
		return 0;
	}
	dl_product_from_row(s, &p, PQgetvalue(row, 0, 0), PQgetvalue(row, 0, 1),
			    PQgetisnull(row, 0, 2) ? NULL : PQgetvalue(row, 0, 2));
	PQclear(row);
	dl_fetch(s, &p, 1);
	dl_store(s, &p, 1);
	int rc = dl_complete(s, run, &p, rec);
	dl_product_free(&p);
	return rc;
}

/* --- the queue ------------------------------------------------------------------ */

static json_t *dl_select(void *sp, struct filter_run *run, enum filter_source src, long limit)
{
	struct dl_state *s = sp;
	limit = claim_batch_size(limit, filter_limit_given(run), "DOWNLOAD_BATCH_SIZE");
	/* 'error' rows without image_urls are download failures; those with
	 * image_urls failed later, at the collage (unde-collage retries them);
	 * permanent ones only when asked */
	PGresult *r = claim_queue(&s->claim,
				  src == FILTER_SOURCE_PENDING ? "image_status = 'pending'"
				  : s->include_permanent
				  ? "image_status = 'error' AND image_urls IS NULL"
				  : "image_status = 'error' AND image_urls IS NULL AND NOT error_permanent",
				  "p.id, p.source, p.external_id, p.brand, p.name,"
				  " p.original_image_urls::text AS urls, p.image_status",
				  limit);
	if (!r)
		return NULL;
	json_t *arr = json_array();
	for (int i = 0; i < PQntuples(r); i++) {
		json_t *urls = PQgetisnull(r, i, 5) ? json_null() : json_loads(PQgetvalue(r, i, 5), 0, NULL);
		json_array_append_new(arr, json_pack("{s:I, s:s, s:s, s:s, s:s?, s:o, s:s}", "id",
						     (json_int_t)strtoll(PQgetvalue(r, i, 0), NULL, 10),
						     "source", PQgetvalue(r, i, 1), "external_id",
						     PQgetvalue(r, i, 2), "brand", PQgetvalue(r, i, 3),
						     "name", PQgetisnull(r, i, 4) ? NULL : PQgetvalue(r, i, 4),
						     "original_image_urls", urls ? urls : json_null(),
						     "image_status", PQgetvalue(r, i, 6)));
	}
	PQclear(r);
	log_event(LOG_INFO, "claimed", json_pack("{s:s, s:I, s:s}", "queue",
						 src == FILTER_SOURCE_PENDING ? "pending" : "retry-failed",
						 "products", (json_int_t)json_array_size(arr), "run",
						 s->claim.run_id));
	s->batch = json_incref(arr);
	s->cursor = 0;
	return arr;
}

static void dl_window_free(struct dl_window *w)
{
	if (!w)
		return;
	for (size_t i = 0; i < w->len; i++)
		dl_product_free(&w->p[i]);
	free(w->p);
	free(w);
}

/* The products from batch[k] on until about four times CONCURRENT_DOWNLOADS
 * photos, fetched all at once: transfers of several products overlap, and a
 * slow photo holds up few others. Some 40 photos, about 12 MiB. */
static struct dl_window *dl_fetch_window(struct dl_state *s, size_t k)
{
	size_t n = json_array_size(s->batch), photos = 0, cap = 0;
	struct dl_window *w = xcalloc(1, sizeof *w);
	w->start = k;
	while (k + w->len < n && (w->len == 0 || photos < (size_t)s->concurrency * 4)) {
		if (w->len == cap) {
			cap = cap ? cap * 2 : 8;
			w->p = xrealloc(w->p, cap * sizeof *w->p);
		}
		json_t *rec = json_array_get(s->batch, k + w->len);
		struct dl_product *p = &w->p[w->len++];
		memset(p, 0, sizeof *p);
		p->rec = rec;
		dl_record_id(rec, &p->id);
		const json_t *urls = json_object_get(rec, "original_image_urls");
		char *ut = json_is_null(urls) || !urls ? NULL : json_dumps(urls, JSON_COMPACT | JSON_ENCODE_ANY);
		const char *brand = json_string_value(json_object_get(rec, "brand"));
		const char *ext = json_string_value(json_object_get(rec, "external_id"));
		dl_product_from_row(s, p, brand ? brand : "", ext ? ext : "", ut);
		free(ut);
		photos += p->nphotos;
	}
	dl_fetch(s, w->p, w->len);
	return w;
}

struct dl_store_job {
	struct dl_state *s;
	struct dl_window *w;
};

static void *dl_store_thread(void *arg)
{
	struct dl_store_job *j = arg;
	dl_store(j->s, j->w->p, j->w->len);
	return NULL;
}

/* Make the window holding batch[k] the current one, stored. Uploading one
 * window and downloading the next overlap: a thread stores this window
 * while the next one is fetched, so neither the CDN's latency nor the
 * store's waits for the other. (The database work stays in this thread, in
 * record order.) */
static void dl_fill_window(struct dl_state *s, size_t k)
{
	dl_window_free(s->win);
	s->win = NULL;
	struct dl_window *w = s->next && s->next->start == k ? s->next : NULL;
	if (!w) {
		dl_window_free(s->next);
		w = dl_fetch_window(s, k);
	}
	s->next = NULL;
	struct dl_store_job job = { s, w };
	pthread_t t;
	int threaded = pthread_create(&t, NULL, dl_store_thread, &job) == 0;
	if (!threaded)
		dl_store(s, w->p, w->len);
	if (k + w->len < json_array_size(s->batch))
		s->next = dl_fetch_window(s, k + w->len);
	if (threaded)
		pthread_join(t, NULL);
	s->win = w;
}

static int dl_on_record(void *sp, struct filter_run *run, json_t *rec)
{
	struct dl_state *s = sp;
	long long id;
	if (dl_record_id(rec, &id) != 0)
		return filter_fail(run, EX_DATAERR, "missing_field",
				   "the record has no staging \"id\" (records come from unde-apify)");
	if (filter_source(run) == FILTER_SOURCE_STDIN || !s->batch)
		return dl_one_from_stdin(s, run, rec, id);

	size_t k = s->cursor++;
	if (json_array_get(s->batch, k) != rec) /* not the queue's record: be safe */
		return dl_one_from_stdin(s, run, rec, id);
	if (!s->win || k < s->win->start || k >= s->win->start + s->win->len)
		dl_fill_window(s, k);
	struct dl_product *p = &s->win->p[k - s->win->start];
	return dl_complete(s, run, p, rec);
}

/* --- start and finish -------------------------------------------------------- */

static int dl_on_start(void *sp, struct filter_run *run, int argc, char **argv)
{
	struct dl_state *s = sp;
	(void)run;
	(void)argv;
	const char *url = conf_require("STAGING_DB_URL");
	s->timeout_s = conf_long("DOWNLOAD_TIMEOUT", 30, 1, 3600);
	s->max_retries = conf_long("MAX_RETRIES", 3, 0, 20);
	s->concurrency = conf_long("CONCURRENT_DOWNLOADS", 10, 1, 256);
	s->max_photos = conf_long("DOWNLOAD_MAX_PHOTOS", 5, 1, 16);
	s->max_bytes = conf_long("DOWNLOAD_MAX_BYTES", 20L << 20, 1024, 1L << 30);
	claim_start(&s->claim, "DOWNLOAD_CLAIM_TTL");
	s->user_agent = conf_str("DOWNLOAD_USER_AGENT", NULL);
	const char *root = conf_str("DOWNLOAD_FILE_ROOT", NULL);
	if (root && *root && !realpath(root, s->file_root))
		conf_die("DOWNLOAD_FILE_ROOT", "%s: %s", root, strerror(errno));
	if (s->user_agent) {
		if (strpbrk(s->user_agent, "\r\n") || strlen(s->user_agent) > 250)
			conf_die("DOWNLOAD_USER_AGENT", "must be one line of at most 250 characters");
		snprintf(s->ua_header, sizeof s->ua_header, "User-Agent: %s", s->user_agent);
	}
	s->os = objstore_open();
	if (!(s->db = s->claim.db = pg_connect(url, "STAGING_DB_URL")))
		return EX_UNAVAILABLE;
	return 0;
}

static void dl_on_finish(void *sp, struct filter_run *run)
{
	struct dl_state *s = sp;
	(void)run;
	dl_window_free(s->win);
	dl_window_free(s->next);
	s->win = s->next = NULL;
	json_decref(s->batch);
	s->batch = NULL;
	/* §19: photo_download_errors (> 10 %), _pending_count (> 5000), _speed_mbps (< 1) */
	struct metrics *m = metrics_new();
	metrics_add(m, "photo_download_errors", "gauge", "Photos of the last run that failed", NULL,
		    (double)s->photos_failed);
	metrics_add(m, "photo_download_photos", "gauge", "Photos the last run tried", NULL,
		    (double)s->photos);
	metrics_add(m, "photo_download_error_ratio", "gauge", "Failed photos / photos tried", NULL,
		    s->photos ? (double)s->photos_failed / (double)s->photos : 0);
	metrics_add(m, "photo_download_products_uploaded", "gauge", "Products the last run uploaded",
		    NULL, (double)s->products_done);
	metrics_add(m, "photo_download_products_failed", "gauge", "Products the last run marked error",
		    NULL, (double)s->products_failed);
	metrics_add(m, "photo_download_speed_mbps", "gauge",
		    "Megabits per second while photos were downloading", NULL,
		    s->fetch_ms > 0 ? s->bytes * 8.0 / 1e6 / (s->fetch_ms / 1000.0) : 0);
	PGresult *r = s->db ? pg_query(s->db, "SELECT count(*) FROM raw_products WHERE image_status = 'pending'",
				       0, NULL)
			    : NULL;
	if (r) {
		metrics_add(m, "photo_download_pending_count", "gauge", "Products waiting for photos",
			    NULL, strtod(PQgetvalue(r, 0, 0), NULL));
		PQclear(r);
	}
	metrics_write_default(m, "unde-download");
	metrics_free(m);
}

int main(int argc, char **argv)
{
	static struct dl_state state;
	static const struct filter_option dl_option_table[] = {
		CLAIM_TTL_OPTION("DOWNLOAD_CLAIM_TTL", &state.claim.ttl),
		CLAIM_PERMANENT_OPTION(&state.include_permanent),
		{ 0 },
	};
	static const struct filter_def def = {
		.name = "unde-download",
		.summary = "Download product photos from the brands' CDNs into object storage (originals/).",
		.synopsis = CLAIM_SYNOPSIS,
		.options = dl_option_table,
		.max_operands = FILTER_NO_OPERANDS,
		.on_start = dl_on_start,
		.on_record = dl_on_record,
		.select_pending = dl_select,
		.on_finish = dl_on_finish,
	};
	int rc = filter_main(&def, &state, argc, argv);
	PQfinish(state.db);
	objstore_close(state.os);
	return rc;
}
