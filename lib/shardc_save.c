/* shardc_save.c — writing chat history: saving a turn (idempotent by the
 * client's message UUIDs), the inserts that verify-and-replay
 * (shardc_replay.c) shares, following a failover. The rows come from
 * shardc_rows.c. Writers take the route lock and end it. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>

#include "log.h"
#include "pg.h"
#include "shardc.h"
#include "shardc_write.h"
#include "util.h"

static const char insert_sql[] =
	"WITH ins AS ("
	" INSERT INTO messages (id, conversation_id, role, content, embedding, is_embeddable,"
	"  memory_type, memory_confidence, memory_snippet, response_description, reply_to_id,"
	"  media_urls, mood_frame, input_type, duration_ms, model_used, created_at, needs_enrichment,"
	"  embedding_model)"
	" SELECT m.id, $1::uuid, m.role, m.content, (m.embedding::text)::vector,"
	"  COALESCE(m.is_embeddable, false), COALESCE(m.memory_type, 'general'),"
	"  COALESCE(m.memory_confidence, 0.5), m.memory_snippet, m.response_description,"
	"  m.reply_to_id, m.media_urls, m.mood_frame, m.input_type, m.duration_ms, m.model_used,"
	"  COALESCE(m.created_at, now()), $3::boolean, m.embedding_model"
	" FROM jsonb_to_recordset($2::jsonb) AS m(id uuid, role text, content text, embedding jsonb,"
	"  is_embeddable boolean, memory_type text, memory_confidence float8, memory_snippet text,"
	"  response_description text, reply_to_id uuid, media_urls jsonb, mood_frame jsonb,"
	"  input_type text, duration_ms integer, model_used text, created_at timestamptz,"
	"  embedding_model text)"
	" ON CONFLICT DO NOTHING RETURNING id),"
	" upd AS (UPDATE conversations SET message_count = message_count + (SELECT count(*) FROM ins),"
	"  updated_at = now() WHERE id = $1::uuid AND EXISTS (SELECT 1 FROM ins))"
	"SELECT id::text FROM ins";

/* A client's created_at may run ahead of the shard's clock by at most
 * SHARD_CLOCK_SKEW (a phone's clock is a few seconds off, not days): a
 * message "from the future" would get a recency boost far above §14's
 * 1.0–1.3 (15.8x at 200 days ahead) and win every search until its date
 * passed. Later than that is refused (invalid_field, naming the message);
 * within the skew the row is stored as sent and search counts its age as
 * zero. Judged by the database's clock, the one search uses. */
#define SHARD_CLOCK_SKEW "5 minutes"

/* The failure of a query that read the batch's timestamps: a 22xxx
 * (a created_at that is not a timestamp) is the caller's, anything else
 * the database's. Returns -1. */
static int times_query_failed(struct shard_err *err, PGconn *c, const char *what)
{
	if (!strncmp(pg_last_sqlstate(), "22", 2))
		return shard_err_set(err, EX_DATAERR, "invalid_field", "a message's created_at is not a timestamp");
	return shard_err_query(err, c, what);
}

/* The refusal of messages[ord].created_at t, later than the skew allows. */
static int refuse_future_row(struct shard_err *err, const char *ord, const char *t)
{
	return shard_err_set(err, EX_DATAERR, "invalid_field",
			     "messages[%s].created_at %s is in the future (more than " SHARD_CLOCK_SKEW
			     " ahead of the shard's clock)", ord, t);
}

/* §13 reply_to_id for the user messages that came without one: the
 * last assistant artifact (a message with a response_description) of
 * the 10 minutes before the message, stored or earlier in this batch;
 * none when the last two such artifacts were sent less than 60 s apart
 * (ambiguous: the LLM asks). One query gives the batch's timestamps as
 * the database reads them (a missing created_at is now(), as the INSERT
 * will store it), the first of them too far in the future (refused, as
 * refuse_future does: the same round trip does both, so the rules cost
 * a save no extra query) and the stored artifacts of the window. A batch
 * that sends no created_at at all (a live turn: every row is now()) asks
 * the plain window query instead: nothing to parse or refuse, and half
 * the backend's parse and plan time (bench/shard/README.md, issue 13).
 * 1 when no row needed it (nothing checked), 0, or -1. */
