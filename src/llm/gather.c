/* gather.c — what a turn's ContextPack is made of (spec §13 phases 2–3):
 * under the user's turn lock, the hybrid search on query.c's worker and,
 * meanwhile on this thread, the route and conversation, the decrypted
 * knowledge, the recent messages, the referenced artifact, the catalog
 * context and the density window; then the emotional filter and the
 * density cap (memory.c) over the episodes found.
 *
 * The main thread's reads are a handful of single-partition queries
 * (≈0.3 ms each unloaded, planning included: bench/llm/README.md), so the
 * search is the longer branch and the pack costs about the search. Every
 * query is PQexecParams (unnamed statements): PgBouncer in transaction
 * mode keeps no prepared statement, and a plan here costs 0.1–0.3 ms. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "conf.h"
#include "counters.h"
#include "llm.h"
#include "log.h"
#include "pg.h"
#include "util.h"

/* One user's turns never interleave their saves: each turn runs inside a
 * transaction of its own on a dedicated connection that holds
 * pg_advisory_xact_lock(LLM, hashtext(user_id)) from before the shard is
 * read until both messages are saved. A second turn of the same user waits
 * (PostgreSQL queues the lock's waiters in arrival order), then reads a
 * history that holds the first. Transaction-scoped, so PgBouncer in
 * transaction mode keeps it; bounded by the turn's deadline (lock_timeout).
 * The lock lives in production when routing is configured (one place for
 * every shard), else in the shard. 0, or -1 with e. */
#define TURN_LOCK_CLASS 0x4C4C4D /* "LLM" */
static int turn_lock(struct llm_proc *p, const char *user_id, struct deadline dl, struct shard_err *e)
{
	if (!p->order) {
		const char *url = conf_str("PRODUCTION_DB_URL", NULL), *what = "PRODUCTION_DB_URL";
		if (!url || !*url) {
			url = p->x.url ? p->x.url : conf_str("SHARD_0_DB_URL", NULL);
			what = p->x.url ? "--url" : "SHARD_0_DB_URL";
		}
		if (!url || !*url)
			return 0; /* --shard N alone: no shared place for the lock */
		p->order = pg_connect(url, what);
		if (!p->order)
			return shard_err_set(e, EX_UNAVAILABLE, "shard_unavailable",
					     "cannot connect for the turn lock (%s)", what);
	}
	char cls[16], timeout[32];
	snprintf(cls, sizeof cls, "%d", TURN_LOCK_CLASS);
	long left = deadline_set(dl) ? ms_left(dl) : 30000;
	snprintf(timeout, sizeof timeout, "%ld", left > 0 ? left : 1);
	const char *pp[] = { timeout };
	const char *pl[] = { cls, user_id };
	if (pg_begin(p->order) != 0 ||
	    pg_exec(p->order, "SELECT set_config('lock_timeout', $1, true)", 1, pp) != 0 ||
	    pg_exec(p->order, "SELECT pg_advisory_xact_lock($1::int, hashtext($2))", 2, pl) != 0) {
		int lost = pg_connection_lost(p->order);
		shard_err_query(e, p->order, "cannot take the user's turn lock");
		if (!lost && !strcmp(pg_last_sqlstate(), "55P03"))
			shard_err_set(e, EX_TEMPFAIL, "turn_busy",
				      "another turn of this user held the lock past the deadline");
		pg_rollback(p->order);
		if (lost) {
			PQfinish(p->order);
			p->order = NULL;
		}
		return -1;
	}
	return 0;
}

void gather_unlock(struct llm_proc *p)
{
	if (p->order && PQtransactionStatus(p->order) != PQTRANS_IDLE)
		pg_commit(p->order);
}

void gather_reset(struct llm_proc *p)
{
	sctx_reset(&p->x);
	if (p->order)
		PQfinish(p->order);
	p->order = NULL;
	recall_reset(p->recall);
	log_event(LOG_WARN, "a database was unreachable: every connection closed, the next turn opens new ones",
		  NULL);
}

void llm_iso_now(char out[40], long offset_ms)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	long long ms = (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000 + offset_ms;
	time_t sec = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&sec, &tm);
	char b[32];
	strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, 40, "%s.%03lldZ", b, ms % 1000);
}

/* The artifact the message reacts to (§13): the explicit reply_to, or the
 * last assistant artifact of the last 10 minutes unless two came less than
 * 60 s apart. NULL when none. */
