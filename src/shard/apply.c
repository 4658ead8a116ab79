/* apply.c — `apply-deletions`: §14/§21 "after any restore of a shard,
 * apply_deletions from the registry". Re-applies every tombstone (hard-
 * deleted messages, erased users) to a shard restored from a backup taken
 * before the erases. Idempotent: a tombstone already applied changes
 * nothing and is not counted. Soft forgets are re-applied the same way
 * from the forget registry (issue 9). The tombstones come from production's
 * registry, or from the copy file (--from-copy) when production is the
 * thing that is down. */
#include "config.h"

#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "conf.h"
#include "jsonl.h"
#include "log.h"
#include "pg.h"
#include "shard.h"
#include "util.h"

#define APPLY_BATCH 1000

struct tomb {
	json_t *conv, *msg, *at; /* arrays, one batch */
	json_t *users;
	json_t *forgets; /* [conversation_id, message_id, forget_description] */
	long tombstones, erased, knowledge, users_erased;
	long forget_rows, forgotten, deactivated;
};

/* The forget registry's rows (production's forgotten_messages_registry or
 * the copy's "forget" lines): soft forget again what a restore brought
 * back — forgotten, embedding and snippet cleared (the description too when
 * the forget asked for it), extracted knowledge deactivated. A message
 * already in that state is not counted. Run before the tombstones, which
 * erase what both name. */
static int apply_forgets(PGconn *c, struct tomb *t)
{
	if (!json_array_size(t->forgets))
		return 0;
	char *js = json_dumps(t->forgets, JSON_COMPACT);
	const char *pp[] = { js };
	PGresult *r = pg_query(c,
			       "WITH d AS (SELECT (e->>0)::uuid AS c, (e->>1)::uuid AS i, (e->>2)::boolean AS fd"
			       "  FROM jsonb_array_elements($1::jsonb) AS x(e)),"
			       " k AS (UPDATE user_knowledge k SET is_active = FALSE, updated_at = now()"
			       "  FROM d, conversations cv WHERE k.source_message_id = d.i AND cv.id = d.c"
			       "  AND k.user_id = cv.user_id AND k.is_active RETURNING 1),"
			       " m AS (UPDATE messages m SET is_forgotten = TRUE, embedding = NULL,"
			       "  memory_snippet = NULL,"
			       "  response_description = CASE WHEN d.fd THEN NULL ELSE m.response_description END"
			       "  FROM d WHERE m.conversation_id = d.c AND m.id = d.i"
			       "  AND (NOT m.is_forgotten OR m.embedding IS NOT NULL OR m.memory_snippet IS NOT NULL"
			       "  OR (d.fd AND m.response_description IS NOT NULL)) RETURNING 1)"
			       "SELECT (SELECT count(*) FROM m), (SELECT count(*) FROM k)",
			       1, pp);
	free(js);
	if (!r)
		return -1;
	t->forgotten += shard_pg_long(r, 0, 0, 0);
	t->deactivated += shard_pg_long(r, 0, 1, 0);
	PQclear(r);
	json_array_clear(t->forgets);
	return 0;
}

/* One forget row into the batch (bad ids skipped, as for tombstones). */
static int add_forget(PGconn *c, struct tomb *t, const char *conv, const char *msg, int fd)
{
	if (!conv || !msg || !shard_uuid_valid(conv) || !shard_uuid_valid(msg))
		return 0;
	t->forget_rows++;
	json_array_append_new(t->forgets, json_pack("[s, s, b]", conv, msg, fd));
	return json_array_size(t->forgets) >= APPLY_BATCH ? apply_forgets(c, t) : 0;
}

