/* store.c — the Persona Agent's state in the user's shard (§14's persona
 * tables and sql/shard/0010): reading a user's profile, stage and temp
 * blocks for POST /persona and GET /persona/profile; buffering feedback
 * idempotently; cleanup. The flush lives in flush.c.
 *
 * Every statement is parameterised and every transaction is self-contained
 * (PgBouncer, transaction mode). Times are passed in from the agent's clock
 * (UNDE_NOW), never taken from the server's NOW(), so tests control them. */
#include "config.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "conf.h"
#include "log.h"
#include "pg.h"
#include "persona.h"
#include "shardc.h"

/* Fill err and return -1. */
int store_fail(struct persona_err *err, const char *code, const char *fmt, ...)
{
	va_list ap;
	snprintf(err->code, sizeof err->code, "%s", code);
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof err->message, fmt, ap);
	va_end(ap);
	return -1;
}

int store_db_fail(PGconn *db, struct persona_err *err)
{
	return store_fail(err, pg_connection_lost(db) ? "database_unavailable" : "database_error", "shard: %s",
			  pg_last_error(db));
}

/* A canonical UUID (8-4-4-4-12 hex digits)? */
int persona_is_uuid(const char *s)
{
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return 0;
		} else if (!isxdigit((unsigned char)s[i])) {
			return 0;
		}
	}
	return s[36] == 0;
}

/* The user's shard through the lib shard client (lib/shardc.h): --url is
 * one shard; else PRODUCTION_DB_URL's routing_table; else SHARD_0_DB_URL.
 * Connections are kept for the life of the process (one filter process
 * serves a keep-alive connection). A writer (feedback, flush) is placed on
 * a shard when new and holds the route lock until persona_shard_done(), so
 * `unde-shard move` never switches a user mid-write. NULL with err->code
 * empty when no database is configured at all: the engine then runs on the
 * request alone. */
static struct shard_ctx shards;
static int shards_ready;

PGconn *persona_shard_conn(const char *user_id, const char *url_flag, int write, struct persona_err *err)
{
	if (!shards_ready) {
		sctx_init(&shards);
		shards_ready = 1;
	}
	shards.url = url_flag;
	if (!url_flag && !conf_str("PRODUCTION_DB_URL", NULL) && !conf_str("SHARD_0_DB_URL", NULL))
		return NULL;
	if (!user_id || !persona_is_uuid(user_id)) {
		store_fail(err, "invalid_field", "user_id: expected a UUID");
		return NULL;
	}
	struct shard_err e = { 0 };
	long shard_id = -1;
	PGconn *c = write ? sctx_for_user_write(&shards, user_id, 1, &shard_id, &e)
			  : sctx_for_user(&shards, user_id, 0, &shard_id, &e);
	if (!c) {
		store_fail(err, e.code ? e.code : "database_unavailable", "%s", e.msg[0] ? e.msg : "no shard for the user");
		err->status = e.status == EX_CONFIG ? EX_UNAVAILABLE : e.status;
	}
	return c;
}

/* End a writer's route lock (after its shard transaction, on every path). */
void persona_shard_done(void)
{
	if (shards_ready)
		sctx_write_done(&shards);
}

/* A stage after the inactivity since `since` (the later of last activity
 * and the last stage change): each stage drops by one after its
 * downgrade_after_days, the next counting from there. */
int persona_stage_after_inactivity(int stage, double since, double now)
{
	while (stage > 0) {
		double d = STAGE_REQUIREMENTS[stage].downgrade_after_days * 86400.0;
		if (now - since < d)
			break;
		since += d;
		stage--;
	}
	return stage;
}

/* One round trip: the stored profile, the stage row and the active temp
 * blocks of a user. */
static PGresult *load_row(PGconn *db, const char *user_id, double now, int want_profile)
{
	char ts[40];
	snprintf(ts, sizeof ts, "%.6f", now);
	const char *p[3] = { user_id, ts, want_profile ? "t" : "f" };
	return pg_query(db,
			"SELECT CASE WHEN $3::boolean THEN (SELECT profile::text FROM persona_profiles WHERE user_id = $1) END,"
			" s.stage, s.sessions_count, s.total_exchanges, s.positive_signals_count,"
			" extract(epoch FROM greatest(s.last_active_at, s.stage_updated_at)),"
			" extract(epoch FROM s.last_active_at),"
			" (SELECT coalesce(json_agg(json_build_object('key', b.key, 'until', extract(epoch FROM b.until),"
			"   'reason', b.reason) ORDER BY b.created_at DESC), '[]')::text"
			"    FROM persona_temp_blocks b WHERE b.user_id = $1 AND b.until > to_timestamp($2::float8))"
			" FROM (SELECT 1) one LEFT JOIN relationship_stage s ON s.user_id = $1",
			3, p);
}

