/* unde-sync — staging → production, hourly at :10 (spec §17.4, §18).
 *
 *   unde-sync [--batch N] [--env-file FILE]
 *
 * 1. New products: exactly §17.4's selection — image_status 'collage_ready',
 *    sync_status 'pending', and a raw_availability row of the product fetched
 *    within the last 2 hours with a size in stock — are UPSERTed into
 *    production.products on (source, sku) with their availability per store
 *    and size, then marked sync_status 'synced' in staging.
 * 2. Products already synced get their price, name and photos refreshed,
 *    and their availability too when their brand had a complete poll within
 *    2 hours (a failed poll never empties the shelves). A product in stock
 *    nowhere stays, with available = false (never deleted).
 *
 * Each batch is one statement per database: staging builds the batch as a
 * JSON array, production takes it with jsonb_to_recordset. No session
 * state, no named prepared statements: safe through PgBouncer in
 * transaction mode. Production is written before staging is marked, so a
 * run killed between the two only repeats an idempotent UPSERT. Rows are
 * changed only when something differs, so a second run changes nothing. */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "conf.h"
#include "jsonl.h"
#include "log.h"
#include "options.h"
#include "metrics.h"
#include "pg.h"
#include "util.h"

/* The availability of staging product p: {"store id": [sizes]} of the
 * brand's rows fetched since its last complete poll (within 2 hours), only
 * stores with a size in stock; NULL when none. */
#define SYNC_AVAILABILITY \
	"(SELECT jsonb_object_agg(a.store_id::text, a.sizes_in_stock ORDER BY a.store_id)" \
	"  FROM raw_availability a WHERE a.product_id = p.external_id AND a.brand = p.brand" \
	"  AND a.fetched_at > now() - interval '2 hours'" \
	"  AND a.fetched_at >= COALESCE((SELECT max(l.started_at) FROM scraper_logs l" \
	"   WHERE l.scraper_name = 'availability_' || p.brand AND l.status = 'success'" \
	"   AND l.started_at > now() - interval '2 hours'), now() - interval '2 hours')" \
	"  AND jsonb_typeof(a.sizes_in_stock) = 'array' AND jsonb_array_length(a.sizes_in_stock) > 0)"

/* The columns both steps carry over, as one JSON object per product. */
#define SYNC_COLUMNS \
	"'staging_id', p.id, 'source', p.source, 'sku', p.external_id, 'brand', p.brand," \
	" 'name', p.name, 'description', p.description, 'price', p.price, 'currency', p.currency," \
	" 'category', p.category, 'colour', p.colour, 'sizes', p.sizes, 'composition', p.composition," \
	" 'image_url', p.image_urls->>0, 'image_urls', p.image_urls, 'collage_url', p.collage_url," \
	" 'collage_ready', p.image_status = 'collage_ready'"

static const char sync_select_new[] =
	"SELECT json_agg(b.j ORDER BY b.id)::text, count(*) FROM ("
	" SELECT p.id, json_build_object(" SYNC_COLUMNS ", 'availability', " SYNC_AVAILABILITY ") AS j"
	" FROM raw_products p WHERE p.image_status = 'collage_ready' AND p.sync_status = 'pending'"
	" AND p.id > $1::bigint AND EXISTS (SELECT 1 FROM raw_availability a"
	"  WHERE a.product_id = p.external_id AND a.brand = p.brand"
	"  AND a.fetched_at > now() - interval '2 hours'"
	"  AND jsonb_typeof(a.sizes_in_stock) = 'array' AND jsonb_array_length(a.sizes_in_stock) > 0)"
	" ORDER BY p.id LIMIT $2::int) b";

static const char sync_select_synced[] =
	"SELECT json_agg(b.j ORDER BY b.id)::text, count(*) FROM ("
	" SELECT p.id, json_build_object(" SYNC_COLUMNS ", 'availability', " SYNC_AVAILABILITY ","
	"  'poll_ok', EXISTS (SELECT 1 FROM scraper_logs l WHERE l.scraper_name = 'availability_' || p.brand"
	"   AND l.status = 'success' AND l.started_at > now() - interval '2 hours')) AS j"
	" FROM raw_products p WHERE p.sync_status = 'synced' AND p.id > $1::bigint"
	" ORDER BY p.id LIMIT $2::int) b";

