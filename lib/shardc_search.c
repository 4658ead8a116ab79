/* shardc_search.c — §14 "Hybrid Search с тематическим Temporal Decay и
 * Confidence": a user's history → "episodes" (shardc.h: shard_search).
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
 * RETRIEVAL_CANDIDATES (300) — more in a crowded neighbourhood, see
 * vector_prefilter — by exact cosine distance. --plan spec runs the
 * spec's SQL unchanged, for comparison.
 *
 * The diversity filter (at most 3 episodes from one calendar day, UTC) is
 * applied here, in the application layer as §14 says, over every merged
 * candidate before the top_k cut, so a busy day cannot starve the list.
 *
 * With the prefilter plan the two branches run at once, each a statement
 * of its own on its own connection to the shard (search_parallel), and
 * the merge, score and order of rest_sql are done here on their rows
 * (merge_branches); without a second connection, the one combined
 * statement runs. Either way through PQexecParams/PQsendQueryParams,
 * planned each time: a named prepared statement would outlive the
 * transaction, and PgBouncer in transaction mode hands the next
 * transaction another server connection that never saw it. Behind
 * PgBouncer a search holds two server connections while it runs. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "conf.h"
#include "log.h"
#include "pg.h"
#include "shardc.h"
#include "util.h"

#define SEARCH_PER_DAY 3
#define SEARCH_MAX_DAYS 100

/* $1 query vector (or NULL), $2 conversation, $3 query text (or NULL),
 * $4 threshold, then the prefilter's $5 candidates and $6 query model, or
 * the spec plan's $5 query model (a message embedded by another model is
 * never a vector candidate). The query's binary quantization is a
 * sub-select, so it runs once (an InitPlan) whatever plan PostgreSQL
 * chooses: written inline it was computed again for each of the user's
 * rows in a generic plan — 28 ms instead of 6 at 15,000 rows. */
#define VEC_COLS "id, content, memory_snippet, memory_type, memory_confidence, created_at, role," \
		 " response_description"

/* The candidate count adapts to the neighbourhood (issue 9): a fixed 300
 * lost true neighbours when hundreds of the user's vectors lay above the
 * threshold (a user's favourite topic: recall@20 0.86 there), the Hamming
 * order being too coarse to rank near-ties. The Hamming distance h of two
 * binary codes estimates their angle (h/1024 ≈ θ/π), so the user's vectors
 * with h ≤ $8 = 1024·acos(SIMILARITY_THRESHOLD)/π are those estimated above
 * the threshold; they are all re-ranked, plus $5/2 for the estimate's
 * error, never fewer than $5 nor more than $7 (RETRIEVAL_CANDIDATES_MAX).
 * The Hamming distances are computed once (ham), then counted and sorted;
 * the re-rank reads only each candidate's vector, the other columns are
 * read for the best 20 (vbest).
 *
 * A sparse query (most coordinates zero: the local n-gram model's feature
 * hashing, ~56 of 1024) is ordered by the Jaccard distance of the codes
 * instead (PREFILTER_SPARSE): its code marks only its positive coordinates,
 * so the Hamming distance mostly counts how many bits the two codes have,
 * not what they share, and estimates no angle; the count rule is off ($8 =
 * -1) and the best $5 are re-ranked. On bench/llm's five-year user (7,300
 * local vectors, 40 queries, ties at the 20th counted as found) recall@20
 * was 1.000 from 100 Jaccard candidates, against 0.995 from 300 and 1.000
 * from 1000 Hamming ones; the Hamming rule re-ranked its 3000 maximum. */