static void add_blocks(struct persona_ctx *c, const char *json)
{
	json_t *a = json_loads(json, 0, NULL), *b;
	size_t i;
	json_array_foreach(a, i, b) {
		if (c->nblocks >= (int)(sizeof c->blocks / sizeof c->blocks[0]))
			break;
		snprintf(c->blocks[c->nblocks].key, sizeof c->blocks[0].key, "%s",
			 json_string_value(json_object_get(b, "key")));
		c->blocks[c->nblocks++].until = json_number_value(json_object_get(b, "until"));
	}
	json_decref(a);
}

int store_load(PGconn *db, struct persona_ctx *c, const char *user_id, int want_profile, int want_stage,
	       json_t **profile_out, struct persona_err *err)
{
	if (!persona_is_uuid(user_id))
		return store_fail(err, "invalid_field", "user_id: expected a UUID");
	PGresult *r = load_row(db, user_id, c->now, want_profile);
	if (!r)
		return store_db_fail(db, err);
	if (want_profile && !PQgetisnull(r, 0, 0)) {
		json_t *p = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
		struct persona_err e2 = { 0 };
		if (json_is_object(p) && canonicalize_profile(p, c->profile, c->profile_set, c->debug, &e2) == 0) {
			c->profile_source = "shard";
			if (profile_out)
				*profile_out = json_incref(p);
		}
		json_decref(p);
	}
	if (want_stage && !PQgetisnull(r, 0, 1)) {
		int stage = atoi(PQgetvalue(r, 0, 1));
		c->stage = persona_stage_after_inactivity(stage < 0 ? 0 : stage > 3 ? 3 : stage,
							  atof(PQgetvalue(r, 0, 5)), c->now);
		c->stage_source = "shard";
	}
	add_blocks(c, PQgetvalue(r, 0, 7));
	PQclear(r);
	return 0;
}

/* Buffer one signal, once per signal_id in 72 h: the key and the buffer row
 * go in one statement, so a replay (in any process) finds the key. */
int store_feedback(PGconn *db, const json_t *rec, double now, json_t **result, struct persona_err *err)
{
	const char *uid = json_string_value(json_object_get(rec, "user_id"));
	const char *sid = json_string_value(json_object_get(rec, "signal_id"));
	const char *xid = json_string_value(json_object_get(rec, "exchange_id"));
	const char *type = json_string_value(json_object_get(rec, "signal_type"));
	json_t *data = json_object_get(rec, "signal_data");
	if (!uid || !persona_is_uuid(uid))
		return store_fail(err, "invalid_field", "user_id: expected a UUID string");
	if (!sid || !persona_is_uuid(sid))
		return store_fail(err, "invalid_field", "signal_id: expected a UUID string");
	if (!xid || !*xid || strlen(xid) > 100)
		return store_fail(err, "invalid_field", "exchange_id: expected a string of 1 to 100 characters");
	if (!type)
		return store_fail(err, "invalid_field", "signal_type: expected a string");
	if (!contract_signal(type))
		return store_fail(err, "unknown_signal_type",
				  "signal_type: \"%.60s\" is not one of the 14 signal types (see unde-persona(1), SIGNAL_EFFECTS)",
				  type);
	if (data && !json_is_null(data) && !json_is_object(data))
		return store_fail(err, "invalid_field", "signal_data: expected an object");
	char ts[40], hours[16];
	snprintf(ts, sizeof ts, "%.6f", now);
	snprintf(hours, sizeof hours, "%d", PERSONA_IDEMPOTENCY_HOURS);
	char *data_text = data && !json_is_null(data) ? json_dumps(data, JSON_COMPACT) : NULL;
	const char *p[7] = { sid, uid, ts, hours, xid, type, data_text };
	PGresult *r = pg_query(db,
			       "WITH k AS (INSERT INTO persona_signal_ids (signal_id, user_id, received_at)"
			       "  VALUES ($1, $2, to_timestamp($3::float8))"
			       "  ON CONFLICT (signal_id) DO UPDATE SET user_id = EXCLUDED.user_id, received_at = EXCLUDED.received_at"
			       "  WHERE persona_signal_ids.received_at < EXCLUDED.received_at - make_interval(hours => $4::int)"
			       "  RETURNING signal_id),"
			       " b AS (INSERT INTO persona_signal_buffer (signal_id, user_id, exchange_id, signal_type, signal_data, received_at)"
			       "  SELECT signal_id, $2, $5, $6, $7::jsonb, to_timestamp($3::float8) FROM k"
			       "  ON CONFLICT (signal_id) DO UPDATE SET exchange_id = EXCLUDED.exchange_id,"
			       "   signal_type = EXCLUDED.signal_type, signal_data = EXCLUDED.signal_data, received_at = EXCLUDED.received_at"
			       "  RETURNING 1)"
			       " SELECT (SELECT count(*) FROM k), (SELECT count(*) FROM b)",
			       7, p);
	free(data_text);
	if (!r)
		return store_db_fail(db, err);
	int fresh = atoi(PQgetvalue(r, 0, 0)) > 0;
	PQclear(r);
	*result = fresh ? json_pack("{s:b}", "buffered", 1) : json_pack("{s:b, s:b}", "buffered", 1, "duplicate", 1);
	if (fresh)
		pmetrics_add("feedback_signals", 1);
	return 0;
}

