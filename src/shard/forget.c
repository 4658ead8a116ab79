/* forget.c — §14 "Soft / Hard Forget" and §21's post-restore
 * apply_deletions: `forget` (soft), `erase` (GDPR hard delete, one message
 * or a whole user) and `apply-deletions`.
 *
 * erase keeps the spec's order of trust: the tombstone is written to
 * production's registry first, then copied (tombcopy.c: object storage, or
 * a local file) and marked exported, and only then is the shard
 * changed. A crash between steps leaves a tombstone whose data is still
 * there — which a retry or apply-deletions completes — never erased data
 * without a tombstone, which a restore would bring back. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sysexits.h>
#include <unistd.h>

#include "conf.h"
#include "filter.h"
#include "jsonl.h"
#include "log.h"
#include "pg.h"
#include "shard.h"
#include "util.h"

struct fg_state {
	struct shard_ctx x;
	const char *copy_file; /* --copy-file */
	struct tomb_copy copy;
	const char *user; /* erase --user */
};

/* §14 Soft Forget, plus §21: response_description only on an explicit
 * "forget this look" (forget_description: true). Scoped to the
 * conversation's own user's knowledge. */
static const char forget_sql[] =
	"WITH m AS (UPDATE messages SET is_forgotten = TRUE, embedding = NULL, memory_snippet = NULL,"
	"  response_description = CASE WHEN $3::boolean THEN NULL ELSE response_description END"
	"  WHERE conversation_id = $1 AND id = ANY($2::uuid[]) RETURNING id),"
	" k AS (UPDATE user_knowledge SET is_active = FALSE, updated_at = now()"
	"  WHERE source_message_id = ANY($2::uuid[]) AND is_active"
	"  AND user_id = (SELECT user_id FROM conversations WHERE id = $1) RETURNING id)"
	"SELECT (SELECT count(*) FROM m), (SELECT count(*) FROM k)";

/* §14 Hard Delete on the shard; "nullify all" (§21) includes the mood
 * frame and media links. tsv is generated: it follows content. */
static const char erase_sql[] =
	"WITH k AS (DELETE FROM user_knowledge WHERE source_message_id = ANY($2::uuid[])"
	"  AND user_id = (SELECT user_id FROM conversations WHERE id = $1) RETURNING id),"
	" m AS (UPDATE messages SET content = '[deleted]', embedding = NULL, memory_snippet = NULL,"
	"  memory_confidence = NULL, response_description = NULL, reply_to_id = NULL,"
	"  media_urls = NULL, mood_frame = NULL, is_forgotten = TRUE, needs_enrichment = FALSE,"
	"  deleted_at = COALESCE($3::timestamptz, now())"
	"  WHERE conversation_id = $1 AND id = ANY($2::uuid[])"
	"  AND (deleted_at IS NULL OR content <> '[deleted]') RETURNING id, tableoid),"
	" p AS (INSERT INTO erasure_pending (relation)"
	"  SELECT DISTINCT tableoid::regclass::text FROM m"
	"  UNION SELECT 'user_knowledge' WHERE EXISTS (SELECT 1 FROM k)"
	"  ON CONFLICT (relation) DO UPDATE SET since = clock_timestamp())"
	"SELECT (SELECT count(*) FROM m), (SELECT count(*) FROM k)";

/* The ids of a record: message_id, or message_ids[]. */
static json_t *record_ids(struct filter_run *run, const json_t *rec, int *rc)
{
	json_t *ids = json_array();
	const char *one = shard_jstr(rec, "message_id");
	const json_t *many = json_object_get(rec, "message_ids");
	if (one)
		json_array_append_new(ids, json_string(one));
	if (json_is_array(many)) {
		size_t i;
		json_t *v;
		json_array_foreach(many, i, v) json_array_append(ids, v);
	}
	size_t i;
	json_t *v;
	json_array_foreach(ids, i, v) if (!json_is_string(v) || !shard_uuid_valid(json_string_value(v)))
	{
		json_decref(ids);
		*rc = filter_fail(run, EX_DATAERR, "invalid_field", "message ids must be UUIDs");
		return NULL;
	}
	if (!json_array_size(ids) || json_array_size(ids) > 10000) {
		json_decref(ids);
		*rc = filter_fail(run, EX_DATAERR, "invalid_field",
				  "message_id or message_ids (1 to 10000) is required");
		return NULL;
	}
	return ids;
}