#define PREFILTER(DISTANCE) \
	"ham AS MATERIALIZED (" \
	" SELECT id, embedding_bq " DISTANCE " (SELECT binary_quantize($1::vector)::bit(1024)) AS h" \
	"  FROM messages WHERE conversation_id = $2 AND role = 'user' AND is_embeddable = TRUE" \
	"  AND is_forgotten = FALSE AND embedding IS NOT NULL AND $1::vector IS NOT NULL" \
	"  AND embedding_model IS NOT DISTINCT FROM $6::text)," \
	"cand AS MATERIALIZED (" \
	" SELECT id FROM ham ORDER BY h LIMIT (SELECT GREATEST($5::int, LEAST($7::int, count(*) + $5::int / 2))" \
	"  FROM ham WHERE h <= $8::int))," \
	"vbest AS MATERIALIZED (" \
	" SELECT id, d FROM (SELECT id, embedding <=> $1::vector AS d FROM messages" \
	"  WHERE conversation_id = $2 AND id IN (SELECT id FROM cand)" \
	"  AND is_forgotten = FALSE AND embedding IS NOT NULL OFFSET 0) r" \
	" ORDER BY d LIMIT 20)," \
	"vector_results AS (" \
	" SELECT " VEC_COLS ", GREATEST(0, 1 - d) AS vec_score FROM messages m JOIN vbest b USING (id)" \
	" WHERE m.conversation_id = $2),"
static const char vector_prefilter[] = PREFILTER("<~>");
static const char vector_prefilter_sparse[] = PREFILTER("<%>");

/* The same branch where the shard has the native function (migration
 * 0050, src/shard/pg/unde_vector.c): ham, cand and vbest in one call,
 * which walks the partition's covering index itself and fetches the
 * candidates by the heap TIDs it saw instead of a primary-key descent
 * each (bench/shard/crowded.sh: half the time, the same answers); it finds
 * the conversation's partition itself, as tuple routing does. */
#define NATIVE(METRIC) \
	"vbest AS MATERIALIZED (" \
	" SELECT id, distance AS d FROM unde_vector_topk(" \
	"  'messages'::regclass, $2::uuid, $1::vector, $6::text, $5::int, $7::int, $8::int, '" METRIC "', 20))," \
	"vector_results AS (" \
	" SELECT " VEC_COLS ", GREATEST(0, 1 - d) AS vec_score FROM messages m JOIN vbest b USING (id)" \
	" WHERE m.conversation_id = $2),"
static const char vector_native[] = NATIVE("hamming");
static const char vector_native_sparse[] = NATIVE("jaccard");

/* Does the shard have unde_vector_topk: asked with the conversation. */
#define NATIVE_PRESENT \
	"to_regprocedure('unde_vector_topk(regclass,uuid,vector,text,integer,integer,integer,text,integer)')" \
	" IS NOT NULL"

/* Is the query vector sparse: more than half its coordinates zero? */
static int query_sparse(const json_t *emb)
{
	size_t i, zeros = 0;
	const json_t *v;
	json_array_foreach(emb, i, v) zeros += json_number_value(v) == 0;
	return zeros * 2 > json_array_size(emb);
}

static const char vector_spec[] =
	"vector_results AS ("
	" SELECT " VEC_COLS ", GREATEST(0, 1 - (embedding <=> $1::vector)) AS vec_score"
	" FROM messages WHERE conversation_id = $2 AND role = 'user' AND is_embeddable = TRUE"
	" AND is_forgotten = FALSE AND embedding IS NOT NULL AND $1::vector IS NOT NULL"
	" AND embedding_model IS NOT DISTINCT FROM $5::text"
	" ORDER BY embedding <=> $1::vector LIMIT 20),";

/* The spec's full-text branch: every word of the query ANDed
 * (plainto_tsquery), ts_rank. */
static const char fts_spec[] =
	"fts_results AS ("
	" SELECT " VEC_COLS ","
	" LEAST(1.0, ts_rank(tsv, plainto_tsquery('simple', $3)) * 10) AS fts_score"
	" FROM messages WHERE conversation_id = $2 AND is_forgotten = FALSE AND $3::text IS NOT NULL"
	" AND tsv @@ plainto_tsquery('simple', $3)"
	" ORDER BY fts_score DESC LIMIT 10),";

