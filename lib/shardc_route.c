/* shardc_route.c — reaching a user's shard: the routing table in
 * production, the shard connections, the writer's route lock, and the
 * error mapping every shard-client call shares. See shardc.h for the order
 * in which a shard is chosen. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

#include <openssl/evp.h>

#include "conf.h"
#include "deadline.h"
#include "log.h"
#include "pg.h"
#include "shardc.h"
#include "util.h"

void sctx_init(struct shard_ctx *x)
{
	memset(x, 0, sizeof *x);
	x->shard = -1;
}

void sctx_close(struct shard_ctx *x)
{
	sctx_write_done(x);
	PQfinish(x->hold);
	x->hold = NULL;
	PQfinish(x->prod);
	x->prod = NULL;
	for (size_t i = 0; i < x->nconns; i++) {
		PQfinish(x->conns[i].c);
		PQfinish(x->conns[i].side);
		free(x->conns[i].url);
	}
	x->nconns = 0;
}

void sctx_reset(struct shard_ctx *x)
{
	const char *url = x->url;
	long shard = x->shard;
	sctx_close(x);
	sctx_init(x);
	x->url = url;
	x->shard = shard;
}

static int parse_shard_id(const char *s, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 0 || v > 9999)
		return -1;
	*out = v;
	return 0;
}

int sctx_option(struct shard_ctx *x, int opt, const char *arg)
{
	switch (opt) {
	case SCTX_OPT_URL: x->url = arg; return 1;
	case SCTX_OPT_SHARD: return parse_shard_id(arg, &x->shard) == 0 ? 1 : -1;
	default: return 0;
	}
}

int shard_err_set(struct shard_err *e, int status, const char *code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	va_end(ap);
	e->status = status;
	e->code = code;
	return -1;
}

int shard_err_query(struct shard_err *e, PGconn *c, const char *what)
{
	const char *st = pg_last_sqlstate();
	if (pg_connection_lost(c))
		return shard_err_set(e, EX_UNAVAILABLE, "shard_unavailable", "%s: connection lost", what);
	/* read_only_sql_transaction, admin shutdown: a demoted or stopping
	 * primary — the shard is elsewhere now */
	if (!strcmp(st, "25006") || !strncmp(st, "57P0", 4))
		return shard_err_set(e, EX_UNAVAILABLE, "shard_unavailable", "%s: %s", what, pg_last_error(c));
	if (st[0] == '2' && st[1] == '2') /* data exception: bad vector, bad number… */
		return shard_err_set(e, EX_DATAERR, "invalid_field", "%s: %s", what, pg_last_error(c));
	if (!strcmp(st, "40001") || !strcmp(st, "40P01"))
		return shard_err_set(e, EX_TEMPFAIL, "conflict", "%s: %s", what, pg_last_error(c));
	return shard_err_set(e, EX_SOFTWARE, "query_failed", "%s: %s", what, pg_last_error(c));
}

/* A connection that broke between records gets one reset before use. */
static PGconn *conn_usable(PGconn *c)
{
	if (c && PQstatus(c) != CONNECTION_OK) {
		PQreset(c);
		if (PQstatus(c) != CONNECTION_OK)
			return NULL;
	}
	return c;
}

PGconn *sctx_production(struct shard_ctx *x, int required, struct shard_err *err)
{
	if (x->prod)
		return conn_usable(x->prod) ? x->prod
					    : (shard_err_set(err, EX_UNAVAILABLE, "production_unavailable",
						       "the production database is unreachable"),
					       NULL);
	const char *url = conf_str("PRODUCTION_DB_URL", NULL);
	if (!url) {
		x->prod_missing = 1;
		if (required)
			shard_err_set(err, EX_CONFIG, "config", "PRODUCTION_DB_URL is not set");
		return NULL;
	}
	x->prod = pg_connect(url, "PRODUCTION_DB_URL");
	if (!x->prod)
		shard_err_set(err, EX_UNAVAILABLE, "production_unavailable",
			"cannot connect to the production database (PRODUCTION_DB_URL)");
	return x->prod;
}