/* GET /persona/profile: {persona_profile, relationship_stage, temp_blocks}. */
int store_profile(PGconn *db, const char *user_id, double now, json_t **result, struct persona_err *err)
{
	if (!user_id || !persona_is_uuid(user_id))
		return store_fail(err, "invalid_field", "user_id: expected a UUID");
	PGresult *r = load_row(db, user_id, now, 1);
	if (!r)
		return store_db_fail(db, err);
	if (PQgetisnull(r, 0, 0) && PQgetisnull(r, 0, 1)) {
		PQclear(r);
		return store_fail(err, "unknown_user", "user_id %s: no persona profile or relationship stage on this shard",
				  user_id);
	}
	double prof[NFIELDS];
	int set[NFIELDS] = { 0 };
	for (int f = 0; f < NFIELDS; f++)
		prof[f] = CANONICAL_FIELDS[f].def;
	json_t *dbg = json_pack("{s:{}, s:{}, s:[]}", "aliased", "clamped", "unknown_fields");
	if (!PQgetisnull(r, 0, 0)) {
		json_t *p = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
		struct persona_err e2 = { 0 };
		if (json_is_object(p))
			canonicalize_profile(p, prof, set, dbg, &e2);
		json_decref(p);
	}
	json_decref(dbg);
	json_t *profile = json_object();
	for (int f = 0; f < NFIELDS; f++)
		json_object_set_new(profile, CANONICAL_FIELDS[f].name, json_real(round(prof[f] * 1e6) / 1e6));
	json_t *stage;
	if (PQgetisnull(r, 0, 1)) {
		stage = json_pack("{s:i, s:i}", "stage", 0, "stored_stage", 0);
	} else {
		int s = atoi(PQgetvalue(r, 0, 1));
		char last[40];
		persona_iso(atof(PQgetvalue(r, 0, 6)), last);
		stage = json_pack("{s:i, s:i, s:i, s:i, s:i, s:s}", "stage",
				  persona_stage_after_inactivity(s, atof(PQgetvalue(r, 0, 5)), now), "stored_stage", s,
				  "sessions_count", atoi(PQgetvalue(r, 0, 2)), "total_exchanges",
				  atoi(PQgetvalue(r, 0, 3)), "positive_signals_count", atoi(PQgetvalue(r, 0, 4)),
				  "last_active_at", last);
	}
	json_t *blocks = json_loads(PQgetvalue(r, 0, 7), 0, NULL), *b;
	size_t i;
	json_array_foreach(blocks, i, b) {
		char until[40];
		persona_iso(json_number_value(json_object_get(b, "until")), until);
		json_object_set_new(b, "until", json_string(until));
	}
	PQclear(r);
	*result = json_pack("{s:o, s:o, s:o}", "persona_profile", profile, "relationship_stage", stage, "temp_blocks",
			    blocks ? blocks : json_array());
	return 0;
}

/* Daily cleanup (cron 04:00): expired temp blocks, deltas older than 7
 * days, idempotency keys and forgotten buffers older than 72 h, and one
 * step of stage downgrade for users idle past their stage's limit. */
