/* gw — the Ximilar Gateway's three calls (spec §9).
 *
 * With XIMILAR_API_TOKEN each goes to Ximilar first (the photo sent as
 * _base64: the user's photos are private, Ximilar could not fetch them);
 * when Ximilar is not configured, fails (429, 5xx, timeout, an answer that
 * is not the documented shape, a per-record _status error) or too little of
 * the deadline is left, the local provider answers, and the answer says
 * who did ("provider") and why Ximilar was skipped ("providers_skipped").
 *
 * Local provider:
 *   detect  the garment regions of regions.c when it finds two or more
 *           (a top over trousers, two garments side by side), else the
 *           whole photo is the one item (category "whole_photo",
 *           confidence 1);
 *   tag     the dominant colours (photo_colours), the first as color /
 *           color_hex; type is the caller's category, if any;
 *   search  the crop's descriptor (lib/descriptor.h) against
 *           production.product_descriptors (pgvector, cosine distance),
 *           the best photo per product.
 * Scores: score = max(0, 1 - distance) for both providers (pgvector's
 * cosine distance is in [0, 2]; Ximilar's answer_distances are taken the
 * same way, smaller = more similar). */
#include "config.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "conf.h"
#include "http.h"
#include "image.h"
#include "log.h"
#include "objstore.h"
#include "gw_int.h"
#include "recog.h"
#include "rvips.h"

static json_t *json_string_or_null(const char *s) { return s ? json_string(s) : json_null(); }

/* --- Ximilar --------------------------------------------------------------- */

/* xim_configured, xim_skip, xim_call: see gw_int.h. */
int xim_configured(void)
{
	if (!strcmp(conf_str("XIMILAR_PROVIDER", "auto"), "local"))
		return 0;
	const char *t = conf_str("XIMILAR_API_TOKEN", NULL);
	return t && *t;
}

json_t *xim_skip(const char *reason, const char *message)
{
	return json_pack("[{s:s, s:s, s:s}]", "provider", "ximilar", "reason", reason, "message", message);
}

json_t *xim_call(const char *path, json_t *body, int collection, struct deadline dl, const char *metric,
		 json_t **skip)
{
	const char *token = conf_str("XIMILAR_API_TOKEN", "");
	const char *base = conf_str("XIMILAR_API_URL", "https://api.ximilar.com");
	char url[1024], auth[400], coll[300], msg[400];
	snprintf(url, sizeof url, "%.*s/%s", (int)(strlen(base) - (base[0] && base[strlen(base) - 1] == '/')), base,
		 path);
	if (strpbrk(token, "\r\n") || strlen(token) > 300) {
		*skip = xim_skip("4xx", "XIMILAR_API_TOKEN is not one short line");
		return NULL;
	}
	snprintf(auth, sizeof auth, "Authorization: %s %s", strlen(token) >= 70 ? "JWT" : "Token", token);
	const char *cid = conf_str("XIMILAR_COLLECTION_ID", "");
	snprintf(coll, sizeof coll, "collection-id: %.200s", strpbrk(cid, "\r\n") ? "" : cid);
	const char *headers[] = { auth, "Content-Type: application/json", collection ? coll : NULL, NULL };
	char *text = json_dumps(body, JSON_COMPACT);
	if ((deadline_set(dl) && ms_left(dl) < 50) || rl_take(dl) != 0) {
		free(text);
		*skip = xim_skip("no_time", "too little of the deadline left (or no token of the host's rate limit in time)");
		rmetrics_add("ximilar_gw_rate_limit_waits", NULL, 1);
		return NULL;
	}
	struct http_request req = { .method = "POST", .url = url, .headers = headers, .body = text,
				    .body_len = strlen(text), .deadline = dl,
				    .timeout_ms = conf_long("XIMILAR_TIMEOUT", 10, 1, 3600) * 1000,
				    .max_attempts = 2, .max_response = 16u << 20 };
	struct http_response resp;
	int rc = http_perform(&req, &resp);
	free(text);
	json_t *doc = NULL;
	if (rc != 0 || resp.status == 0) {
		*skip = xim_skip(resp.timed_out || resp.deadline_cut ? "timeout" : "unreachable", resp.error);
		goto fail;
	}
	if (resp.status == 429) {
		rmetrics_add("ximilar_gw_rate_limit_hits", NULL, 1);
		rl_block(resp.retry_after_ms);
	}
	if (resp.status < 200 || resp.status > 299) {
		snprintf(msg, sizeof msg, "HTTP %ld", resp.status);
		*skip = xim_skip(resp.status == 429 ? "429" : resp.status >= 500 ? "5xx" : "4xx", msg);
		goto fail;
	}
	doc = json_loadb(resp.body.data, resp.body.len, 0, NULL);
	const json_t *st = json_object_get(doc, "status");
	if (!json_is_object(doc) || (st && json_integer_value(json_object_get(st, "code")) != 200)) {
		*skip = xim_skip("malformed", !doc ? "the answer is not JSON" : "status.code is not 200");
		goto fail;
	}
	size_t i;
	json_t *r;
	json_array_foreach(json_object_get(doc, "records"), i, r)
	{
		const json_t *rs = json_object_get(r, "_status");
		json_int_t code = rs ? json_integer_value(json_object_get(rs, "code")) : 200;
		if (code < 200 || code > 299) {
			const char *t = json_string_value(json_object_get(rs, "text"));
			snprintf(msg, sizeof msg, "record %zu: %lld %s", i + 1, (long long)code, t ? t : "");
			*skip = xim_skip(code == 429 ? "429" : code >= 500 ? "5xx" : "4xx", msg);
			goto fail;
		}
	}
	http_response_free(&resp);
	return doc;
fail:
	rmetrics_add("ximilar_gw_errors", metric, 1);
	json_decref(doc);
	http_response_free(&resp);
	return NULL;
}