#define SYNC_RECORD \
	" jsonb_to_recordset($1::jsonb) AS r(staging_id bigint, source text, sku text, brand text," \
	" name text, description text, price numeric, currency text, category text, colour text," \
	" sizes jsonb, composition text, image_url text, image_urls jsonb, collage_url text," \
	" collage_ready boolean, availability jsonb, poll_ok boolean)"

static const char sync_upsert[] =
	"INSERT INTO products AS t (source, sku, brand, name, description, price, currency, category,"
	" colour, sizes, composition, image_url, image_urls, collage_url, availability, available,"
	" availability_updated_at, staging_id, synced_at)"
	" SELECT r.source, r.sku, r.brand, r.name, r.description, r.price, r.currency, r.category,"
	" r.colour, r.sizes, r.composition, r.image_url, r.image_urls, r.collage_url,"
	" COALESCE(r.availability, '{}'), r.availability IS NOT NULL, now(), r.staging_id, now()"
	" FROM" SYNC_RECORD
	" ON CONFLICT (source, sku) DO UPDATE SET brand = EXCLUDED.brand, name = EXCLUDED.name,"
	" description = EXCLUDED.description, price = EXCLUDED.price, currency = EXCLUDED.currency,"
	" category = EXCLUDED.category, colour = EXCLUDED.colour, sizes = EXCLUDED.sizes,"
	" composition = EXCLUDED.composition, image_url = EXCLUDED.image_url,"
	" image_urls = EXCLUDED.image_urls, collage_url = EXCLUDED.collage_url,"
	" availability = EXCLUDED.availability, available = EXCLUDED.available,"
	" availability_updated_at = now(), staging_id = EXCLUDED.staging_id, synced_at = now(),"
	" updated_at = now()"
	" RETURNING t.source, t.sku, t.brand, t.price::text, t.available, t.availability::text,"
	" (xmax = 0) AS inserted";

/* Refresh of synced products: price and descriptive columns always, photos
 * only while the collage is ready (new photos wait for theirs), the
 * availability only after a complete poll of the brand. Only rows that
 * differ are touched. */
static const char sync_refresh[] =
	"WITH r AS (SELECT r.*, CASE WHEN r.poll_ok THEN COALESCE(r.availability, '{}') END AS avail"
	" FROM" SYNC_RECORD ")"
	" UPDATE products t SET price = r.price, name = r.name, description = r.description,"
	" currency = r.currency, category = r.category, colour = r.colour, sizes = r.sizes,"
	" composition = r.composition,"
	" image_url = CASE WHEN r.collage_ready THEN r.image_url ELSE t.image_url END,"
	" image_urls = CASE WHEN r.collage_ready THEN r.image_urls ELSE t.image_urls END,"
	" collage_url = CASE WHEN r.collage_ready THEN r.collage_url ELSE t.collage_url END,"
	" availability = COALESCE(r.avail, t.availability),"
	" available = CASE WHEN r.avail IS NULL THEN t.available ELSE r.avail <> '{}' END,"
	" availability_updated_at = CASE WHEN r.avail IS NULL THEN t.availability_updated_at ELSE now() END,"
	" synced_at = now(), updated_at = now()"
	" FROM r WHERE t.source = r.source AND t.sku = r.sku AND ("
	"  t.price IS DISTINCT FROM r.price OR t.name IS DISTINCT FROM r.name"
	"  OR t.description IS DISTINCT FROM r.description OR t.currency IS DISTINCT FROM r.currency"
	"  OR t.category IS DISTINCT FROM r.category OR t.colour IS DISTINCT FROM r.colour"
	"  OR t.sizes IS DISTINCT FROM r.sizes OR t.composition IS DISTINCT FROM r.composition"
	"  OR (r.collage_ready AND (t.image_urls IS DISTINCT FROM r.image_urls"
	"      OR t.collage_url IS DISTINCT FROM r.collage_url))"
	"  OR (r.avail IS NOT NULL AND (t.availability IS DISTINCT FROM r.avail"
	"      OR t.available IS DISTINCT FROM (r.avail <> '{}'))))"
	" RETURNING t.source, t.sku, t.brand, t.price::text, t.available, t.availability::text";

