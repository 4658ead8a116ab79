/* move.c — `move USER_ID --to N`: rebalance one user onto another shard
 * (§14 sharding: adding shards never moves users by itself; this does, on
 * purpose). The order is what makes it safe:
 *   1. lock the user's routing_table row FOR UPDATE (production). Every
 *      writer (save, replay, forget, erase, knowledge put, keys rotate)
 *      holds that row FOR SHARE from its route lookup until its shard
 *      transaction has ended (sctx_for_user_write), so the lock waits for
 *      writes in flight and holds new ones back: the user's rows on the old
 *      shard stop changing;
 *   2. copy every row of the user (chat history, knowledge, keys, persona
 *      state) into shard N inside one transaction there, after clearing any
 *      leftovers of an earlier attempt;
 *   3. verify in that same transaction: row counts of every table and a
 *      digest of the messages (ids, content, embedding, forget/erase
 *      state) equal on both sides — else roll back, route unchanged;
 *   4. commit there, then switch the route and commit production: the
 *      writers held back go on, to shard N;
 *   5. delete the user from the old shard (an erase must not leave a copy
 *      behind).
 * A writer waits for the copy of one user (seconds); it never writes to a
 * shard the user has left. */
#include "config.h"

#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "conf.h"
#include "log.h"
#include "pg.h"
#include "shard.h"
#include "util.h"

/* Tables keyed by user_id, in insertion order (user_keys before
 * user_knowledge, which references it); unde-llm's answer counts move too,
 * or the density cap would forget the user's rolling window. */
static const char *const user_tables[] = { "conversations", "user_keys", "user_knowledge",
					   "relationship_stage", "persona_temp_blocks",
					   "signal_daily_deltas", "persona_profiles", "llm_answer_meta" };

/* The stored (not generated) columns of table, quoted, comma-separated. */
static char *columns_of(PGconn *c, const char *table)
{
	const char *pp[] = { table };
	PGresult *r = pg_query(c,
			       "SELECT string_agg(quote_ident(attname), ',' ORDER BY attnum) FROM pg_attribute"
			       " WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped"
			       " AND attgenerated = ''",
			       1, pp);
	char *s = r && PQntuples(r) == 1 ? xstrdup(PQgetvalue(r, 0, 0)) : NULL;
	PQclear(r);
	return s;
}

/* Copy the rows selected by where ($1 = key, $2 = optional id list) from
 * src to dst, in batches, as JSON (identifiers from the catalog, data only
 * as parameters). Returns the number copied, or -1. */
static long copy_rows(PGconn *src, PGconn *dst, const char *table, const char *where,
		      const char *key, const char *extra)
{
	char *cols = columns_of(src, table);
	if (!cols)
		return -1;
	struct buf sel = { 0 }, ins = { 0 };
	char tmp[512];
	static const char head[] = "SELECT json_agg(t)::text, count(*) FROM (SELECT ";
	buf_append(&sel, head, sizeof head - 1);
	buf_append(&sel, cols, strlen(cols));
	snprintf(tmp, sizeof tmp, " FROM %s WHERE %s ORDER BY 1, 2, 3 LIMIT 500 OFFSET $3::bigint) t", table, where);
	buf_append(&sel, tmp, strlen(tmp) + 1);
	snprintf(tmp, sizeof tmp, "INSERT INTO %s (", table);
	buf_append(&ins, tmp, strlen(tmp));
	buf_append(&ins, cols, strlen(cols));
	buf_append(&ins, ") SELECT ", 9);
	buf_append(&ins, cols, strlen(cols));
	snprintf(tmp, sizeof tmp, " FROM json_populate_recordset(NULL::%s, $1::json) ON CONFLICT DO NOTHING", table);
	buf_append(&ins, tmp, strlen(tmp) + 1);
	free(cols);
	long total = 0;
	for (;;) {
		char off[24];
		snprintf(off, sizeof off, "%ld", total);
		const char *pp[] = { key, extra, off };
		PGresult *r = pg_query(src, sel.data, 3, pp);
		if (!r) {
			total = -1;
			break;
		}
		long got = shard_pg_long(r, 0, 1, 0);
		if (got == 0) {
			PQclear(r);
			break;
		}
		const char *ip[] = { PQgetvalue(r, 0, 0) };
		int e = pg_exec(dst, ins.data, 1, ip);
		PQclear(r);
		if (e != 0) {
			total = -1;
			break;
		}
		total += got;
		if (got < 500)
			break;
	}
	buf_free(&sel);
	buf_free(&ins);
	return total;
}

static const char digest_sql[] =
	"SELECT count(*), md5(COALESCE(string_agg(id::text || '|' || content || '|' ||"
	" COALESCE(embedding::text, '') || '|' || is_forgotten::text || '|' ||"
	" COALESCE(deleted_at::text, '') || '|' || COALESCE(response_description, ''), ',' ORDER BY id), ''))"
	" FROM messages WHERE conversation_id = (SELECT id FROM conversations WHERE user_id = $1)";

static int counts(PGconn *c, const char *user, char out[][64])
{
	const char *pp[] = { user };
	PGresult *r = pg_query(c, digest_sql, 1, pp);
	if (!r)
		return -1;
	snprintf(out[0], 64, "%s:%s", PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1));
	PQclear(r);
	for (size_t i = 0; i < sizeof user_tables / sizeof *user_tables; i++) {
		char q[160];
		snprintf(q, sizeof q, "SELECT count(*) FROM %s WHERE user_id = $1", user_tables[i]);
		r = pg_query(c, q, 1, pp);
		if (!r)
			return -1;
		snprintf(out[i + 1], 64, "%s", PQgetvalue(r, 0, 0));
		PQclear(r);
	}
	return 0;
}

