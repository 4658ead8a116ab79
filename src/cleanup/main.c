/* unde-cleanup — old data out of the staging database, daily at 04:00
 * (spec §6, §18 "cleanup_old_data: DELETE > 30 дней").
 *
 *   unde-cleanup staging [--older-than 30d] [--batch N] [--dry-run]
 *
 * What is old (each older than the cut-off):
 *   raw_availability       snapshots fetched before it (fetched_at)
 *   scraper_logs           runs started before it (started_at)
 *   availability_requests  spent budget (requested_at; sql/staging/0005)
 *   raw_products           products not seen by a scrape since it
 *                          (scraped_at) and never synced to production
 *                          (synced_at IS NULL, sync_status <> 'synced'),
 *                          and not claimed by a running job
 * Rows go in batches of --batch (default 1000), each its own short DELETE
 * (autocommit), so no lock is held for long and a killed run loses
 * nothing but time. A synced product is never deleted here: production
 * refers to it (unde-sync marks it unavailable instead). --dry-run counts
 * without deleting. One JSON line per table on stdout. */
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

/* What is old in each table: a WHERE with $1 = the cut-off (constants). */
static const struct cleanup_table {
	const char *name, *old;
} cleanup_tables[] = {
	{ "raw_availability", "fetched_at < $1::timestamptz" },
	{ "scraper_logs", "started_at < $1::timestamptz" },
	{ "availability_requests", "requested_at < $1::timestamptz" },
	{ "raw_products", "scraped_at < $1::timestamptz AND synced_at IS NULL"
			  " AND sync_status IS DISTINCT FROM 'synced'"
			  " AND (claimed_by IS NULL OR claimed_until < now())" },
};

/* "30d", "12h", "90m", "3600s" or plain seconds → seconds; -1 if not. */
static long cleanup_parse_age(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (end == s || v < 0)
		return -1;
	long unit = 1;
	if (*end == 'd')
		unit = 86400;
	else if (*end == 'h')
		unit = 3600;
	else if (*end == 'm')
		unit = 60;
	else if (*end == 's' || *end == '\0')
		unit = 1;
	else
		return -1;
	if (*end && end[1])
		return -1;
	if (v > 36500L * 86400 / unit)
		return -1;
	return v * unit;
}

/* What the options set. */
static const char *cleanup_env_file;
static long cleanup_age = 30L * 86400;
static long long cleanup_batch = 1000;
static int cleanup_dry;

enum { CLEANUP_OPT_AGE = 1 };

/* --older-than's value is an age with a unit, which the table cannot parse. */
static int cleanup_option(void *state, int id, const char *arg)
{
	(void)state;
	if (id != CLEANUP_OPT_AGE)
		return 0;
	return (cleanup_age = cleanup_parse_age(arg)) < 0 ? -1 : 0;
}

static const struct filter_option cleanup_options[] = {
	{ "older-than", 0, "AGE", "30d, 12h, 90m or seconds (default 30d)", .id = CLEANUP_OPT_AGE },
	{ "batch", 0, "N", "rows per DELETE (default 1000)", .number = &cleanup_batch, .min = 1,
	  .max = 1000000 },
	{ "dry-run", 'n', NULL, "count, delete nothing", .flag = &cleanup_dry },
	{ "env-file", 0, "FILE", "read KEY=VALUE settings (default " CONF_DEFAULT_ENV_FILE
				 " if present)", .string = &cleanup_env_file },
	{ 0 },
};

static void cleanup_usage(FILE *f)
{
	fprintf(f, "Usage: unde-cleanup staging [--older-than AGE] [--batch N] [--dry-run]\n"
		   "Delete staging data older than AGE (default 30d): availability snapshots,\n"
		   "scraper logs, spent request budget, and raw products not seen since and never\n"
		   "synced. In short batches.\n\n");
	options_help(f, cleanup_options);
	fprintf(f, "  -h, --help           show this help\n"
		   "  -V, --version        show the version\n\n"
		   "Needs STAGING_DB_URL. One JSON line per table on stdout. See unde-cleanup(1).\n");
}

