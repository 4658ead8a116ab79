/* unde-apify — product metadata from Apify into staging (spec §2, §17.1).
 *
 *   unde-apify [--brand B]… [--max-items N]      run the actor per brand
 *   unde-apify --from FILE|- [--brand B]          import saved items instead
 *
 * Each item becomes one raw_products row (upserted on source+external_id,
 * image_status 'pending' unless the photos are the ones already fetched) and
 * one product line on stdout with its staging id, ready for unde-download.
 * One scraper_logs row per brand run records what was fetched, new, updated
 * and refused. See fetch.c for how Apify's dataset streams through. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "apify.h"
#include "conf.h"
#include "filter.h"
#include "log.h"
#include "metrics.h"
#include "pg.h"
#include "util.h"

/* The brands of §2's schedule, the default when none is given. */
static const char *const apify_default_brands[] = { "zara", "bershka", "pullandbear",
						     "stradivarius", "massimodutti", "oysho" };

/* What one brand's items came to, for its scraper_logs row. */
struct brand_stats {
	char brand[64];
	long seen, new_rows, updated, unchanged, errors;
	double first_at, last_at;
};

struct apify_state {
	char *brands[APIFY_MAX_BRANDS];
	size_t nbrands;
	long max_items;
	long long max_items_opt; /* --max-items, 0 when not given */
	const char *from;
	PGconn *db;
	struct apify_fetch fetch;
	struct brand_stats *stats;
	size_t nstats;
	long unattributed_errors; /* items whose brand could not be told */
	double started_at;
};

/* --brand is repeatable: each one is slugged and kept once. */
static int apify_on_option(void *sp, int opt, const char *arg)
{
	struct apify_state *s = sp;
	char slug[64];
	if (opt != 'b')
		return 0; /* the table stored it */
	if (s->nbrands >= APIFY_MAX_BRANDS || apify_brand_slug(arg, slug, sizeof slug) != 0 ||
	    strlen(slug) > 40)
		return -1;
	for (size_t i = 0; i < s->nbrands; i++)
		if (strcmp(s->brands[i], slug) == 0)
			return 0;
	s->brands[s->nbrands++] = xstrdup(slug);
	return 0;
}

/* The runner's pull source when the actor runs: its items, one by one. */
static enum filter_pull apify_pull(void *sp, struct filter_run *run, json_t **rec)
{
	struct apify_state *s = sp;
	(void)run;
	*rec = apify_fetch_next(&s->fetch);
	return *rec ? FILTER_PULL_RECORD : FILTER_PULL_END;
}

static int apify_on_start(void *sp, struct filter_run *run, int argc, char **argv)
{
	struct apify_state *s = sp;
	(void)argc;
	(void)argv;
	s->max_items = (long)s->max_items_opt;
	if (!s->max_items)
		s->max_items = conf_long("APIFY_MAX_ITEMS", 20000, 1, 10000000);
	s->started_at = util_wall_seconds();
	const char *url = conf_require("STAGING_DB_URL");
	if (s->from) {
		if (strcmp(s->from, "-") != 0 && !freopen(s->from, "r", stdin)) {
			log_event(LOG_ERROR, "cannot open the --from file",
				  json_pack("{s:s, s:i}", "file", s->from, "exit", EX_NOINPUT));
			return EX_NOINPUT;
		}
	} else {
		if (!s->nbrands)
			for (size_t i = 0; i < sizeof apify_default_brands / sizeof *apify_default_brands; i++)
				s->brands[s->nbrands++] = xstrdup(apify_default_brands[i]);
		if (!getenv("APIFY_TOKEN") || !*getenv("APIFY_TOKEN"))
			conf_die("APIFY_TOKEN", "APIFY_TOKEN is not set: set it, or import saved items "
						"with --from FILE (the embedded default)");
		apify_fetch_config(&s->fetch, s->brands, s->nbrands, s->max_items);
	}
	if (!(s->db = pg_connect(url, "STAGING_DB_URL")))
		return EX_UNAVAILABLE;
	if (!s->from)
		filter_set_pull(run, apify_pull);
	return 0;
}