struct sync_state {
	PGconn *staging, *production;
	long batch;
	long inserted, updated, refreshed, unavailable;
};

/* One output line per product written to production. */
static void sync_emit(struct sync_state *s, PGresult *r, int i, const char *action)
{
	json_t *avail = json_loads(PQgetvalue(r, i, 5), 0, NULL);
	int available = strcmp(PQgetvalue(r, i, 4), "t") == 0;
	json_t *line = json_pack("{s:s, s:s, s:s, s:s?, s:b, s:o, s:s}", "source", PQgetvalue(r, i, 0),
				 "sku", PQgetvalue(r, i, 1), "brand", PQgetvalue(r, i, 2), "price",
				 PQgetisnull(r, i, 3) ? NULL : PQgetvalue(r, i, 3), "available", available,
				 "availability", avail ? avail : json_object(), "sync", action);
	if (!available)
		s->unavailable++;
	jsonl_write(stdout, line);
	json_decref(line);
}

/* Take the staging batch after id *after; NULL when there is none. The
 * array's text is returned (caller frees), *n its length, *after its last
 * staging id. -1 in *n on a database error. */
static char *sync_take(struct sync_state *s, const char *sql, long long *after, long *n)
{
	char a[24], lim[24];
	snprintf(a, sizeof a, "%lld", *after);
	snprintf(lim, sizeof lim, "%ld", s->batch);
	const char *params[] = { a, lim };
	PGresult *r = pg_query(s->staging, sql, 2, params);
	if (!r) {
		*n = -1;
		return NULL;
	}
	*n = strtol(PQgetvalue(r, 0, 1), NULL, 10);
	char *text = *n > 0 ? xstrdup(PQgetvalue(r, 0, 0)) : NULL;
	PQclear(r);
	if (text) {
		json_t *arr = json_loads(text, 0, NULL);
		json_t *last = json_array_get(arr, json_array_size(arr) - 1);
		*after = json_integer_value(json_object_get(last, "staging_id"));
		json_decref(arr);
	}
	return text;
}

/* Step 1: the new products, batch by batch. 0 or an EX_* status. */
static int sync_new(struct sync_state *s)
{
	long long after = 0;
	for (;;) {
		long n;
		char *batch = sync_take(s, sync_select_new, &after, &n);
		if (n < 0)
			return EX_UNAVAILABLE;
		if (!batch)
			return 0;
		const char *p1[] = { batch };
		PGresult *r = pg_query(s->production, sync_upsert, 1, p1);
		if (!r) {
			free(batch);
			return pg_connection_lost(s->production) ? EX_UNAVAILABLE : EX_SOFTWARE;
		}
		for (int i = 0; i < PQntuples(r); i++) {
			int ins = strcmp(PQgetvalue(r, i, 6), "t") == 0;
			ins ? s->inserted++ : s->updated++;
			sync_emit(s, r, i, ins ? "inserted" : "updated");
		}
		PQclear(r);
		/* the same rows, marked: only those still pending */
		int rc = pg_exec(s->staging,
				 "UPDATE raw_products SET sync_status = 'synced', synced_at = now(),"
				 " updated_at = now() WHERE sync_status = 'pending' AND id IN"
				 " (SELECT (e->>'staging_id')::bigint FROM jsonb_array_elements($1::jsonb) e)",
				 1, p1);
		free(batch);
		if (rc != 0)
			return EX_UNAVAILABLE;
		log_event(LOG_INFO, "batch synced", json_pack("{s:i}", "products", (int)n));
	}
}

/* Step 2: the products synced before. 0 or an EX_* status. */
static int sync_refresh_synced(struct sync_state *s)
{
	long long after = 0;
	for (;;) {
		long n;
		char *batch = sync_take(s, sync_select_synced, &after, &n);
		if (n < 0)
			return EX_UNAVAILABLE;
		if (!batch)
			return 0;
		const char *p1[] = { batch };
		PGresult *r = pg_query(s->production, sync_refresh, 1, p1);
		free(batch);
		if (!r)
			return pg_connection_lost(s->production) ? EX_UNAVAILABLE : EX_SOFTWARE;
		for (int i = 0; i < PQntuples(r); i++) {
			s->refreshed++;
			sync_emit(s, r, i, "refreshed");
		}
		PQclear(r);
	}
}