/* {"records":[{"_base64": data}]} */
static json_t *xim_records_b64(const struct buf *data)
{
	char *b = photo_base64(data->data, data->len);
	json_t *body = json_pack("{s:[{s:s}]}", "records", "_base64", b);
	free(b);
	return body;
}

/* The first name of a tag group of a Ximilar _tags map, or NULL. */
static const char *xim_tag(const json_t *tags, const char *group)
{
	return json_string_value(json_object_get(json_array_get(json_object_get(tags, group), 0), "name"));
}

/* --- detect ------------------------------------------------------------------ */

/* The crop's key in the user-media bucket: {user_id}/recognition/{request}/{n}.jpg
 * ({request}: the request_id, or a new UUID when it has other characters
 * than letters, digits, ".", "_" and "-") */
static void gw_crop_key(const json_t *in, size_t n, char *key, size_t len)
{
	const char *uid = json_string_value(json_object_get(in, "user_id"));
	const char *rid = log_request_id();
	char gen[37];
	/* only the plainest characters of a caller's id go in a key: others
	 * are signed right (t/objstore.bats) but moto, the tests' S3, refuses
	 * keys with ':' and the other sub-delimiters (its SigV4 path is wrong) */
	if (!rid || !*rid || !objstore_key_valid(rid) || strspn(rid, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
								       "0123456789._-") != strlen(rid)) {
		util_uuid4(gen);
		rid = gen;
	}
	snprintf(key, len, "%s/recognition/%s/%zu.jpg", uid && objstore_key_valid(uid) && !strchr(uid, '/') ? uid : "anonymous",
		 rid, n + 1);
}

/* Ximilar's detection of a photo's bytes, in a thread of its own while
 * the photo is decoded here (libvips' first start and the decode are then
 * off the path to the detected line). */
struct xim_detect_job {
	const struct buf *photo;
	struct deadline dl;
	const char *rid;
	json_t *doc, *skip;
};

static void *xim_detect_thread(void *p)
{
	struct xim_detect_job *j = p;
	log_set_request_id(j->rid);
	json_t *body = xim_records_b64(j->photo);
	j->doc = xim_call("tagging/fashion/v2/detect", body, 0, j->dl, "endpoint=\"detect\"", &j->skip);
	json_decref(body);
	http_thread_cleanup();
	return NULL;
}

/* Ximilar's answer doc (taken) as items [{bbox, category, confidence}] on
 * a photo of w x h, or NULL with *skip set. */