static struct brand_stats *apify_stats_for(struct apify_state *s, const char *brand)
{
	for (size_t i = 0; i < s->nstats; i++)
		if (strcmp(s->stats[i].brand, brand) == 0)
			return &s->stats[i];
	s->stats = xrealloc(s->stats, (s->nstats + 1) * sizeof *s->stats);
	struct brand_stats *b = &s->stats[s->nstats++];
	memset(b, 0, sizeof *b);
	snprintf(b->brand, sizeof b->brand, "%s", brand);
	b->first_at = util_wall_seconds();
	return b;
}

/* The brand an item counts under even when it is refused. */
static struct brand_stats *apify_item_stats(struct apify_state *s, const json_t *item)
{
	const json_t *tag = json_object_get(item, "_apify");
	const char *b = json_string_value(json_object_get(tag, "brand"));
	if (!b && s->nbrands == 1)
		b = s->brands[0];
	if (!b)
		b = json_string_value(json_object_get(item, "brand"));
	char slug[64];
	if (!b || apify_brand_slug(b, slug, sizeof slug) != 0)
		return NULL;
	return apify_stats_for(s, slug);
}

/* One statement, so a product is stored whole or not at all. New photos
 * send it back to 'pending' (and Ximilar and the production sync with it);
 * the same photos keep the statuses the pipeline had reached. updated_at
 * moves only when something changed, so a re-run shows what it changed. */
static const char *const upsert_sql =
	"INSERT INTO raw_products AS p (source, external_id, brand, name, description, price,"
	"  currency, category, colour, sizes, composition, original_image_urls, raw_data,"
	"  scraped_at, image_status)"
	" VALUES ($1, $2, $3, $4, $5, $6::numeric, COALESCE($7, 'KZT'), $8, $9, $10::jsonb, $11,"
	"  $12::jsonb, $13::jsonb, now(), 'pending')"
	" ON CONFLICT (source, external_id) DO UPDATE SET"
	"  brand = EXCLUDED.brand, name = EXCLUDED.name, description = EXCLUDED.description,"
	"  price = EXCLUDED.price, currency = EXCLUDED.currency, category = EXCLUDED.category,"
	"  colour = EXCLUDED.colour, sizes = EXCLUDED.sizes, composition = EXCLUDED.composition,"
	"  original_image_urls = EXCLUDED.original_image_urls, raw_data = EXCLUDED.raw_data,"
	"  scraped_at = EXCLUDED.scraped_at,"
	"  image_status = CASE WHEN p.original_image_urls IS DISTINCT FROM EXCLUDED.original_image_urls"
	"   THEN 'pending' ELSE p.image_status END,"
	"  image_urls = CASE WHEN p.original_image_urls IS DISTINCT FROM EXCLUDED.original_image_urls"
	"   THEN NULL ELSE p.image_urls END,"
	"  collage_url = CASE WHEN p.original_image_urls IS DISTINCT FROM EXCLUDED.original_image_urls"
	"   THEN NULL ELSE p.collage_url END,"
	"  error_message = CASE WHEN p.original_image_urls IS DISTINCT FROM EXCLUDED.original_image_urls"
	"   THEN NULL ELSE p.error_message END,"
	"  ximilar_status = CASE WHEN p.original_image_urls IS DISTINCT FROM EXCLUDED.original_image_urls"
	"   THEN 'pending' ELSE p.ximilar_status END,"
	"  sync_status = CASE WHEN (p.brand, p.name, p.description, p.price, p.currency, p.category,"
	"   p.colour, p.sizes, p.composition, p.original_image_urls) IS DISTINCT FROM"
	"   (EXCLUDED.brand, EXCLUDED.name, EXCLUDED.description, EXCLUDED.price, EXCLUDED.currency,"
	"   EXCLUDED.category, EXCLUDED.colour, EXCLUDED.sizes, EXCLUDED.composition,"
	"   EXCLUDED.original_image_urls) THEN 'pending' ELSE p.sync_status END,"
	"  updated_at = CASE WHEN (p.brand, p.name, p.description, p.price, p.currency, p.category,"
	"   p.colour, p.sizes, p.composition, p.original_image_urls, p.raw_data) IS DISTINCT FROM"
	"   (EXCLUDED.brand, EXCLUDED.name, EXCLUDED.description, EXCLUDED.price, EXCLUDED.currency,"
	"   EXCLUDED.category, EXCLUDED.colour, EXCLUDED.sizes, EXCLUDED.composition,"
	"   EXCLUDED.original_image_urls, EXCLUDED.raw_data) THEN now() ELSE p.updated_at END"
	" RETURNING id, (xmax = 0) AS inserted, (updated_at = now()) AS touched, image_status,"
	"  COALESCE(currency, '')";

