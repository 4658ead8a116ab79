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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "conf.h"
#include "download.h"
#include "filter.h"
#include "log.h"
#include "metrics.h"
#include "pg.h"
#include "util.h"

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
