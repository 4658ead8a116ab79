/* claim — see claim.h. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "claim.h"
#include "conf.h"
#include "pg.h"
#include "util.h"

void claim_start(struct claim *c, const char *ttl_var)
{
	if (!c->ttl)
		c->ttl = conf_long(ttl_var, 3600, 1, CLAIM_TTL_MAX);
	util_uuid4(c->run_id);
}

int claim_one(struct claim *c, const char *id, const char *returning, PGresult **row,
	      char *err, size_t len)
{
	char ttl[24];
	snprintf(ttl, sizeof ttl, "%lld", c->ttl);
	const char *params[] = { id, c->run_id, ttl };
	struct buf sql = { 0 };
	buf_printf(&sql,
		   "UPDATE raw_products SET claimed_by = $2,"
		   " claimed_until = now() + make_interval(secs => $3::int)"
		   " WHERE id = $1 AND (claimed_by IS NULL OR claimed_until < now()"
		   " OR claimed_by = $2) RETURNING %s",
		   returning);
	PGresult *r = pg_query(c->db, sql.data, 3, params);
	buf_free(&sql);
	if (!r) {
		snprintf(err, len, "%s", pg_last_error(c->db));
		return -2;
	}
	if (PQntuples(r) == 1) {
		*row = r;
		return 1;
	}
	PQclear(r);
	r = pg_query(c->db, "SELECT 1 FROM raw_products WHERE id = $1", 1, params);
	if (!r) {
		snprintf(err, len, "%s", pg_last_error(c->db));
		return -2;
	}
	int exists = PQntuples(r) == 1;
	PQclear(r);
	if (!exists)
		snprintf(err, len, "no product with id %s in raw_products", id);
	return exists ? 0 : -1;
}

PGresult *claim_queue(struct claim *c, const char *where, const char *returning, long limit)
{
	char lim[24], ttl[24];
	snprintf(lim, sizeof lim, "%ld", limit);
	snprintf(ttl, sizeof ttl, "%lld", c->ttl);
	const char *params[] = { c->run_id, ttl, lim };
	struct buf sql = { 0 };
	buf_printf(&sql,
		   "WITH c AS (SELECT id FROM raw_products WHERE %s"
		   " AND (claimed_by IS NULL OR claimed_until < now()) ORDER BY id LIMIT $3"
		   " FOR UPDATE SKIP LOCKED),"
		   " u AS (UPDATE raw_products p SET claimed_by = $1,"
		   " claimed_until = now() + make_interval(secs => $2::int) FROM c"
		   " WHERE p.id = c.id RETURNING %s)"
		   " SELECT * FROM u ORDER BY id",
		   where, returning);
	PGresult *r = pg_query(c->db, sql.data, 3, params);
	buf_free(&sql);
	return r;
}

void claim_release(struct claim *c, const char *id)
{
	const char *params[] = { id, c->run_id };
	pg_exec(c->db, "UPDATE raw_products SET claimed_by = NULL, claimed_until = NULL"
		       " WHERE id = $1 AND claimed_by = $2", 2, params);
}

int claim_finish(struct claim *c, const char *id, const char *set, const char *guard,
		 const char *guard_json, const char *value)
{
	struct buf sql = { 0 };
	buf_printf(&sql,
		   "UPDATE raw_products SET %s, updated_at = now(), claimed_by = NULL,"
		   " claimed_until = NULL WHERE id = $1 AND claimed_by = $2"
		   " AND %s IS NOT DISTINCT FROM $3::jsonb",
		   set, guard);
	const char *params[] = { id, c->run_id, guard_json, value };
	PGresult *r = pg_query(c->db, sql.data, 4, params);
	buf_free(&sql);
	if (!r)
		return -1;
	int done = atoi(PQcmdTuples(r)) == 1;
	PQclear(r);
	if (!done)
		claim_release(c, id);
	return done;
}

long claim_batch_size(long limit, int given, const char *specific_var)
{
	if (given)
		return limit;
	long v = conf_long("BATCH_SIZE", limit, 1, 1000000);
	return conf_long(specific_var, v, 1, 1000000);
}
