/* unde-availability — in-store stock of the KZ stores into staging, hourly
 * at :00 (spec §1, §17.2, §18).
 *
 *   unde-availability [--brand B]…            the brands' stock API
 *   unde-availability --from FILE|- [--brand B]…   a saved stock file
 *
 * Per brand (zara, and every Inditex brand whose KZ_<BRAND>_STORES is set),
 * per store: one request to the brand's stock API (inditex.c), whose
 * answer becomes raw_availability rows (sizes in stock per product and
 * store, one row per product, store and UTC day, upserted). The API's
 * budget — AVAILABILITY_BUDGET_PER_HOUR, the spec's 4 requests per hour —
 * is kept across runs and processes in staging (sql/staging/0005): a run
 * reserves all of a brand's requests before the first, or makes none and
 * says when it may resume. One scraper_logs row per brand and run
 * ('availability_<brand>', status success | partial | failed |
 * budget_exhausted): unde-sync counts a brand's stock from its last
 * complete poll on.
 *
 * Without the brand's API configured (neither <BRAND>_API_URL nor
 * <BRAND>_USER_AGENT set) the stock comes from AVAILABILITY_STOCK_FILE, or
 * --from: JSON lines {"brand","store_id","product_id","sizes"} with sizes
 * as [{"size","quantity"}], {"M": 2} or ["M"] ("provider":"local"). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "availability.h"
#include "conf.h"
#include "filter.h"
#include "jsonl.h"
#include "log.h"
#include "options.h"
#include "metrics.h"
#include "pg.h"
#include "util.h"

#define AV_MAX_BRANDS 16
#define AV_MAX_STORES 64

static const char *const av_inditex_brands[] = { "zara", "bershka", "pullandbear", "stradivarius",
						 "massimodutti", "oysho" };

struct av_brand {
	char name[32];
	char upper[32];
	long stores[AV_MAX_STORES];
	size_t nstores;
	const char *api_url, *user_agent;
	int remote;
	/* results */
	long rows, in_stock, stores_ok, stores_failed;
	int budget_left;
	int status; /* 0 or EX_* */
	char error[400];
};

struct av_state {
	PGconn *db;
	struct av_brand brands[AV_MAX_BRANDS];
	size_t nbrands;
	const char *from;
	long budget, timeout_ms;
	char run_id[37];
	char started_at[64]; /* the database's now() at the start: every row's fetched_at */
	json_t *local;       /* brand → store id → product → sizes, from the stock file */
};

/* --- configuration ------------------------------------------------------- */

static int av_parse_stores(struct av_brand *b, const char *var, const char *list)
{
	const char *p = list;
	while (*p) {
		char *end;
		errno = 0;
		long id = strtol(p, &end, 10);
		if (end == p || errno || id < 1 || id > 2147483647L || (*end && *end != ',') ||
		    b->nstores >= AV_MAX_STORES)
			conf_die(var, "must be a comma-separated list of at most %d store ids", AV_MAX_STORES);
		b->stores[b->nstores++] = id;
		p = *end ? end + 1 : end;
	}
	return 0;
}

/* Add brand name (a slug) with its stores and API settings. */
static void av_add_brand(struct av_state *s, const char *name, int local_only)
{
	for (size_t i = 0; i < s->nbrands; i++)
		if (strcmp(s->brands[i].name, name) == 0)
			return;
	if (s->nbrands >= AV_MAX_BRANDS)
		conf_die("AVAILABILITY_BRANDS", "at most %d brands", AV_MAX_BRANDS);
	struct av_brand *b = &s->brands[s->nbrands++];
	memset(b, 0, sizeof *b);
	snprintf(b->name, sizeof b->name, "%s", name);
	for (size_t i = 0; name[i] && i < sizeof b->upper - 1; i++)
		b->upper[i] = (char)toupper((unsigned char)name[i]);
	char var[96];
	snprintf(var, sizeof var, "KZ_%s_STORES", b->upper);
	const char *stores = conf_str(var, strcmp(name, "zara") == 0 ? "6643,9204,9073,16546" : NULL);
	if (stores)
		av_parse_stores(b, var, stores);
	snprintf(var, sizeof var, "%s_API_URL", b->upper);
	b->api_url = conf_str(var, NULL);
	snprintf(var, sizeof var, "%s_USER_AGENT", b->upper);
	b->user_agent = conf_str(var, NULL);
	if (b->user_agent && (strpbrk(b->user_agent, "\r\n") || strlen(b->user_agent) > 250))
		conf_die(var, "must be one line of at most 250 characters");
	b->remote = !local_only && (b->api_url || b->user_agent);
	if (b->remote && !b->api_url)
		b->api_url = "https://itxrest.inditex.com";
	if (b->remote && !b->user_agent)
		b->user_agent = "Mozilla/5.0 (Linux; Android 14) InditexApp";
	if (b->remote && !b->nstores) {
		snprintf(var, sizeof var, "KZ_%s_STORES", b->upper);
		conf_die(var, "brand %s has an API configured but no stores", name);
	}
	if (b->remote && (long)b->nstores > s->budget)
		conf_die("AVAILABILITY_BUDGET_PER_HOUR",
			 "%s has %zu stores but the budget allows %ld requests per hour", name,
			 b->nstores, s->budget);
}