#define REPLY_WINDOW_S 600.0
#define REPLY_AMBIGUOUS_S 60.0
static int assign_reply_to(struct shard_err *err, PGconn *c, const char *conv, json_t *rows)
{
	size_t i, n = json_array_size(rows);
	json_t *row;
	int needed = 0, timed = 0;
	json_array_foreach(rows, i, row)
	{
		needed |= !strcmp(shard_jstr(row, "role"), "user") && !json_object_get(row, "reply_to_id");
		timed |= shard_jstr(row, "created_at") != NULL;
	}
	if (!needed)
		return 1;
	PGresult *r;
	/* columns of a stored artifact's row: epoch, id; kind 1 rows only when timed */
	int col_t = 0, col_id = 1;
	if (!timed) {
		const char *pp[] = { conv };
		r = pg_query(c,
			     "SELECT extract(epoch FROM created_at)::float8, id::text, extract(epoch FROM now())::float8"
			     " FROM messages WHERE conversation_id = $1::uuid AND role = 'assistant'"
			     " AND response_description IS NOT NULL AND deleted_at IS NULL"
			     " AND created_at >= now() - interval '10 minutes' AND created_at <= now()",
			     1, pp);
		if (!r)
			return shard_err_query(err, c, "cannot read the recent artifacts");
	} else {
		json_t *ts = json_array();
		json_array_foreach(rows, i, row)
		{
			const char *t = shard_jstr(row, "created_at");
			json_array_append_new(ts, json_string(t ? t : ""));
		}
		char *js = json_dumps(ts, JSON_COMPACT);
		json_decref(ts);
		const char *pp[] = { conv, js };
		r = pg_query(c,
			     "WITH b AS (SELECT ord, t, CASE WHEN t = '' THEN now() ELSE t::timestamptz END AS at"
			     "  FROM jsonb_array_elements_text($2::jsonb) WITH ORDINALITY AS e(t, ord))"
			     " (SELECT 2, ord::int - 1, NULL::float8, t FROM b WHERE t <> ''"
			     "  AND at > now() + interval '" SHARD_CLOCK_SKEW "' ORDER BY ord LIMIT 1)"
			     " UNION ALL SELECT 0, ord::int - 1, extract(epoch FROM at)::float8, NULL FROM b"
			     " UNION ALL SELECT 1, 0, extract(epoch FROM created_at)::float8, id::text"
			     "  FROM messages WHERE conversation_id = $1::uuid AND role = 'assistant'"
			     "  AND response_description IS NOT NULL AND deleted_at IS NULL"
			     "  AND created_at >= (SELECT min(at) FROM b) - interval '10 minutes'"
			     "  AND created_at <= (SELECT max(at) FROM b)",
			     2, pp);
		free(js);
		if (!r)
			return times_query_failed(err, c, "cannot read the recent artifacts");
		for (int k = 0; k < PQntuples(r); k++)
			if (PQgetvalue(r, k, 0)[0] == '2') {
				int rc = refuse_future_row(err, PQgetvalue(r, k, 1), PQgetvalue(r, k, 3));
				PQclear(r);
				return rc;
			}
		col_t = 2, col_id = 3;
	}
	/* at[i]: row i's time; art_t/art_id: the stored artifacts of the window */
	int nr = PQntuples(r), na = 0;
	double *at = xcalloc(n ? n : 1, sizeof *at), *art_t = xcalloc(nr ? nr : 1, sizeof *art_t);
	const char **art_id = xcalloc(nr ? nr : 1, sizeof *art_id);
	for (int k = 0; k < nr; k++) {
		if (!timed) { /* every row is the statement's now() */
			for (i = 0; i < n; i++)
				at[i] = strtod(PQgetvalue(r, k, 2), NULL);
		} else if (PQgetvalue(r, k, 0)[0] == '0') {
			long ord = shard_pg_long(r, k, 1, -1);
			if (ord >= 0 && (size_t)ord < n)
				at[ord] = strtod(PQgetvalue(r, k, 2), NULL);
			continue;
		} else if (PQgetvalue(r, k, 0)[0] != '1') {
			continue;
		}
		art_t[na] = strtod(PQgetvalue(r, k, col_t), NULL);
		art_id[na++] = PQgetvalue(r, k, col_id);
	}
	json_array_foreach(rows, i, row)
	{
		if (strcmp(shard_jstr(row, "role"), "user") != 0 || json_object_get(row, "reply_to_id"))
			continue;
		/* the two latest artifacts at or before this message, in the window */
		double t1 = -1, t2 = -1;
		const char *id1 = NULL;
		for (int k = 0; k < na; k++) {
			double t = art_t[k];
			if (t > at[i] || t < at[i] - REPLY_WINDOW_S)
				continue;
			if (t > t1) {
				t2 = t1, t1 = t, id1 = art_id[k];
			} else if (t > t2) {
				t2 = t;
			}
		}
		for (size_t j = 0; j < i; j++) {
			json_t *a = json_array_get(rows, j);
			if (!json_object_get(a, "response_description") || at[j] > at[i] ||
			    at[j] < at[i] - REPLY_WINDOW_S)
				continue;
			int stored = 0; /* a replayed artifact already counted from the table */
			for (int k = 0; k < na && !stored; k++)
				stored = !strcasecmp(art_id[k], shard_jstr(a, "id"));
			if (stored)
				continue;
			if (at[j] >= t1) {
				t2 = t1, t1 = at[j], id1 = shard_jstr(a, "id");
			} else if (at[j] > t2) {
				t2 = at[j];
			}
		}
		if (id1 && !(t2 >= 0 && t1 - t2 < REPLY_AMBIGUOUS_S))
			json_object_set_new(row, "reply_to_id", json_string(id1));
	}
	free(at);
	free(art_t);
	free(art_id);
	PQclear(r);
	return 0;
}

