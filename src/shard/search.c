/* search.c — §14 "Hybrid Search с тематическим Temporal Decay и
 * Confidence": {user_id, query, query_embedding?, top_k?} → "episodes".
 *
 * The SQL is the spec's (vector branch over the user's embeddable,
 * not-forgotten user messages; FTS branch, 'simple' config, over every role
 * including response_description; merged score 0.7·vec + 0.3·fts times the
 * recency boost 1 + 0.3·exp(−λ·(1.3 − confidence)·days) with the per-type
 * λ table; vec_score > SIMILARITY_THRESHOLD OR fts_score > 0; episode_card
 * = response_description for assistant artifacts, else memory_snippet or
 * LEFT(content, 80)) with one change, measured in bench/shard/: the vector
 * branch does not ask the partition's HNSW graph, which is shared by every
 * conversation of the partition and silently loses the user's neighbours
 * (recall@20 0.87, empty results); it scans the user's own binary-quantized
 * vectors exactly (migration 0006, index-only) and re-ranks the best
 * RETRIEVAL_CANDIDATES (300) by exact cosine distance. --plan spec runs the
 * spec's SQL unchanged, for comparison.
 *
 * The diversity filter (at most 3 episodes from one calendar day, UTC) is
 * applied here, in the application layer as §14 says, over every merged
 * candidate before the top_k cut, so a busy day cannot starve the list. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "conf.h"
#include "filter.h"
#include "log.h"
#include "pg.h"
#include "shard.h"
#include "util.h"

#define SEARCH_PER_DAY 3

struct search_state {
	struct shard_ctx x;
	int spec_plan;
	long top_k, candidates;
	double threshold;
	char threshold_s[32], candidates_s[24];
};

/* $1 query vector (or NULL), $2 conversation, $3 query text (or NULL),
 * $4 threshold, $5 candidates. The query's binary quantization is a
 * sub-select, so it runs once (an InitPlan) even in a generic plan, which
 * the plan cache may choose for a prepared statement: written inline it
 * was computed again for each of the user's rows — 28 ms instead of 6 at
 * 15,000 rows (EXPLAIN ANALYZE, plan_cache_mode = force_generic_plan). */
#define VEC_COLS "id, content, memory_snippet, memory_type, memory_confidence, created_at, role," \
		 " response_description"

static const char vector_prefilter[] =
	"cand AS MATERIALIZED ("
	" SELECT id FROM (SELECT id, embedding_bq <~> (SELECT binary_quantize($1::vector)::bit(1024)) AS h"
	"  FROM messages WHERE conversation_id = $2 AND role = 'user' AND is_embeddable = TRUE"
	"  AND is_forgotten = FALSE AND embedding IS NOT NULL AND $1::vector IS NOT NULL OFFSET 0) s"
	" ORDER BY h LIMIT $5::int),"
	"vector_results AS ("
	" SELECT " VEC_COLS ", GREATEST(0, 1 - d) AS vec_score FROM ("
	"  SELECT " VEC_COLS ", embedding <=> $1::vector AS d FROM messages"
	"  WHERE conversation_id = $2 AND id IN (SELECT id FROM cand)"
	"  AND is_forgotten = FALSE AND embedding IS NOT NULL OFFSET 0) r"
	" ORDER BY d LIMIT 20),";

static const char vector_spec[] =
	"vector_results AS ("
	" SELECT " VEC_COLS ", GREATEST(0, 1 - (embedding <=> $1::vector)) AS vec_score"
	" FROM messages WHERE conversation_id = $2 AND role = 'user' AND is_embeddable = TRUE"
	" AND is_forgotten = FALSE AND embedding IS NOT NULL AND $1::vector IS NOT NULL"
	" ORDER BY embedding <=> $1::vector LIMIT 20),";

