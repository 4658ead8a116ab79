/* unde-collage — one collage per product from its originals (spec §5, §17.3).
 *
 *   unde-download … | unde-collage          the products given on stdin
 *   unde-collage --pending [--limit 100]    image_status 'uploaded' rows
 *   unde-collage --retry-failed             rows whose collage failed
 *
 * Per product: GET the originals from object storage, read them with
 * libvips (JPEG, PNG, WebP; EXIF orientation applied; CMYK and other
 * spaces to sRGB; alpha flattened on white), bring all to one height, join
 * them left to right, keep the result within COLLAGE_MAX_WIDTH, save a JPEG
 * at COLLAGE_QUALITY without metadata, upload collages/{brand}/{id}.jpg,
 * and set collage_url and image_status 'collage_ready' in one UPDATE — or
 * image_status 'error' with error_message.
 *
 * Memory stays small on large photos: each original is opened with
 * vips_thumbnail_buffer, which shrinks on load (JPEG DCT scaling) and
 * streams top to bottom, so a 1200×1600 photo never exists at full size
 * when the collage is only a few hundred pixels high. The common height is
 * worked out from the headers alone before any pixel is decoded. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include <vips/vips.h>

#include "conf.h"
#include "filter.h"
#include "image.h"
#include "log.h"
#include "metrics.h"
#include "objstore.h"
#include "pg.h"
#include "util.h"

#define COLLAGE_MAX_PHOTOS 16

struct collage_state {
	PGconn *db;
	struct objstore *os;
	char run_id[37];
	long max_width, quality, claim_ttl, concurrency;
	long done, failed;
	double vips_ms;
};

/* --- the image work ------------------------------------------------------- */

struct collage_out {
	void *jpeg; /* g_free() */
	size_t len;
	int width, height;
};

/* vips' error text, one line, and clear it. */
static void collage_vips_error(char *why, size_t len, const char *what)
{
	snprintf(why, len, "%s: %s", what, vips_error_buffer());
	for (char *p = why; *p; p++)
		if (*p == '\n')
			*p = ' ';
	size_t n = strlen(why);
	while (n && why[n - 1] == ' ')
		why[--n] = '\0';
	vips_error_clear();
}

/* Make one upright sRGB, 3-band uchar image of in, alpha flattened on
 * white. Takes in; returns a new image or NULL. */
static VipsImage *collage_normalise(VipsImage *in)
{
	VipsImage *t = NULL;
	if (in->Type != VIPS_INTERPRETATION_sRGB || in->BandFmt != VIPS_FORMAT_UCHAR) {
		if (vips_colourspace(in, &t, VIPS_INTERPRETATION_sRGB, NULL)) {
			g_object_unref(in);
			return NULL;
		}
		g_object_unref(in);
		in = t;
	}
	if (vips_image_hasalpha(in) || in->Bands > 3) {
		double white[3] = { 255, 255, 255 };
		VipsArrayDouble *bg = vips_array_double_new(white, 3);
		int rc = vips_flatten(in, &t, "background", bg, NULL);
		vips_area_unref(VIPS_AREA(bg));
		g_object_unref(in);
		if (rc)
			return NULL;
		in = t;
	}
	if (in->BandFmt != VIPS_FORMAT_UCHAR) {
		if (vips_cast_uchar(in, &t, NULL)) {
			g_object_unref(in);
			return NULL;
		}
		g_object_unref(in);
		in = t;
	}
	return in;
}

/* Decode one original straight to height target_h (in its upright
 * orientation), into a small in-memory sRGB image. JPEG is shrunk by its
 * DCT while decoding (1/2, 1/4, 1/8: four to sixty-four times fewer pixels
 * to decode) and WebP scaled by its decoder; what is left is one reduce.
 * Colour management and rotation then work on the small image only. */
struct collage_part_job {
	const struct buf *b;
	const char *type;  /* image/jpeg, image/png, image/webp */
	int dw, dh;        /* upright size, from the header */
	int swap;          /* the EXIF orientation turns it by 90 degrees */
	int target_w, target_h; /* upright size wanted */
	VipsImage *out;    /* the result, or NULL */
	char error[400];   /* vips' error when out is NULL */
	int cm_failed;
};