#define NCOUNTS (1 + sizeof user_tables / sizeof *user_tables)

static const char usage[] = "unde-shard move USER_ID --to N\n"
			    "Copy a user to shard N, verify, switch the route, clear the old shard.\n";

int shard_cmd_move(int argc, char **argv)
{
	long long to_opt = -1;
	const struct filter_option o[] = {
		{ "to", 0, "N", "the shard to move the user to (0-9999)", .number = &to_opt, .min = 0,
		  .max = 9999 },
		{ 0 } };
	struct admin_opts a = { .name = "unde-shard move", .usage = usage, .options = o };
	int rc = admin_options(&a, argc, argv);
	if (rc >= 0)
		return rc;
	long to = (long)to_opt;
	if (optind != argc - 1 || to < 0 || !shard_uuid_valid(argv[optind]))
		return admin_usage_error(usage, "move needs USER_ID (a UUID) and --to N");
	const char *user = argv[optind];
	if ((rc = admin_load_env(a.env_file)))
		return rc;
	struct shard_ctx x;
	sctx_init(&x);
	struct shard_err e;
	long from = -1;
	PGconn *p = sctx_production(&x, 1, &e), *src = NULL, *dst = NULL;
	if (p)
		src = sctx_for_user(&x, user, 0, &from, &e);
	if (src)
		dst = sctx_shard(&x, to, &e);
	if (!dst) {
		log_event(LOG_ERROR, e.msg, json_pack("{s:s}", "code", e.code));
		sctx_close(&x);
		return e.status;
	}
	if (from == to) {
		shard_print(json_pack("{s:s, s:i, s:s}", "user_id", user, "shard_id", (int)to, "status", "already there"));
		sctx_close(&x);
		return 0;
	}
	char before[NCOUNTS][64], after[NCOUNTS][64], tos[24], froms[24];
	snprintf(tos, sizeof tos, "%ld", to);
	snprintf(froms, sizeof froms, "%ld", from);
	const char *rp[] = { user, tos, froms };
	long copied = 0;
	rc = EX_SOFTWARE;
	/* 1. writers of this user wait from here until production commits */
	PGresult *r = NULL;
	if (pg_begin(p) != 0 ||
	    !(r = pg_query(p, "SELECT 1 FROM routing_table WHERE user_id = $1 AND shard_id = $2 FOR UPDATE",
			   2, (const char *[]){ user, froms })))
		goto fail;
	int same_route = PQntuples(r) == 1;
	PQclear(r);
	if (!same_route) {
		log_event(LOG_ERROR, "route changed during the move; nothing copied",
			  json_pack("{s:s}", "user_id", user));
		rc = EX_TEMPFAIL;
		goto fail;
	}
	/* 2. and 3. */
	if (pg_begin(dst) != 0 || shard_delete_user_rows(dst, user, NULL) != 0)
		goto fail;
	for (size_t i = 0; i < 2; i++)
		if (copy_rows(src, dst, user_tables[i], "user_id = $1 AND $2::text IS NULL", user, NULL) < 0)
			goto fail;
	if ((copied = copy_rows(src, dst, "messages",
				"conversation_id = (SELECT id FROM conversations WHERE user_id = $1)"
				" AND $2::text IS NULL", user, NULL)) < 0)
		goto fail;
	for (size_t i = 2; i < sizeof user_tables / sizeof *user_tables; i++)
		if (copy_rows(src, dst, user_tables[i], "user_id = $1 AND $2::text IS NULL", user, NULL) < 0)
			goto fail;
	if (counts(src, user, before) != 0 || counts(dst, user, after) != 0)
		goto fail;
	for (size_t i = 0; i < NCOUNTS; i++)
		if (strcmp(before[i], after[i]) != 0) {
			log_event(LOG_ERROR, "copy does not verify; route unchanged",
				  json_pack("{s:s, s:s, s:s}", "user_id", user, "source", before[i], "copy", after[i]));
			rc = EX_TEMPFAIL;
			goto fail;
		}
	/* 4. */
	if (pg_commit(dst) != 0)
		goto fail;
	if (pg_exec(p, "UPDATE routing_table SET shard_id = $2, updated_at = now()"
		       " WHERE user_id = $1 AND shard_id = $3", 3, rp) != 0 || pg_commit(p) != 0) {
		pg_rollback(p);
		log_event(LOG_ERROR, "copied, but the route did not switch; source kept, re-run move",
			  json_pack("{s:s}", "user_id", user));
		sctx_close(&x);
		return EX_TEMPFAIL;
	}
	/* 5. */
	if (pg_begin(src) == 0 && shard_delete_user_rows(src, user, NULL) == 0 && pg_commit(src) == 0) {
		shard_print(json_pack("{s:s, s:i, s:i, s:I, s:s}", "user_id", user, "from", (int)from,
				      "to", (int)to, "messages", (json_int_t)copied, "status", "moved"));
		sctx_close(&x);
		return 0;
	}
	pg_rollback(src);
	log_event(LOG_ERROR, "moved and switched, but the old shard still holds the user: re-run move to clean up",
		  json_pack("{s:s, s:i}", "user_id", user, "from", (int)from));
	sctx_close(&x);
	return EX_TEMPFAIL;
fail:
	pg_rollback(dst);
	pg_rollback(p);
	log_event(LOG_ERROR, "move failed; nothing switched", json_pack("{s:s}", "user_id", user));
	sctx_close(&x);
	return rc;
}
