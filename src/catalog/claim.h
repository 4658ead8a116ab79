/* claim — which run works on which staging product (sql/staging/0002).
 *
 * unde-download and unde-collage both take raw_products rows as a queue or
 * one by one from stdin. A run marks the rows it works on (claimed_by = its
 * run id, claimed_until = now + TTL), so two runs never take the same
 * product, and it changes a product's status only while it still holds the
 * claim and the product still has the photos it worked from. A run that
 * dies leaves claims that expire after the TTL; nothing is half-marked.
 *
 * The SQL fragments passed in (columns to return, a queue's WHERE, a SET
 * list) are the commands' own constants, never data. */
#ifndef UNDE_CATALOG_CLAIM_H
#define UNDE_CATALOG_CLAIM_H

#include <libpq-fe.h>

struct claim {
	PGconn *db;
	char run_id[37];
	long long ttl; /* seconds; 0 until --claim-ttl or claim_start sets it */
};

/* The longest claim: 7 days. */
#define CLAIM_TTL_MAX (7 * 86400)

/* The options the claim commands share, as entries of their option table
 * (lib/options.h): --claim-ttl stores its seconds in *ttl_ptr (struct claim's
 * ttl; var is the environment variable it defaults to, for --help), and
 * --include-permanent sets *flag_ptr. */
#define CLAIM_TTL_OPTION(var, ttl_ptr) \
	{ "claim-ttl", 0, "SECONDS", \
	  "how long a claimed product stays this run's (default\n" \
	  "                       " var " or 3600)", \
	  .number = (ttl_ptr), .min = 1, .max = CLAIM_TTL_MAX }
#define CLAIM_PERMANENT_OPTION(flag_ptr) \
	{ "include-permanent", 0, NULL, \
	  "with --retry-failed, also products whose error is\n" \
	  "                       permanent (404, not an image, no photo URL)", \
	  .flag = (flag_ptr) }
#define CLAIM_SYNOPSIS \
	"[--pending [--limit N] | --retry-failed [--include-permanent] [--limit N]]\n" \
	"       [--claim-ttl SECONDS]"

/* The queue's size: limit when --limit was given, else the command's
 * specific_var (DOWNLOAD_BATCH_SIZE …), else the spec's BATCH_SIZE, else
 * limit (the command's default). */
long claim_batch_size(long limit, int given, const char *specific_var);

/* A fresh run id, and the TTL from ttl_var (default 3600 s) unless
 * --claim-ttl gave one. db is the staging connection, set later. */
void claim_start(struct claim *c, const char *ttl_var);

/* Claim row id for this run (a record from stdin), returning the columns
 * listed in `returning`. 1 with *row set; 0 when another run holds it;
 * -1 when there is no such row; -2 when the database failed (err set for
 * both). */
int claim_one(struct claim *c, const char *id, const char *returning, PGresult **row,
	      char *err, size_t len);

/* Claim up to limit rows matching `where` (unclaimed or expired ones only,
 * oldest id first, FOR UPDATE SKIP LOCKED), returning `returning` of each
 * (columns of p, the claimed rows), ordered by id. NULL on a database
 * error. */
PGresult *claim_queue(struct claim *c, const char *where, const char *returning, long limit);

/* Give row id back without changing it. */
void claim_release(struct claim *c, const char *id);

/* The product's final UPDATE: `set` (a SET list that may use $4 = value)
 * plus updated_at and the claim cleared, only while this run holds the row
 * and its column `guard` still equals guard_json (the photos it worked
 * from). 1 done; 0 superseded (the claim is given back); -1 database
 * error. */
int claim_finish(struct claim *c, const char *id, const char *set, const char *guard,
		 const char *guard_json, const char *value);

#endif