static int apify_db_fail(struct filter_run *run, struct apify_state *s)
{
	if (pg_connection_lost(s->db))
		return filter_fail(run, EX_UNAVAILABLE, "database_unavailable",
				   "staging database unreachable: %s", pg_last_error(s->db));
	/* class 22: the data does not fit a column */
	if (strncmp(pg_last_sqlstate(), "22", 2) == 0)
		return filter_fail(run, EX_DATAERR, "invalid_field", "the database refused a value: %s",
				   pg_last_error(s->db));
	return filter_fail(run, EX_SOFTWARE, "database_error", "upsert failed: %s",
			   pg_last_error(s->db));
}

static int apify_on_record(void *sp, struct filter_run *run, json_t *item)
{
	struct apify_state *s = sp;
	struct brand_stats *bs = apify_item_stats(s, item);
	if (bs) {
		bs->seen++;
		bs->last_at = util_wall_seconds();
	}
	struct apify_product p;
	const char *code = "invalid_field";
	char msg[300];
	if (apify_item_to_product(item, s->nbrands == 1 ? s->brands[0] : NULL, &p, &code, msg,
				  sizeof msg) != 0) {
		if (bs)
			bs->errors++;
		else
			s->unattributed_errors++;
		return filter_fail(run, EX_DATAERR, code, "%s", msg);
	}
	char *sizes = p.sizes ? json_dumps(p.sizes, JSON_COMPACT) : NULL;
	char *images = json_dumps(p.images, JSON_COMPACT);
	char *raw = json_dumps(p.raw, JSON_COMPACT);
	const char *params[13] = { p.source, p.external_id, p.brand, p.name, p.description,
				   p.price[0] ? p.price : NULL, p.currency[0] ? p.currency : NULL,
				   p.category, p.colour, sizes, p.composition, images, raw };
	PGresult *r = pg_query(s->db, upsert_sql, 13, params);
	free(sizes);
	free(images);
	free(raw);
	if (!r || PQntuples(r) != 1) {
		PQclear(r);
		apify_product_free(&p);
		bs = apify_stats_for(s, p.brand);
		bs->errors++;
		return apify_db_fail(run, s);
	}
	bs = apify_stats_for(s, p.brand);
	const char *change = PQgetvalue(r, 0, 1)[0] == 't'   ? "new"
			     : PQgetvalue(r, 0, 2)[0] == 't' ? "updated"
							     : "unchanged";
	if (change[0] == 'n')
		bs->new_rows++;
	else if (change[0] == 'u' && change[1] == 'p')
		bs->updated++;
	else
		bs->unchanged++;

	/* the product line replaces the item (which stays in raw_data) */
	json_t *out = json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s}", "id",
				(json_int_t)strtoll(PQgetvalue(r, 0, 0), NULL, 10), "source", p.source,
				"external_id", p.external_id, "brand", p.brand, "name", p.name,
				"currency", PQgetvalue(r, 0, 4), "image_status", PQgetvalue(r, 0, 3));
	json_object_set_new(out, "description", p.description ? json_string(p.description) : json_null());
	json_object_set_new(out, "price", p.price[0] ? json_real(strtod(p.price, NULL)) : json_null());
	json_object_set_new(out, "category", p.category ? json_string(p.category) : json_null());
	json_object_set_new(out, "colour", p.colour ? json_string(p.colour) : json_null());
	json_object_set_new(out, "sizes", p.sizes ? json_incref(p.sizes) : json_null());
	json_object_set_new(out, "composition", p.composition ? json_string(p.composition) : json_null());
	json_object_set(out, "original_image_urls", p.images);
	if (!p.currency[0] && p.price[0]) {
		/* a price, but neither a "currency" nor a code or sign in the price text: the
		 * column's default (KZT) stands in, and that is said */
		json_object_set_new(out, "currency_assumed", json_true());
		log_event(LOG_WARN, "the item names no currency; stored with the default",
			  json_pack("{s:s, s:s, s:s}", "external_id", p.external_id, "brand", p.brand,
				    "currency", PQgetvalue(r, 0, 4)));
	}
	json_object_set_new(out, "change", json_string(change));
	json_object_set_new(out, "provider", json_string(s->from ? "local" : "apify"));
	json_t *rid = json_object_get(item, "request_id");
	if (rid)
		json_object_set(out, "request_id", rid);
	PQclear(r);
	apify_product_free(&p);
	json_object_clear(item);
	json_object_update(item, out);
	json_decref(out);
	return 0;
}

