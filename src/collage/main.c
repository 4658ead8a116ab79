/* unde-collage — one collage per product from its originals (spec §5, §17.3).
 *
 *   unde-download … | unde-collage          the products given on stdin
 *   unde-collage --pending [--limit 100]    image_status 'uploaded' rows
 *   unde-collage --retry-failed             rows whose collage failed
 *
 * Per product: GET the originals from object storage, read them with
 * libvips (JPEG, PNG, WebP; EXIF orientation applied; CMYK and other
 * spaces to sRGB; alpha flattened on white), bring them to their median
 * height (lower ones centred on white, image.c), join them left to right,
 * keep the result within COLLAGE_MAX_WIDTH, save a JPEG
 * at COLLAGE_QUALITY without metadata, upload collages/{brand}/{id}.jpg,
 * and set collage_url and image_status 'collage_ready' in one UPDATE — or
 * image_status 'error' with error_message. The image work itself is in
 * image.c (jpeg.c, scale.c, vips.c); this file is the command: input,
 * claims, storage, metrics. A queue (--pending, --retry-failed) is worked
 * ahead (ahead.c): the next products' collages are built by worker threads
 * while this one is uploaded and recorded. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "../catalog/claim.h"
#include "../catalog/key.h"
#include "collage.h"
#include "conf.h"
#include "filter.h"
#include "image.h"
#include "log.h"
#include "metrics.h"
#include "objstore.h"
#include "pg.h"
#include "util.h"

/* A product of the queue, as collage_select claimed it. */
struct collage_queued {
	char id[24];
	char *urls_json; /* NULL when the row has none */
};

struct collage_state {
	PGconn *db;
	struct objstore *os;
	struct claim claim;
	long max_width, quality, concurrency;
	int include_permanent; /* --include-permanent */
	int threads; /* products (a queue) or originals (stdin) at once: COLLAGE_THREADS */
	long done, failed;
	double vips_ms;
	struct collage_ahead *ahead; /* a queue's collages being made ahead */
	struct collage_queued *queue;
	size_t queue_n, queue_next; /* the next one to hand over to ahead */
};

/* --- the database ------------------------------------------------------------- */

/* The final UPDATE, while this run holds the product and its originals are
 * still those it used. Returns 1 done, 0 superseded, -1 database error. */
/* With collage_url, its size (claim_finish passes one value, $4, so it is
 * [width, height, url] as JSON, taken apart in SQL); with error, whether it is
 * permanent (sql/staging/0003). */
static int collage_finish(struct collage_state *s, const char *id, const char *urls_json,
			  const char *collage_url, int width, int height, const char *error,
			  int permanent)
{
	if (!collage_url)
		return claim_finish(&s->claim, id,
				    permanent
				    ? "image_status = 'error', error_message = $4, error_permanent = true"
				    : "image_status = 'error', error_message = $4, error_permanent = false",
				    "image_urls", urls_json, error);
	/* the URL itself may hold anything: JSON-quote it */
	json_t *v = json_pack("[i,i,s]", width, height, collage_url);
	char *text = json_dumps(v, JSON_COMPACT);
	json_decref(v);
	int rc = claim_finish(&s->claim, id,
			      "collage_url = ($4::jsonb)->>2, collage_width = (($4::jsonb)->>0)::int,"
			      " collage_height = (($4::jsonb)->>1)::int, image_status = 'collage_ready',"
			      " error_message = NULL, error_permanent = false",
			      "image_urls", urls_json, text);
	free(text);
	return rc;
}

/* --- one product ------------------------------------------------------------- */

struct collage_job {
	char id[24];
	char brand[64];
	char external_id[101];
	char *urls_json; /* image_urls as the database has it */
};

/* Fail the product: image_status 'error' (when it is still ours), and the
 * error line for the record. */