static VipsImage *collage_part(const struct buf *b, const char *type, int dw, int dh, int swap,
			       int target_w, int target_h, int *cm_failed)
{
	(void)dw;
	double scale = (double)target_h / dh;
	/* the size wanted, as stored (before the EXIF rotation) */
	int ow = swap ? target_h : target_w, oh = swap ? target_w : target_h;

	VipsImage *img = NULL, *t;
	if (strcmp(type, "image/jpeg") == 0) {
		int shrink = 1;
		for (int k = 8; k > 1; k /= 2)
			if (1.0 / scale >= k) {
				shrink = k;
				break;
			}
		if (vips_jpegload_buffer(b->data, b->len, &img, "shrink", shrink, "access",
					 VIPS_ACCESS_SEQUENTIAL, NULL))
			return NULL;
	} else if (strcmp(type, "image/webp") == 0) {
		if (vips_webpload_buffer(b->data, b->len, &img, "scale", scale, "access",
					 VIPS_ACCESS_SEQUENTIAL, NULL))
			return NULL;
	} else if (vips_pngload_buffer(b->data, b->len, &img, "access", VIPS_ACCESS_SEQUENTIAL, NULL)) {
		return NULL;
	}
	if (img->Xsize != ow || img->Ysize != oh) {
		/* after a JPEG's DCT shrink less than 2x is left, where a linear
		 * kernel is sharp enough and half the work of lanczos3 */
		double hs = (double)ow / img->Xsize, vs = (double)oh / img->Ysize;
		VipsKernel k = hs > 0.5 && vs > 0.5 ? VIPS_KERNEL_LINEAR : VIPS_KERNEL_LANCZOS3;
		if (vips_resize(img, &t, hs, "vscale", vs, "kernel", k, NULL)) {
			g_object_unref(img);
			return NULL;
		}
		g_object_unref(img);
		img = t;
		/* the reduce rounds; one pixel too many or too few is cut or copied */
		if (img->Xsize != ow || img->Ysize != oh) {
			if (vips_embed(img, &t, 0, 0, ow, oh, "extend", VIPS_EXTEND_COPY, NULL)) {
				g_object_unref(img);
				return NULL;
			}
			g_object_unref(img);
			img = t;
		}
	}
	/* an embedded profile (CMYK photos, Adobe RGB) to sRGB; CMYK without
	 * one through libvips' own CMYK profile */
	int has_icc = vips_image_get_typeof(img, VIPS_META_ICC_NAME) != 0;
	if (has_icc || img->Type == VIPS_INTERPRETATION_CMYK) {
		int rc = has_icc ? vips_icc_transform(img, &t, "srgb", "embedded", TRUE, "input_profile",
						      img->Type == VIPS_INTERPRETATION_CMYK ? "cmyk" : "srgb", NULL)
				 : vips_icc_transform(img, &t, "srgb", "input_profile", "cmyk", NULL);
		if (rc) {
			if (img->Type == VIPS_INTERPRETATION_CMYK) {
				g_object_unref(img);
				return NULL;
			}
			/* a broken profile on an RGB photo: use it as sRGB */
			vips_error_clear();
			*cm_failed = 1;
		} else {
			g_object_unref(img);
			img = t;
		}
	}
	if (!(img = collage_normalise(img)))
		return NULL;
	/* run the decode now, into a small image (a few hundred KiB) */
	VipsImage *mem = vips_image_copy_memory(img);
	g_object_unref(img);
	if (!mem)
		return NULL;
	if (swap || vips_image_get_orientation(mem) != 1) {
		if (vips_autorot(mem, &t, NULL)) {
			g_object_unref(mem);
			return NULL;
		}
		g_object_unref(mem);
		mem = t;
	}
	return mem;
}

/* Work through the parts of one collage: each thread takes the next part
 * not yet taken. libvips' own threads are not used for parts this small
 * (VIPS_CONCURRENCY 1): several parts decoding at once keep every core busy
 * with less hand-over between threads. */
struct collage_pool {
	struct collage_part_job *jobs;
	size_t n, next;
	pthread_mutex_t lock;
};

static void collage_work(struct collage_pool *pool)
{
	for (;;) {
		pthread_mutex_lock(&pool->lock);
		size_t i = pool->next < pool->n ? pool->next++ : pool->n;
		pthread_mutex_unlock(&pool->lock);
		if (i >= pool->n)
			break;
		struct collage_part_job *j = &pool->jobs[i];
		j->out = collage_part(j->b, j->type, j->dw, j->dh, j->swap, j->target_w, j->target_h,
				      &j->cm_failed);
		if (!j->out) {
			char what[48];
			snprintf(what, sizeof what, "original %zu", i + 1);
			collage_vips_error(j->error, sizeof j->error, what);
		}
	}
}