/* --- the local stock file --------------------------------------------------- */

/* Read the stock file into s->local. 0, or EX_DATAERR/EX_NOINPUT (logged). */
static int av_read_local(struct av_state *s, const char *path)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	if (!f) {
		log_event(LOG_ERROR, "cannot open the stock file",
			  json_pack("{s:s, s:s}", "file", path, "error", strerror(errno)));
		return EX_NOINPUT;
	}
	jsonl_reader *r = jsonl_reader_new(f, 1u << 20);
	s->local = json_object();
	int rc = 0;
	json_t *rec;
	char err[256];
	enum jsonl_status st;
	while ((st = jsonl_read(r, &rec, err, sizeof err)) != JSONL_EOF) {
		if (st != JSONL_OK) {
			log_event(LOG_ERROR, "malformed stock line", json_pack("{s:s, s:s}", "file", path, "error", err));
			rc = EX_DATAERR;
			continue;
		}
		const char *brand = json_string_value(json_object_get(rec, "brand"));
		const json_t *sid = json_object_get(rec, "store_id");
		const char *pid = json_string_value(json_object_get(rec, "product_id"));
		const json_t *sz = json_object_get(rec, "sizes");
		json_t *sizes = inditex_sizes_in_stock(sz ? sz : json_object_get(rec, "sizes_in_stock"));
		if (!brand || !*brand || strlen(brand) > 31 || !json_is_integer(sid) ||
		    json_integer_value(sid) < 1 || !pid || !*pid || strlen(pid) > 100 || !sizes) {
			log_record_error(rec, "invalid_field",
					 "a stock line needs brand, store_id (a positive integer), product_id and"
					 " sizes ([{size, quantity}], {size: quantity} or [size])",
					 json_pack("{s:s, s:I}", "file", path, "line",
						   (json_int_t)jsonl_line_number(r)));
			json_decref(sizes);
			json_decref(rec);
			rc = EX_DATAERR;
			continue;
		}
		char store[24];
		snprintf(store, sizeof store, "%lld", (long long)json_integer_value(sid));
		json_t *bj = json_object_get(s->local, brand);
		if (!bj)
			json_object_set_new(s->local, brand, bj = json_object());
		json_t *sj = json_object_get(bj, store);
		if (!sj)
			json_object_set_new(bj, store, sj = json_object());
		json_object_set_new(sj, pid, sizes);
		json_decref(rec);
	}
	jsonl_reader_free(r);
	if (f != stdin)
		fclose(f);
	return rc;
}

/* --- the budget ------------------------------------------------------------ */

/* Reserve n requests of brand b's hourly budget. 1 reserved; 0 it would be
 * exceeded (b->error says when the run may resume); -1 database error. */
