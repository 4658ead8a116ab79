/* shardc_limit.c — the server side of §14's verify-and-replay rate limit
 * ("Rate-limit retry: 1 пара/сек/юзер, max 3 попытки"). The app limits
 * itself; POST /verify-and-replay checks the same figures, so that a
 * client stuck in a retry loop cannot flood a just-promoted primary.
 * The state is rows of the shard (0030), changed in the replay's own
 * transaction: every process and app server sees one bucket per user, and
 * a replay that is refused or fails leaves the bucket as it was. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sysexits.h>

#include "conf.h"
#include "pg.h"
#include "shardc.h"

/* The spec's figures, overridable for tests and for tuning. */
void shard_replay_limit_load(struct shard_replay_limit *l)
{
	l->rate = conf_double("REPLAY_PAIRS_PER_SECOND", 1.0, 1e-6, 1e6);
	l->burst = conf_double("REPLAY_BURST_PAIRS", 10.0, 1.0, 1e6);
	l->max_tries = conf_long("REPLAY_MAX_TRIES", 3, 1, 1000);
}

/* One try more for every message of the request; refused when one of
 * them was already replayed max_tries times within the hour. */
static int count_tries(const struct shard_replay_limit *l, PGconn *c, const char *user,
		       const json_t *ids, struct shard_err *e)
{
	char *js = json_dumps(ids, JSON_COMPACT);
	if (!js)
		return shard_err_set(e, EX_SOFTWARE, "out_of_memory", "cannot encode the message ids");
	char maxs[24];
	snprintf(maxs, sizeof maxs, "%ld", l->max_tries);
	const char *pp[] = { user, js, maxs };
	const char *pu[] = { user };
	if (pg_exec(c, "DELETE FROM replay_tries WHERE user_id = $1::uuid"
		       " AND last_at < clock_timestamp() - interval '1 hour'", 1, pu) != 0) {
		free(js);
		return shard_err_query(e, c, "cannot prune the replay tries");
	}
	PGresult *r = pg_query(c,
			       "WITH t AS (INSERT INTO replay_tries AS r (user_id, message_id)"
			       " SELECT $1::uuid, i::uuid FROM jsonb_array_elements_text($2::jsonb) AS j(i)"
			       " ON CONFLICT (user_id, message_id) DO UPDATE"
			       " SET tries = r.tries + 1, last_at = clock_timestamp()"
			       " RETURNING message_id, tries)"
			       " SELECT message_id::text, tries FROM t WHERE tries > $3::int"
			       " ORDER BY message_id LIMIT 1",
			       3, pp);
	free(js);
	if (!r)
		return shard_err_query(e, c, "cannot count the replay tries");
	int over = PQntuples(r) > 0;
	if (over)
		shard_err_set(e, EX_DATAERR, "too_many_tries",
			      "message %s was already replayed %ld times (REPLAY_MAX_TRIES); not again",
			      PQgetvalue(r, 0, 0), l->max_tries);
	PQclear(r);
	return over ? -1 : 0;
}

/* Take pairs tokens from the user's bucket, refilled since its last use. */
static int take_tokens(const struct shard_replay_limit *l, PGconn *c, const char *user,
		       size_t pairs, struct shard_err *e)
{
	char rate[40], burst[40], want[24];
	snprintf(rate, sizeof rate, "%.17g", l->rate);
	snprintf(burst, sizeof burst, "%.17g", l->burst);
	snprintf(want, sizeof want, "%zu", pairs);
	const char *pi[] = { user, burst };
	if (pg_exec(c, "INSERT INTO replay_rate (user_id, tokens) VALUES ($1::uuid, $2::float8)"
		       " ON CONFLICT (user_id) DO NOTHING", 2, pi) != 0)
		return shard_err_query(e, c, "cannot read the replay rate");
	/* the row is locked until the replay commits: concurrent replays of one
	 * user queue here and see each other's spending */
	const char *pp[] = { user, rate, burst, want };
	PGresult *r = pg_query(c,
			       "WITH b AS (SELECT least($3::float8, tokens + $2::float8 *"
			       "  greatest(0, extract(epoch FROM clock_timestamp() - updated_at))) AS avail"
			       "  FROM replay_rate WHERE user_id = $1::uuid FOR UPDATE)"
			       " UPDATE replay_rate SET tokens = b.avail - $4::float8, updated_at = clock_timestamp()"
			       " FROM b WHERE user_id = $1::uuid AND b.avail >= $4::float8"
			       " RETURNING 1, (SELECT avail FROM b)",
			       4, pp);
	if (!r)
		return shard_err_query(e, c, "cannot take from the replay rate");
	int ok = PQntuples(r) == 1;
	PQclear(r);
	if (ok)
		return 0;
	r = pg_query(c,
		     "SELECT least($3::float8, tokens + $2::float8 *"
		     " greatest(0, extract(epoch FROM clock_timestamp() - updated_at)))"
		     " FROM replay_rate WHERE user_id = $1::uuid",
		     3, pp);
	if (!r)
		return shard_err_query(e, c, "cannot read the replay rate");
	double avail = PQntuples(r) == 1 ? strtod(PQgetvalue(r, 0, 0), NULL) : 0;
	PQclear(r);
	double wait = ((double)pairs - avail) / l->rate;
	return shard_err_set(e, EX_TEMPFAIL, "rate_limited",
			     "replay of %zu pairs for user %s is over %g pairs/s; retry in %.0f s",
			     pairs, user, l->rate, ceil(wait < 1 ? 1 : wait));
}

int shard_replay_admit(const struct shard_replay_limit *l, PGconn *c, const char *user,
		       size_t pairs, const json_t *ids, struct shard_err *e)
{
	if ((double)pairs > l->burst)
		return shard_err_set(e, EX_DATAERR, "too_many_pairs",
				     "%zu unconfirmed pairs in one replay; at most %g (REPLAY_BURST_PAIRS)",
				     pairs, l->burst);
	if (json_array_size(ids) && count_tries(l, c, user, ids, e) != 0)
		return -1;
	return pairs ? take_tokens(l, c, user, pairs, e) : 0;
}