const char *sctx_shard_url(struct shard_ctx *x, long id, char **owned, char *var, size_t varlen,
			   struct shard_err *err)
{
	*owned = NULL;
	snprintf(var, varlen, "SHARD_%ld_DB_URL", id);
	const char *u = conf_str(var, NULL);
	if (u)
		return u;
	struct shard_err perr;
	PGconn *p = sctx_production(x, 0, &perr);
	if (p) {
		char ids[24];
		snprintf(ids, sizeof ids, "%ld", id);
		const char *pp[] = { ids };
		PGresult *r = pg_query(p, "SELECT conninfo FROM shards WHERE shard_id = $1", 1, pp);
		if (r && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0)) {
			const char *ci = PQgetvalue(r, 0, 0);
			if (ci[0] == '$') {
				snprintf(var, varlen, "%s", ci + 1);
				u = conf_str(var, NULL);
			} else {
				snprintf(var, varlen, "shards.conninfo[%ld]", id);
				u = *owned = xstrdup(ci);
			}
		}
		PQclear(r);
		if (u)
			return u;
	}
	shard_err_set(err, EX_CONFIG, "config", "no connection for shard %ld: %s is not set", id, var);
	return NULL;
}

/* How long a shard connection may wait for a writable member (§14's RTO):
 * SHARD_RECONNECT_TIMEOUT seconds when set; else 30 s for a URL naming
 * several hosts (a Patroni cluster behind libpq's multi-host failover,
 * target_session_attrs=read-write), 0 for one host (fail at once, as a
 * plain database does). */
static double shard_reconnect_seconds(const char *url)
{
	double def = 0;
	PQconninfoOption *o = PQconninfoParse(url, NULL);
	for (PQconninfoOption *k = o; k && k->keyword; k++)
		if (!strcmp(k->keyword, "host") && k->val && strchr(k->val, ','))
			def = 30;
	PQconninfoFree(o);
	return conf_double("SHARD_RECONNECT_TIMEOUT", def, 0, 3600);
}

/* Sleep ms milliseconds (bounded waits between connection attempts). */
static void nap_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Connect to url, retrying until a writable member answers or `seconds`
 * have passed (a failover in progress: the old primary gone, the replica
 * not yet promoted). One attempt when seconds is 0. NULL when none. */
static PGconn *connect_within(const char *url, const char *var, double seconds)
{
	struct deadline dl = deadline_in((long)(seconds * 1000));
	long nap = 200;
	for (int attempt = 1;; attempt++) {
		PGconn *c = pg_connect(url, var);
		if (c || seconds <= 0 || deadline_passed(dl))
			return c;
		log_event(LOG_WARN, "shard connection failed, retrying (failover?)",
			  json_pack("{s:s, s:i, s:I}", "variable", var, "attempt", attempt,
				    "ms_left", (json_int_t)ms_left(dl)));
		nap_ms(deadline_cap(dl, nap));
		nap = nap < 1600 ? nap * 2 : 2000;
	}
}

/* A cached shard connection that broke (the primary crashed, Patroni
 * demoted it): reset it, and keep resetting within its reconnect budget,
 * so a writer follows the failover to the new primary. 0 when usable. */
static int shard_conn_revive(struct shard_conn *sc)
{
	if (PQstatus(sc->c) == CONNECTION_OK)
		return 0;
	struct deadline dl = deadline_in((long)(sc->reconnect_s * 1000));
	long nap = 200;
	for (int attempt = 1;; attempt++) {
		PQreset(sc->c);
		if (PQstatus(sc->c) == CONNECTION_OK) {
			PGresult *r = PQexec(sc->c, "SET TIME ZONE 'UTC'");
			PQclear(r);
			log_event(LOG_INFO, "shard reconnected",
				  json_pack("{s:i, s:i, s:s}", "shard_id", (int)sc->id, "attempt", attempt,
					    "host", PQhost(sc->c) ? PQhost(sc->c) : ""));
			return 0;
		}
		if (sc->reconnect_s <= 0 || deadline_passed(dl))
			return -1;
		nap_ms(deadline_cap(dl, nap));
		nap = nap < 1600 ? nap * 2 : 2000;
	}
}

