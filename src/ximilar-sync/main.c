/* unde-ximilar-sync — the catalog's photos into the visual-search
 * collection, weekly Sunday 10:00, retries daily 12:00 (spec §4, §18).
 *
 *   unde-ximilar-sync --pending [--limit 1000]   ximilar_status 'pending'
 *   unde-ximilar-sync --retry-failed             ximilar_status 'error'
 *   … | unde-ximilar-sync                        records with a staging "id"
 *
 * Takes products whose photos are up (image_status 'uploaded' or
 * 'collage_ready'), claimed as unde-download and unde-collage claim them
 * (src/catalog/claim.c), so two runs never take the same product. Every
 * photo of the product goes into the collection as a record with the
 * metadata sku_id, brand, name, category, price, store, floor (store names
 * and floor from production's stores when PRODUCTION_DB_URL is set, else
 * staging's raw_stores, for the stores that had the product in stock in
 * the last 2 hours). The product becomes ximilar_status 'synced' with
 * ximilar_synced_at, or 'error' with error_message. Records are named
 * {brand}-{external_id}-{n}; the ones a product held before are deleted
 * first, so a product whose photos changed is replaced, not duplicated.
 *
 * With XIMILAR_API_TOKEN and XIMILAR_COLLECTION_ID: Ximilar's collection
 * (ximilar.c). Without a token: the local collection — each photo's
 * descriptor (lib/descriptor.h) into production.product_descriptors
 * (local.c), "provider":"local". */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "../catalog/claim.h"
#include "conf.h"
#include "filter.h"
#include "log.h"
#include "metrics.h"
#include "objstore.h"
#include "pg.h"
#include "util.h"
#include "xsync.h"

struct xs_state {
	PGconn *db, *production;
	struct objstore *os;
	struct claim claim;
	struct ximilar ximilar;
	int remote;
	long synced, failed;
};

/* The columns a claim returns; P is the table's name in the statement. */
#define XS_RETURNING(P) \
	P "id, " P "source, " P "external_id, " P "brand, " P "name, " P "category, " P "price::text, " \
	P "image_urls::text, " P "ximilar_records, " P "image_status"

#define XS_PHOTOS_UP "image_status IN ('uploaded', 'collage_ready')"

