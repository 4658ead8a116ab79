/* gw_search.c — the gateway's search (spec §9): the crop's visual
 * neighbours from Ximilar's collection, or from production's
 * product_descriptors by pgvector when Ximilar is not there (see gw.c's
 * opening comment for the providers and the score). */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "conf.h"
#include "gw_int.h"
#include "pg.h"
#include "recog.h"
#include "rvips.h"

static double gw_score(double distance)
{
	double s = 1.0 - distance;
	return s < 0 ? 0 : s > 1 ? 1 : round(s * 10000) / 10000;
}

/* production, connected on first use and again after it was lost; one
 * connection per thread (libpq's are not shared), closed by
 * gw_thread_done(). */
static __thread PGconn *gw_db;

void gw_thread_done(void)
{
	if (gw_db)
		PQfinish(gw_db);
	gw_db = NULL;
}

static PGconn *gw_production(struct recog_err *e)
{
	if (gw_db && PQstatus(gw_db) != CONNECTION_OK) {
		PQfinish(gw_db);
		gw_db = NULL;
	}
	const char *u = conf_str("PRODUCTION_DB_URL", NULL);
	if (!gw_db && u && *u)
		gw_db = pg_connect(u, "PRODUCTION_DB_URL");
	if (!gw_db)
		recog_fail(e, u && *u ? EX_UNAVAILABLE : EX_CONFIG, u && *u ? "database_unavailable" : "no_database",
			   u && *u ? "production database unreachable (PRODUCTION_DB_URL)"
				   : "the local search needs PRODUCTION_DB_URL (product_descriptors)");
	return gw_db;
}

PGconn *gw_production_db(struct recog_err *e) { return gw_production(e); }

int gw_production_connected(void) { return gw_db && PQstatus(gw_db) == CONNECTION_OK; }

void gw_production_adopt(PGconn *db)
{
	if (db && !gw_db && PQstatus(db) == CONNECTION_OK)
		gw_db = db;
	else if (db)
		PQfinish(db);
}

/* The local collection: nearest photos by pgvector, the best per product,
 * with the product's photos and metadata (colour and stock from products). */
static json_t *gw_search_local(const float *d, long top_k, struct recog_err *e)
{
	PGconn *db = gw_production(e);
	if (!db)
		return NULL;
	char text[DESCRIPTOR_TEXT_MAX], k[24];
	descriptor_to_text(d, text, sizeof text);
	snprintf(k, sizeof k, "%ld", top_k);
	/* in stock where the user is: the attribute fallback's rule (a store of
	 * the product's brand, its id a key of products.availability, its own
	 * or its mall's country RECOGNITION_STOCK_COUNTRY, city
	 * RECOGNITION_STOCK_CITY when set; production 0045) */
	const char *country, *city;
	recog_stock_place(&country, &city);
	const char *params[] = { text, k, country, city };
	PGresult *r = pg_query(db,
			       "WITH near AS (SELECT source, sku, descriptor <=> $1::vector AS d"
			       "   FROM product_descriptors ORDER BY descriptor <=> $1::vector LIMIT $2::int * 8),"
			       " best AS (SELECT source, sku, min(d) AS d FROM near GROUP BY source, sku"
			       "   ORDER BY min(d) LIMIT $2::int)"
			       " SELECT b.d, (SELECT json_agg(image_url ORDER BY photo_no) FROM product_descriptors p"
			       "   WHERE p.source = b.source AND p.sku = b.sku),"
			       "  (SELECT metadata || jsonb_build_object('source', p.source, 'sku', p.sku)"
			       "     || COALESCE(jsonb_build_object('colour', pr.colour, 'in_stock', EXISTS (SELECT 1"
			       "        FROM stores s LEFT JOIN malls m ON m.id = s.mall_id"
			       "        WHERE s.external_store_id IS NOT NULL AND lower(s.brand) = lower(pr.brand)"
			       "          AND pr.availability ? s.external_store_id::text"
			       "          AND ($3::text IS NULL OR upper(COALESCE(s.country, m.country)) = upper($3))"
			       "          AND ($4::text IS NULL OR lower(COALESCE(s.city, m.city)) = lower($4)))),"
			       "        '{}'::jsonb)"
			       "   FROM product_descriptors p LEFT JOIN products pr ON pr.source = p.source AND pr.sku = p.sku"
			       "   WHERE p.source = b.source AND p.sku = b.sku ORDER BY photo_no LIMIT 1)"
			       " FROM best b ORDER BY b.d",
			       4, params);
	if (!r) {
		recog_fail(e, pg_failure_status(db), "database_error", "local search: %s", pg_last_error(db));
		return NULL;
	}
	json_t *cands = json_array();
	for (int i = 0; i < PQntuples(r); i++) {
		double dist = strtod(PQgetvalue(r, i, 0), NULL);
		json_t *urls = json_loads(PQgetvalue(r, i, 1), 0, NULL);
		json_t *meta = json_loads(PQgetvalue(r, i, 2), 0, NULL);
		const char *sku = json_string_value(json_object_get(meta, "sku_id"));
		json_array_append_new(cands, json_pack("{s:s, s:f, s:f, s:o, s:o}", "sku_id",
						       sku ? sku : json_string_value(json_object_get(meta, "sku")), "score",
						       gw_score(dist), "distance", round(dist * 1e6) / 1e6, "image_urls",
						       urls ? urls : json_array(), "metadata", meta ? meta : json_object()));
	}
	PQclear(r);
	return cands;
}