static void *collage_worker(void *arg)
{
	collage_work(arg);
	vips_thread_shutdown(); /* libvips' per-thread buffers */
	return NULL;
}

static int collage_threads = 1;

/* The collage of n encoded images. Returns 0, or -1 with why set. */
static int collage_build(struct buf *bufs, size_t n, int max_width, int quality,
			 struct collage_out *out, char *why, size_t whylen)
{
	int w[COLLAGE_MAX_PHOTOS], h[COLLAGE_MAX_PHOTOS], swap[COLLAGE_MAX_PHOTOS];
	const char *types[COLLAGE_MAX_PHOTOS];
	VipsImage *parts[COLLAGE_MAX_PHOTOS] = { 0 };
	int rc = -1;
	memset(out, 0, sizeof *out);

	/* headers only: sizes, upright */
	int target_h = 0;
	for (size_t i = 0; i < n; i++) {
		/* libvips pads a truncated JPEG read from memory with grey, even
		 * with fail_on: check the bytes are a whole image first */
		char bad[200];
		if (!(types[i] = image_sniff(bufs[i].data, bufs[i].len, NULL, bad, sizeof bad))) {
			snprintf(why, whylen, "original %zu: %s", i + 1, bad);
			return -1;
		}
		VipsImage *hdr = vips_image_new_from_buffer(bufs[i].data, bufs[i].len, "", NULL);
		if (!hdr) {
			char what[48];
			snprintf(what, sizeof what, "original %zu is not a readable image", i + 1);
			collage_vips_error(why, whylen, what);
			return -1;
		}
		w[i] = hdr->Xsize;
		h[i] = hdr->Ysize;
		if ((swap[i] = vips_image_get_orientation_swap(hdr))) {
			int tmp = w[i];
			w[i] = h[i];
			h[i] = tmp;
		}
		g_object_unref(hdr);
		if (!target_h || h[i] < target_h)
			target_h = h[i]; /* the lowest: nothing is enlarged */
	}
	/* all at target_h side by side; lower them all if that is too wide */
	double total = 0;
	for (size_t i = 0; i < n; i++)
		total += (double)w[i] * target_h / h[i];
	if (total > max_width)
		target_h = (int)((double)target_h * max_width / total);
	if (target_h < 1)
		target_h = 1;

	/* each part's width; rounding must not push the sum past max_width
	 * (a resize of the whole collage to lose two pixels costs more than
	 * all the parts' decoding) */
	int tw[COLLAGE_MAX_PHOTOS], sum = 0;
	for (size_t i = 0; i < n; i++) {
		tw[i] = (int)((double)w[i] * target_h / h[i] + 0.5);
		if (tw[i] < 1)
			tw[i] = 1;
		sum += tw[i];
	}
	while (sum > max_width) {
		size_t widest = 0;
		for (size_t i = 1; i < n; i++)
			if (tw[i] > tw[widest])
				widest = i;
		if (tw[widest] <= 1)
			break;
		tw[widest]--;
		sum--;
	}
	struct collage_part_job jobs[COLLAGE_MAX_PHOTOS];
	for (size_t i = 0; i < n; i++)
		jobs[i] = (struct collage_part_job){ .b = &bufs[i], .type = types[i], .dw = w[i], .dh = h[i],
						     .swap = swap[i], .target_w = tw[i], .target_h = target_h };
	struct collage_pool pool = { .jobs = jobs, .n = n };
	pthread_mutex_init(&pool.lock, NULL);
	pthread_t tids[COLLAGE_MAX_PHOTOS];
	size_t nthreads = (size_t)collage_threads < n ? (size_t)collage_threads : n, started = 0;
	for (size_t t = 1; t < nthreads; t++)
		if (pthread_create(&tids[started], NULL, collage_worker, &pool) == 0)
			started++;
	collage_work(&pool); /* this thread takes parts too */
	for (size_t t = 0; t < started; t++)
		pthread_join(tids[t], NULL);
	pthread_mutex_destroy(&pool.lock);
	int failed = 0;
	for (size_t i = 0; i < n; i++) {
		parts[i] = jobs[i].out;
		if (!parts[i] && !failed) {
			snprintf(why, whylen, "%s", jobs[i].error);
			failed = 1;
		}
		if (jobs[i].cm_failed)
			log_event(LOG_WARN, "unusable colour profile, read as sRGB",
				  json_pack("{s:I}", "original", (json_int_t)(i + 1)));
	}
	if (failed)
		goto out;
	/* left to right; all are target_h high, so nothing needs padding
	 * (vips_arrayjoin would give every part the widest one's cell) */
	VipsImage *joined = parts[0], *final;
	g_object_ref(joined);
	for (size_t i = 1; i < n; i++) {
		VipsImage *t;
		if (vips_join(joined, parts[i], &t, VIPS_DIRECTION_HORIZONTAL, NULL)) {
			g_object_unref(joined);
			collage_vips_error(why, whylen, "join");
			goto out;
		}
		g_object_unref(joined);
		joined = t;
	}
	if (joined->Xsize > max_width) {
		/* rounding of the parts' widths: a few pixels over at most */
		if (vips_resize(joined, &final, (double)max_width / joined->Xsize, NULL)) {
			g_object_unref(joined);
			collage_vips_error(why, whylen, "resize");
			goto out;
		}
		g_object_unref(joined);
	} else {
		final = joined;
	}
	if (vips_jpegsave_buffer(final, &out->jpeg, &out->len, "Q", quality, "strip", TRUE, NULL)) {
		g_object_unref(final);
		collage_vips_error(why, whylen, "JPEG encoding");
		goto out;
	}
	out->width = final->Xsize;
	out->height = final->Ysize;
	g_object_unref(final);
	rc = 0;
out:
	for (size_t i = 0; i < n; i++)
		if (parts[i])
			g_object_unref(parts[i]);
	return rc;
}