/* The future check alone, for a batch that needs no reply_to_id (see
 * SHARD_CLOCK_SKEW). 0, or -1. */
static int refuse_future(struct shard_err *err, PGconn *c, json_t *rows)
{
	char *js = json_dumps(rows, JSON_COMPACT);
	const char *pp[] = { js };
	PGresult *r = pg_query(c,
			       "SELECT ord::int - 1, e.m->>'created_at' FROM jsonb_array_elements($1::jsonb)"
			       " WITH ORDINALITY AS e(m, ord) WHERE e.m ? 'created_at'"
			       " AND (e.m->>'created_at')::timestamptz > now() + interval '" SHARD_CLOCK_SKEW "'"
			       " ORDER BY ord LIMIT 1",
			       1, pp);
	free(js);
	if (!r)
		return times_query_failed(err, c, "cannot check the timestamps");
	int rc = PQntuples(r) ? refuse_future_row(err, PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1)) : 0;
	PQclear(r);
	return rc;
}

/* Insert rows (a JSON array of message_row objects) into conversation
 * conv; fill inserted/existing with the ids. Inside the caller's
 * transaction. Returns 0 or the filter failure. */
int shard_insert_rows(struct shard_err *err, PGconn *c, const char *conv, json_t *rows,
		      int enrich, json_t *inserted, json_t *existing)
{
	int rc = assign_reply_to(err, c, conv, rows);
	if (rc < 0 || (rc == 1 && refuse_future(err, c, rows) != 0))
		return -1;
	char *js = json_dumps(rows, JSON_COMPACT);
	const char *pp[] = { conv, js, enrich ? "true" : "false" };
	PGresult *r = pg_query(c, insert_sql, 3, pp);
	free(js);
	if (!r)
		return shard_err_query(err, c, "cannot store the messages");
	size_t i;
	json_t *row;
	json_array_foreach(rows, i, row)
	{
		const char *id = shard_jstr(row, "id");
		int found = 0;
		for (int k = 0; k < PQntuples(r) && !found; k++)
			found = !strcasecmp(PQgetvalue(r, k, 0), id);
		json_t *dest = found ? inserted : existing;
		/* a message repeated inside one batch is listed once */
		int dup = 0;
		size_t j;
		json_t *e;
		json_array_foreach(inserted, j, e) dup |= !strcasecmp(json_string_value(e), id);
		json_array_foreach(existing, j, e) dup |= !strcasecmp(json_string_value(e), id);
		if (!dup)
			json_array_append_new(dest, json_string(id));
	}
	PQclear(r);
	return 0;
}