/* visualKNN on the collection: records are photos ({brand}-{sku}-{n}),
 * grouped by sku_id keeping the nearest. NULL with *skip set on failure. */
static json_t *gw_search_ximilar(const struct buf *photo, const char *category, long top_k, struct deadline dl,
				 json_t **skip)
{
	char *b = photo_base64(photo->data, photo->len);
	json_t *body = json_pack("{s:{s:s}, s:I, s:[s,s,s,s,s,s,s,s,s]}", "query_record", "_base64", b, "k",
				 (json_int_t)(top_k * 4), "fields_to_return", "_id", "_url", "sku_id", "brand", "name",
				 "category", "price", "store", "floor");
	free(b);
	(void)category; /* the collection holds the catalog's categories, not Ximilar's */
	char path[300];
	snprintf(path, sizeof path, "%s/visualKNN", conf_str("XIMILAR_SEARCH_SERVICE", "similarity/products/v2"));
	json_t *doc = xim_call(path, body, 1, dl, "endpoint=\"search\"", skip);
	json_decref(body);
	if (!doc)
		return NULL;
	json_t *recs = json_object_get(doc, "answer_records"), *dists = json_object_get(doc, "answer_distances");
	if (!json_is_array(recs)) {
		json_decref(doc);
		*skip = xim_skip("malformed", "answer_records is not an array");
		rmetrics_add("ximilar_gw_errors", "endpoint=\"search\"", 1);
		return NULL;
	}
	json_t *cands = json_array();
	size_t i;
	json_t *r;
	json_array_foreach(recs, i, r)
	{
		const json_t *dv = json_array_get(dists, i);
		if (!json_is_number(dv))
			dv = json_object_get(r, "_distance");
		const char *sku = json_string_value(json_object_get(r, "sku_id"));
		if (!sku)
			sku = json_string_value(json_object_get(r, "_id"));
		if (!json_is_number(dv) || !sku)
			continue;
		double dist = json_number_value(dv);
		json_t *c = NULL, *x;
		size_t j;
		json_array_foreach(cands, j, x) if (!strcmp(json_string_value(json_object_get(x, "sku_id")), sku)) c = x;
		const char *u = json_string_value(json_object_get(r, "_url"));
		if (c) {
			if (u)
				json_array_append_new(json_object_get(c, "image_urls"), json_string(u));
			continue;
		}
		if (json_array_size(cands) >= (size_t)top_k)
			continue;
		json_t *meta = json_pack("{s:O?, s:O?, s:O?, s:O?, s:O?, s:O?}", "brand", json_object_get(r, "brand"),
					 "name", json_object_get(r, "name"), "category", json_object_get(r, "category"),
					 "price", json_object_get(r, "price"), "store", json_object_get(r, "store"),
					 "floor", json_object_get(r, "floor"));
		json_array_append_new(cands, json_pack("{s:s, s:f, s:f, s:[s?], s:o}", "sku_id", sku, "score",
						       gw_score(dist), "distance", dist, "image_urls", u, "metadata",
						       meta));
	}
	json_decref(doc);
	return cands;
}

json_t *gw_search(const json_t *in, struct deadline dl, struct recog_err *e)
{
	double t0 = util_now_ms();
	const char *url = json_string_value(json_object_get(in, "crop_url"));
	if (!url)
		url = json_string_value(json_object_get(in, "url"));
	const json_t *tk = json_object_get(in, "top_k");
	long top_k = json_is_integer(tk) ? (long)json_integer_value(tk) : 10;
	if (!url || top_k < 1 || top_k > 50) {
		recog_fail(e, EX_DATAERR, !url ? "missing_field" : "invalid_field",
			   !url ? "search needs crop_url" : "top_k must be an integer 1-50");
		return NULL;
	}
	struct buf photo = { 0 };
	if (photo_fetch(url, dl, &photo, e) != 0) {
		buf_free(&photo);
		return NULL;
	}
	json_t *skip = NULL, *cands = NULL;
	const char *provider = "local";
	if (xim_configured() && (cands = gw_search_ximilar(&photo, json_string_value(json_object_get(in, "category")),
							     top_k, dl, &skip)))
		provider = "ximilar";
	else if (!xim_configured())
		skip = xim_skip("no_key", "XIMILAR_API_TOKEN is not set (or XIMILAR_PROVIDER=local)");
	if (!cands) {
		VipsImage *im = photo_decode(&photo, e);
		float d[DESCRIPTOR_DIM];
		if (im && photo_describe(im, d, e) == 0)
			cands = gw_search_local(d, top_k, e);
		if (im)
			RV.g_object_unref(im);
	}
	buf_free(&photo);
	if (!cands) {
		json_decref(skip);
		return NULL;
	}
	json_t *out = json_pack("{s:o, s:s}", "candidates", cands, "provider", provider);
	if (skip)
		json_object_set_new(out, "providers_skipped", skip);
	rmetrics_observe_ms("ximilar_gw_search_latency_seconds", NULL, util_now_ms() - t0);
	return out;
}