static const char rest_sql[] =
	"fts_results AS ("
	" SELECT " VEC_COLS ","
	" LEAST(1.0, ts_rank(tsv, plainto_tsquery('simple', $3)) * 10) AS fts_score"
	" FROM messages WHERE conversation_id = $2 AND is_forgotten = FALSE AND $3::text IS NOT NULL"
	" AND tsv @@ plainto_tsquery('simple', $3)"
	" ORDER BY fts_score DESC LIMIT 10),"
	"merged AS ("
	" SELECT COALESCE(v.id, f.id) AS id, COALESCE(v.content, f.content) AS content,"
	" COALESCE(v.memory_snippet, f.memory_snippet) AS memory_snippet,"
	" COALESCE(v.memory_type, f.memory_type) AS memory_type,"
	" COALESCE(v.memory_confidence, f.memory_confidence) AS memory_confidence,"
	" COALESCE(v.created_at, f.created_at) AS created_at, COALESCE(v.role, f.role) AS role,"
	" COALESCE(v.response_description, f.response_description) AS response_description,"
	" COALESCE(v.vec_score, 0) AS vec_score, COALESCE(f.fts_score, 0) AS fts_score"
	" FROM vector_results v FULL OUTER JOIN fts_results f ON v.id = f.id),"
	"scored AS ("
	" SELECT id, CASE WHEN role = 'assistant' AND response_description IS NOT NULL"
	"  THEN response_description ELSE COALESCE(memory_snippet, LEFT(content, 80)) END AS episode_card,"
	" created_at, role, memory_type, vec_score, fts_score,"
	" (0.7 * vec_score + 0.3 * fts_score) * (1 + 0.3 * EXP(-1 * CASE memory_type"
	"  WHEN 'emotion' THEN 0.015 WHEN 'event' THEN 0.008 WHEN 'general' THEN 0.005"
	"  WHEN 'preference' THEN 0.002 WHEN 'fact' THEN 0.001 ELSE 0.005 END"
	"  * (1.3 - COALESCE(memory_confidence, 0.5))"
	"  * EXTRACT(EPOCH FROM NOW() - created_at) / 86400)) AS final_score"
	" FROM merged WHERE vec_score > $4::float8 OR fts_score > 0)"
	"SELECT id, episode_card, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),"
	" role, memory_type, vec_score::float8, fts_score::float8, final_score::float8,"
	" to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
	" FROM scored ORDER BY final_score DESC, created_at DESC, id";

/* Run the hybrid query as a prepared statement on c (prepared once per
 * connection): a long-running filter behind unde-httpd skips re-planning
 * the 64-partition query each time (0.7–2.5 ms measured), and PostgreSQL's
 * plan cache decides between custom and generic plans. */
static PGresult *search_exec(struct search_state *s, PGconn *c, const char *const *pp)
{
	const char *name = s->spec_plan ? "unde_search_spec" : "unde_search_prefilter";
	unsigned bit = s->spec_plan ? 2u : 1u;
	struct shard_conn *sc = NULL;
	for (size_t i = 0; i < s->x.nconns; i++)
		if (s->x.conns[i].c == c)
			sc = &s->x.conns[i];
	int nparams = s->spec_plan ? 4 : 5;
	if (!sc || !(sc->prepared & bit)) {
		struct buf sql = { 0 };
		buf_append(&sql, "WITH ", 5);
		const char *vb = s->spec_plan ? vector_spec : vector_prefilter;
		buf_append(&sql, vb, strlen(vb));
		buf_append(&sql, rest_sql, sizeof rest_sql);
		PGresult *p = PQprepare(c, name, sql.data, nparams, NULL);
		buf_free(&sql);
		int ok = p && PQresultStatus(p) == PGRES_COMMAND_OK;
		if (!ok)
			log_event(LOG_ERROR, "cannot prepare the hybrid search",
				  json_pack("{s:s}", "error", pg_last_error(c)));
		PQclear(p);
		if (!ok)
			return NULL;
		if (sc)
			sc->prepared |= bit;
	}
	PGresult *r = PQexecPrepared(c, name, nparams, pp, NULL, NULL, 0);
	if (r && PQresultStatus(r) == PGRES_TUPLES_OK)
		return r;
	log_event(LOG_ERROR, "hybrid search failed", json_pack("{s:s}", "error", pg_last_error(c)));
	PQclear(r);
	if (sc)
		sc->prepared &= ~bit; /* a reset connection forgets its statements */
	return NULL;
}