/* The full-text branch that contributes (issue 9). The spec's ANDs every
 * word, so a natural sentence matched nothing; ts_rank weighs a common word
 * like a rare one; a common word ranked thousands of rows; ties fell to the
 * oldest. Here each distinct term of the query (at most FTS_TERMS) weighs
 * ln(1 + N/df), df its document frequency in the user's history and N the
 * conversation's message count, and a message's fts_score is the weight of
 * the terms it contains over the weight of all the terms the user ever
 * used (0..1); ties go to the newest. A term the user never wrote weighs
 * nothing.
 *
 * Cost is bounded by one walk of the user's FTS_WALK newest messages, for
 * all terms at once (the time index, newest first; a heap row is a page,
 * its vector being inline). The walk counts each term's matches c in it:
 * a history no longer than the walk is then known exactly (df = c); in a
 * longer one a term whose estimate df = c·N/FTS_WALK reaches FTS_DF_CAP is
 * common, weighs by that estimate and brings only its matches in the walk
 * — never its thousands of older ones. Only a term the walk finds rare is
 * looked up in the GIN of 0021, at most FTS_DF_CAP rows: fewer, and all of
 * them are candidates with df exact (forgotten rows count in df); as many,
 * and it weighs as if at the cap and brings its walk matches only. The
 * best 10 candidates' columns are read last, by primary key. */
#define FTS_TERMS "16"
#define FTS_DF_CAP "200"
#define FTS_WALK "500"
static const char fts_weighted[] =
	"terms AS MATERIALIZED ("
	" SELECT k, q FROM (SELECT k, plainto_tsquery('simple', lexeme) AS q"
	"  FROM unnest(to_tsvector('simple', COALESCE($3::text, ''))) WITH ORDINALITY AS u(lexeme, p, w, k)"
	"  LIMIT " FTS_TERMS ") t WHERE numnode(q) > 0),"
	"walk AS MATERIALIZED ("
	" SELECT id, tsv, created_at FROM messages WHERE conversation_id = $2 AND is_forgotten = FALSE"
	"  AND EXISTS (SELECT 1 FROM terms) ORDER BY created_at DESC LIMIT " FTS_WALK "),"
	"wstat AS MATERIALIZED ("
	" SELECT k, q, c, whole, n, NOT whole AND c * n < " FTS_DF_CAP " * " FTS_WALK " AS rare FROM ("
	"  SELECT t.k, t.q, (SELECT count(*) FROM walk WHERE walk.tsv @@ t.q) AS c,"
	"  (SELECT count(*) FROM walk) < " FTS_WALK " AS whole,"
	"  GREATEST(1, (SELECT message_count FROM conversations WHERE id = $2))::bigint AS n"
	"  FROM terms t) s),"
	"rare AS MATERIALIZED ("
	" SELECT s.k, r.id, r.tsv, r.created_at, r.is_forgotten FROM wstat s, LATERAL ("
	"  SELECT id, tsv, created_at, is_forgotten FROM messages WHERE s.rare AND conversation_id = $2"
	"  AND tsv @@ s.q LIMIT " FTS_DF_CAP ") r),"
	"tw AS MATERIALIZED ("
	" SELECT s.k, s.q, s.rare AND x.df < " FTS_DF_CAP " AS fetched,"
	"  ln(1 + GREATEST(x.df, s.n) / GREATEST(x.df, 1)) AS w"
	" FROM wstat s LEFT JOIN (SELECT k, count(*) AS df FROM rare GROUP BY k) d ON d.k = s.k,"
	" LATERAL (SELECT (CASE WHEN s.whole THEN s.c WHEN NOT s.rare THEN s.c * s.n / " FTS_WALK ".0"
	"  ELSE COALESCE(d.df, 0) END)::float8 AS df) x WHERE x.df > 0),"
	"fcand AS MATERIALIZED ("
	" SELECT DISTINCT ON (id) id, tsv, created_at FROM ("
	"  SELECT id, tsv, created_at FROM walk WHERE tsv @@ ANY (ARRAY(SELECT q FROM tw))"
	"  UNION ALL SELECT r.id, r.tsv, r.created_at FROM rare r JOIN tw ON tw.k = r.k AND tw.fetched"
	"  WHERE NOT r.is_forgotten) c ORDER BY id),"
	"ftop AS MATERIALIZED ("
	" SELECT id, LEAST(1.0, (SELECT sum(w) FROM tw WHERE c.tsv @@ tw.q) / (SELECT sum(w) FROM tw)) AS fts_score"
	" FROM fcand c ORDER BY fts_score DESC, created_at DESC, id LIMIT 10),"
	"fts_results AS ("
	" SELECT " VEC_COLS ", fts_score FROM messages m JOIN ftop f USING (id)"
	" WHERE m.conversation_id = $2 AND m.is_forgotten = FALSE),";

