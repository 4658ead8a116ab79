/* flush.c — POST /persona/flush, the resolve_and_apply() of §16: take the
 * exchange's buffered signals (and any buffer older than
 * PERSONA_STALE_BUFFER_MINUTES, flushed as stale), resolve each exchange's
 * conflicts (signals.c), move profile fields within the momentum caps per
 * exchange and per day (signal_daily_deltas), create temp blocks for
 * rejections (at most 20 per user, the oldest replaced), and count the
 * exchange and its positive signals toward the relationship stage.
 *
 * One transaction per flush, which first locks the user's
 * relationship_stage row: every flush of one user waits for the previous
 * one, so concurrent flushes (any process, any host) never lose an update. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pg.h"
#include "persona.h"
#include "util.h"

struct sig {
	char id[37], exchange[101], type[51];
	double at;
};

static int by_exchange_then_time(const void *a, const void *b)
{
	const struct sig *x = a, *y = b;
	int c = strcmp(x->exchange, y->exchange);
	if (c)
		return c;
	return x->at < y->at ? -1 : x->at > y->at;
}

static double clampd(double x, double lo, double hi)
{
	return x < lo ? lo : x > hi ? hi : x;
}

struct flush_state {
	PGconn *db;
	const char *user_id;
	char ts[40], day[11];
	double now;
	double profile[NFIELDS];
	int set[NFIELDS];
	double day_total[NFIELDS];
	int day_dirty[NFIELDS];
	int positives, exchanges, resolved, discarded, applied, blocks;
};

/* Lock (creating) the user's stage row; the lock orders all flushes. */
static PGresult *lock_stage(struct flush_state *f)
{
	const char *p[2] = { f->user_id, f->ts };
	if (pg_exec(f->db,
		    "INSERT INTO relationship_stage (user_id, stage, stage_updated_at, last_active_at)"
		    " VALUES ($1, 0, to_timestamp($2::float8), to_timestamp($2::float8)) ON CONFLICT (user_id) DO NOTHING",
		    2, p) < 0)
		return NULL;
	return pg_query(f->db,
			"SELECT stage, sessions_count, total_exchanges, positive_signals_count,"
			" extract(epoch FROM greatest(last_active_at, stage_updated_at)), extract(epoch FROM last_active_at)"
			" FROM relationship_stage WHERE user_id = $1 FOR UPDATE",
			1, p);
}

static int load_profile_and_deltas(struct flush_state *f)
{
	const char *p[3] = { f->user_id, PERSONA_CONTRACT_VERSION, f->day };
	if (pg_exec(f->db,
		    "INSERT INTO persona_profiles (user_id, profile, contract_version) VALUES ($1, '{}', $2)"
		    " ON CONFLICT (user_id) DO NOTHING",
		    2, p) < 0)
		return -1;
	PGresult *r = pg_query(f->db, "SELECT profile::text FROM persona_profiles WHERE user_id = $1 FOR UPDATE", 1, p);
	if (!r)
		return -1;
	for (int i = 0; i < NFIELDS; i++)
		f->profile[i] = CANONICAL_FIELDS[i].def;
	json_t *prof = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
	json_t *dbg = json_pack("{s:{}, s:{}, s:[]}", "aliased", "clamped", "unknown_fields");
	struct persona_err e = { 0 };
	if (json_is_object(prof))
		canonicalize_profile(prof, f->profile, f->set, dbg, &e);
	json_decref(prof);
	json_decref(dbg);
	PQclear(r);
	const char *q[2] = { f->user_id, f->day };
	r = pg_query(f->db, "SELECT field, total_delta FROM signal_daily_deltas WHERE user_id = $1 AND date = $2::date", 2, q);
	if (!r)
		return -1;
	for (int i = 0; i < PQntuples(r); i++) {
		int alias, k = contract_field_index(PQgetvalue(r, i, 0), &alias);
		if (k >= 0)
			f->day_total[k] = atof(PQgetvalue(r, i, 1));
	}
	PQclear(r);
	return 0;
}