static int apply_batch(PGconn *c, struct tomb *t)
{
	if (!json_array_size(t->msg))
		return 0;
	char *a = json_dumps(t->conv, JSON_COMPACT), *b = json_dumps(t->msg, JSON_COMPACT),
	     *d = json_dumps(t->at, JSON_COMPACT);
	const char *pp[] = { a, b, d };
	PGresult *r = pg_query(c,
			       "WITH d AS (SELECT c::uuid AS c, i::uuid AS i, t::timestamptz AS t"
			       "  FROM ROWS FROM (jsonb_array_elements_text($1::jsonb),"
			       "  jsonb_array_elements_text($2::jsonb), jsonb_array_elements_text($3::jsonb)) AS x(c, i, t)),"
			       " k AS (DELETE FROM user_knowledge k USING d, conversations cv"
			       "  WHERE k.source_message_id = d.i AND cv.id = d.c AND k.user_id = cv.user_id RETURNING 1),"
			       " m AS (UPDATE messages m SET content = '[deleted]', embedding = NULL,"
			       "  memory_snippet = NULL, memory_confidence = NULL, response_description = NULL,"
			       "  reply_to_id = NULL, media_urls = NULL, mood_frame = NULL, is_forgotten = TRUE,"
			       "  needs_enrichment = FALSE, deleted_at = d.t"
			       "  FROM d WHERE m.conversation_id = d.c AND m.id = d.i"
			       "  AND (m.deleted_at IS NULL OR m.content <> '[deleted]') RETURNING m.tableoid),"
			       " p AS (INSERT INTO erasure_pending (relation)"
			       "  SELECT DISTINCT tableoid::regclass::text FROM m"
			       "  UNION SELECT 'user_knowledge' WHERE EXISTS (SELECT 1 FROM k)"
			       "  ON CONFLICT (relation) DO UPDATE SET since = clock_timestamp())"
			       "SELECT (SELECT count(*) FROM m), (SELECT count(*) FROM k)",
			       3, pp);
	free(a);
	free(b);
	free(d);
	if (!r)
		return -1;
	t->erased += shard_pg_long(r, 0, 0, 0);
	t->knowledge += shard_pg_long(r, 0, 1, 0);
	PQclear(r);
	json_array_clear(t->conv);
	json_array_clear(t->msg);
	json_array_clear(t->at);
	return 0;
}

static int add_message(PGconn *c, struct tomb *t, const char *conv, const char *msg, const char *at)
{
	if (!conv || !msg || !shard_uuid_valid(conv) || !shard_uuid_valid(msg))
		return 0;
	t->tombstones++;
	json_array_append_new(t->conv, json_string(conv));
	json_array_append_new(t->msg, json_string(msg));
	json_array_append_new(t->at, at ? json_string(at) : json_string("now"));
	return json_array_size(t->msg) >= APPLY_BATCH ? apply_batch(c, t) : 0;
}

static int apply_users(PGconn *c, struct tomb *t)
{
	size_t i;
	json_t *u;
	json_array_foreach(t->users, i, u)
	{
		const char *pp[] = { json_string_value(u) };
		PGresult *r = pg_query(c, "SELECT count(*) FROM conversations WHERE user_id = $1"
					  " UNION ALL SELECT count(*) FROM user_keys WHERE user_id = $1", 1, pp);
		long had = r ? shard_pg_long(r, 0, 0, 0) + shard_pg_long(r, 1, 0, 0) : 0;
		PQclear(r);
		if (pg_begin(c) != 0 || shard_delete_user_rows(c, json_string_value(u), NULL) != 0 ||
		    pg_commit(c) != 0) {
			pg_rollback(c);
			return -1;
		}
		if (had)
			t->users_erased++;
	}
	return 0;
}

static int from_registry(PGconn *p, PGconn *c, long sid, struct tomb *t)
{
	char ids[24];
	snprintf(ids, sizeof ids, "%ld", sid);
	const char *pp[] = { sid >= 0 ? ids : NULL };
	PGresult *r = pg_query(p,
			       "SELECT conversation_id, message_id, forget_description FROM forgotten_messages_registry"
			       " WHERE $1::int IS NULL OR shard_id = $1 OR shard_id IS NULL ORDER BY id",
			       1, pp);
	if (!r)
		return -1;
	for (int i = 0; i < PQntuples(r); i++)
		if (add_forget(c, t, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2)[0] == 't') != 0) {
			PQclear(r);
			return -1;
		}
	PQclear(r);
	r = pg_query(p,
			       "SELECT conversation_id, message_id, deleted_at FROM deleted_messages_registry"
			       " WHERE $1::int IS NULL OR shard_id = $1 OR shard_id IS NULL ORDER BY id",
			       1, pp);
	if (!r)
		return -1;
	for (int i = 0; i < PQntuples(r); i++)
		if (add_message(c, t, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2)) != 0) {
			PQclear(r);
			return -1;
		}
	PQclear(r);
	r = pg_query(p, "SELECT user_id FROM deleted_users_registry"
			" WHERE $1::int IS NULL OR shard_id = $1 OR shard_id IS NULL ORDER BY id", 1, pp);
	if (!r)
		return -1;
	for (int i = 0; i < PQntuples(r); i++) {
		t->tombstones++;
		json_array_append_new(t->users, json_string(PQgetvalue(r, i, 0)));
	}
	PQclear(r);
	return 0;
}