/* What the options set. */
static const char *sync_env_file;
static long long sync_batch;

static const struct filter_option sync_options[] = {
	{ "batch", 0, "N", "products per statement (default SYNC_BATCH_SIZE or 500)",
	  .number = &sync_batch, .min = 1, .max = 100000 },
	{ "env-file", 0, "FILE", "read KEY=VALUE settings (default " CONF_DEFAULT_ENV_FILE
				 " if present)", .string = &sync_env_file },
	{ 0 },
};

static void sync_usage(FILE *f)
{
	fprintf(f, "Usage: unde-sync [--batch N] [--env-file FILE]\n"
		   "Copy products with a collage and in stock from staging into production\n"
		   "(UPSERT), and refresh the price and availability of those synced before.\n\n");
	options_help(f, sync_options);
	fprintf(f, "  -h, --help           show this help\n"
		   "  -V, --version        show the version\n\n"
		   "Needs STAGING_DB_URL and PRODUCTION_DB_URL. One JSON line per product written\n"
		   "on stdout, a summary on stderr. See unde-sync(1).\n");
}

int main(int argc, char **argv)
{
	log_init("unde-sync");
	struct sync_state s = { 0 };
	const struct options_table table = { sync_options, NULL, NULL };
	int prc = options_main("unde-sync", &table, 1, OPTIONS_PERMUTE, argc, argv, sync_usage);
	if (prc >= 0)
		return prc;
	if (optind < argc) {
		log_event(LOG_ERROR, "unde-sync takes no arguments", json_pack("{s:s, s:i}", "argument",
									      argv[optind], "exit", EX_USAGE));
		return EX_USAGE;
	}
	const char *env_file = sync_env_file;
	s.batch = (long)sync_batch;
	int rc = conf_load_env(env_file);
	if (rc)
		return rc;
	if (!s.batch)
		s.batch = conf_long("SYNC_BATCH_SIZE", 500, 1, 100000);
	const char *surl = conf_require("STAGING_DB_URL");
	const char *purl = conf_require("PRODUCTION_DB_URL");
	double t0 = util_now_ms();
	s.staging = pg_connect(surl, "STAGING_DB_URL");
	s.production = s.staging ? pg_connect(purl, "PRODUCTION_DB_URL") : NULL;
	if (!s.staging || !s.production)
		rc = EX_UNAVAILABLE;
	if (!rc)
		rc = sync_new(&s);
	if (!rc)
		rc = sync_refresh_synced(&s);
	double secs = (util_now_ms() - t0) / 1000.0;
	log_event(rc ? LOG_ERROR : LOG_INFO, rc ? "sync failed" : "sync done",
		  json_pack("{s:I, s:I, s:I, s:I, s:f, s:i}", "inserted", (json_int_t)s.inserted, "updated",
			    (json_int_t)s.updated, "refreshed", (json_int_t)s.refreshed, "unavailable",
			    (json_int_t)s.unavailable, "seconds", secs, "exit", rc));
	/* §19: sync_job_success (alert on 0) */
	struct metrics *m = metrics_new();
	metrics_add(m, "sync_job_success", "gauge", "1 when the last sync run succeeded", NULL, rc ? 0 : 1);
	metrics_add(m, "sync_job_products_inserted", "gauge", "New products of the last run", NULL,
		    (double)s.inserted);
	metrics_add(m, "sync_job_products_refreshed", "gauge",
		    "Synced products whose price or availability the last run changed", NULL,
		    (double)(s.refreshed + s.updated));
	metrics_add(m, "sync_job_duration_seconds", "gauge", "Duration of the last run", NULL, secs);
	metrics_write_default(m, "unde-sync");
	metrics_free(m);
	PQfinish(s.staging);
	PQfinish(s.production);
	return rc;
}
