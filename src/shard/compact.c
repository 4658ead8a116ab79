/* compact.c — `unde-shard compact`: erased bytes leave the disk (issue 9,
 * §14 Hard Delete, §21 GDPR).
 *
 * erase overwrites a message and erase --user deletes rows, but the old row
 * versions stay in the relation files — heap pages, TOAST chunks, GIN
 * entries — after VACUUM too, which only marks the space reusable. The
 * erasers list the relations they changed in erasure_pending (migration
 * 0020); compact rewrites each with VACUUM (FULL, ANALYZE): new files are
 * written from the live rows, the old ones are truncated at commit (and
 * unlinked at the next checkpoint). A relation's row is removed only if no
 * erase touched it since compact read it (the row's `since` is compared),
 * so an erase that races a rewrite is compacted by the next run.
 *
 * The rewrite holds an ACCESS EXCLUSIVE lock on one relation at a time —
 * one hash partition of messages, 1/64 of the shard's history — for the
 * time of its copy; writers of the users hashed to it wait that long. It
 * needs the tables' owner (the role that ran `unde-db migrate shard`). */
#include "config.h"

#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "log.h"
#include "pg.h"
#include "shard.h"
#include "util.h"

/* Rewrite one pending relation of shard c and clear its row. The relation
 * is looked up in the catalogue and must be a messages partition or one of
 * the user tables erase changes, so a name in erasure_pending is never
 * spliced into SQL unchecked. 0, 1 (gone: row dropped), or -1. */
static int compact_one(PGconn *c, long sid, const char *rel, const char *since)
{
	const char *pp[] = { rel, since };
	PGresult *r = pg_query(c,
			       "SELECT quote_ident(n.nspname) || '.' || quote_ident(k.relname),"
			       " pg_total_relation_size(k.oid) FROM pg_class k JOIN pg_namespace n ON n.oid = k.relnamespace"
			       " WHERE k.oid = to_regclass($1) AND (k.oid IN (SELECT relid FROM pg_partition_tree('messages')"
			       "  WHERE isleaf) OR k.relname IN ('user_knowledge', 'user_keys', 'conversations',"
			       "  'persona_profiles'))",
			       1, pp);
	if (!r)
		return -1;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return pg_exec(c, "DELETE FROM erasure_pending WHERE relation = $1", 1, pp) == 0 ? 1 : -1;
	}
	char *qname = xstrdup(PQgetvalue(r, 0, 0));
	long long before = atoll(PQgetvalue(r, 0, 1));
	PQclear(r);
	struct buf sql = { 0 };
	buf_printf(&sql, "VACUUM (FULL, ANALYZE) %s", qname);
	double t0 = util_now_ms();
	r = PQexec(c, sql.data);
	buf_free(&sql);
	int ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
	if (!ok)
		log_event(LOG_ERROR, "cannot rewrite the relation",
			  json_pack("{s:s, s:s}", "relation", rel, "error", pg_last_error(c)));
	PQclear(r);
	double ms = util_now_ms() - t0;
	if (ok)
		ok = pg_exec(c, "DELETE FROM erasure_pending WHERE relation = $1 AND since = $2::timestamptz",
			     2, pp) == 0;
	if (ok) {
		const char *pq[] = { qname };
		r = pg_query(c, "SELECT pg_total_relation_size($1::regclass)", 1, pq);
		shard_print(json_pack("{s:i, s:s, s:I, s:I, s:f}", "shard_id", (int)sid, "relation", rel,
				      "bytes_before", (json_int_t)before, "bytes_after",
				      (json_int_t)(r ? atoll(PQgetvalue(r, 0, 0)) : -1), "ms", ms));
		PQclear(r);
	}
	free(qname);
	return ok ? 0 : -1;
}

/* Every pending relation of one shard, oldest erase first. */
static int compact_shard(PGconn *c, long sid, long *done)
{
	PGresult *r = pg_query(c, "SELECT relation, since::text FROM erasure_pending ORDER BY since", 0, NULL);
	if (!r)
		return -1;
	int rc = 0;
	for (int i = 0; i < PQntuples(r); i++) {
		int one = compact_one(c, sid, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1));
		if (one < 0)
			rc = -1;
		else if (one == 0)
			(*done)++;
	}
	PQclear(r);
	return rc;
}

/* admin_each_shard's call: one shard's pending relations; data counts them. */
static int compact_each(PGconn *c, long sid, void *data)
{
	return compact_shard(c, sid, data) ? EX_SOFTWARE : 0;
}

static const char usage[] = "unde-shard compact [--shard N | --url URL]\n";

int shard_cmd_compact(int argc, char **argv)
{
	struct shard_ctx x;
	sctx_init(&x);
	struct admin_opts a = { .name = "unde-shard compact", .usage = usage,
				.summary = "Rewrite the relations that held erased rows, so the erased bytes\n"
					   "leave the disk (every shard, or one).\n",
				.x = &x, .no_operands = 1 };
	int rc = admin_options(&a, argc, argv);
	if (rc >= 0)
		return rc;
	long done = 0;
	int worst = admin_each_shard(&x, compact_each, &done);
	log_event(LOG_INFO, "compacted", json_pack("{s:I}", "relations", (json_int_t)done));
	sctx_close(&x);
	return worst;
}