static int collage_fail(struct collage_state *s, struct filter_run *run, const struct collage_job *j,
			int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

static int collage_fail(struct collage_state *s, struct filter_run *run, const struct collage_job *j,
			int status, const char *code, const char *fmt, ...)
{
	char msg[700], full[800];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	s->failed++;
	snprintf(full, sizeof full, "%s: %s", code, msg);
	/* an unreadable original or no usable URL stays until the originals
	 * change; a missing original may be put back, the rest may pass */
	int permanent = status == EX_DATAERR && strcmp(code, "original_missing") != 0;
	if (collage_finish(s, j->id, j->urls_json, NULL, 0, 0, full, permanent) < 0)
		return filter_fail(run, EX_UNAVAILABLE, "database_unavailable",
				   "%s (and the error status was not recorded: %s)", msg, pg_last_error(s->db));
	return filter_fail(run, status, code, "%s", msg);
}

/* Keep the workers busy: fetch the originals of the next products of the
 * queue and hand them over, until threads + 1 are in hand (one being
 * waited for, one building on each worker, one ready to start). A product
 * whose originals cannot all be fetched is skipped: its turn fetches them
 * again and reports why. */
static void collage_work_ahead(struct collage_state *s)
{
	while (s->ahead && collage_ahead_queued(s->ahead) < (size_t)s->threads + 1 &&
	       s->queue_next < s->queue_n) {
		const struct collage_queued *q = &s->queue[s->queue_next++];
		json_t *urls = q->urls_json ? json_loads(q->urls_json, 0, NULL) : NULL;
		size_t n = json_array_size(urls);
		if (n > COLLAGE_MAX_PHOTOS)
			n = COLLAGE_MAX_PHOTOS;
		struct objstore_get_item items[COLLAGE_MAX_PHOTOS];
		char *keys[COLLAGE_MAX_PHOTOS] = { 0 };
		memset(items, 0, sizeof items);
		int ok = n > 0;
		for (size_t i = 0; i < n && ok; i++) {
			const char *u = json_string_value(json_array_get(urls, i));
			ok = u && (keys[i] = objstore_key_from_url(s->os, u));
			items[i].key = keys[i];
			items[i].max = 64u << 20;
		}
		if (ok && objstore_get_many(s->os, items, n, (int)s->concurrency) == 0) {
			struct buf bufs[COLLAGE_MAX_PHOTOS];
			for (size_t i = 0; i < n; i++)
				bufs[i] = items[i].body;
			collage_ahead_submit(s->ahead, q->id, q->urls_json, bufs, n);
		} else {
			for (size_t i = 0; i < n; i++)
				buf_free(&items[i].body);
		}
		for (size_t i = 0; i < n; i++)
			free(keys[i]);
		json_decref(urls);
	}
}

/* The collage of one product: made ahead when it is in the queue, else
 * its originals fetched and the collage built now. 0, or the product's
 * failure (recorded) as filter_fail's status. */
static int collage_product(struct collage_state *s, struct filter_run *run, struct collage_job *j,
			   json_t *rec)
{
	if (!catalog_key_part_ok(j->brand, 0) || !catalog_key_part_ok(j->external_id, 1))
		return collage_fail(s, run, j, EX_DATAERR, "invalid_field",
				    "brand or external_id cannot be part of an object key");
	json_t *urls = j->urls_json ? json_loads(j->urls_json, 0, NULL) : NULL;
	size_t n = json_array_size(urls);
	if (n == 0) {
		json_decref(urls);
		return collage_fail(s, run, j, EX_DATAERR, "no_images", "the product has no image_urls");
	}
	if (n > COLLAGE_MAX_PHOTOS)
		n = COLLAGE_MAX_PHOTOS;
	struct objstore_get_item items[COLLAGE_MAX_PHOTOS];
	char *keys[COLLAGE_MAX_PHOTOS] = { 0 };
	memset(items, 0, sizeof items);
	int rc = 0, built = -1;
	struct collage_out co;
	char why[512];
	double ms = 0;
	for (size_t i = 0; i < n; i++) {
		const char *u = json_string_value(json_array_get(urls, i));
		if (!u || !(keys[i] = objstore_key_from_url(s->os, u))) {
			rc = collage_fail(s, run, j, EX_DATAERR, "foreign_url",
					  "image_urls[%zu] is not an object of this store (%s)", i,
					  u ? u : "not a string");
			goto out;
		}
		items[i].key = keys[i];
		items[i].max = 64u << 20;
	}
	collage_work_ahead(s);
	if (s->ahead && collage_ahead_take(s->ahead, j->id, j->urls_json, &built, &ms, &co, why, sizeof why))
		goto built;
	if (objstore_get_many(s->os, items, n, (int)s->concurrency) != 0) {
		for (size_t i = 0; i < n; i++) {
			if (items[i].status == OBJSTORE_NOT_FOUND) {
				rc = collage_fail(s, run, j, EX_DATAERR, "original_missing",
						  "original %s is not in the store", keys[i]);
				goto out;
			}
			if (items[i].status != OBJSTORE_OK) {
				rc = collage_fail(s, run, j,
						  items[i].err.retryable ? EX_TEMPFAIL : EX_UNAVAILABLE,
						  "storage_error", "%s", items[i].err.message);
				goto out;
			}
		}
	}
	struct buf bufs[COLLAGE_MAX_PHOTOS];
	for (size_t i = 0; i < n; i++)
		bufs[i] = items[i].body;
	double t0 = util_now_ms();
	built = collage_build(bufs, n, (int)s->max_width, (int)s->quality, s->threads, &co, why, sizeof why);
	ms = util_now_ms() - t0;
	for (size_t i = 0; i < n; i++)
		buf_free(&items[i].body); /* the originals are not needed any more */
built:
	if (built != 0) {
		rc = collage_fail(s, run, j, EX_DATAERR, "bad_image", "%s", why);
		goto out;
	}
	s->vips_ms += ms;
	for (size_t i = 0; i < n; i++)
		if (co.profile_ignored & 1u << i)
			log_event(LOG_WARN, "unusable colour profile, read as sRGB",
				  json_pack("{s:I}", "original", (json_int_t)(i + 1)));
	char key[256];
	snprintf(key, sizeof key, "collages/%s/%s.jpg", j->brand, j->external_id);
	struct objstore_error err;
	int st = objstore_put(s->os, key, co.jpeg, co.len, "image/jpeg", &err);
	free(co.jpeg);
	if (st != OBJSTORE_OK) {
		rc = collage_fail(s, run, j, err.retryable ? EX_TEMPFAIL : EX_UNAVAILABLE, "storage_error",
				  "upload of %s: %s", key, err.message);
		goto out;
	}
	char *url = objstore_url(s->os, key);
	int done = collage_finish(s, j->id, j->urls_json, url, co.width, co.height, NULL, 0);
	if (done == 1) {
		s->done++;
		json_object_set_new(rec, "collage_url", json_string(url));
		json_object_set_new(rec, "collage_width", json_integer(co.width));
		json_object_set_new(rec, "collage_height", json_integer(co.height));
		json_object_set_new(rec, "image_status", json_string("collage_ready"));
		json_object_set_new(rec, "provider", json_string(objstore_provider(s->os)));
	} else {
		s->failed++;
		rc = done < 0 ? filter_fail(run, EX_UNAVAILABLE, "database_unavailable",
					    "collage uploaded, but the row was not updated: %s",
					    pg_last_error(s->db))
			      : filter_fail(run, EX_TEMPFAIL, "superseded",
					    "the product's photos changed or another run took it over meanwhile");
	}
	free(url);
out:
	for (size_t i = 0; i < n; i++) {
		buf_free(&items[i].body);
		free(keys[i]);
	}
	json_decref(urls);
	return rc;
}

/* The record's staging "id" (a number or its digits) as text in out.
 * 0, or -1 when there is none. */
static int collage_record_id(const json_t *rec, char *out, size_t len)
{
	const json_t *v = json_object_get(rec, "id");
	long long id = 0;
	if (json_is_integer(v)) {
		id = json_integer_value(v);
	} else if (json_is_string(v)) {
		char *end;
		id = strtoll(json_string_value(v), &end, 10);
		if (*end || end == json_string_value(v))
			return -1;
	}
	if (id <= 0)
		return -1;
	snprintf(out, len, "%lld", id);
	return 0;
}

/* on_record: claim the product (stdin) or check the claim (a queue),
 * pass on one already made, refuse one not uploaded, else make it. */
static int collage_on_record(void *sp, struct filter_run *run, json_t *rec)
{
	struct collage_state *s = sp;
	struct collage_job j = { 0 };
	if (collage_record_id(rec, j.id, sizeof j.id) != 0)
		return filter_fail(run, EX_DATAERR, "missing_field",
				   "the record has no staging \"id\" (records come from unde-download)");
	/* claimed already by --pending; from stdin, claim it now */
	PGresult *r = NULL;
	char err[512];
	int c = claim_one(&s->claim, j.id,
			  "brand, external_id, image_urls::text, image_status, collage_url,"
			  " collage_width, collage_height",
			  &r, err, sizeof err);
	if (c == -2)
		return filter_fail(run, pg_connection_lost(s->db) ? EX_UNAVAILABLE : EX_SOFTWARE,
				   "database_unavailable", "%s", err);
	if (c < 0)
		return filter_fail(run, EX_DATAERR, "not_found", "%s", err);
	if (c == 0)
		return filter_fail(run, EX_TEMPFAIL, "busy", "product %s is being worked on by another run",
				   j.id);
	const char *status = PQgetvalue(r, 0, 3);
	if (strcmp(status, "collage_ready") == 0) {
		/* done before: pass it on, nothing redone */
		json_object_set_new(rec, "collage_url", json_string(PQgetvalue(r, 0, 4)));
		/* made before sql/staging/0003: the size is not known */
		json_object_set_new(rec, "collage_width",
				    PQgetisnull(r, 0, 5) ? json_null()
							 : json_integer(strtol(PQgetvalue(r, 0, 5), NULL, 10)));
		json_object_set_new(rec, "collage_height",
				    PQgetisnull(r, 0, 6) ? json_null()
							 : json_integer(strtol(PQgetvalue(r, 0, 6), NULL, 10)));
		json_object_set_new(rec, "image_status", json_string(status));
		PQclear(r);
		claim_release(&s->claim, j.id);
		return 0;
	}
	if (strcmp(status, "uploaded") != 0 && !(strcmp(status, "error") == 0 && !PQgetisnull(r, 0, 2))) {
		int rc = filter_fail(run, EX_DATAERR, "not_uploaded",
				     "product %s has image_status '%s': its photos are not uploaded yet",
				     j.id, status);
		PQclear(r);
		claim_release(&s->claim, j.id);
		return rc;
	}
	snprintf(j.brand, sizeof j.brand, "%s", PQgetvalue(r, 0, 0));
	snprintf(j.external_id, sizeof j.external_id, "%s", PQgetvalue(r, 0, 1));
	j.urls_json = PQgetisnull(r, 0, 2) ? NULL : xstrdup(PQgetvalue(r, 0, 2));
	PQclear(r);
	int rc = collage_product(s, run, &j, rec);
	free(j.urls_json);
	return rc;
}

/* --- the queue --------------------------------------------------------------- */

/* select_pending: claim the queue (uploaded, or failed here for
 * --retry-failed), keep it to work ahead on, return its records. */
static json_t *collage_select(void *sp, struct filter_run *run, enum filter_source src, long limit)
{
	struct collage_state *s = sp;
	limit = claim_batch_size(limit, filter_limit_given(run), "COLLAGE_BATCH_SIZE");
	/* 'error' rows with image_urls failed here, at the collage; those
	 * without failed at the download (unde-download retries them);
	 * permanent ones only when asked */
	PGresult *r = claim_queue(&s->claim,
				  src == FILTER_SOURCE_PENDING ? "image_status = 'uploaded'"
				  : s->include_permanent
				  ? "image_status = 'error' AND image_urls IS NOT NULL"
				  : "image_status = 'error' AND image_urls IS NOT NULL AND NOT error_permanent",
				  "p.id, p.source, p.external_id, p.brand, p.image_urls::text AS urls", limit);
	if (!r)
		return NULL;
	json_t *arr = json_array();
	/* the queue, in the order the records will come, to work ahead on */
	for (size_t i = 0; i < s->queue_n; i++)
		free(s->queue[i].urls_json);
	free(s->queue);
	s->queue = xcalloc((size_t)PQntuples(r) + 1, sizeof *s->queue);
	s->queue_n = s->queue_next = 0;
	for (int i = 0; i < PQntuples(r); i++) {
		struct collage_queued *q = &s->queue[s->queue_n++];
		snprintf(q->id, sizeof q->id, "%s", PQgetvalue(r, i, 0));
		q->urls_json = PQgetisnull(r, i, 4) ? NULL : xstrdup(PQgetvalue(r, i, 4));
		json_t *urls = PQgetisnull(r, i, 4) ? NULL : json_loads(PQgetvalue(r, i, 4), 0, NULL);
		json_array_append_new(arr, json_pack("{s:I, s:s, s:s, s:s, s:o}", "id",
						     (json_int_t)strtoll(PQgetvalue(r, i, 0), NULL, 10),
						     "source", PQgetvalue(r, i, 1), "external_id",
						     PQgetvalue(r, i, 2), "brand", PQgetvalue(r, i, 3),
						     "image_urls", urls ? urls : json_null()));
	}
	PQclear(r);
	if (!s->ahead && s->queue_n > 1)
		s->ahead = collage_ahead_new(s->threads, (int)s->max_width, (int)s->quality);
	log_event(LOG_INFO, "claimed",
		  json_pack("{s:s, s:I, s:s}", "queue",
			    src == FILTER_SOURCE_PENDING ? "uploaded" : "retry-failed", "products",
			    (json_int_t)json_array_size(arr), "run", s->claim.run_id));
	return arr;
}

/* --- start and finish ------------------------------------------------------------ */

/* on_start: the configuration, the store, the database. */
static int collage_on_start(void *sp, struct filter_run *run, int argc, char **argv)
{
	struct collage_state *s = sp;
	(void)run;
	(void)argv;
	const char *url = conf_require("STAGING_DB_URL");
	s->max_width = conf_long("COLLAGE_MAX_WIDTH", 2048, 16, 65500);
	s->quality = conf_long("COLLAGE_QUALITY", 85, 1, 100);
	s->concurrency = conf_long("CONCURRENT_DOWNLOADS", 10, 1, 256);
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	s->threads = (int)conf_long("COLLAGE_THREADS", cpus > 0 ? (cpus < 16 ? cpus : 16) : 1, 1,
					 COLLAGE_MAX_PHOTOS);
	claim_start(&s->claim, "COLLAGE_CLAIM_TTL");
	s->os = objstore_open();
	if (!(s->db = s->claim.db = pg_connect(url, "STAGING_DB_URL")))
		return EX_UNAVAILABLE;
	return 0;
}

/* on_finish: the workers stopped, the §19 metrics written. */
static void collage_on_finish(void *sp, struct filter_run *run)
{
	struct collage_state *s = sp;
	(void)run;
	collage_ahead_free(s->ahead);
	s->ahead = NULL;
	for (size_t i = 0; i < s->queue_n; i++)
		free(s->queue[i].urls_json);
	free(s->queue);
	s->queue = NULL;
	s->queue_n = 0;
	/* §19: collage_queue_size (alert > 1000), collage_processing_errors (> 5 %) */
	struct metrics *m = metrics_new();
	metrics_add(m, "collage_processing_errors", "gauge", "Products of the last run that failed",
		    NULL, (double)s->failed);
	metrics_add(m, "collage_processed", "gauge", "Collages the last run made", NULL, (double)s->done);
	metrics_add(m, "collage_error_ratio", "gauge", "Failed / tried in the last run", NULL,
		    s->done + s->failed ? (double)s->failed / (double)(s->done + s->failed) : 0);
	metrics_add(m, "collage_seconds_per_product", "gauge",
		    "Image work per collage in the last run (decode, join, encode)", NULL,
		    s->done ? s->vips_ms / 1000.0 / (double)s->done : 0);
	PGresult *r = s->db ? pg_query(s->db, "SELECT count(*) FROM raw_products WHERE image_status = 'uploaded'",
				       0, NULL)
			    : NULL;
	if (r) {
		metrics_add(m, "collage_queue_size", "gauge", "Products waiting for their collage", NULL,
			    strtod(PQgetvalue(r, 0, 0), NULL));
		PQclear(r);
	}
	metrics_write_default(m, "unde-collage");
	metrics_free(m);
}

/* unde-collage: the filter runner with the functions above. */
int main(int argc, char **argv)
{
	/* One malloc arena: the decoding threads would each get their own and
	 * leave it mostly empty but resident (some 10 MiB of RSS), for no
	 * measurable gain in speed. Blocks of 1 MiB and more (originals, the
	 * collage's pixels) are mapped and unmapped each time, so the heap
	 * never keeps a few MiB of them resident after a product. */
	mallopt(M_ARENA_MAX, 1);
	mallopt(M_MMAP_THRESHOLD, 1 << 20);
	static struct collage_state state;
	static const struct filter_option collage_option_table[] = {
		CLAIM_TTL_OPTION("COLLAGE_CLAIM_TTL", &state.claim.ttl),
		CLAIM_PERMANENT_OPTION(&state.include_permanent),
		{ 0 },
	};
	static const struct filter_def def = {
		.name = "unde-collage",
		.summary = "Join each product's originals left to right into one JPEG collage (collages/).",
		.synopsis = CLAIM_SYNOPSIS,
		.options = collage_option_table,
		.max_operands = FILTER_NO_OPERANDS,
		.on_start = collage_on_start,
		.on_record = collage_on_record,
		.select_pending = collage_select,
		.on_finish = collage_on_finish,
		.default_limit = 100,
	};
	int rc = filter_main(&def, &state, argc, argv);
	PQfinish(state.db);
	objstore_close(state.os);
	collage_thread_done();
	collage_vips_shutdown();
	return rc;
}