static json_t *gw_detect_ximilar(json_t *doc, int w, int h, json_t **skip)
{
	if (!doc)
		return NULL;
	json_t *objs = json_object_get(json_array_get(json_object_get(doc, "records"), 0), "_objects");
	json_t *items = json_array();
	size_t i;
	json_t *o;
	int bad = !json_is_array(objs);
	json_array_foreach(objs, i, o)
	{
		json_t *bb = json_object_get(o, "bound_box");
		if (json_array_size(bb) != 4 || !json_is_number(json_object_get(o, "prob"))) {
			bad = 1;
			break;
		}
		int box[4];
		for (int k = 0; k < 4; k++)
			box[k] = (int)lround(json_number_value(json_array_get(bb, (size_t)k)));
		if (box[0] < 0 || box[1] < 0 || box[2] > w || box[3] > h || box[2] <= box[0] || box[3] <= box[1])
			continue; /* a box off the photo is not a garment we can crop */
		const char *cat = json_string_value(json_object_get(o, "Category"));
		if (!cat)
			cat = json_string_value(json_object_get(o, "name"));
		json_array_append_new(items, json_pack("{s:[i,i,i,i], s:s, s:f}", "bbox", box[0], box[1], box[2], box[3],
						       "category", cat ? cat : "unknown", "confidence",
						       json_number_value(json_object_get(o, "prob"))));
	}
	json_decref(doc);
	if (bad) {
		json_decref(items);
		*skip = xim_skip("malformed", "_objects is not a list of {bound_box[4], prob}");
		rmetrics_add("ximilar_gw_errors", "endpoint=\"detect\"", 1);
		return NULL;
	}
	return items;
}

/* The photo a request names ("url", else its alt key), fetched and
 * decoded; its bytes stay in *photo for Ximilar, *url says where it was.
 * NULL with e set (missing says what the request lacked) and *photo
 * freed. */
static VipsImage *gw_photo(const json_t *in, const char *alt, const char *missing,
			   struct deadline dl, struct buf *photo, const char **url, struct recog_err *e)
{
	*url = json_string_value(json_object_get(in, "url"));
	if (!*url)
		*url = json_string_value(json_object_get(in, alt));
	if (!*url) {
		recog_fail(e, EX_DATAERR, "missing_field", "%s", missing);
		return NULL;
	}
	VipsImage *im = photo_fetch(*url, dl, photo, e) == 0 ? photo_decode(photo, e) : NULL;
	if (!im)
		buf_free(photo);
	return im;
}

json_t *gw_detect(const json_t *in, struct deadline dl, struct recog_err *e)
{
	double t0 = util_now_ms();
	const char *url = json_string_value(json_object_get(in, "url"));
	if (!url)
		url = json_string_value(json_object_get(in, "photo_url"));
	if (!url) {
		recog_fail(e, EX_DATAERR, "missing_field", "detect needs url (the photo)");
		return NULL;
	}
	struct buf photo = { 0 };
	if (photo_fetch(url, dl, &photo, e) != 0) {
		buf_free(&photo);
		return NULL;
	}
	/* Ximilar asked while the photo is decoded; never with what is no
	 * image at all */
	char why[300];
	if (!image_sniff(photo.data, photo.len, NULL, why, sizeof why)) {
		recog_fail(e, EX_DATAERR, "photo_unusable", "%s", why);
		buf_free(&photo);
		return NULL;
	}
	int xim = xim_configured();
	struct xim_detect_job xj = { .photo = &photo, .dl = dl, .rid = log_request_id() };
	pthread_t xt;
	int threaded = xim && pthread_create(&xt, NULL, xim_detect_thread, &xj) == 0;
	if (xim && !threaded)
		xim_detect_thread(&xj);
	VipsImage *im = photo_decode(&photo, e);
	if (threaded)
		pthread_join(xt, NULL);
	if (!im) {
		json_decref(xj.doc);
		json_decref(xj.skip);
		buf_free(&photo);
		return NULL;
	}
	int w = RV.vips_image_get_width(im), h = RV.vips_image_get_height(im);
	json_t *skip = xj.skip, *items = NULL;
	const char *provider = "local";
	if (xim && (items = gw_detect_ximilar(xj.doc, w, h, &skip)))
		provider = "ximilar";
	else if (!xim)
		skip = xim_skip("no_key", "XIMILAR_API_TOKEN is not set (or XIMILAR_PROVIDER=local)");
	buf_free(&photo);
	/* nothing found (or nothing on the photo): the whole photo, so the
	 * search still has something to look for */
	if (items && json_array_size(items) == 0) {
		json_decref(items);
		items = NULL;
	}
	if (!items)
		items = provider[0] == 'l' ? photo_local_items(im)
					   : json_pack("[{s:[i,i,i,i], s:s, s:f}]", "bbox", 0, 0, w, h, "category",
						       "whole_photo", "confidence", 1.0);
	/* crops into the private bucket; the whole photo stays where it is */
	struct objstore *media = photo_media_store();
	size_t i;
	json_t *it;
	json_array_foreach(items, i, it)
	{
		json_t *bb = json_object_get(it, "bbox");
		int box[4];
		for (int k = 0; k < 4; k++)
			box[k] = (int)json_integer_value(json_array_get(bb, (size_t)k));
		if (box[0] == 0 && box[1] == 0 && box[2] == w && box[3] == h && !media) {
			json_object_set_new(it, "crop_url", json_string(url));
			continue;
		}
		if (!media) {
			recog_fail(e, EX_CONFIG, "no_object_store", "S3_ENDPOINT is needed to store the crops");
			goto fail;
		}
		struct buf jpeg = { 0 };
		if (photo_crop_jpeg(im, box, &jpeg, e) != 0) {
			buf_free(&jpeg);
			goto fail;
		}
		char key[512];
		gw_crop_key(in, i, key, sizeof key);
		struct objstore_error oe;
		int st = objstore_put(media, key, jpeg.data, jpeg.len, "image/jpeg", &oe);
		buf_free(&jpeg);
		if (st != OBJSTORE_OK) {
			recog_fail(e, oe.retryable ? EX_TEMPFAIL : EX_UNAVAILABLE, "object_store_error",
				   "storing the crop %s: %s", key, oe.message);
			goto fail;
		}
		char *cu = objstore_url(media, key);
		json_object_set_new(it, "crop_url", json_string(cu));
		free(cu);
	}
	RV.g_object_unref(im);
	json_t *out = json_pack("{s:o, s:i, s:i, s:s}", "items", items, "width", w, "height", h, "provider", provider);
	if (skip)
		json_object_set_new(out, "providers_skipped", skip);
	rmetrics_observe_ms("ximilar_gw_detect_latency_seconds", NULL, util_now_ms() - t0);
	return out;
fail:
	RV.g_object_unref(im);
	json_decref(items);
	json_decref(skip);
	return NULL;
}