/* The user's one conversation (§14: UNIQUE(user_id)), created on first
 * use with the client's id when it sent one. conv gets its id. */
int shard_conversation_for(struct shard_err *err, PGconn *c, const char *user_id,
			   const char *want, char conv[37])
{
	const char *pp[] = { user_id, want };
	PGresult *r = pg_query(c,
			       "WITH ins AS (INSERT INTO conversations (id, user_id)"
			       " VALUES (COALESCE($2::uuid, gen_random_uuid()), $1::uuid)"
			       " ON CONFLICT (user_id) DO NOTHING RETURNING id)"
			       " SELECT id::text FROM ins UNION ALL"
			       " SELECT id::text FROM conversations WHERE user_id = $1::uuid LIMIT 1",
			       2, pp);
	if (!r) {
		if (!strcmp(pg_last_sqlstate(), "23505"))
			return shard_err_set(err, EX_DATAERR, "conversation_mismatch",
					   "conversation %s belongs to another user", want);
		return shard_err_query(err, c, "cannot find the conversation");
	}
	if (PQntuples(r) != 1) {
		PQclear(r);
		return shard_err_set(err, EX_TEMPFAIL, "conflict", "conversation created concurrently; retry");
	}
	snprintf(conv, 37, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	if (want && strcasecmp(want, conv) != 0)
		return shard_err_set(err, EX_DATAERR, "conversation_mismatch",
				   "user %s's conversation is %s, not %s", user_id, conv, want);
	return 0;
}

/* Drop from rows the messages tombstoned in production's
 * deleted_messages_registry (erased), listing their ids in erased: a
 * client that replays a turn it never heard was erased must not bring it
 * back. Asked on the writer's production connection; without production
 * (single-shard mode) there is no registry to ask. 0, or the filter
 * failure. */
int shard_drop_erased(struct shard_err *err, struct shard_ctx *x, json_t *rows, json_t *erased)
{
	PGconn *p = x->holding ? x->hold : x->prod;
	if (!p || !json_array_size(rows))
		return 0;
	json_t *ids = json_array();
	size_t i;
	json_t *row;
	json_array_foreach(rows, i, row) json_array_append(ids, json_object_get(row, "id"));
	char *js = json_dumps(ids, JSON_COMPACT);
	json_decref(ids);
	const char *pp[] = { js };
	PGresult *r = pg_query(p,
			       "SELECT message_id::text FROM deleted_messages_registry"
			       " WHERE message_id IN (SELECT jsonb_array_elements_text($1::jsonb)::uuid)",
			       1, pp);
	free(js);
	if (!r)
		return shard_err_set(err, pg_connection_lost(p) ? EX_UNAVAILABLE : EX_SOFTWARE,
				   "registry_failed", "cannot read the tombstone registry: %s",
				   pg_last_error(p));
	for (i = json_array_size(rows); i-- > 0;) {
		const char *id = shard_jstr(json_array_get(rows, i), "id");
		for (int k = 0; k < PQntuples(r); k++)
			if (!strcasecmp(PQgetvalue(r, k, 0), id)) {
				json_array_insert_new(erased, 0, json_string(id));
				json_array_remove(rows, i);
				break;
			}
	}
	PQclear(r);
	return 0;
}

/* One attempt of shard_save_turn; *reached gets the shard id once a
 * connection to it was had (-1 before), so the caller knows whether a
 * shard_unavailable came from a write that lost its primary. */
static int save_turn_once(struct shard_ctx *x, json_t *rec, struct shard_err *err, long *reached)
{
	*reached = -1;
	const char *user = shard_jstr(rec, "user_id"), *want = shard_jstr(rec, "conversation_id");
	const json_t *msgs = json_object_get(rec, "messages");
	if (!user || !shard_uuid_valid(user))
		return shard_err_set(err, EX_DATAERR, "invalid_field", "user_id must be a UUID");
	if (json_object_get(rec, "conversation_id") && !json_is_null(json_object_get(rec, "conversation_id")) &&
	    (!want || !shard_uuid_valid(want)))
		return shard_err_set(err, EX_DATAERR, "invalid_field", "conversation_id must be a UUID");
	if (!json_is_array(msgs) || json_array_size(msgs) == 0 ||
	    json_array_size(msgs) > SHARD_SAVE_MAX_MESSAGES)
		return shard_err_set(err, EX_DATAERR, "invalid_field",
				   "messages must be an array of 1 to %d messages", SHARD_SAVE_MAX_MESSAGES);
	int rc = 0;
	json_t *rows = shard_rows_of(err, msgs, 0);
	if (!rows)
		return -1;
	long sid;
	PGconn *c = sctx_for_user_write(x, user, 1, &sid, err);
	if (!c) {
		json_decref(rows);
		return -1;
	}
	*reached = sid;
	char conv[37];
	json_t *ins = json_array(), *old = json_array(), *erased = json_array();
	rc = shard_drop_erased(err, x, rows, erased);
	if (!rc && pg_begin(c) != 0)
		rc = shard_err_query(err, c, "cannot begin");
	else if (!rc && (rc = shard_conversation_for(err, c, user, want, conv)) == 0 &&
		 (rc = shard_insert_rows(err, c, conv, rows, 0, ins, old)) == 0 && pg_commit(c) != 0)
		rc = shard_err_query(err, c, "cannot commit");
	if (rc) {
		pg_rollback(c);
		json_decref(ins);
		json_decref(old);
		json_decref(erased);
	} else {
		json_object_set_new(rec, "conversation_id", json_string(conv));
		json_object_set_new(rec, "saved", json_pack("{s:i, s:o, s:o, s:o}", "shard_id", (int)sid,
							    "inserted", ins, "existing", old,
							    "erased", erased));
	}
	json_decref(rows);
	sctx_write_done(x);
	return rc ? -1 : 0;
}

/* Follow a failover (§14): a write that lost its connection to the shard's
 * primary (it crashed, Patroni demoted it) is retried on the new primary
 * once sctx_shard_reconnect has one, at most 3 times. Safe because both
 * writes are idempotent by the client's message UUIDs: what the old
 * primary committed and the new one has is "existing", not a duplicate. */
int shard_with_failover(shard_write_once *once, struct shard_ctx *x, json_t *rec,
			struct shard_err *err, const char *what)
{
	for (int attempt = 1;; attempt++) {
		long sid;
		int rc = once(x, rec, err, &sid);
		if (rc == 0 || attempt > 3 || sid < 0 || err->status != EX_UNAVAILABLE ||
		    strcmp(err->code, "shard_unavailable") != 0)
			return rc;
		log_event(LOG_WARN, "shard write lost its primary; reconnecting",
			  json_pack("{s:s, s:i, s:i, s:s}", "op", what, "shard_id", (int)sid, "attempt",
				    attempt, "error", err->msg));
		if (sctx_shard_reconnect(x, sid) != 0)
			return rc;
	}
}

int shard_save_turn(struct shard_ctx *x, json_t *rec, struct shard_err *err)
{
	return shard_with_failover(save_turn_once, x, rec, err, "save");
}