/* --- the database ------------------------------------------------------------- */

static void collage_release(struct collage_state *s, const char *id)
{
	const char *params[] = { id, s->run_id };
	pg_exec(s->db, "UPDATE raw_products SET claimed_by = NULL, claimed_until = NULL"
		       " WHERE id = $1 AND claimed_by = $2", 2, params);
}

/* The final UPDATE, while this run holds the product and its originals are
 * still those it used. Returns 1 done, 0 superseded, -1 database error. */
static int collage_finish(struct collage_state *s, const char *id, const char *urls_json,
			  const char *collage_url, const char *error)
{
	const char *params[] = { id, s->run_id, urls_json, collage_url ? collage_url : error };
	PGresult *r = pg_query(s->db,
			       collage_url
			       ? "UPDATE raw_products SET collage_url = $4, image_status = 'collage_ready',"
				 " error_message = NULL, updated_at = now(), claimed_by = NULL,"
				 " claimed_until = NULL WHERE id = $1 AND claimed_by = $2"
				 " AND image_urls IS NOT DISTINCT FROM $3::jsonb"
			       : "UPDATE raw_products SET image_status = 'error', error_message = $4,"
				 " updated_at = now(), claimed_by = NULL, claimed_until = NULL"
				 " WHERE id = $1 AND claimed_by = $2"
				 " AND image_urls IS NOT DISTINCT FROM $3::jsonb",
			       4, params);
	if (!r)
		return -1;
	int done = atoi(PQcmdTuples(r)) == 1;
	PQclear(r);
	if (!done)
		collage_release(s, id);
	return done;
}

/* --- one product ------------------------------------------------------------- */

struct collage_job {
	char id[24];
	char brand[64];
	char external_id[101];
	char *urls_json; /* image_urls as the database has it */
};

static int collage_key_part_ok(const char *s, int id)
{
	if (!*s || strlen(s) > 100 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
		      (id && ((*s >= 'A' && *s <= 'Z') || *s == '-' || *s == '_' || *s == '.'))))
			return 0;
	return 1;
}

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
	if (collage_finish(s, j->id, j->urls_json, NULL, full) < 0)
		return filter_fail(run, EX_UNAVAILABLE, "database_unavailable",
				   "%s (and the error status was not recorded: %s)", msg, pg_last_error(s->db));
	return filter_fail(run, status, code, "%s", msg);
}