static void apify_log_row(struct apify_state *s, const char *brand, const char *run_id,
			  const char *status, long fetched, const struct brand_stats *bs,
			  double started, double finished, const char *error, json_t *meta)
{
	char name[96], n_fetched[24], n_new[24], n_upd[24], n_err[24], t0[32], t1[32], dur[24];
	snprintf(name, sizeof name, "apify_%s", brand);
	snprintf(n_fetched, sizeof n_fetched, "%ld", fetched);
	snprintf(n_new, sizeof n_new, "%ld", bs ? bs->new_rows : 0);
	snprintf(n_upd, sizeof n_upd, "%ld", bs ? bs->updated : 0);
	snprintf(n_err, sizeof n_err, "%ld", bs ? bs->errors : 0);
	snprintf(t0, sizeof t0, "%.3f", started);
	snprintf(t1, sizeof t1, "%.3f", finished);
	snprintf(dur, sizeof dur, "%ld", (long)(finished - started + 0.5));
	json_object_set_new(meta, "unchanged", json_integer(bs ? bs->unchanged : 0));
	char *m = json_dumps(meta, JSON_COMPACT);
	json_decref(meta);
	const char *params[] = { name,  run_id && *run_id ? run_id : NULL, status, n_fetched, n_new,
				 n_upd, n_err, t0, t1, dur, error && *error ? error : NULL, m };
	if (pg_exec(s->db,
		    "INSERT INTO scraper_logs (scraper_name, run_id, status, records_fetched,"
		    " records_new, records_updated, records_errors, started_at, completed_at,"
		    " duration_seconds, error_message, metadata)"
		    " VALUES ($1, $2, $3, $4, $5, $6, $7, to_timestamp($8::float8),"
		    " to_timestamp($9::float8), $10, $11, $12::jsonb)",
		    12, params) != 0)
		log_event(LOG_ERROR, "cannot write the scraper_logs row", json_pack("{s:s}", "brand", brand));
	free(m);

	/* §19: apify_scraper_duration (alert > 2 h), apify_scraper_errors (> 10 %) */
	struct metrics *mx = metrics_new();
	char labels[96], file[128];
	snprintf(labels, sizeof labels, "brand=\"%s\"", brand);
	metrics_add(mx, "apify_scraper_duration", "gauge", "Seconds the last run of the brand took",
		    labels, finished - started);
	metrics_add(mx, "apify_scraper_errors", "gauge", "Items of the last run that were refused",
		    labels, bs ? (double)bs->errors : 0);
	metrics_add(mx, "apify_scraper_error_ratio", "gauge", "Refused items / items fetched",
		    labels, fetched > 0 && bs ? (double)bs->errors / (double)fetched : 0);
	metrics_add(mx, "apify_scraper_items", "gauge", "Items fetched by the last run", labels,
		    (double)fetched);
	metrics_add(mx, "apify_scraper_new", "gauge", "New products in the last run", labels,
		    bs ? (double)bs->new_rows : 0);
	metrics_add(mx, "apify_scraper_updated", "gauge", "Products changed by the last run", labels,
		    bs ? (double)bs->updated : 0);
	metrics_add(mx, "apify_scraper_success", "gauge", "1 when the last run completed", labels,
		    strcmp(status, "failed") == 0 ? 0 : 1);
	metrics_add(mx, "apify_scraper_last_run_timestamp_seconds", "gauge",
		    "When the last run finished", labels, finished);
	snprintf(file, sizeof file, "unde-apify-%s", brand);
	metrics_write_default(mx, file);
	metrics_free(mx);
}