static int search_record(void *state, struct filter_run *run, json_t *rec)
{
	struct search_state *s = state;
	const char *user = jstr(rec, "user_id");
	const json_t *q = json_object_get(rec, "query"), *emb = json_object_get(rec, "query_embedding");
	const json_t *tk = json_object_get(rec, "top_k");
	if (!user || !uuid_valid(user))
		return filter_fail(run, EX_DATAERR, "invalid_field", "user_id must be a UUID");
	if (q && !json_is_null(q) && !json_is_string(q))
		return filter_fail(run, EX_DATAERR, "invalid_field", "query must be a string");
	if (emb && !json_is_null(emb)) {
		size_t i;
		const json_t *e;
		if (!json_is_array(emb) || !json_array_size(emb))
			return filter_fail(run, EX_DATAERR, "invalid_field", "query_embedding must be an array of numbers");
		json_array_foreach(emb, i, e) if (!json_is_number(e))
			return filter_fail(run, EX_DATAERR, "invalid_field", "query_embedding must be an array of numbers");
	} else {
		emb = NULL;
	}
	const char *text = json_is_string(q) && *json_string_value(q) ? json_string_value(q) : NULL;
	if (!text && !emb)
		return filter_fail(run, EX_DATAERR, "invalid_field", "query or query_embedding is required");
	long top_k = s->top_k;
	if (tk && !json_is_null(tk)) {
		if (!json_is_integer(tk) || json_integer_value(tk) < 1 || json_integer_value(tk) > 100)
			return filter_fail(run, EX_DATAERR, "invalid_field", "top_k must be an integer from 1 to 100");
		top_k = (long)json_integer_value(tk);
	}
	struct shard_err e;
	long sid;
	PGconn *c = sctx_for_user(&s->x, user, 0, &sid, &e);
	json_t *episodes = json_array();
	if (!c) {
		if (e.code && !strcmp(e.code, "unknown_user"))
			goto done; /* nothing stored: no episodes */
		json_decref(episodes);
		return sctx_fail(run, &e);
	}
	const char *pu[] = { user };
	PGresult *r = pg_query(c, "SELECT id FROM conversations WHERE user_id = $1", 1, pu);
	if (!r) {
		json_decref(episodes);
		return sctx_query_fail(run, c, "cannot find the conversation");
	}
	if (PQntuples(r) == 0) {
		PQclear(r);
		goto done;
	}
	char conv[37];
	snprintf(conv, sizeof conv, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);

	char *vec = emb ? json_dumps(emb, JSON_COMPACT) : NULL;
	const char *pp[] = { vec, conv, text, s->threshold_s, s->candidates_s };
	double t0 = util_now_ms();
	r = search_exec(s, c, pp);
	double ms = util_now_ms() - t0;
	free(vec);
	if (!r) {
		json_decref(episodes);
		return sctx_query_fail(run, c, "hybrid search failed");
	}
	/* diversity: at most SEARCH_PER_DAY per calendar day, then top_k */
	char days[100][11];
	int counts[100], ndays = 0;
	for (int i = 0; i < PQntuples(r) && (long)json_array_size(episodes) < top_k; i++) {
		const char *day = PQgetvalue(r, i, 8);
		int d;
		for (d = 0; d < ndays && strcmp(days[d], day); d++)
			;
		if (d == ndays) {
			if (ndays == 100)
				break;
			snprintf(days[ndays], sizeof days[ndays], "%s", day);
			counts[ndays++] = 0;
		}
		if (counts[d] >= SEARCH_PER_DAY)
			continue;
		counts[d]++;
		json_array_append_new(
			episodes,
			json_pack("{s:s, s:s, s:s, s:s, s:s, s:f, s:f, s:f}", "id", PQgetvalue(r, i, 0),
				  "episode_card", PQgetvalue(r, i, 1), "created_at", PQgetvalue(r, i, 2),
				  "role", PQgetvalue(r, i, 3), "memory_type",
				  PQgetisnull(r, i, 4) ? "general" : PQgetvalue(r, i, 4), "vec_score",
				  strtod(PQgetvalue(r, i, 5), NULL), "fts_score",
				  strtod(PQgetvalue(r, i, 6), NULL), "score", strtod(PQgetvalue(r, i, 7), NULL)));
	}
	PQclear(r);
	log_event(LOG_DEBUG, "hybrid search",
		  json_pack("{s:s, s:f, s:s}", "user_id", user, "hybrid_search_latency_ms", ms,
			    "plan", s->spec_plan ? "spec" : "prefilter"));
done:
	json_object_set_new(rec, "episodes", episodes);
	return 0;
}