static int collage_product(struct collage_state *s, struct filter_run *run, struct collage_job *j,
			   json_t *rec)
{
	if (!collage_key_part_ok(j->brand, 0) || !collage_key_part_ok(j->external_id, 1))
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
	int rc = 0;
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
	struct collage_out co;
	char why[512];
	double t0 = util_now_ms();
	if (collage_build(bufs, n, (int)s->max_width, (int)s->quality, &co, why, sizeof why) != 0) {
		rc = collage_fail(s, run, j, EX_DATAERR, "bad_image", "%s", why);
		goto out;
	}
	s->vips_ms += util_now_ms() - t0;
	char key[256];
	snprintf(key, sizeof key, "collages/%s/%s.jpg", j->brand, j->external_id);
	struct objstore_error err;
	int st = objstore_put(s->os, key, co.jpeg, co.len, "image/jpeg", &err);
	g_free(co.jpeg);
	if (st != OBJSTORE_OK) {
		rc = collage_fail(s, run, j, err.retryable ? EX_TEMPFAIL : EX_UNAVAILABLE, "storage_error",
				  "upload of %s: %s", key, err.message);
		goto out;
	}
	char *url = objstore_url(s->os, key);
	int done = collage_finish(s, j->id, j->urls_json, url, NULL);
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

static int collage_on_record(void *sp, struct filter_run *run, json_t *rec)
{
	struct collage_state *s = sp;
	struct collage_job j = { 0 };
	if (collage_record_id(rec, j.id, sizeof j.id) != 0)
		return filter_fail(run, EX_DATAERR, "missing_field",
				   "the record has no staging \"id\" (records come from unde-download)");
	char ttl[24];
	snprintf(ttl, sizeof ttl, "%ld", s->claim_ttl);
	const char *params[] = { j.id, s->run_id, ttl };
	/* claimed already by --pending; from stdin, claim it now */
	PGresult *r = pg_query(s->db,
			       "UPDATE raw_products SET claimed_by = $2,"
			       " claimed_until = now() + make_interval(secs => $3::int)"
			       " WHERE id = $1 AND (claimed_by IS NULL OR claimed_until < now() OR claimed_by = $2)"
			       " RETURNING brand, external_id, image_urls::text, image_status, collage_url",
			       3, params);
	if (!r)
		return filter_fail(run, pg_connection_lost(s->db) ? EX_UNAVAILABLE : EX_SOFTWARE,
				   "database_unavailable", "%s", pg_last_error(s->db));
	if (PQntuples(r) != 1) {
		PQclear(r);
		r = pg_query(s->db, "SELECT 1 FROM raw_products WHERE id = $1", 1, params);
		int exists = r && PQntuples(r) == 1;
		PQclear(r);
		return exists ? filter_fail(run, EX_TEMPFAIL, "busy",
					    "product %s is being worked on by another run", j.id)
			      : filter_fail(run, EX_DATAERR, "not_found",
					    "no product with id %s in raw_products", j.id);
	}
	const char *status = PQgetvalue(r, 0, 3);
	if (strcmp(status, "collage_ready") == 0) {
		/* done before: pass it on, nothing redone */
		json_object_set_new(rec, "collage_url", json_string(PQgetvalue(r, 0, 4)));
		json_object_set_new(rec, "image_status", json_string(status));
		PQclear(r);
		collage_release(s, j.id);
		return 0;
	}
	if (strcmp(status, "uploaded") != 0 && !(strcmp(status, "error") == 0 && !PQgetisnull(r, 0, 2))) {
		int rc = filter_fail(run, EX_DATAERR, "not_uploaded",
				     "product %s has image_status '%s': its photos are not uploaded yet",
				     j.id, status);
		PQclear(r);
		collage_release(s, j.id);
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

static json_t *collage_select(void *sp, struct filter_run *run, enum filter_source src, long limit)
{
	struct collage_state *s = sp;
	(void)run;
	char lim[24], ttl[24];
	snprintf(lim, sizeof lim, "%ld", limit);
	snprintf(ttl, sizeof ttl, "%ld", s->claim_ttl);
	const char *params[] = { s->run_id, ttl, lim };
	/* 'error' rows with image_urls failed here, at the collage; those
	 * without failed at the download (unde-download retries them) */
	const char *where = src == FILTER_SOURCE_PENDING
		? "image_status = 'uploaded'"
		: "image_status = 'error' AND image_urls IS NOT NULL";
	char sql[1024];
	snprintf(sql, sizeof sql,
		 "WITH c AS (SELECT id FROM raw_products WHERE %s"
		 " AND (claimed_by IS NULL OR claimed_until < now()) ORDER BY id LIMIT $3"
		 " FOR UPDATE SKIP LOCKED),"
		 " u AS (UPDATE raw_products p SET claimed_by = $1,"
		 " claimed_until = now() + make_interval(secs => $2::int) FROM c WHERE p.id = c.id"
		 " RETURNING p.id, p.source, p.external_id, p.brand, p.image_urls::text AS urls)"
		 " SELECT * FROM u ORDER BY id",
		 where);
	PGresult *r = pg_query(s->db, sql, 3, params);
	if (!r)
		return NULL;
	json_t *arr = json_array();
	for (int i = 0; i < PQntuples(r); i++) {
		json_t *urls = PQgetisnull(r, i, 4) ? NULL : json_loads(PQgetvalue(r, i, 4), 0, NULL);
		json_array_append_new(arr, json_pack("{s:I, s:s, s:s, s:s, s:o}", "id",
						     (json_int_t)strtoll(PQgetvalue(r, i, 0), NULL, 10),
						     "source", PQgetvalue(r, i, 1), "external_id",
						     PQgetvalue(r, i, 2), "brand", PQgetvalue(r, i, 3),
						     "image_urls", urls ? urls : json_null()));
	}
	PQclear(r);
	log_event(LOG_INFO, "claimed",
		  json_pack("{s:s, s:I, s:s}", "queue",
			    src == FILTER_SOURCE_PENDING ? "uploaded" : "retry-failed", "products",
			    (json_int_t)json_array_size(arr), "run", s->run_id));
	return arr;
}

/* --- start and finish ------------------------------------------------------------ */

enum { OPT_CLAIM_TTL = 3000 };

static const struct option collage_options[] = {
	{ "claim-ttl", required_argument, NULL, OPT_CLAIM_TTL },
	{ NULL, 0, NULL, 0 },
};

static int collage_on_option(void *sp, int opt, const char *arg)
{
	struct collage_state *s = sp;
	char *end;
	if (opt == OPT_CLAIM_TTL) {
		s->claim_ttl = strtol(arg, &end, 10);
		return (end == arg || *end || s->claim_ttl < 1 || s->claim_ttl > 7 * 86400) ? -1 : 0;
	}
	return -1;
}

static int collage_on_start(void *sp, struct filter_run *run, int argc, char **argv)
{
	struct collage_state *s = sp;
	(void)run;
	(void)argv;
	if (argc > 0) {
		log_event(LOG_ERROR, "unde-collage takes no arguments", json_pack("{s:i}", "exit", EX_USAGE));
		return EX_USAGE;
	}
	const char *url = conf_require("STAGING_DB_URL");
	s->max_width = conf_long("COLLAGE_MAX_WIDTH", 2048, 16, 65500);
	s->quality = conf_long("COLLAGE_QUALITY", 85, 1, 100);
	s->concurrency = conf_long("CONCURRENT_DOWNLOADS", 10, 1, 256);
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	collage_threads = (int)conf_long("COLLAGE_THREADS", cpus > 0 ? (cpus < 16 ? cpus : 16) : 1, 1,
					 COLLAGE_MAX_PHOTOS);
	/* parts are decoded side by side, each by one thread: libvips' own
	 * worker pools would only hand tiles back and forth */
	if (!getenv("VIPS_CONCURRENCY"))
		vips_concurrency_set(1);
	if (!s->claim_ttl)
		s->claim_ttl = conf_long("COLLAGE_CLAIM_TTL", 3600, 1, 7 * 86400);
	s->os = objstore_open();
	util_uuid4(s->run_id);
	if (!(s->db = pg_connect(url, "STAGING_DB_URL")))
		return EX_UNAVAILABLE;
	return 0;
}

static void collage_on_finish(void *sp, struct filter_run *run)
{
	struct collage_state *s = sp;
	(void)run;
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

int main(int argc, char **argv)
{
	/* One malloc arena: the decoding threads would each get their own and
	 * leave it mostly empty but resident (some 10 MiB of RSS), for no
	 * measurable gain in speed. */
	mallopt(M_ARENA_MAX, 1);
	if (VIPS_INIT(argv[0]))
		vips_error_exit("cannot start libvips");
	/* each image is used once: the operation cache would only hold memory */
	vips_cache_set_max(0);
	static struct collage_state state;
	static const struct filter_def def = {
		.name = "unde-collage",
		.summary = "Join each product's originals left to right into one JPEG collage (collages/).",
		.synopsis = "[--pending [--limit N] | --retry-failed] [--claim-ttl SECONDS]",
		.options_help =
			"  --claim-ttl SECONDS  how long a claimed product stays this run's (default\n"
			"                       COLLAGE_CLAIM_TTL or 3600)",
		.longopts = collage_options,
		.on_option = collage_on_option,
		.on_start = collage_on_start,
		.on_record = collage_on_record,
		.select_pending = collage_select,
		.on_finish = collage_on_finish,
		.default_limit = 100,
	};
	int rc = filter_main(&def, &state, argc, argv);
	PQfinish(state.db);
	objstore_close(state.os);
	vips_shutdown();
	return rc;
}