/* Postgres array literal of UUIDs (validated, so no quoting needed). */
static char *uuid_array(const json_t *ids)
{
	struct buf b = { 0 };
	buf_append(&b, "{", 1);
	size_t i;
	json_t *v;
	json_array_foreach(ids, i, v)
	{
		if (i)
			buf_append(&b, ",", 1);
		buf_append(&b, json_string_value(v), strlen(json_string_value(v)));
	}
	buf_append(&b, "}", 2);
	return b.data;
}

/* A record that names its user may act only on that user's conversation
 * (as save refuses it with conversation_mismatch): user_id routes the
 * record, and without this check a user's id with another user's
 * conversation and message ids would forget or erase the other user's data
 * on a shared shard. Message ids are always matched inside the
 * conversation, so the conversation is the one thing to check. 0, or the
 * record's failure (nothing changed). */
static int check_owner(struct filter_run *run, PGconn *c, const char *conv, const char *user)
{
	const char *pp[] = { conv };
	PGresult *r = pg_query(c, "SELECT user_id::text FROM conversations WHERE id = $1", 1, pp);
	if (!r)
		return sctx_query_fail(run, c, "cannot read the conversation");
	int rc = 0;
	if (PQntuples(r) == 0)
		rc = filter_fail(run, EX_DATAERR, "unknown_conversation",
				 "conversation %s is not user %s's (no such conversation on its shard)", conv, user);
	else if (strcasecmp(PQgetvalue(r, 0, 0), user) != 0)
		rc = filter_fail(run, EX_DATAERR, "conversation_mismatch",
				 "conversation %s belongs to another user, not %s", conv, user);
	PQclear(r);
	return rc;
}

/* What forget and erase both start from: the record's message ids, then
 * the shard of its conversation (with the writer's route lock). 0 with
 * *ids set for the caller to free, else the record's failure (*ids NULL). */
static int locate(struct fg_state *s, struct filter_run *run, const json_t *rec, json_t **ids,
		  PGconn **c, long *sid)
{
	int rc = 0;
	if (!(*ids = record_ids(run, rec, &rc)))
		return rc;
	const char *conv = shard_jstr(rec, "conversation_id"), *user = shard_jstr(rec, "user_id");
	struct shard_err e;
	if (!conv || !shard_uuid_valid(conv))
		rc = filter_fail(run, EX_DATAERR, "invalid_field", "conversation_id must be a UUID");
	else if (user && !shard_uuid_valid(user))
		rc = filter_fail(run, EX_DATAERR, "invalid_field", "user_id must be a UUID");
	else if (!(*c = sctx_for_conversation(&s->x, conv, user, 1, sid, &e)))
		rc = sctx_fail(run, &e);
	else if (user)
		rc = check_owner(run, *c, conv, user);
	if (rc) {
		json_decref(*ids);
		*ids = NULL;
	}
	return rc;
}

/* The forget registry (production's forgotten_messages_registry, then its
 * copy when TOMBSTONE_COPY_FILE or --copy-file names one), written before
 * the shard is changed so that apply-deletions re-applies the forget to a
 * shard restored from an older backup. Without production (single-shard
 * mode) there is no registry: 0 and nothing written. 0, or the record's
 * failure. */
static int forget_register(struct fg_state *s, struct filter_run *run, const char *conv,
			   const char *arr, long sid, const char *fd)
{
	struct shard_err e;
	PGconn *p = sctx_production(&s->x, 0, &e);
	if (!p)
		return s->x.prod_missing ? 0 : sctx_fail(run, &e);
	char sids[24];
	snprintf(sids, sizeof sids, "%ld", sid);
	const char *pp[] = { conv, arr, sids, fd };
	if (pg_exec(p,
		    "INSERT INTO forgotten_messages_registry AS r"
		    " (conversation_id, message_id, shard_id, forget_description)"
		    " SELECT $1, unnest($2::uuid[]), $3, $4::boolean"
		    " ON CONFLICT (conversation_id, message_id) DO UPDATE"
		    " SET forget_description = TRUE, exported_at = NULL"
		    " WHERE EXCLUDED.forget_description AND NOT r.forget_description",
		    4, pp) != 0)
		return filter_fail(run, pg_connection_lost(p) ? EX_UNAVAILABLE : EX_SOFTWARE,
				   "registry_failed", "cannot write the forget registry: %s",
				   pg_last_error(p));
	int cr = tomb_copy_pending(&s->copy, p, "forgotten_messages_registry");
	if (cr != 0)
		return filter_fail(run, cr == -2 ? EX_UNAVAILABLE : EX_SOFTWARE, "copy_failed",
				   "the forget is in the registry but its copy (%s) failed; retry",
				   s->copy.where);
	return 0;
}