int store_cleanup(PGconn *db, double now, json_t **result, struct persona_err *err)
{
	char ts[40], day[11], hours[16], ttl[16], days[64], sess[64], exch[64], pos[64];
	snprintf(ts, sizeof ts, "%.6f", now);
	persona_day(now, day);
	snprintf(hours, sizeof hours, "%d", PERSONA_IDEMPOTENCY_HOURS);
	snprintf(ttl, sizeof ttl, "%d", PERSONA_DELTA_TTL_DAYS);
	const struct stage_requirement *q = STAGE_REQUIREMENTS;
	snprintf(days, sizeof days, "{%d,%d,%d,%d}", q[0].downgrade_after_days, q[1].downgrade_after_days,
		 q[2].downgrade_after_days, q[3].downgrade_after_days);
	snprintf(sess, sizeof sess, "{%d,%d,%d,%d}", q[0].sessions, q[1].sessions, q[2].sessions, q[3].sessions);
	snprintf(exch, sizeof exch, "{%d,%d,%d,%d}", q[0].exchanges, q[1].exchanges, q[2].exchanges, q[3].exchanges);
	snprintf(pos, sizeof pos, "{%d,%d,%d,%d}", q[0].positive_signals, q[1].positive_signals,
		 q[2].positive_signals, q[3].positive_signals);
	const char *p[9] = { ts, day, hours, ttl, days, sess, exch, pos, NULL };
	PGresult *r = pg_query(db,
			       "WITH tb AS (DELETE FROM persona_temp_blocks WHERE until <= to_timestamp($1::float8) RETURNING 1),"
			       " dd AS (DELETE FROM signal_daily_deltas WHERE date < $2::date - $4::int RETURNING 1),"
			       " ik AS (DELETE FROM persona_signal_ids"
			       "   WHERE received_at < to_timestamp($1::float8) - make_interval(hours => $3::int) RETURNING 1),"
			       " bf AS (DELETE FROM persona_signal_buffer"
			       "   WHERE received_at < to_timestamp($1::float8) - make_interval(hours => $3::int) RETURNING 1),"
			       " st AS (UPDATE relationship_stage SET stage = stage - 1, stage_updated_at = to_timestamp($1::float8),"
			       "   sessions_count = ($6::int[])[stage], total_exchanges = ($7::int[])[stage],"
			       "   positive_signals_count = ($8::int[])[stage]"
			       "   WHERE stage BETWEEN 1 AND 3 AND greatest(last_active_at, stage_updated_at)"
			       "     <= to_timestamp($1::float8) - make_interval(days => ($5::int[])[stage + 1]) RETURNING 1)"
			       " SELECT (SELECT count(*) FROM tb), (SELECT count(*) FROM dd), (SELECT count(*) FROM ik),"
			       "  (SELECT count(*) FROM bf), (SELECT count(*) FROM st),"
			       "  (SELECT count(*) FROM persona_temp_blocks WHERE until > to_timestamp($1::float8)),"
			       "  (SELECT coalesce(max(n), 0) FROM (SELECT count(*) n FROM persona_temp_blocks"
			       "    WHERE until > to_timestamp($1::float8) GROUP BY user_id) per_user)",
			       8, p);
	if (!r)
		return store_db_fail(db, err);
	long active = atol(PQgetvalue(r, 0, 5)), max_user = atol(PQgetvalue(r, 0, 6));
	/* the CTEs' deletions are not visible to the same statement's counts */
	*result = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "temp_blocks_deleted",
			    (json_int_t)atol(PQgetvalue(r, 0, 0)), "deltas_deleted", (json_int_t)atol(PQgetvalue(r, 0, 1)),
			    "signal_ids_deleted", (json_int_t)atol(PQgetvalue(r, 0, 2)), "buffers_deleted",
			    (json_int_t)atol(PQgetvalue(r, 0, 3)), "stages_downgraded", (json_int_t)atol(PQgetvalue(r, 0, 4)),
			    "temp_blocks_active", (json_int_t)active, "temp_blocks_max_per_user", (json_int_t)max_user);
	pmetrics_set("temp_blocks_active", (double)active);
	pmetrics_set("temp_blocks_max_per_user", (double)max_user);
	pmetrics_add("stage_downgrades", (double)atol(PQgetvalue(r, 0, 4)));
	PQclear(r);
	return 0;
}