int sctx_shard_reconnect(struct shard_ctx *x, long id)
{
	for (size_t i = 0; i < x->nconns; i++)
		if (x->conns[i].id == id) {
			if (x->conns[i].reconnect_s <= 0)
				return -1;
			if (PQstatus(x->conns[i].c) == CONNECTION_OK) {
				/* a connection that is up but read-only (a demoted
				 * primary): drop it, connect afresh to the leader */
				PQfinish(x->conns[i].c);
				x->conns[i].c = NULL;
				PGconn *c = connect_within(x->conns[i].url, "shard", x->conns[i].reconnect_s);
				if (!c)
					return -1;
				x->conns[i].c = c;
				return 0;
			}
			return shard_conn_revive(&x->conns[i]);
		}
	return -1;
}

PGconn *sctx_shard_side(struct shard_ctx *x, PGconn *c)
{
	for (size_t i = 0; c && i < x->nconns; i++) {
		struct shard_conn *sc = &x->conns[i];
		if (sc->c != c)
			continue;
		if (sc->side && PQstatus(sc->side) != CONNECTION_OK) {
			PQfinish(sc->side);
			sc->side = NULL;
		}
		if (!sc->side)
			sc->side = pg_connect(sc->url, x->url ? "--url" : "shard");
		return sc->side;
	}
	return NULL;
}

PGconn *sctx_shard(struct shard_ctx *x, long id, struct shard_err *err)
{
	for (size_t i = 0; i < x->nconns; i++)
		if (x->conns[i].id == id) {
			if (x->conns[i].c && shard_conn_revive(&x->conns[i]) == 0)
				return x->conns[i].c;
			shard_err_set(err, EX_UNAVAILABLE, "shard_unavailable", "shard %ld is unreachable", id);
			return NULL;
		}
	if (x->nconns == SHARD_MAX_CONNS) {
		shard_err_set(err, EX_SOFTWARE, "too_many_shards", "more than %d shards", SHARD_MAX_CONNS);
		return NULL;
	}
	char var[128], *owned = NULL;
	const char *url = x->url;
	if (url)
		snprintf(var, sizeof var, "--url");
	else if (!(url = sctx_shard_url(x, id, &owned, var, sizeof var, err)))
		return NULL;
	double within = shard_reconnect_seconds(url);
	PGconn *c = connect_within(url, var, within);
	if (!c) {
		free(owned);
		shard_err_set(err, EX_UNAVAILABLE, "shard_unavailable", "cannot connect to shard %ld (%s)",
			id, var);
		return NULL;
	}
	struct shard_conn *sc = &x->conns[x->nconns++];
	sc->id = id;
	sc->c = c;
	sc->reconnect_s = within;
	sc->url = owned ? owned : xstrdup(url);
	return c;
}

int shard_uuid_parse(const char *s, unsigned char out[16])
{
	static const int dash[] = { 8, 13, 18, 23 };
	if (!s || strlen(s) != 36)
		return -1;
	for (int i = 0; i < 4; i++)
		if (s[dash[i]] != '-')
			return -1;
	int n = 0;
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23)
			continue;
		int v = util_hexval(s[i]);
		if (v < 0)
			return -1;
		if (n % 2 == 0)
			out[n / 2] = (unsigned char)(v << 4);
		else
			out[n / 2] |= (unsigned char)v;
		n++;
	}
	return 0;
}

int shard_uuid_valid(const char *s)
{
	unsigned char b[16];
	return shard_uuid_parse(s, b) == 0;
}

/* Placement hash: the first 8 bytes (big-endian) of SHA-256 over the UUID's
 * 16 bytes. Stable across hosts and versions: it decides where a new user
 * lives, forever. */
uint64_t shard_hash(const unsigned char uuid[16])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	EVP_Digest(uuid, 16, md, &n, EVP_sha256(), NULL);
	uint64_t h = 0;
	for (int i = 0; i < 8; i++)
		h = (h << 8) | md[i];
	return h;
}

/* The stored route, or a new one: among the shards in shard_id order, the
 * (hash mod N)-th. INSERT … ON CONFLICT keeps two first contacts racing
 * on the same user agreeing on one shard. Returns 0, 1 (no route and not
 * placed) or -1. */