/* The spec's recency boost 1 + 0.3·exp(−λ·(1.3 − confidence)·days), λ by
 * memory type, and its episode card: one text for the merged query and
 * for each branch run alone. */
#define RECENCY_BOOST \
	"(1 + 0.3 * EXP(-1 * CASE memory_type" \
	"  WHEN 'emotion' THEN 0.015 WHEN 'event' THEN 0.008 WHEN 'general' THEN 0.005" \
	"  WHEN 'preference' THEN 0.002 WHEN 'fact' THEN 0.001 ELSE 0.005 END" \
	"  * (1.3 - COALESCE(memory_confidence, 0.5))" \
	"  * EXTRACT(EPOCH FROM NOW() - LEAST(NOW(), created_at)) / 86400))"
#define EPISODE_CARD \
	"CASE WHEN role = 'assistant' AND response_description IS NOT NULL" \
	"  THEN response_description ELSE COALESCE(memory_snippet, LEFT(content, 80)) END"
#define CREATED_TEXT "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
#define CREATED_DAY "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')"

/* One branch run alone (the two at once, on two connections): its rows
 * with the score of that branch and the row's recency boost; the merge,
 * the filter and the order of rest_sql are then done by merge_branches. */
#define BRANCH_OUT(score, cte) \
	" SELECT id, " EPISODE_CARD ", " CREATED_TEXT ", role, memory_type, " score "::float8, " \
	RECENCY_BOOST "::float8, " CREATED_DAY ", (EXTRACT(EPOCH FROM created_at) * 1000000)::int8 FROM " cte
static const char vector_out[] = BRANCH_OUT("vec_score", "vector_results");
static const char fts_out[] = BRANCH_OUT("fts_score", "fts_results");

static const char rest_sql[] =
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
	" SELECT id, " EPISODE_CARD " AS episode_card,"
	" created_at, role, memory_type, vec_score, fts_score,"
	" (0.7 * vec_score + 0.3 * fts_score) * " RECENCY_BOOST " AS final_score"
	" FROM merged WHERE vec_score > $4::float8 OR fts_score > 0)"
	"SELECT id, episode_card, " CREATED_TEXT ","
	" role, memory_type, vec_score::float8, fts_score::float8, final_score::float8, " CREATED_DAY
	" FROM scored ORDER BY final_score DESC, created_at DESC, id";

#define SEARCH_PARAMS 8

/* Send WITH ctes (their list's last comma dropped) out on c, typing as
 * text the parameters the text leaves unused (PostgreSQL cannot infer
 * those). 0, or -1 (logged). */
static int branch_send(PGconn *c, const char *ctes, const char *out, unsigned used, const char *const *pp)
{
	struct buf sql = { 0 };
	buf_append(&sql, "WITH ", 5);
	buf_append(&sql, ctes, strlen(ctes) - 1);
	buf_append(&sql, out, strlen(out) + 1);
	Oid types[SEARCH_PARAMS];
	for (int i = 0; i < SEARCH_PARAMS; i++)
		types[i] = (used >> i) & 1 ? 0 : 25 /* TEXTOID */;
	int ok = PQsendQueryParams(c, sql.data, SEARCH_PARAMS, types, pp, NULL, NULL, 0);
	buf_free(&sql);
	if (!ok)
		log_event(LOG_ERROR, "hybrid search failed", json_pack("{s:s}", "error", pg_last_error(c)));
	return ok ? 0 : -1;
}

/* The result of what branch_send sent on c, or NULL (logged); c is left
 * ready for the next query either way. */
static PGresult *branch_wait(PGconn *c)
{
	PGresult *r = NULL, *next;
	while ((next = PQgetResult(c))) {
		if (r)
			PQclear(r);
		r = next;
	}
	if (r && PQresultStatus(r) == PGRES_TUPLES_OK)
		return r;
	log_event(LOG_ERROR, "hybrid search failed", json_pack("{s:s}", "error", pg_last_error(c)));
	PQclear(r);
	return NULL;
}

/* Run the hybrid query on c with parameters pp, as one statement: the
 * result, best first, or NULL (logged). */