enum { OPT_PLAN = 2000, OPT_CANDIDATES };

static int search_option(void *state, int opt, const char *arg)
{
	struct search_state *s = state;
	if (opt == OPT_PLAN) {
		if (!strcmp(arg, "spec"))
			s->spec_plan = 1;
		else if (!strcmp(arg, "prefilter"))
			s->spec_plan = 0;
		else
			return -1;
		return 0;
	}
	if (opt == OPT_CANDIDATES) {
		char *end;
		s->candidates = strtol(arg, &end, 10);
		return (*end || s->candidates < 20 || s->candidates > 100000) ? -1 : 0;
	}
	return sctx_option(&s->x, opt, arg) == 1 ? 0 : -1;
}

static int search_start(void *state, struct filter_run *run, int argc, char **argv)
{
	(void)run;
	(void)argv;
	struct search_state *s = state;
	if (argc) {
		log_event(LOG_ERROR, "unexpected argument", json_pack("{s:i}", "exit", EX_USAGE));
		return EX_USAGE;
	}
	s->top_k = conf_long("RETRIEVAL_TOP_K", 15, 1, 100);
	s->threshold = conf_double("SIMILARITY_THRESHOLD", 0.5, 0, 1);
	if (!s->candidates)
		/* the fewest candidates with recall@20 ≥ 0.99 at five years of
		 * history (bench/shard: 200 → 0.986, 300 → 0.996, 400 → 0.9995),
		 * each 100 more costing ≈0.4 ms there */
		s->candidates = conf_long("RETRIEVAL_CANDIDATES", 300, 20, 100000);
	snprintf(s->threshold_s, sizeof s->threshold_s, "%.17g", s->threshold);
	snprintf(s->candidates_s, sizeof s->candidates_s, "%ld", s->candidates);
	return 0;
}

static void search_finish(void *state, struct filter_run *run)
{
	(void)run;
	sctx_close(&((struct search_state *)state)->x);
}

static const struct option search_longopts[] = {
	SCTX_LONGOPTS,
	{ "plan", required_argument, NULL, OPT_PLAN },
	{ "candidates", required_argument, NULL, OPT_CANDIDATES },
	{ 0 },
};

int shard_filter_search(int argc, char **argv)
{
	static const struct filter_def def = {
		.name = "unde-shard",
		.summary = "search: hybrid search (vector + FTS, recency boost, diversity) of each\n"
			   "{user_id, query, query_embedding?, top_k?} → \"episodes\".",
		.synopsis = "search [--plan prefilter|spec] [--candidates N] [--shard N | --url URL]",
		.options_help = SCTX_HELP
		"  --plan prefilter     exact scan of the user's binary-quantized vectors, best N\n"
		"                       re-ranked by cosine (default)\n"
		"  --plan spec          the spec's SQL as written (partition HNSW index)\n"
		"  --candidates N       re-ranked candidates (default RETRIEVAL_CANDIDATES, 300)\n",
		.shortopts = "",
		.longopts = search_longopts,
		.on_option = search_option,
		.on_start = search_start,
		.on_record = search_record,
		.on_finish = search_finish,
	};
	struct search_state s = { .top_k = 15 };
	sctx_init(&s.x);
	return filter_main(&def, &s, argc, argv);
}