static json_t *referenced_artifact(PGconn *c, const char *conv, const char *explicit_id)
{
	if (!c || !*conv)
		return NULL;
	const char *pp[] = { conv, explicit_id };
	PGresult *r = pg_query(
		c,
		"SELECT m.id::text, m.response_description,"
		"  extract(epoch FROM m.created_at)::float8"
		" FROM messages m"
		" WHERE m.conversation_id = $1::uuid AND m.role = 'assistant' AND NOT m.is_forgotten"
		"   AND m.deleted_at IS NULL"
		"   AND m.response_description IS NOT NULL"
		"   AND (CASE WHEN $2::uuid IS NULL THEN m.created_at > now() - interval '10 minutes'"
		"        ELSE m.id = $2::uuid END)"
		" ORDER BY m.created_at DESC LIMIT 2",
		2, pp);
	if (!r)
		return NULL;
	json_t *a = NULL;
	int n = PQntuples(r);
	int ambiguous = !explicit_id && n == 2 &&
			strtod(PQgetvalue(r, 0, 2), NULL) - strtod(PQgetvalue(r, 1, 2), NULL) < 60;
	if (n && !ambiguous)
		a = json_pack("{s:s, s:s}", "id", PQgetvalue(r, 0, 0), "response_description",
			      PQgetvalue(r, 0, 1));
	PQclear(r);
	return a;
}

/* The main thread's reads while the worker searches. *cp gets the user's
 * shard connection when the user has a conversation (else NULL: no
 * history). 0, or -1 with e. */
static int gather_reads(struct llm_proc *p, struct turn *t, const json_t *rec, PGconn **cp,
			struct shard_err *e)
{
	struct turn_times *tt = &t->times;
	long sid;
	double ts = util_now_ms();
	PGconn *c = sctx_for_user(&p->x, t->user_id, 0, &sid, e);
	if (!c && strcmp(e->code ? e->code : "", "unknown_user"))
		return -1;
	memset(e, 0, sizeof *e);
	if (c && memory_conversation(c, t->user_id, t->conv, e) != 0)
		return -1;
	int routed = c != NULL; /* knowledge may exist before any message */
	if (!t->conv[0])
		c = NULL; /* nothing stored yet: no history to read */
	*cp = c;
	tt->route = util_now_ms() - ts;
	if (p->cf.have_keys && routed) {
		struct shard_err ke = { 0 };
		ts = util_now_ms();
		t->knowledge = shard_knowledge_get(&p->x, &p->keys, t->user_id, NULL, &ke);
		tt->knowledge = util_now_ms() - ts;
		counters_observe_ms(p->k, "user_knowledge_decrypt_latency_seconds", NULL, tt->knowledge);
		if (!t->knowledge) {
			counters_add(p->k, "user_knowledge_decrypt_errors", NULL, 1);
			log_event(LOG_WARN, "user knowledge left out", json_pack("{s:s}", "why", ke.msg));
		}
	}
	if (!t->knowledge)
		t->knowledge = json_array();
	ts = util_now_ms();
	t->recent = c ? memory_recent(c, t->conv, p->cf.recent_limit, e) : json_array();
	if (!t->recent)
		return -1;
	t->artifact = referenced_artifact(c, t->conv, json_string_value(json_object_get(rec, "explicit_reply_to")));
	tt->recent = util_now_ms() - ts;
	ts = util_now_ms();
	struct shard_err pe = { 0 };
	PGconn *prod = sctx_production(&p->x, 0, &pe);
	t->catalog = catalog_context(prod, t->message, json_string_value(json_object_get(rec, "mall_id")));
	if (!t->catalog)
		t->catalog = json_array();
	tt->catalog = util_now_ms() - ts;
	ts = util_now_ms();
	int rc = memory_density_window(c, t, e);
	tt->density = util_now_ms() - ts;
	return rc;
}

int gather_turn(struct llm_proc *p, struct turn *t, const json_t *rec, struct deadline dl,
		struct shard_err *e)
{
	struct turn_times *tt = &t->times;
	double ts = util_now_ms();
	int rc = turn_lock(p, t->user_id, dl, e);
	tt->lock = util_now_ms() - ts;
	/* the user's message is stamped when its turn has the lock, so the
	 * history's order is the turns' order */
	llm_iso_now(t->locked_at, 0);
	recall_go(p->recall, rc == 0);
	PGconn *c = NULL;
	if (rc == 0)
		rc = gather_reads(p, t, rec, &c, e);
	ts = util_now_ms();
	struct shard_err se = { 0 };
	int src = recall_join(p->recall, t, &se, &tt->embed, &tt->search);
	tt->wait = util_now_ms() - ts;
	if (rc != 0)
		return -1;
	if (src != 0) {
		*e = se;
		return -1;
	}
	query_note_hits(t);
	ts = util_now_ms();
	if (c && memory_filter(c, t, e) != 0)
		return -1;
	memory_density_cut(t, &p->cf);
	tt->filters = util_now_ms() - ts;
	return 0;
}