static int from_copy(const char *path, PGconn *c, long sid, struct tomb *t)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		log_event(LOG_ERROR, "cannot open the tombstone copy", json_pack("{s:s}", "path", path));
		return -2;
	}
	jsonl_reader *rd = jsonl_reader_new(f, JSONL_DEFAULT_MAX_LINE);
	json_t *o;
	char err[256];
	enum jsonl_status st;
	int rc = 0;
	while (rc == 0 && (st = jsonl_read(rd, &o, err, sizeof err)) != JSONL_EOF) {
		if (st != JSONL_OK) {
			log_event(LOG_WARN, "skipping a bad line of the tombstone copy", json_pack("{s:s}", "error", err));
			continue;
		}
		json_t *s = json_object_get(o, "shard_id");
		if (sid < 0 || !json_is_integer(s) || json_integer_value(s) == sid) {
			const char *type = shard_jstr(o, "type");
			if (type && !strcmp(type, "forget")) {
				rc = add_forget(c, t, shard_jstr(o, "conversation_id"), shard_jstr(o, "message_id"),
						json_is_true(json_object_get(o, "forget_description")));
			} else if (type && !strcmp(type, "user") && shard_jstr(o, "user_id") && shard_uuid_valid(shard_jstr(o, "user_id"))) {
				t->tombstones++;
				json_array_append_new(t->users, json_string(shard_jstr(o, "user_id")));
			} else {
				rc = add_message(c, t, shard_jstr(o, "conversation_id"), shard_jstr(o, "message_id"),
						 shard_jstr(o, "deleted_at"));
			}
		}
		json_decref(o);
	}
	jsonl_reader_free(rd);
	fclose(f);
	return rc;
}

static const char usage[] =
	"unde-shard apply-deletions --shard N [--url URL] [--from-copy FILE]\n"
	"Re-apply the tombstone registry (or its copy) to shard N after a restore.\n";

int shard_cmd_apply_deletions(int argc, char **argv)
{
	const char *copy = NULL;
	const struct filter_option o[] = {
		{ "from-copy", 0, "FILE", "read the tombstones from this copy file (TOMBSTONE_COPY_FILE),\n"
					  "                       not production's registries",
		  .string = &copy },
		{ 0 } };
	struct shard_ctx x;
	sctx_init(&x);
	struct admin_opts a = { .name = "unde-shard apply-deletions", .usage = usage, .options = o,
				.x = &x };
	int rc = admin_options(&a, argc, argv);
	if (rc >= 0)
		return rc;
	if (optind != argc || (x.shard < 0 && !x.url))
		return admin_usage_error(usage, "apply-deletions needs --shard N (or --url URL)");
	if ((rc = admin_load_env(a.env_file)))
		return rc;
	struct shard_err e;
	PGconn *sc = sctx_shard(&x, x.shard >= 0 ? x.shard : 0, &e);
	PGconn *p = NULL;
	if (sc && !copy)
		p = sctx_production(&x, 1, &e);
	if (!sc || (!copy && !p)) {
		log_event(LOG_ERROR, e.msg, json_pack("{s:s}", "code", e.code));
		sctx_close(&x);
		return e.status;
	}
	struct tomb t = { .conv = json_array(), .msg = json_array(), .at = json_array(),
			  .users = json_array(), .forgets = json_array() };
	rc = copy ? from_copy(copy, sc, x.shard, &t) : from_registry(p, sc, x.shard, &t);
	if (rc == 0)
		rc = apply_forgets(sc, &t);
	if (rc == 0)
		rc = apply_batch(sc, &t);
	if (rc == 0)
		rc = apply_users(sc, &t);
	if (rc == 0)
		shard_print(json_pack("{s:o, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "shard_id",
				      x.shard >= 0 ? json_integer(x.shard) : json_null(),
				      "source", copy ? "copy" : "registry", "tombstones",
				      (json_int_t)t.tombstones, "messages_erased", (json_int_t)t.erased,
				      "knowledge_deleted", (json_int_t)t.knowledge, "users_erased",
				      (json_int_t)t.users_erased, "forgets", (json_int_t)t.forget_rows,
				      "messages_forgotten", (json_int_t)t.forgotten,
				      "knowledge_deactivated", (json_int_t)t.deactivated));
	json_decref(t.conv);
	json_decref(t.msg);
	json_decref(t.at);
	json_decref(t.users);
	json_decref(t.forgets);
	int lost = pg_connection_lost(sc);
	sctx_close(&x);
	if (rc == -2)
		return EX_NOINPUT;
	return rc ? (lost ? EX_UNAVAILABLE : EX_SOFTWARE) : 0;
}