int route_lookup(PGconn *p, const char *user_id, int place, int lock, long *shard_id, int *placed)
{
	const char *pp[] = { user_id, NULL };
	const char *stored = lock ? "SELECT shard_id, false FROM routing_table WHERE user_id = $1 FOR SHARE"
				  : "SELECT shard_id, false FROM routing_table WHERE user_id = $1";
	PGresult *r = pg_query(p, stored, 1, pp);
	if (!r)
		return -1;
	*placed = 0;
	if (PQntuples(r) == 1) {
		*shard_id = shard_pg_long(r, 0, 0, -1);
		PQclear(r);
		return 0;
	}
	PQclear(r);
	if (!place)
		return 1;
	unsigned char b[16];
	shard_uuid_parse(user_id, b);
	char hs[32];
	snprintf(hs, sizeof hs, "%llu", (unsigned long long)shard_hash(b));
	pp[1] = hs;
	r = pg_query(p,
		     "WITH s AS (SELECT shard_id, row_number() OVER (ORDER BY shard_id) - 1 AS i,"
		     "                  count(*) OVER () AS n FROM shards),"
		     " pick AS (SELECT shard_id FROM s WHERE i = ($2::numeric % n)),"
		     " ins AS (INSERT INTO routing_table (user_id, shard_id)"
		     "         SELECT $1, shard_id FROM pick ON CONFLICT (user_id) DO NOTHING"
		     "         RETURNING shard_id)"
		     "SELECT shard_id, true FROM ins"
		     " UNION ALL SELECT shard_id, false FROM routing_table WHERE user_id = $1"
		     " LIMIT 1",
		     2, pp);
	if (!r)
		return -1;
	if (PQntuples(r) != 1) {
		/* the concurrent winner's row is not visible to this statement's snapshot */
		PQclear(r);
		r = pg_query(p, stored, 1, pp);
		if (!r || PQntuples(r) != 1) {
			PQclear(r);
			return -1;
		}
	}
	*shard_id = shard_pg_long(r, 0, 0, -1);
	*placed = PQgetvalue(r, 0, 1)[0] == 't';
	PQclear(r);
	return 0;
}

PGconn *sctx_for_user(struct shard_ctx *x, const char *user_id, int place, long *shard_id,
		      struct shard_err *err)
{
	if (x->url || x->shard >= 0) {
		*shard_id = x->shard >= 0 ? x->shard : 0;
		return sctx_shard(x, *shard_id, err);
	}
	PGconn *p = sctx_production(x, 0, err);
	if (!p) {
		if (!x->prod_missing)
			return NULL;
		*shard_id = 0; /* the spec's MVP: one shard, SHARD_0_DB_URL */
		return sctx_shard(x, 0, err);
	}
	int placed, rc = route_lookup(p, user_id, place, 0, shard_id, &placed);
	if (rc < 0) {
		shard_err_set(err, pg_connection_lost(p) ? EX_UNAVAILABLE : EX_SOFTWARE, "routing_failed",
			"cannot read the routing table: %s", pg_last_error(p));
		return NULL;
	}
	if (rc > 0) {
		shard_err_set(err, EX_DATAERR, "unknown_user", "user %s has no route (nothing stored)",
			user_id);
		return NULL;
	}
	return sctx_shard(x, *shard_id, err);
}