static int av_reserve(struct av_state *s, struct av_brand *b, long n)
{
	char ns[24];
	snprintf(ns, sizeof ns, "%ld", n);
	const char *p1[] = { b->name };
	if (pg_begin(s->db) != 0)
		return -1;
	if (pg_exec(s->db, "INSERT INTO availability_budget (brand) VALUES ($1) ON CONFLICT DO NOTHING", 1, p1) ||
	    pg_exec(s->db, "SELECT 1 FROM availability_budget WHERE brand = $1 FOR UPDATE", 1, p1))
		goto fail;
	PGresult *r = pg_query(s->db, "SELECT count(*) FROM availability_requests WHERE brand = $1"
				      " AND requested_at > now() - interval '1 hour'", 1, p1);
	if (!r)
		goto fail;
	long used = strtol(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	if (used + n > s->budget) {
		/* n requests fit once the (used + n - budget)-th oldest has left the hour */
		char skip[24];
		snprintf(skip, sizeof skip, "%ld", used + n - s->budget - 1);
		const char *p2[] = { b->name, skip };
		r = pg_query(s->db, "SELECT to_char((requested_at + interval '1 hour') AT TIME ZONE 'UTC',"
				    " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM availability_requests"
				    " WHERE brand = $1 AND requested_at > now() - interval '1 hour'"
				    " ORDER BY requested_at OFFSET $2::int LIMIT 1", 2, p2);
		snprintf(b->error, sizeof b->error,
			 "the budget of %ld requests per hour is spent (%ld used in the last hour, %ld"
			 " needed): resume at %s",
			 s->budget, used, n, r && PQntuples(r) ? PQgetvalue(r, 0, 0) : "the next hour");
		b->budget_left = (int)(s->budget - used);
		PQclear(r);
		pg_rollback(s->db);
		return 0;
	}
	const char *p4[] = { b->name, ns, s->run_id };
	if (pg_exec(s->db, "INSERT INTO availability_requests (brand, run_id) SELECT $1, $3"
			   " FROM generate_series(1, $2::int)", 3, p4) ||
	    pg_commit(s->db))
		goto fail;
	b->budget_left = (int)(s->budget - used - n);
	return 1;
fail:
	pg_rollback(s->db);
	return -1;
}

/* --- one store ------------------------------------------------------------- */

/* Upsert one store's answer; prints its line. 0 or -1 (database). */
static int av_store_rows(struct av_state *s, struct av_brand *b, long store_id, json_t *products,
			 const char *provider)
{
	char sid[24];
	snprintf(sid, sizeof sid, "%ld", store_id);
	char *doc = json_dumps(products, JSON_COMPACT);
	const char *params[] = { b->name, sid, s->started_at, doc };
	PGresult *r = pg_query(s->db,
			       "WITH w AS (INSERT INTO raw_availability (brand, store_id, product_id,"
			       " sizes_in_stock, fetched_at) SELECT $1, $2::int, e.key, e.value, $3::timestamptz"
			       " FROM jsonb_each($4::jsonb) e ON CONFLICT (brand, store_id, product_id,"
			       " fetched_date) DO UPDATE SET sizes_in_stock = EXCLUDED.sizes_in_stock,"
			       " fetched_at = EXCLUDED.fetched_at RETURNING sizes_in_stock)"
			       " SELECT count(*), count(*) FILTER (WHERE jsonb_array_length(sizes_in_stock) > 0)"
			       " FROM w",
			       4, params);
	free(doc);
	if (!r)
		return -1;
	long rows = strtol(PQgetvalue(r, 0, 0), NULL, 10), in = strtol(PQgetvalue(r, 0, 1), NULL, 10);
	PQclear(r);
	b->rows += rows;
	b->in_stock += in;
	json_t *line = json_pack("{s:s, s:I, s:I, s:I, s:s, s:s}", "brand", b->name, "store_id",
				 (json_int_t)store_id, "products", (json_int_t)rows, "in_stock",
				 (json_int_t)in, "fetched_at", s->started_at, "provider", provider);
	jsonl_write(stdout, line);
	json_decref(line);
	return 0;
}

static void av_store_failed(struct av_brand *b, long store_id, int status, const char *code,
			    const char *msg)
{
	b->stores_failed++;
	b->status = filter_worse_status(b->status, status);
	snprintf(b->error, sizeof b->error, "%s", msg);
	json_t *rec = json_pack("{s:s, s:I}", "brand", b->name, "store_id", (json_int_t)store_id);
	log_record_error(rec, code, msg, NULL);
	json_decref(rec);
}

/* --- one brand ------------------------------------------------------------- */

static void av_log_run(struct av_state *s, struct av_brand *b, const char *status)
{
	char scraper[64], fetched[24], errs[24];
	snprintf(scraper, sizeof scraper, "availability_%s", b->name);
	snprintf(fetched, sizeof fetched, "%ld", b->rows);
	snprintf(errs, sizeof errs, "%ld", b->stores_failed);
	json_t *meta = json_pack("{s:s, s:I, s:I, s:I, s:i}", "provider", b->remote ? "inditex" : "local",
				 "stores_ok", (json_int_t)b->stores_ok, "stores_failed",
				 (json_int_t)b->stores_failed, "in_stock", (json_int_t)b->in_stock,
				 "budget_left", b->budget_left);
	char *m = json_dumps(meta, JSON_COMPACT);
	json_decref(meta);
	const char *params[] = { scraper, s->run_id, status, fetched, errs, s->started_at,
				 b->error[0] ? b->error : NULL, m };
	if (pg_exec(s->db,
		    "INSERT INTO scraper_logs (scraper_name, run_id, status, records_fetched, records_errors,"
		    " started_at, completed_at, duration_seconds, error_message, metadata)"
		    " VALUES ($1, $2, $3, $4, $5, $6::timestamptz, now(),"
		    " extract(epoch FROM now() - $6::timestamptz)::int, $7, $8::jsonb)",
		    8, params) != 0)
		b->status = filter_worse_status(b->status, EX_UNAVAILABLE);
	free(m);
}

static void av_brand_run(struct av_state *s, struct av_brand *b)
{
	if (b->remote) {
		int got = av_reserve(s, b, (long)b->nstores);
		if (got <= 0) {
			if (got < 0)
				snprintf(b->error, sizeof b->error, "cannot reserve the request budget: %s",
					 pg_last_error(s->db));
			b->status = got < 0 ? EX_UNAVAILABLE : EX_TEMPFAIL;
			log_event(LOG_ERROR, got < 0 ? "budget not reserved" : "request budget spent",
				  json_pack("{s:s, s:s, s:i}", "brand", b->name, "error", b->error,
					    "budget_left", b->budget_left));
			if (got == 0)
				av_log_run(s, b, "budget_exhausted");
			return;
		}
		for (size_t i = 0; i < b->nstores; i++) {
			struct stock_answer a;
			inditex_store_stock(b->api_url, b->user_agent, b->stores[i], s->timeout_ms, &a);
			if (!a.products) {
				av_store_failed(b, b->stores[i], a.retryable ? EX_TEMPFAIL : EX_UNAVAILABLE,
						"upstream_error", a.error);
				continue;
			}
			int rc = av_store_rows(s, b, b->stores[i], a.products, "inditex");
			json_decref(a.products);
			if (rc) {
				av_store_failed(b, b->stores[i], EX_UNAVAILABLE, "database_unavailable",
						pg_last_error(s->db));
				continue;
			}
			b->stores_ok++;
		}
	} else {
		json_t *stores = json_object_get(s->local, b->name);
		const char *sid;
		json_t *products;
		json_object_foreach(stores, sid, products)
		{
			long id = strtol(sid, NULL, 10);
			if (av_store_rows(s, b, id, products, "local")) {
				av_store_failed(b, id, EX_UNAVAILABLE, "database_unavailable", pg_last_error(s->db));
				continue;
			}
			b->stores_ok++;
		}
		b->budget_left = (int)s->budget;
	}
	av_log_run(s, b, b->stores_failed == 0 ? "success" : b->stores_ok ? "partial" : "failed");
}

/* --- main ------------------------------------------------------------------------ */

/* What the options set; --brand is repeatable. */
static const char *av_env_file, *av_from, *av_only[AV_MAX_BRANDS];
static size_t av_nonly;

/* --brand: a slug (a-z, 0-9), at most AV_MAX_BRANDS of them. */
static int av_option(void *state, int id, const char *arg)
{
	(void)state;
	if (id != 'b')
		return 0;
	if (av_nonly >= AV_MAX_BRANDS || !*arg || strlen(arg) > 31 ||
	    strspn(arg, "abcdefghijklmnopqrstuvwxyz0123456789") != strlen(arg))
		return -1;
	av_only[av_nonly++] = arg;
	return 0;
}

static const struct filter_option av_options[] = {
	{ "brand", 'b', "B", "only this brand (repeatable; default zara and every brand\n"
			     "                       with KZ_<BRAND>_STORES)", .id = 'b' },
	{ "from", 'f', "FILE", "read the stock from a JSON-lines file ('-': stdin)\n"
			       "                       instead of the brand's API",
	  .string = &av_from },
	{ "env-file", 0, "FILE", "read KEY=VALUE settings (default " CONF_DEFAULT_ENV_FILE
				 " if present)", .string = &av_env_file },
	{ 0 },
};

static void av_usage(FILE *f)
{
	fprintf(f, "Usage: unde-availability [--brand B]... [--from FILE|-] [--env-file FILE]\n"
		   "Poll the in-store stock of the KZ stores into staging's raw_availability.\n\n");
	options_help(f, av_options);
	fprintf(f, "  -h, --help           show this help\n"
		   "  -V, --version        show the version\n\n"
		   "Keeps the API's budget (AVAILABILITY_BUDGET_PER_HOUR, default 4) across runs.\n"
		   "One JSON line per store on stdout. See unde-availability(1).\n");
}

int main(int argc, char **argv)
{
	log_init("unde-availability");
	static struct av_state s;
	const struct options_table table = { av_options, av_option, NULL };
	int prc = options_main("unde-availability", &table, 1, OPTIONS_PERMUTE, argc, argv, av_usage);
	if (prc >= 0)
		return prc;
	const char *env_file = av_env_file, *const *only = av_only;
	size_t nonly = av_nonly;
	s.from = av_from;
	if (optind < argc) {
		options_usage_error("unde-availability", "unde-availability takes no arguments");
		return EX_USAGE;
	}
	int rc = conf_load_env(env_file);
	if (rc)
		return rc;
	s.budget = conf_long("AVAILABILITY_BUDGET_PER_HOUR", 4, 1, 100000);
	s.timeout_ms = conf_long("AVAILABILITY_TIMEOUT", 60, 1, 3600) * 1000;
	const char *url = conf_require("STAGING_DB_URL");
	if (nonly)
		for (size_t i = 0; i < nonly; i++)
			av_add_brand(&s, only[i], s.from != NULL);
	else
		for (size_t i = 0; i < sizeof av_inditex_brands / sizeof *av_inditex_brands; i++) {
			char var[64], up[32];
			size_t k;
			for (k = 0; av_inditex_brands[i][k]; k++)
				up[k] = (char)toupper((unsigned char)av_inditex_brands[i][k]);
			up[k] = 0;
			snprintf(var, sizeof var, "KZ_%s_STORES", up);
			if (i == 0 || conf_str(var, NULL))
				av_add_brand(&s, av_inditex_brands[i], s.from != NULL);
		}
	int any_local = 0;
	for (size_t i = 0; i < s.nbrands; i++)
		any_local |= !s.brands[i].remote;
	if (any_local) {
		const char *file = s.from ? s.from : conf_str("AVAILABILITY_STOCK_FILE", NULL);
		if (!file)
			conf_die("AVAILABILITY_STOCK_FILE",
				 "is needed for %s: no ZARA_API_URL or ZARA_USER_AGENT is set, so the stock"
				 " comes from a local file (or give --from FILE)",
				 s.brands[0].name);
		if ((rc = av_read_local(&s, file)) == EX_NOINPUT)
			return rc;
		/* a brand of the file that was not named: take it too, unless --brand chose */
		const char *bn;
		json_t *v;
		if (!nonly)
			json_object_foreach(s.local, bn, v)
			{
				int known = 0;
				for (size_t i = 0; i < s.nbrands; i++)
					known |= strcmp(s.brands[i].name, bn) == 0;
				if (!known && strspn(bn, "abcdefghijklmnopqrstuvwxyz0123456789") == strlen(bn))
					av_add_brand(&s, bn, 1);
			}
	}
	util_uuid4(s.run_id);
	if (!(s.db = pg_connect(url, "STAGING_DB_URL"))) {
		json_decref(s.local);
		return EX_UNAVAILABLE;
	}
	PGresult *r = pg_query(s.db, "SELECT now()::text", 0, NULL);
	if (!r) {
		PQfinish(s.db);
		json_decref(s.local);
		return EX_UNAVAILABLE;
	}
	snprintf(s.started_at, sizeof s.started_at, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);

	struct metrics *m = metrics_new();
	for (size_t i = 0; i < s.nbrands; i++) {
		struct av_brand *b = &s.brands[i];
		av_brand_run(&s, b);
		rc = filter_worse_status(rc, b->status);
		char labels[64];
		snprintf(labels, sizeof labels, "brand=\"%s\"", b->name);
		/* §19: availability_poll_success (alert on 0) */
		metrics_add(m, "availability_poll_success", "gauge", "1 when every store of the brand answered",
			    labels, b->status == 0 && b->stores_failed == 0 ? 1 : 0);
		metrics_add(m, "availability_budget_left", "gauge",
			    "Requests to the brand's stock API left in the current hour", labels,
			    b->budget_left);
		metrics_add(m, "availability_rows", "gauge", "raw_availability rows the last run wrote",
			    labels, (double)b->rows);
		log_event(b->status ? LOG_WARN : LOG_INFO, "brand polled",
			  json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:i}", "brand", b->name, "provider",
				    b->remote ? "inditex" : "local", "stores_ok", (json_int_t)b->stores_ok,
				    "stores_failed", (json_int_t)b->stores_failed, "rows", (json_int_t)b->rows,
				    "in_stock", (json_int_t)b->in_stock, "budget_left", b->budget_left));
	}
	metrics_write_default(m, "unde-availability");
	metrics_free(m);
	PQfinish(s.db);
	json_decref(s.local);
	return rc;
}