static PGresult *search_exec(int spec_plan, const char *prefilter, PGconn *c, const char *const *pp)
{
	struct buf sql = { 0 };
	buf_append(&sql, "WITH ", 5);
	const char *vb = spec_plan ? vector_spec : prefilter;
	buf_append(&sql, vb, strlen(vb));
	const char *fb = spec_plan ? fts_spec : fts_weighted;
	buf_append(&sql, fb, strlen(fb));
	buf_append(&sql, rest_sql, sizeof rest_sql);
	PGresult *r = PQexecParams(c, sql.data, spec_plan ? 5 : 8, NULL, pp, NULL, NULL, 0);
	buf_free(&sql);
	if (r && PQresultStatus(r) == PGRES_TUPLES_OK)
		return r;
	log_event(LOG_ERROR, "hybrid search failed", json_pack("{s:s}", "error", pg_last_error(c)));
	PQclear(r);
	return NULL;
}

/* One merged candidate; its strings point into a PGresult. */
struct hit {
	const char *id, *card, *created, *role, *type, *day;
	double vec, fts, boost, score;
	long long us; /* created_at, µs since the epoch: the tie-break */
};

/* rest_sql's order: final score, then the newest, then the id. */
static int hit_cmp(const void *pa, const void *pb)
{
	const struct hit *a = pa, *b = pb;
	if (a->score != b->score)
		return a->score > b->score ? -1 : 1;
	if (a->us != b->us)
		return a->us > b->us ? -1 : 1;
	return strcmp(a->id, b->id);
}

/* Row i of a branch's result (BRANCH_OUT's columns) as a hit. */
static struct hit branch_hit(const PGresult *r, int i, int is_vec)
{
	double s = strtod(PQgetvalue(r, i, 5), NULL);
	return (struct hit){ .id = PQgetvalue(r, i, 0), .card = PQgetvalue(r, i, 1),
			     .created = PQgetvalue(r, i, 2), .role = PQgetvalue(r, i, 3),
			     .type = PQgetisnull(r, i, 4) ? NULL : PQgetvalue(r, i, 4),
			     .vec = is_vec ? s : 0, .fts = is_vec ? 0 : s,
			     .boost = strtod(PQgetvalue(r, i, 6), NULL), .day = PQgetvalue(r, i, 7),
			     .us = strtoll(PQgetvalue(r, i, 8), NULL, 10) };
}

/* rest_sql done on the two branches' rows: full outer join on id, kept
 * when vec_score > threshold or fts_score > 0, scored (0.7·vec + 0.3·fts)
 * times the boost, ordered. *n gets the count; the array (malloc'd) points
 * into v and f. */
static struct hit *merge_branches(const PGresult *v, const PGresult *f, double threshold, size_t *n)
{
	size_t nv = (size_t)PQntuples(v), nf = (size_t)PQntuples(f), k = 0;
	struct hit *h = xcalloc(nv + nf + 1, sizeof *h);
	for (size_t i = 0; i < nv; i++)
		h[k++] = branch_hit(v, (int)i, 1);
	for (size_t i = 0; i < nf; i++) {
		struct hit fh = branch_hit(f, (int)i, 0);
		size_t j;
		for (j = 0; j < nv && strcmp(h[j].id, fh.id); j++)
			;
		if (j < nv)
			h[j].fts = fh.fts;
		else
			h[k++] = fh;
	}
	size_t kept = 0;
	for (size_t i = 0; i < k; i++)
		if (h[i].vec > threshold || h[i].fts > 0) {
			h[kept] = h[i];
			h[kept].score = (0.7 * h[kept].vec + 0.3 * h[kept].fts) * h[kept].boost;
			kept++;
		}
	qsort(h, kept, sizeof *h, hit_cmp);
	*n = kept;
	return h;
}