/* --- tag --------------------------------------------------------------------- */

json_t *gw_tag(const json_t *in, struct deadline dl, struct recog_err *e)
{
	const char *url;
	struct buf photo = { 0 };
	VipsImage *im = gw_photo(in, "crop_url", "tag needs url (the crop)", dl, &photo, &url, e);
	if (!im)
		return NULL;
	json_t *colors = photo_colours(im, 3);
	RV.g_object_unref(im);
	const json_t *first = json_array_get(colors, 0);
	const char *cat = json_string_value(json_object_get(in, "category"));
	if (cat && !strcmp(cat, "whole_photo"))
		cat = NULL;
	json_t *out = json_pack("{s:s?, s:O?, s:O?, s:n, s:n, s:o, s:s}", "type", cat, "color",
				json_object_get(first, "name"), "color_hex", json_object_get(first, "hex"), "material",
				"pattern", "colors", colors, "provider", "local");
	json_t *skip = NULL;
	if (xim_configured()) {
		json_t *body = xim_records_b64(&photo);
		json_t *doc = xim_call("tagging/fashion/v2/tags", body, 0, dl, "endpoint=\"tag\"", &skip);
		json_decref(body);
		json_t *tags = json_object_get(json_array_get(json_object_get(doc, "records"), 0), "_tags");
		if (doc && !json_is_object(tags)) {
			skip = xim_skip("malformed", "records[0]._tags is not an object");
			rmetrics_add("ximilar_gw_errors", "endpoint=\"tag\"", 1);
		} else if (doc) {
			const char *type = xim_tag(tags, "Subcategory");
			const char *colour = xim_tag(tags, "Color");
			const char *pattern = xim_tag(tags, "Design");
			if (!type)
				type = xim_tag(tags, "Category");
			if (!pattern)
				pattern = xim_tag(tags, "Pattern and Material");
			if (type)
				json_object_set_new(out, "type", json_string(type));
			if (colour)
				json_object_set_new(out, "color", json_string(colour));
			json_object_set_new(out, "material", json_string_or_null(xim_tag(tags, "Material")));
			json_object_set_new(out, "pattern", json_string_or_null(pattern));
			json_object_set(out, "tags", tags);
			json_object_set_new(out, "provider", json_string("ximilar"));
		}
		json_decref(doc);
	} else {
		skip = xim_skip("no_key", "XIMILAR_API_TOKEN is not set (or XIMILAR_PROVIDER=local)");
	}
	buf_free(&photo);
	if (skip)
		json_object_set_new(out, "providers_skipped", skip);
	return out;
}