int main(int argc, char **argv)
{
	log_init("unde-cleanup");
	const struct options_table table = { cleanup_options, cleanup_option, NULL };
	int prc = options_main("unde-cleanup", &table, 1, OPTIONS_PERMUTE, argc, argv, cleanup_usage);
	if (prc >= 0)
		return prc;
	const char *env_file = cleanup_env_file;
	long age = cleanup_age, batch = (long)cleanup_batch;
	int dry = cleanup_dry;
	if (optind + 1 != argc || strcmp(argv[optind], "staging") != 0) {
		log_event(LOG_ERROR, "name the database to clean: unde-cleanup staging", NULL);
		fprintf(stderr, "Try 'unde-cleanup --help'.\n");
		return EX_USAGE;
	}
	int rc = conf_load_env(env_file);
	if (rc)
		return rc;
	PGconn *db = pg_connect(conf_require("STAGING_DB_URL"), "STAGING_DB_URL");
	if (!db)
		return EX_UNAVAILABLE;
	char ages[24], lims[24], cutoff[64];
	snprintf(ages, sizeof ages, "%ld", age);
	snprintf(lims, sizeof lims, "%ld", batch);
	const char *pa[] = { ages };
	/* one cut-off for the whole run, from the database's clock */
	PGresult *r = pg_query(db, "SELECT (now() - make_interval(secs => $1::bigint))::text", 1, pa);
	if (!r) {
		PQfinish(db);
		return EX_UNAVAILABLE;
	}
	snprintf(cutoff, sizeof cutoff, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	struct metrics *m = metrics_new();
	double total = 0;
	for (size_t t = 0; t < sizeof cleanup_tables / sizeof *cleanup_tables && !rc; t++) {
		const struct cleanup_table *ct = &cleanup_tables[t];
		char sql[768];
		long long n = 0, batches = 0;
		const char *params[] = { cutoff, lims };
		if (dry) {
			snprintf(sql, sizeof sql, "SELECT count(*) FROM %s WHERE %s", ct->name, ct->old);
			r = pg_query(db, sql, 1, params);
			if (!r) {
				rc = EX_UNAVAILABLE;
				break;
			}
			n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
			PQclear(r);
		} else {
			snprintf(sql, sizeof sql,
				 "DELETE FROM %s WHERE id IN (SELECT id FROM %s WHERE %s LIMIT $2::int"
				 " FOR UPDATE SKIP LOCKED)",
				 ct->name, ct->name, ct->old);
			for (;;) {
				r = pg_query(db, sql, 2, params);
				if (!r) {
					rc = EX_UNAVAILABLE;
					break;
				}
				long long k = strtoll(PQcmdTuples(r), NULL, 10);
				PQclear(r);
				n += k;
				batches++;
				if (k < batch)
					break;
			}
		}
		total += (double)n;
		json_t *line = json_pack("{s:s, s:I, s:s}", "table", ct->name, dry ? "would_delete" : "deleted",
					 (json_int_t)n, "older_than", cutoff);
		if (!dry)
			json_object_set_new(line, "batches", json_integer(batches));
		jsonl_write(stdout, line);
		json_decref(line);
		char labels[64];
		snprintf(labels, sizeof labels, "table=\"%s\"", ct->name);
		metrics_add(m, dry ? "cleanup_would_delete_rows" : "cleanup_deleted_rows", "gauge",
			    "Rows the last cleanup run deleted (or would have)", labels, (double)n);
	}
	log_event(rc ? LOG_ERROR : LOG_INFO, rc ? "cleanup failed" : "cleanup done",
		  json_pack("{s:f, s:s, s:b, s:i}", "rows", total, "older_than", cutoff, "dry_run", dry,
			    "exit", rc));
	metrics_add(m, "cleanup_success", "gauge", "1 when the last cleanup run succeeded", NULL, rc ? 0 : 1);
	metrics_write_default(m, "unde-cleanup");
	metrics_free(m);
	PQfinish(db);
	return rc;
}