PGconn *sctx_for_user_write(struct shard_ctx *x, const char *user_id, int place, long *shard_id,
			    struct shard_err *err)
{
	sctx_write_done(x);
	if (x->url || x->shard >= 0 || !sctx_production(x, 0, err))
		return x->url || x->shard >= 0 || x->prod_missing
		       ? sctx_for_user(x, user_id, place, shard_id, err)
		       : NULL;
	if (x->hold && PQstatus(x->hold) != CONNECTION_OK) {
		PQfinish(x->hold);
		x->hold = NULL;
	}
	if (!x->hold && !(x->hold = pg_connect(conf_str("PRODUCTION_DB_URL", NULL), "PRODUCTION_DB_URL"))) {
		shard_err_set(err, EX_UNAVAILABLE, "production_unavailable",
			"cannot connect to the production database (PRODUCTION_DB_URL)");
		return NULL;
	}
	if (pg_begin(x->hold) != 0) {
		shard_err_set(err, EX_UNAVAILABLE, "production_unavailable", "cannot begin on production");
		return NULL;
	}
	x->holding = 1;
	const char *pp[] = { user_id };
	PGresult *r = place ? pg_query(x->hold, "SELECT 1 FROM deleted_users_registry WHERE user_id = $1",
				       1, pp)
			    : NULL;
	int erased = r && PQntuples(r) > 0, placed = 0;
	PQclear(r);
	int rc = erased || (place && !r) ? -1 : route_lookup(x->hold, user_id, place, 1, shard_id, &placed);
	if (erased)
		shard_err_set(err, EX_DATAERR, "user_erased", "user %s was erased (deleted_users_registry)",
			user_id);
	else if (rc < 0)
		shard_err_set(err, pg_connection_lost(x->hold) ? EX_UNAVAILABLE : EX_SOFTWARE, "routing_failed",
			"cannot read the routing table: %s", pg_last_error(x->hold));
	else if (rc > 0)
		shard_err_set(err, EX_DATAERR, "unknown_user", "user %s has no route (nothing stored)", user_id);
	PGconn *c = rc == 0 ? sctx_shard(x, *shard_id, err) : NULL;
	if (!c)
		sctx_write_done(x);
	return c;
}

void sctx_write_done(struct shard_ctx *x)
{
	if (!x->holding)
		return;
	x->holding = 0;
	if (pg_commit(x->hold) != 0) {
		pg_rollback(x->hold);
		log_event(LOG_WARN, "the route lock's transaction did not commit",
			  json_pack("{s:s}", "error", pg_last_error(x->hold)));
	}
}

PGconn *sctx_for_conversation(struct shard_ctx *x, const char *conversation_id,
			      const char *user_id, int write, long *shard_id, struct shard_err *err)
{
	PGconn *(*by_user)(struct shard_ctx *, const char *, int, long *, struct shard_err *) =
		write ? sctx_for_user_write : sctx_for_user;
	if (user_id || x->url || x->shard >= 0 || x->prod_missing)
		return by_user(x, user_id, 0, shard_id, err);
	PGconn *p = sctx_production(x, 0, err);
	if (!p)
		return x->prod_missing ? by_user(x, NULL, 0, shard_id, err) : NULL;
	PGresult *r = pg_query(p, "SELECT shard_id FROM shards ORDER BY shard_id", 0, NULL);
	if (!r) {
		shard_err_set(err, EX_UNAVAILABLE, "routing_failed", "cannot list shards");
		return NULL;
	}
	const char *pp[] = { conversation_id };
	for (int i = 0; i < PQntuples(r); i++) {
		long id = shard_pg_long(r, i, 0, -1);
		PGconn *c = sctx_shard(x, id, err);
		if (!c)
			continue;
		PGresult *q = pg_query(c, "SELECT user_id::text FROM conversations WHERE id = $1", 1, pp);
		if (q && PQntuples(q) == 1) {
			PQclear(r);
			*shard_id = id;
			if (write) /* the owner's route, locked: authoritative if moved meanwhile */
				c = sctx_for_user_write(x, PQgetvalue(q, 0, 0), 0, shard_id, err);
			PQclear(q);
			return c;
		}
		PQclear(q);
	}
	PQclear(r);
	shard_err_set(err, EX_DATAERR, "unknown_conversation", "conversation %s is on no shard",
		conversation_id);
	return NULL;
}

int sctx_fail(struct filter_run *run, const struct shard_err *err)
{
	return filter_fail(run, err->status == EX_CONFIG ? EX_UNAVAILABLE : err->status, err->code,
			   "%s", err->msg);
}

int sctx_query_fail(struct filter_run *run, PGconn *c, const char *what)
{
	struct shard_err e;
	shard_err_query(&e, c, what);
	return sctx_fail(run, &e);
}

const char *shard_jstr(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

long shard_pg_long(PGresult *r, int row, int col, long def)
{
	if (!r || row >= PQntuples(r) || PQgetisnull(r, row, col))
		return def;
	return strtol(PQgetvalue(r, row, col), NULL, 10);
}