static const char *xs_value(PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

/* store and floor: the stores that had the product in stock lately. */
static void xs_stores(struct xs_state *s, struct xsync_product *p)
{
	const char *params[] = { p->sku, p->brand };
	PGresult *r = pg_query(s->db,
			       "SELECT string_agg(COALESCE(st.name, a.store_id::text), ', ' ORDER BY a.store_id),"
			       " array_agg(a.store_id ORDER BY a.store_id)::text"
			       " FROM (SELECT DISTINCT store_id FROM raw_availability WHERE product_id = $1"
			       " AND brand = $2 AND fetched_at > now() - interval '2 hours'"
			       " AND jsonb_typeof(sizes_in_stock) = 'array' AND jsonb_array_length(sizes_in_stock) > 0) a"
			       " LEFT JOIN raw_stores st ON st.brand = $2 AND st.store_id = a.store_id",
			       2, params);
	const char *names = r ? xs_value(r, 0, 0) : NULL;
	json_object_set_new(p->meta, "store", names ? json_string(names) : json_null());
	json_object_set_new(p->meta, "floor", json_null());
	if (r && names && s->production) {
		const char *pp[] = { p->brand, PQgetvalue(r, 0, 1) };
		PGresult *q = pg_query(s->production,
				       "SELECT string_agg(name, ', ' ORDER BY external_store_id), min(floor)"
				       " FROM stores WHERE brand = $1 AND external_store_id = ANY($2::int[])",
				       2, pp);
		if (q && xs_value(q, 0, 0)) {
			json_object_set_new(p->meta, "store", json_string(PQgetvalue(q, 0, 0)));
			if (xs_value(q, 0, 1))
				json_object_set_new(p->meta, "floor", json_integer(atoi(PQgetvalue(q, 0, 1))));
		}
		PQclear(q);
	}
	PQclear(r);
}

/* Fill p from row i of a claim's result. 0, or -1 with err (no photos). */
static int xs_product(struct xs_state *s, PGresult *r, int i, struct xsync_product *p,
		      struct xsync_error *err)
{
	memset(p, 0, sizeof *p);
	snprintf(p->id, sizeof p->id, "%s", PQgetvalue(r, i, 0));
	snprintf(p->source, sizeof p->source, "%s", PQgetvalue(r, i, 1));
	snprintf(p->sku, sizeof p->sku, "%s", PQgetvalue(r, i, 2));
	snprintf(p->brand, sizeof p->brand, "%s", PQgetvalue(r, i, 3));
	p->old_records = strtol(PQgetvalue(r, i, 8), NULL, 10);
	p->meta = json_pack("{s:s, s:s, s:s?, s:s?, s:s?}", "sku_id", p->sku, "brand", p->brand, "name",
			    xs_value(r, i, 4), "category", xs_value(r, i, 5), "price", xs_value(r, i, 6));
	p->image_urls = xs_value(r, i, 7) ? xstrdup(PQgetvalue(r, i, 7)) : NULL;
	p->urls_json = p->image_urls ? json_loads(p->image_urls, 0, NULL) : NULL;
	size_t k;
	json_t *u;
	json_array_foreach(p->urls_json, k, u)
	{
		if (json_is_string(u) && p->nurls < XSYNC_MAX_PHOTOS)
			p->urls[p->nurls++] = json_string_value(u);
	}
	xs_stores(s, p);
	if (!p->nurls) {
		snprintf(err->code, sizeof err->code, "no_images");
		snprintf(err->message, sizeof err->message, "the product has no image_urls (photos not uploaded)");
		err->status = EX_DATAERR;
		return -1;
	}
	return 0;
}

static void xs_product_free(struct xsync_product *p)
{
	json_decref(p->meta);
	json_decref(p->urls_json);
	free(p->image_urls);
	memset(p, 0, sizeof *p);
}

/* Sync one claimed product and finish its row. */
static int xs_sync(struct xs_state *s, struct filter_run *run, json_t *rec, PGresult *r, int i)
{
	struct xsync_product p;
	struct xsync_error err = { .status = 0 };
	int rc = xs_product(s, r, i, &p, &err);
	if (!rc)
		rc = s->remote ? ximilar_put_product(&s->ximilar, &p, &err)
			       : local_put_product(s->production, s->os, &p, &err);
	int done;
	if (rc) {
		char msg[600], n[24];
		/* records 1…n may be in the collection now: the retry deletes them */
		snprintf(n, sizeof n, "%zu", p.nurls);
		const char *params[] = { p.id, n, s->claim.run_id };
		if (s->remote)
			pg_exec(s->db, "UPDATE raw_products SET ximilar_records = greatest(ximilar_records, $2::int)"
				       " WHERE id = $1 AND claimed_by = $3", 3, params);
		snprintf(msg, sizeof msg, "%s: %s", err.code, err.message);
		done = claim_finish(&s->claim, p.id, "ximilar_status = 'error', error_message = $4",
				    "image_urls", p.image_urls, msg);
		s->failed++;
		xs_product_free(&p);
		if (done < 0)
			return filter_fail(run, EX_UNAVAILABLE, "database_unavailable",
					   "%s (and the error status was not stored: %s)", err.message,
					   pg_last_error(s->db));
		return filter_fail(run, err.status ? err.status : EX_SOFTWARE, err.code, "%s", err.message);
	}
	char n[24];
	snprintf(n, sizeof n, "%zu", p.nurls);
	done = claim_finish(&s->claim, p.id,
			    "ximilar_status = 'synced', ximilar_synced_at = now(), ximilar_records = $4::int,"
			    " error_message = NULL",
			    "image_urls", p.image_urls, n);
	json_object_set_new(rec, "ximilar_status", json_string("synced"));
	json_object_set_new(rec, "ximilar_records", json_integer((json_int_t)p.nurls));
	json_object_set_new(rec, "ximilar_metadata", json_incref(p.meta));
	json_object_set_new(rec, "provider", json_string(s->remote ? "ximilar" : "local"));
	xs_product_free(&p);
	if (done < 0) {
		s->failed++;
		return filter_fail(run, EX_UNAVAILABLE, "database_unavailable",
				   "synced, but the row was not updated: %s", pg_last_error(s->db));
	}
	if (!done) {
		s->failed++;
		return filter_fail(run, EX_TEMPFAIL, "superseded",
				   "the product's photos changed meanwhile: it stays pending for the next run");
	}
	s->synced++;
	return 0;
}

static int xs_record_id(const json_t *rec, char *out, size_t len)
{
	const json_t *v = json_object_get(rec, "id");
	long long id = json_is_integer(v) ? json_integer_value(v)
		       : json_is_string(v) ? strtoll(json_string_value(v), NULL, 10) : 0;
	if (id <= 0)
		return -1;
	snprintf(out, len, "%lld", id);
	return 0;
}

static int xs_on_record(void *sp, struct filter_run *run, json_t *rec)
{
	struct xs_state *s = sp;
	char id[24], err[512];
	if (xs_record_id(rec, id, sizeof id) != 0)
		return filter_fail(run, EX_DATAERR, "missing_field",
				   "the record has no staging \"id\" (records come from unde-apify)");
	PGresult *row = NULL;
	int c = claim_one(&s->claim, id, XS_RETURNING(""), &row, err, sizeof err);
	if (c == -2)
		return filter_fail(run, EX_UNAVAILABLE, "database_unavailable", "%s", err);
	if (c < 0)
		return filter_fail(run, EX_DATAERR, "not_found", "%s", err);
	if (c == 0)
		return filter_fail(run, EX_TEMPFAIL, "busy", "product %s is being worked on by another run", id);
	char st[24];
	snprintf(st, sizeof st, "%s", PQgetvalue(row, 0, 9));
	if (strcmp(st, "uploaded") != 0 && strcmp(st, "collage_ready") != 0) {
		PQclear(row);
		claim_release(&s->claim, id);
		return filter_fail(run, EX_DATAERR, "photos_not_uploaded",
				   "product %s has image_status '%s': its photos are not in the store yet", id, st);
	}
	int rc = xs_sync(s, run, rec, row, 0);
	PQclear(row);
	return rc;
}

static json_t *xs_select(void *sp, struct filter_run *run, enum filter_source src, long limit)
{
	struct xs_state *s = sp;
	(void)run;
	PGresult *r = claim_queue(&s->claim,
				  src == FILTER_SOURCE_PENDING ? XS_PHOTOS_UP " AND ximilar_status = 'pending'"
							       : XS_PHOTOS_UP " AND ximilar_status = 'error'",
				  XS_RETURNING("p."), limit);
	if (!r)
		return NULL;
	json_t *arr = json_array();
	for (int i = 0; i < PQntuples(r); i++)
		json_array_append_new(arr, json_pack("{s:I, s:s, s:s, s:s}", "id",
						     (json_int_t)strtoll(PQgetvalue(r, i, 0), NULL, 10), "source",
						     PQgetvalue(r, i, 1), "external_id", PQgetvalue(r, i, 2),
						     "brand", PQgetvalue(r, i, 3)));
	PQclear(r);
	log_event(LOG_INFO, "claimed", json_pack("{s:s, s:I, s:s}", "queue",
						 src == FILTER_SOURCE_PENDING ? "pending" : "retry-failed",
						 "products", (json_int_t)json_array_size(arr), "run", s->claim.run_id));
	return arr;
}

static int xs_on_start(void *sp, struct filter_run *run, int argc, char **argv)
{
	struct xs_state *s = sp;
	(void)run;
	(void)argv;
	const char *url = conf_require("STAGING_DB_URL");
	const char *token = conf_str("XIMILAR_API_TOKEN", NULL);
	const char *purl = conf_str("PRODUCTION_DB_URL", NULL);
	s->remote = token != NULL;
	if (s->remote)
		ximilar_init(&s->ximilar, token, conf_require("XIMILAR_COLLECTION_ID"));
	else {
		if (!purl)
			conf_die("PRODUCTION_DB_URL",
				 "is needed without XIMILAR_API_TOKEN: the local collection lives in production");
		s->os = objstore_open();
	}
	claim_start(&s->claim, "XIMILAR_CLAIM_TTL");
	if (!(s->db = s->claim.db = pg_connect(url, "STAGING_DB_URL")))
		return EX_UNAVAILABLE;
	if (purl && !(s->production = pg_connect(purl, "PRODUCTION_DB_URL")))
		return EX_UNAVAILABLE;
	log_event(LOG_INFO, "collection", json_pack("{s:s}", "provider", s->remote ? "ximilar" : "local"));
	return 0;
}

static void xs_on_finish(void *sp, struct filter_run *run)
{
	struct xs_state *s = sp;
	(void)run;
	/* §19: ximilar_sync_errors (alert > 5 %), ximilar_sync_pending_count (> 5000) */
	struct metrics *m = metrics_new();
	metrics_add(m, "ximilar_sync_errors", "gauge", "Products the last run could not sync", NULL,
		    (double)s->failed);
	metrics_add(m, "ximilar_sync_error_ratio", "gauge", "Failed / tried products of the last run", NULL,
		    s->synced + s->failed ? (double)s->failed / (double)(s->synced + s->failed) : 0);
	metrics_add(m, "ximilar_sync_synced", "gauge", "Products the last run synced", NULL, (double)s->synced);
	PGresult *r = s->db ? pg_query(s->db, "SELECT count(*) FROM raw_products WHERE ximilar_status = 'pending'"
					      " AND " XS_PHOTOS_UP, 0, NULL)
			    : NULL;
	if (r) {
		metrics_add(m, "ximilar_sync_pending_count", "gauge",
			    "Products with photos waiting for the collection", NULL,
			    strtod(PQgetvalue(r, 0, 0), NULL));
		PQclear(r);
	}
	metrics_write_default(m, "unde-ximilar-sync");
	metrics_free(m);
}

int main(int argc, char **argv)
{
	static struct xs_state state;
	static const struct filter_option xs_option_table[] = {
		CLAIM_TTL_OPTION("XIMILAR_CLAIM_TTL", &state.claim.ttl),
		{ 0 },
	};
	static const struct filter_def def = {
		.name = "unde-ximilar-sync",
		.summary = "Put every photo of the catalog's products into the visual-search collection"
			   " (Ximilar, or local descriptors in pgvector).",
		/* CLAIM_SYNOPSIS less --include-permanent, which this command never took */
		.synopsis = "[--pending [--limit N] | --retry-failed [--limit N]] [--claim-ttl SECONDS]",
		.options = xs_option_table,
		.max_operands = FILTER_NO_OPERANDS,
		.on_start = xs_on_start,
		.on_record = xs_on_record,
		.select_pending = xs_select,
		.on_finish = xs_on_finish,
		.default_limit = 1000,
	};
	int rc = filter_main(&def, &state, argc, argv);
	PQfinish(state.db);
	PQfinish(state.production);
	objstore_close(state.os);
	return rc;
}