/* Apply one exchange's surviving signals within the momentum caps. */
static int apply_exchange(struct flush_state *f, struct sig *s, int n)
{
	const char **types = xcalloc((size_t)n, sizeof *types);
	int *keep = xcalloc((size_t)n, sizeof *keep);
	double ex_delta[NFIELDS] = { 0 };
	int touched[NFIELDS] = { 0 }, rc = 0;
	for (int i = 0; i < n; i++)
		types[i] = s[i].type;
	int survivors = signals_resolve(types, n, keep);
	f->resolved += survivors;
	f->discarded += n - survivors;
	for (int i = 0; i < n && rc == 0; i++) {
		if (!keep[i])
			continue;
		const struct signal_effect *e = contract_signal(s[i].type);
		ex_delta[e->field] += e->delta;
		touched[e->field] = 1;
		f->positives += e->positive;
		if (e->block_key) {
			char until[40], created[40];
			snprintf(until, sizeof until, "%.6f", f->now + e->block_hours * 3600.0);
			snprintf(created, sizeof created, "%.6f", f->now + (f->blocks++) * 1e-6);
			const char *p[6] = { f->user_id, e->block_key, until, e->type, s[i].id, created };
			rc = pg_exec(f->db,
				     "INSERT INTO persona_temp_blocks (user_id, key, until, reason, signal_id, created_at)"
				     " VALUES ($1, $2, to_timestamp($3::float8), $4, $5, to_timestamp($6::float8))",
				     6, p);
		}
	}
	for (int k = 0; k < NFIELDS && rc == 0; k++) {
		if (!touched[k])
			continue;
		const struct momentum_limit *m = &MOMENTUM_LIMITS[CANONICAL_FIELDS[k].group];
		double d = clampd(ex_delta[k], -m->per_exchange, m->per_exchange);
		d = clampd(f->day_total[k] + d, -m->per_day, m->per_day) - f->day_total[k];
		double v = clampd(f->profile[k] + d, CANONICAL_FIELDS[k].min, CANONICAL_FIELDS[k].max);
		d = v - f->profile[k];
		if (fabs(d) < 1e-9)
			continue;
		f->profile[k] = v;
		f->set[k] = 1;
		f->day_total[k] += d;
		f->day_dirty[k] = 1;
		f->applied++;
	}
	free(types);
	free(keep);
	return rc;
}

static int save(struct flush_state *f, PGresult *st, json_t **stage_out)
{
	for (int k = 0; k < NFIELDS; k++) {
		if (!f->day_dirty[k])
			continue;
		char v[40];
		snprintf(v, sizeof v, "%.9f", f->day_total[k]);
		const char *p[4] = { f->user_id, CANONICAL_FIELDS[k].name, f->day, v };
		if (pg_exec(f->db,
			    "INSERT INTO signal_daily_deltas (user_id, field, date, total_delta) VALUES ($1, $2, $3::date, $4::float8)"
			    " ON CONFLICT (user_id, field, date) DO UPDATE SET total_delta = EXCLUDED.total_delta",
			    4, p) < 0)
			return -1;
	}
	json_t *prof = json_object();
	for (int k = 0; k < NFIELDS; k++)
		if (f->set[k])
			json_object_set_new(prof, CANONICAL_FIELDS[k].name, json_real(round(f->profile[k] * 1e9) / 1e9));
	char *text = json_dumps(prof, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(10));
	json_decref(prof);
	const char *p[4] = { f->user_id, text, PERSONA_CONTRACT_VERSION, f->ts };
	int rc = pg_exec(f->db,
			 "UPDATE persona_profiles SET profile = $2::jsonb, contract_version = $3,"
			 " updated_at = to_timestamp($4::float8) WHERE user_id = $1",
			 4, p);
	free(text);
	if (rc < 0)
		return -1;
	if (f->blocks) {
		char lim[8];
		snprintf(lim, sizeof lim, "%d", PERSONA_TEMP_BLOCK_LIMIT);
		const char *q[3] = { f->user_id, f->ts, lim };
		if (pg_exec(f->db,
			    "DELETE FROM persona_temp_blocks WHERE user_id = $1 AND until <= to_timestamp($2::float8)", 2, q) < 0 ||
		    pg_exec(f->db,
			    "DELETE FROM persona_temp_blocks WHERE id IN (SELECT id FROM persona_temp_blocks WHERE user_id = $1"
			    " ORDER BY created_at DESC, id DESC OFFSET $2::int)",
			    2, (const char *const[]){ q[0], q[2] }) < 0)
			return -1;
	}
	/* the stage: downgrade for inactivity first, then count this flush */
	int stored = atoi(PQgetvalue(st, 0, 0)), sessions = atoi(PQgetvalue(st, 0, 1));
	int exchanges = atoi(PQgetvalue(st, 0, 2)), positives = atoi(PQgetvalue(st, 0, 3));
	double since = atof(PQgetvalue(st, 0, 4)), last = atof(PQgetvalue(st, 0, 5));
	int stage = persona_stage_after_inactivity(stored, since, f->now), changed = stage != stored;
	if (stage < stored) {
		sessions = STAGE_REQUIREMENTS[stage].sessions;
		exchanges = STAGE_REQUIREMENTS[stage].exchanges;
		positives = STAGE_REQUIREMENTS[stage].positive_signals;
		pmetrics_add("stage_downgrades", stored - stage);
	}
	if (sessions == 0 || f->now - last > PERSONA_SESSION_GAP_MINUTES * 60.0)
		sessions++;
	exchanges += f->exchanges;
	positives += f->positives;
	int upgraded = 0;
	if (stage < 3 && sessions >= STAGE_REQUIREMENTS[stage + 1].sessions &&
	    exchanges >= STAGE_REQUIREMENTS[stage + 1].exchanges &&
	    positives >= STAGE_REQUIREMENTS[stage + 1].positive_signals) {
		stage++;
		changed = upgraded = 1;
		pmetrics_add("stage_upgrades", 1);
	}
	char sv[8], ss[16], se[16], sp[16], ch[2];
	snprintf(sv, sizeof sv, "%d", stage);
	snprintf(ss, sizeof ss, "%d", sessions);
	snprintf(se, sizeof se, "%d", exchanges);
	snprintf(sp, sizeof sp, "%d", positives);
	snprintf(ch, sizeof ch, "%d", changed);
	const char *sp6[7] = { f->user_id, sv, ss, se, sp, f->ts, ch };
	if (pg_exec(f->db,
		    "UPDATE relationship_stage SET stage = $2::int, sessions_count = $3::int, total_exchanges = $4::int,"
		    " positive_signals_count = $5::int, last_active_at = to_timestamp($6::float8),"
		    " stage_updated_at = CASE WHEN $7::int = 1 THEN to_timestamp($6::float8) ELSE stage_updated_at END"
		    " WHERE user_id = $1",
		    7, sp6) < 0)
		return -1;
	*stage_out = json_pack("{s:i, s:b, s:b}", "stage", stage, "upgraded", upgraded, "downgraded", stage < stored);
	return 0;
}