/* The combined query's rows (rest_sql's columns, already ordered) as hits. */
static struct hit *merged_hits(const PGresult *r, size_t *n)
{
	*n = (size_t)PQntuples(r);
	struct hit *h = xcalloc(*n + 1, sizeof *h);
	for (size_t i = 0; i < *n; i++)
		h[i] = (struct hit){ .id = PQgetvalue(r, (int)i, 0), .card = PQgetvalue(r, (int)i, 1),
				     .created = PQgetvalue(r, (int)i, 2), .role = PQgetvalue(r, (int)i, 3),
				     .type = PQgetisnull(r, (int)i, 4) ? NULL : PQgetvalue(r, (int)i, 4),
				     .vec = strtod(PQgetvalue(r, (int)i, 5), NULL),
				     .fts = strtod(PQgetvalue(r, (int)i, 6), NULL),
				     .score = strtod(PQgetvalue(r, (int)i, 7), NULL),
				     .day = PQgetvalue(r, (int)i, 8) };
	return h;
}

/* The prefilter plan's two branches at once: the vector branch on c, the
 * full-text branch on a second connection to the same shard, so the
 * server runs them on two cores instead of one after the other. Fills *v
 * and *f and returns 0; -1 when the second connection cannot be had or a
 * branch failed (nothing left to read on either): the caller then runs the
 * combined query on c. */
static int search_parallel(struct shard_ctx *x, PGconn *c, const char *prefilter, const char *const *pp,
			   PGresult **v, PGresult **f)
{
	*v = *f = NULL;
	PGconn *side = sctx_shard_side(x, c);
	if (!side)
		return -1;
	/* $1 vector, $2 conversation, $5–$8 the prefilter's; $2, $3 text */
	if (branch_send(side, fts_weighted, fts_out, 0x6, pp) < 0)
		return -1;
	int sent = branch_send(c, prefilter, vector_out, 0xF3, pp) == 0;
	*f = branch_wait(side);
	*v = sent ? branch_wait(c) : NULL;
	if (*v && *f)
		return 0;
	PQclear(*v);
	PQclear(*f);
	*v = *f = NULL;
	return -1;
}

void shard_search_defaults(struct shard_search_opts *o)
{
	o->top_k = conf_long("RETRIEVAL_TOP_K", 15, 1, 100);
	o->threshold = conf_double("SIMILARITY_THRESHOLD", 0.5, 0, 1);
	if (o->candidates <= 0)
		/* the fewest candidates with recall@20 ≥ 0.99 at five years of
		 * history (bench/shard: 200 → 0.986, 300 → 0.996, 400 → 0.9995),
		 * each 100 more costing ≈0.4 ms there */
		o->candidates = conf_long("RETRIEVAL_CANDIDATES", 300, 20, 100000);
	if (o->candidates_max <= 0)
		o->candidates_max = conf_long("RETRIEVAL_CANDIDATES_MAX", 3000, 20, 100000);
}

json_t *shard_search(struct shard_ctx *x, const struct shard_search_opts *o, const char *user,
		     const char *text, const json_t *emb, long top_k, struct shard_err *e)
{
	return shard_search_model(x, o, user, text, emb, NULL, top_k, e);
}

json_t *shard_search_model(struct shard_ctx *x, const struct shard_search_opts *o, const char *user,
			   const char *text, const json_t *emb, const char *model, long top_k,
			   struct shard_err *e)
{
	if (!shard_uuid_valid(user)) {
		shard_err_set(e, EX_DATAERR, "invalid_field", "user_id must be a UUID");
		return NULL;
	}
	if (emb) {
		size_t i;
		const json_t *v;
		int ok = json_is_array(emb) && json_array_size(emb) > 0;
		json_array_foreach(emb, i, v) ok &= json_is_number(v);
		if (!ok) {
			shard_err_set(e, EX_DATAERR, "invalid_field", "query_embedding must be an array of numbers");
			return NULL;
		}
	}
	if (text && !*text)
		text = NULL;
	if (!text && !emb) {
		shard_err_set(e, EX_DATAERR, "invalid_field", "query or query_embedding is required");
		return NULL;
	}
	if (top_k <= 0)
		top_k = o->top_k;
	long sid;
	PGconn *c = sctx_for_user(x, user, 0, &sid, e);
	json_t *episodes = json_array();
	if (!c) {
		if (e->code && !strcmp(e->code, "unknown_user"))
			return episodes; /* nothing stored: no episodes */
		json_decref(episodes);
		return NULL;
	}
	const char *pu[] = { user };
	PGresult *r = pg_query(c, "SELECT id, " NATIVE_PRESENT " FROM conversations WHERE user_id = $1", 1, pu);
	if (!r) {
		json_decref(episodes);
		shard_err_query(e, c, "cannot find the conversation");
		return NULL;
	}
	if (PQntuples(r) == 0) {
		PQclear(r);
		return episodes;
	}
	char conv[37], threshold_s[32], candidates_s[24], max_s[24], radius_s[24];
	snprintf(conv, sizeof conv, "%s", PQgetvalue(r, 0, 0));
	int native = emb && !o->spec_plan && !o->sql_plan && !strcmp(PQgetvalue(r, 0, 1), "t");
	PQclear(r);
	snprintf(threshold_s, sizeof threshold_s, "%.17g", o->threshold);
	long cmin = o->candidates > 0 ? o->candidates : 300;
	snprintf(candidates_s, sizeof candidates_s, "%ld", cmin);
	snprintf(max_s, sizeof max_s, "%ld", o->candidates_max > cmin ? o->candidates_max : cmin);
	int sparse = emb && query_sparse(emb);
	snprintf(radius_s, sizeof radius_s, "%d", sparse ? -1 : (int)(1024.0 * acos(o->threshold) / M_PI));
	const char *sql_prefilter = sparse ? vector_prefilter_sparse : vector_prefilter;
	const char *prefilter = native ? (sparse ? vector_native_sparse : vector_native) : sql_prefilter;