static void apify_on_finish(void *sp, struct filter_run *run)
{
	struct apify_state *s = sp;
	(void)run;
	if (!s->from)
		apify_fetch_stop(&s->fetch);
	double now = util_wall_seconds();
	if (!s->from) {
		for (size_t i = 0; i < s->fetch.nruns; i++) {
			struct apify_run *r = &s->fetch.runs[i];
			struct brand_stats *bs = NULL;
			for (size_t j = 0; j < s->nstats; j++)
				if (strcmp(s->stats[j].brand, r->brand) == 0)
					bs = &s->stats[j];
			const char *status = r->exit_status ? (r->fetched ? "partial" : "failed")
					     : (bs && bs->errors) ? "partial" : "success";
			apify_log_row(s, r->brand, r->run_id, status, r->fetched, bs, r->started_at,
				      now > r->finished_at ? now : r->finished_at, r->error,
				      json_pack("{s:s, s:s, s:s, s:s}", "provider", "apify", "actor",
						r->actor, "dataset_id", r->dataset_id, "apify_status",
						r->status));
		}
	} else {
		for (size_t j = 0; j < s->nstats; j++) {
			struct brand_stats *bs = &s->stats[j];
			apify_log_row(s, bs->brand, NULL, bs->errors ? "partial" : "success", bs->seen, bs,
				      s->started_at, now, NULL,
				      json_pack("{s:s, s:s}", "provider", "local", "from",
						strcmp(s->from, "-") == 0 ? "stdin" : s->from));
		}
	}
	if (s->unattributed_errors)
		log_event(LOG_WARN, "items refused before their brand was known",
			  json_pack("{s:I}", "items", (json_int_t)s->unattributed_errors));
}


int main(int argc, char **argv)
{
	static struct apify_state state;
	static const struct filter_option options[] = {
		{ "brand", 'b', "BRAND",
		  "a brand to collect (repeatable; default: zara bershka pullandbear\n"
		  "                       stradivarius massimodutti oysho)",
		  .id = 'b' },
		{ "max-items", 0, "N", "items per brand (default APIFY_MAX_ITEMS or 20000)",
		  .number = &state.max_items_opt, .min = 1, .max = 10000000 },
		{ "from", 'f', "FILE|-",
		  "import saved Apify items (JSON lines) instead of running\n"
		  "                       the actor; no APIFY_TOKEN needed",
		  .string = &state.from },
		{ 0 },
	};
	static const struct filter_def def = {
		.name = "unde-apify",
		.summary = "Run the Apify actor per brand and upsert its items into staging raw_products.",
		.synopsis = "[--brand BRAND]... [--max-items N] | --from FILE|- [--brand BRAND]",
		.options = options,
		.max_operands = FILTER_NO_OPERANDS,
		.on_option = apify_on_option,
		.on_start = apify_on_start,
		.on_record = apify_on_record,
		.on_finish = apify_on_finish,
	};
	int rc = filter_main(&def, &state, argc, argv);
	rc = filter_worse_status(rc, state.fetch.exit_status);
	PQfinish(state.db);
	for (size_t i = 0; i < state.nbrands; i++)
		free(state.brands[i]);
	free(state.stats);
	return rc;
}