int store_flush(PGconn *db, const char *user_id, const char *exchange_id, double now, json_t **result,
		struct persona_err *err)
{
	if (!user_id || !persona_is_uuid(user_id))
		return store_fail(err, "invalid_field", "user_id: expected a UUID string");
	if (!exchange_id || !*exchange_id || strlen(exchange_id) > 100)
		return store_fail(err, "invalid_field", "exchange_id: expected a string of 1 to 100 characters");
	struct flush_state f = { .db = db, .user_id = user_id, .now = now };
	snprintf(f.ts, sizeof f.ts, "%.6f", now);
	persona_day(now, f.day);
	if (pg_begin(db) < 0)
		return store_db_fail(db, err);
	PGresult *st = lock_stage(&f), *r = NULL;
	if (!st)
		goto db_fail;
	char stale[16];
	snprintf(stale, sizeof stale, "%d", PERSONA_STALE_BUFFER_MINUTES);
	const char *p[4] = { user_id, exchange_id, f.ts, stale };
	r = pg_query(db,
		     "DELETE FROM persona_signal_buffer WHERE user_id = $1 AND (exchange_id = $2"
		     " OR received_at < to_timestamp($3::float8) - make_interval(mins => $4::int))"
		     " RETURNING signal_id, exchange_id, signal_type, extract(epoch FROM received_at)",
		     4, p);
	if (!r || load_profile_and_deltas(&f) < 0)
		goto db_fail;
	int n = PQntuples(r), stale_exchanges = 0, current_seen = 0;
	struct sig *s = xcalloc((size_t)n + 1, sizeof *s);
	for (int i = 0; i < n; i++) {
		snprintf(s[i].id, sizeof s[i].id, "%s", PQgetvalue(r, i, 0));
		snprintf(s[i].exchange, sizeof s[i].exchange, "%s", PQgetvalue(r, i, 1));
		snprintf(s[i].type, sizeof s[i].type, "%s", PQgetvalue(r, i, 2));
		s[i].at = atof(PQgetvalue(r, i, 3));
	}
	PQclear(r);
	r = NULL;
	qsort(s, (size_t)n, sizeof *s, by_exchange_then_time);
	for (int i = 0; i < n;) {
		int j = i;
		while (j < n && !strcmp(s[j].exchange, s[i].exchange))
			j++;
		if (strcmp(s[i].exchange, exchange_id))
			stale_exchanges++;
		else
			current_seen = 1;
		/* signals of unknown types cannot be buffered; skip defensively */
		if (apply_exchange(&f, s + i, j - i) < 0) {
			free(s);
			goto db_fail;
		}
		i = j;
	}
	free(s);
	(void)current_seen;
	f.exchanges = 1 + stale_exchanges;
	json_t *stage = NULL;
	if (save(&f, st, &stage) < 0 || pg_commit(db) < 0) {
		json_decref(stage);
		goto db_fail;
	}
	PQclear(st);
	pmetrics_add("signals_resolved", f.resolved);
	pmetrics_add("signals_discarded", f.discarded);
	*result = json_pack("{s:i, s:i, s:i, s:i, s:o}", "resolved", f.resolved, "discarded", f.discarded, "applied",
			    f.applied, "stale_flushed", stale_exchanges, "relationship_stage", stage);
	return 0;
db_fail:
	store_db_fail(db, err);
	PQclear(st);
	PQclear(r);
	pg_rollback(db);
	return -1;
}