	char *vec = emb ? json_dumps(emb, JSON_COMPACT) : NULL;
	const char *pp[] = { vec, conv, text, threshold_s, o->spec_plan ? model : candidates_s, model,
			     max_s, radius_s };
	double t0 = util_now_ms();
	PGresult *f = NULL;
	struct hit *hits;
	size_t nhits;
	int parallel = !o->spec_plan && search_parallel(x, c, prefilter, pp, &r, &f) == 0;
	if (!parallel)
		r = search_exec(o->spec_plan, prefilter, c, pp);
	if (!r && native) {
		/* the function is there but failed (its library missing on a
		 * promoted replica, say): the same branch in SQL */
		log_event(LOG_WARN, "native vector branch failed: running it in SQL",
			  json_pack("{s:s}", "user_id", user));
		native = 0;
		prefilter = sql_prefilter;
		parallel = search_parallel(x, c, prefilter, pp, &r, &f) == 0;
		if (!parallel)
			r = search_exec(0, prefilter, c, pp);
	}
	double ms = util_now_ms() - t0;
	free(vec);
	if (!r) {
		json_decref(episodes);
		shard_err_query(e, c, "hybrid search failed");
		return NULL;
	}
	hits = parallel ? merge_branches(r, f, o->threshold, &nhits) : merged_hits(r, &nhits);
	/* diversity: at most SEARCH_PER_DAY per calendar day, then top_k */
	char days[SEARCH_MAX_DAYS][11];
	int counts[SEARCH_MAX_DAYS], ndays = 0;
	for (size_t i = 0; i < nhits && (long)json_array_size(episodes) < top_k; i++) {
		const struct hit *h = &hits[i];
		const char *day = h->day;
		int d;
		for (d = 0; d < ndays && strcmp(days[d], day); d++)
			;
		if (d == ndays) {
			if (ndays == SEARCH_MAX_DAYS)
				break;
			snprintf(days[ndays], sizeof days[ndays], "%s", day);
			counts[ndays++] = 0;
		}
		if (counts[d] >= SEARCH_PER_DAY)
			continue;
		counts[d]++;
		json_array_append_new(
			episodes,
			json_pack("{s:s, s:s, s:s, s:s, s:s, s:f, s:f, s:f}", "id", h->id, "episode_card",
				  h->card, "created_at", h->created, "role", h->role, "memory_type",
				  h->type ? h->type : "general", "vec_score", h->vec, "fts_score", h->fts,
				  "score", h->score));
	}
	free(hits);
	PQclear(r);
	PQclear(f);
	log_event(LOG_DEBUG, "hybrid search",
		  json_pack("{s:s, s:f, s:s, s:b}", "user_id", user, "hybrid_search_latency_ms", ms,
			    "plan", o->spec_plan ? "spec" : native ? "native" : "sql", "parallel", parallel));
	return episodes;
}
