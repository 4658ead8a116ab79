/* search.c — the `search` filter: {user_id, query, query_embedding?,
 * top_k?} → "episodes", by lib/shardc.h's shard_search (the SQL and the
 * spec's scoring live there). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "filter.h"
#include "log.h"
#include "shard.h"

struct search_state {
	struct shard_ctx x;
	struct shard_search_opts o;
};

static int search_record(void *state, struct filter_run *run, json_t *rec)
{
	struct search_state *s = state;
	const char *user = shard_jstr(rec, "user_id");
	const json_t *q = json_object_get(rec, "query"), *emb = json_object_get(rec, "query_embedding");
	const json_t *tk = json_object_get(rec, "top_k");
	if (!user || !shard_uuid_valid(user))
		return filter_fail(run, EX_DATAERR, "invalid_field", "user_id must be a UUID");
	if (q && !json_is_null(q) && !json_is_string(q))
		return filter_fail(run, EX_DATAERR, "invalid_field", "query must be a string");
	if (emb && json_is_null(emb))
		emb = NULL;
	const json_t *model = json_object_get(rec, "query_model");
	if (model && !json_is_null(model) && (!json_is_string(model) || !*json_string_value(model)))
		return filter_fail(run, EX_DATAERR, "invalid_field", "query_model must be a model name");
	long top_k = 0;
	if (tk && !json_is_null(tk)) {
		if (!json_is_integer(tk) || json_integer_value(tk) < 1 || json_integer_value(tk) > 100)
			return filter_fail(run, EX_DATAERR, "invalid_field", "top_k must be an integer from 1 to 100");
		top_k = (long)json_integer_value(tk);
	}
	struct shard_err e;
	json_t *episodes = shard_search_model(&s->x, &s->o, user,
					      json_is_string(q) ? json_string_value(q) : NULL, emb,
					      json_is_string(model) ? json_string_value(model) : NULL,
					      top_k, &e);
	if (!episodes)
		return sctx_fail(run, &e);
	json_object_set_new(rec, "episodes", episodes);
	return 0;
}

enum { OPT_PLAN = 2000, OPT_CANDIDATES };

static int search_option(void *state, int opt, const char *arg)
{
	struct search_state *s = state;
	if (opt == OPT_PLAN) {
		s->o.spec_plan = !strcmp(arg, "spec");
		s->o.sql_plan = !strcmp(arg, "sql");
		if (!s->o.spec_plan && !s->o.sql_plan && strcmp(arg, "prefilter") != 0)
			return -1;
		return 0;
	}
	if (opt == OPT_CANDIDATES) {
		char *end;
		s->o.candidates = strtol(arg, &end, 10);
		return (*end || s->o.candidates < 20 || s->o.candidates > 100000) ? -1 : 0;
	}
	return sctx_option(&s->x, opt, arg) == 1 ? 0 : -1;
}

static int search_start(void *state, struct filter_run *run, int argc, char **argv)
{
	(void)run, (void)argc, (void)argv; /* operands: refused by max_operands */
	struct search_state *s = state;
	shard_search_defaults(&s->o);
	return 0;
}

static void search_finish(void *state, struct filter_run *run)
{
	(void)run;
	sctx_close(&((struct search_state *)state)->x);
}

static const struct filter_option search_options[] = {
	{ "plan", 0, "PLAN", "prefilter: exact scan of the user's binary-quantized vectors, best N\n"
			     "                       re-ranked by cosine, in the shard's unde_vector_topk\n"
			     "                       where it has it, else in SQL (default); sql: the same\n"
			     "                       in SQL always; spec: the spec's SQL as written\n"
			     "                       (partition HNSW index)",
	  .id = OPT_PLAN },
	{ "candidates", 0, "N", "re-ranked candidates (20-100000, default RETRIEVAL_CANDIDATES, 300)",
	  .id = OPT_CANDIDATES },
	SCTX_OPTIONS,
	{ 0 },
};

int shard_filter_search(int argc, char **argv)
{
	static const struct filter_def def = {
		.name = "unde-shard",
		.summary = "search: hybrid search (vector + FTS, recency boost, diversity) of each\n"
			   "{user_id, query, query_embedding?, query_model?, top_k?} → \"episodes\".",
		.synopsis = "search [--plan prefilter|sql|spec] [--candidates N] [--shard N | --url URL]",
		.options = search_options,
		.max_operands = FILTER_NO_OPERANDS,
		.on_option = search_option,
		.on_start = search_start,
		.on_record = search_record,
		.on_finish = search_finish,
	};
	struct search_state s = { .o = { .top_k = 15 } };
	sctx_init(&s.x);
	return filter_main(&def, &s, argc, argv);
}