static int forget_record(void *state, struct filter_run *run, json_t *rec)
{
	struct fg_state *s = state;
	json_t *ids;
	PGconn *c;
	long sid;
	int rc = locate(s, run, rec, &ids, &c, &sid);
	if (rc)
		return rc;
	const json_t *fd = json_object_get(rec, "forget_description");
	char *arr = uuid_array(ids);
	const char *pp[] = { shard_jstr(rec, "conversation_id"), arr, json_is_true(fd) ? "true" : "false" };
	if ((rc = forget_register(s, run, pp[0], arr, sid, pp[2])) != 0) {
		free(arr);
		json_decref(ids);
		return rc;
	}
	PGresult *r = pg_query(c, forget_sql, 3, pp);
	free(arr);
	if (!r)
		rc = sctx_query_fail(run, c, "cannot forget");
	else
		json_object_set_new(rec, "forgotten",
				    json_pack("{s:i, s:I, s:I}", "shard_id", (int)sid, "messages",
					      (json_int_t)shard_pg_long(r, 0, 0, 0), "knowledge_deactivated",
					      (json_int_t)shard_pg_long(r, 0, 1, 0)));
	PQclear(r);
	json_decref(ids);
	return rc;
}

static int erase_record(void *state, struct filter_run *run, json_t *rec)
{
	struct fg_state *s = state;
	json_t *ids;
	PGconn *c, *p;
	long sid;
	struct shard_err e;
	int rc = locate(s, run, rec, &ids, &c, &sid);
	if (rc)
		return rc;
	if (!(p = sctx_production(&s->x, 1, &e))) {
		json_decref(ids);
		return sctx_fail(run, &e);
	}
	const char *conv = shard_jstr(rec, "conversation_id");
	char *arr = uuid_array(ids), sids[24];
	snprintf(sids, sizeof sids, "%ld", sid);
	/* 1. the registry (production) */
	const char *pp[] = { conv, arr, sids };
	PGresult *r = pg_query(p,
			       "WITH ins AS (INSERT INTO deleted_messages_registry"
			       " (conversation_id, message_id, shard_id)"
			       " SELECT $1, unnest($2::uuid[]), $3 ON CONFLICT DO NOTHING)"
			       " SELECT min(deleted_at)::text FROM deleted_messages_registry"
			       " WHERE conversation_id = $1 AND message_id = ANY($2::uuid[])",
			       3, pp);
	char deleted_at[64] = "";
	if (!r) {
		rc = filter_fail(run, pg_connection_lost(p) ? EX_UNAVAILABLE : EX_SOFTWARE,
				 "registry_failed", "cannot write the tombstone registry: %s",
				 pg_last_error(p));
		goto out;
	}
	if (!PQgetisnull(r, 0, 0))
		snprintf(deleted_at, sizeof deleted_at, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	/* 2. the copy */
	int cr = tomb_copy_pending(&s->copy, p, "deleted_messages_registry");
	if (cr != 0) {
		rc = filter_fail(run, cr == -2 ? EX_UNAVAILABLE : EX_SOFTWARE, "copy_failed",
				 "the tombstone is in the registry but its copy (%s) failed; retry",
				 s->copy.where);
		goto out;
	}
	/* 3. the shard */
	const char *sp[] = { conv, arr, deleted_at[0] ? deleted_at : NULL };
	r = pg_query(c, erase_sql, 3, sp);
	if (!r) {
		rc = sctx_query_fail(run, c, "tombstoned, but cannot erase on the shard (retry or apply-deletions)");
		goto out;
	}
	json_object_set_new(rec, "erased",
			    json_pack("{s:i, s:I, s:I, s:s, s:s}", "shard_id", (int)sid, "messages",
				      (json_int_t)shard_pg_long(r, 0, 0, 0), "knowledge_deleted",
				      (json_int_t)shard_pg_long(r, 0, 1, 0), "registry", "recorded", "copy",
				      s->copy.where));
	PQclear(r);
out:
	free(arr);
	json_decref(ids);
	return rc;
}

/* Every row of a user on one shard, the tables of §14 (chat history, user
 * knowledge and keys, persona state) and unde-llm's per-answer memory
 * counts (0025), which name the user's messages. */
int shard_delete_user_rows(PGconn *c, const char *user_id, long *messages)
{
	static const char *const stmts[] = {
		"DELETE FROM user_knowledge WHERE user_id = $1",
		"DELETE FROM user_keys WHERE user_id = $1",
		"DELETE FROM relationship_stage WHERE user_id = $1",
		"DELETE FROM persona_temp_blocks WHERE user_id = $1",
		"DELETE FROM signal_daily_deltas WHERE user_id = $1",
		"DELETE FROM persona_profiles WHERE user_id = $1",
		"DELETE FROM conversations WHERE user_id = $1",
		"DELETE FROM replay_rate WHERE user_id = $1",
		"DELETE FROM replay_tries WHERE user_id = $1",
		"DELETE FROM llm_answer_meta WHERE user_id = $1",
	};
	const char *pp[] = { user_id };
	/* the relations that held the user's rows wait for `compact` (0020) */
	PGresult *r = pg_query(c,
			       "WITH d AS (DELETE FROM messages WHERE conversation_id IN"
			       " (SELECT id FROM conversations WHERE user_id = $1) RETURNING tableoid),"
			       " p AS (INSERT INTO erasure_pending (relation)"
			       "  SELECT DISTINCT tableoid::regclass::text FROM d UNION SELECT unnest(ARRAY"
			       "  ['user_knowledge', 'user_keys', 'conversations', 'persona_profiles'])"
			       "  ON CONFLICT (relation) DO UPDATE SET since = clock_timestamp())"
			       " SELECT count(*) FROM d",
			       1, pp);
	if (!r)
		return -1;
	if (messages)
		*messages = shard_pg_long(r, 0, 0, 0);
	PQclear(r);
	for (size_t i = 0; i < sizeof stmts / sizeof *stmts; i++)
		if (pg_exec(c, stmts[i], 1, pp) != 0)
			return -1;
	return 0;
}

/* erase --user: the whole user, registry → copy → shard → route. */
int shard_cmd_erase_user(const char *user, struct shard_ctx *x, struct tomb_copy *copy)
{
	struct shard_err e;
	long sid = -1;
	int rc;
	PGconn *p = admin_production(x, &rc);
	if (!p)
		return rc;
	PGconn *c = sctx_for_user_write(x, user, 0, &sid, &e);
	if (!c && !(e.code && !strcmp(e.code, "unknown_user"))) {
		log_event(LOG_ERROR, e.msg, json_pack("{s:s}", "code", e.code));
		return e.status;
	}
	char sids[24];
	snprintf(sids, sizeof sids, "%ld", sid);
	const char *pp[] = { user, sid >= 0 ? sids : NULL };
	if (pg_exec(p, "INSERT INTO deleted_users_registry (user_id, shard_id) VALUES ($1, $2)"
		       " ON CONFLICT (user_id) DO NOTHING", 2, pp) != 0)
		return EX_SOFTWARE;
	if (tomb_copy_pending(copy, p, "deleted_users_registry") != 0) {
		log_event(LOG_ERROR, "the user is in the registry but its copy failed; retry",
			  json_pack("{s:s, s:s}", "user_id", user, "copy", copy->where));
		return EX_UNAVAILABLE;
	}
	long msgs = 0;
	if (c) {
		if (pg_begin(c) != 0 || shard_delete_user_rows(c, user, &msgs) != 0 || pg_commit(c) != 0) {
			pg_rollback(c);
			log_event(LOG_ERROR, "tombstoned, but the shard erase failed; retry",
				  json_pack("{s:s}", "user_id", user));
			return pg_connection_lost(c) ? EX_UNAVAILABLE : EX_SOFTWARE;
		}
	}
	pp[1] = NULL;
	sctx_write_done(x); /* the route row, share-locked since the lookup, goes now */
	if (pg_exec(p, "DELETE FROM routing_table WHERE user_id = $1", 1, pp) != 0)
		return EX_SOFTWARE;
	shard_print(json_pack("{s:s, s:i, s:I, s:s, s:s}", "user_id", user, "shard_id", (int)sid,
			      "messages_deleted", (json_int_t)msgs, "registry", "recorded", "copy",
			      copy->where));
	return 0;
}

/* forget_record with the writer's route lock (sctx_for_user_write) ended after it,
 * whatever the outcome. */
static int forget_record_then_unlock(void *state, struct filter_run *run, json_t *rec)
{
	int rc = forget_record(state, run, rec);
	sctx_write_done(&((struct fg_state *)state)->x);
	return rc;
}

/* erase_record with the writer's route lock (sctx_for_user_write) ended after it,
 * whatever the outcome. */
static int erase_record_then_unlock(void *state, struct filter_run *run, json_t *rec)
{
	int rc = erase_record(state, run, rec);
	sctx_write_done(&((struct fg_state *)state)->x);
	return rc;
}

enum { OPT_COPY = 2000, OPT_USER, OPT_FROM };

static int fg_option(void *state, int opt, const char *arg)
{
	struct fg_state *s = state;
	if (opt == OPT_COPY) {
		s->copy_file = arg;
		return 0;
	}
	if (opt == OPT_USER) {
		s->user = arg;
		return shard_uuid_valid(arg) ? 0 : -1;
	}
	return sctx_option(&s->x, opt, arg) == 1 ? 0 : -1;
}

static int erase_start(void *state, struct filter_run *run, int argc, char **argv)
{
	(void)run, (void)argc, (void)argv; /* operands: refused by max_operands */
	struct fg_state *s = state;
	/* both tombstone stores are required before anything is erased: the
	 * registry and its copy (object storage unless a file is named) */
	conf_require("PRODUCTION_DB_URL");
	int rc = tomb_copy_open(&s->copy, s->copy_file, 1);
	if (rc)
		return rc;
	if (s->user) {
		/* the whole user: no stdin */
		rc = shard_cmd_erase_user(s->user, &s->x, &s->copy);
		sctx_close(&s->x);
		tomb_copy_close(&s->copy);
		return rc ? rc : -1;
	}
	return 0;
}

/* forget's start: the copy file is optional (TOMBSTONE_COPY_FILE when
 * set), production's registry is written when PRODUCTION_DB_URL is. */
static int forget_start(void *state, struct filter_run *run, int argc, char **argv)
{
	(void)run, (void)argc, (void)argv; /* operands: refused by max_operands */
	struct fg_state *s = state;
	return tomb_copy_open(&s->copy, s->copy_file, 0);
}

static void fg_finish(void *state, struct filter_run *run)
{
	(void)run;
	sctx_close(&((struct fg_state *)state)->x);
	tomb_copy_close(&((struct fg_state *)state)->copy);
}

static const struct filter_option forget_options[] = {
	{ "copy-file", 0, "FILE", "append the forget registry's rows here (default TOMBSTONE_COPY_FILE,\n"
	  "                       else object storage when S3_ENDPOINT is set)",
	  .id = OPT_COPY },
	SCTX_OPTIONS,
	{ 0 } };

static const struct filter_option erase_options[] = {
	{ "copy-file", 0, "FILE", "append tombstones here (default TOMBSTONE_COPY_FILE; unset:\n"
	  "                       object storage, TOMBSTONE_COPY_BUCKET/TOMBSTONE_COPY_PREFIX)",
	  .id = OPT_COPY },
	{ "user", 0, "USER_ID", "erase all of this user's data (reads no input)", .id = OPT_USER },
	SCTX_OPTIONS,
	{ 0 } };

int shard_filter_forget(int argc, char **argv)
{
	static const struct filter_def def = {
		.name = "unde-shard",
		.summary = "forget: soft-forget {conversation_id, message_id | message_ids, user_id?,\n"
			   "forget_description?}: excluded from retrieval, embedding and snippet cleared,\n"
			   "knowledge extracted from them deactivated.",
		.synopsis = "forget [--copy-file FILE] [--shard N | --url URL]",
		.options = forget_options,
		.max_operands = FILTER_NO_OPERANDS,
		.on_option = fg_option,
		.on_start = forget_start,
		.on_record = forget_record_then_unlock,
		.on_finish = fg_finish,
	};
	struct fg_state s = { 0 };
	sctx_init(&s.x);
	return filter_main(&def, &s, argc, argv);
}

int shard_filter_erase(int argc, char **argv)
{
	static const struct filter_def def = {
		.name = "unde-shard",
		.summary = "erase: GDPR hard delete of {conversation_id, message_id | message_ids,\n"
			   "user_id?}; with --user U, all of U's data. Tombstoned in production and in\n"
			   "the copy file before the shard is changed.",
		.synopsis = "erase [--copy-file FILE] [--shard N | --url URL] | erase --user USER_ID",
		.options = erase_options,
		.max_operands = FILTER_NO_OPERANDS,
		.on_option = fg_option,
		.on_start = erase_start,
		.on_record = erase_record_then_unlock,
		.on_finish = fg_finish,
	};
	struct fg_state s = { 0 };
	sctx_init(&s.x);
	int rc = filter_main(&def, &s, argc, argv);
	return rc == -1 ? 0 : rc;
}
