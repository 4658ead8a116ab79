/* unde-embed — the ASYNC half of spec §13: embeddings and memory_snippet
 * for the chat history, out of the request path.
 *
 *   --pending [--limit N]   embeddable messages without an embedding and
 *                           rows marked needs_enrichment (replayed), on
 *                           every shard (or --shard/--url, or --user's)
 *   --reembed --model M     re-embed a user's (--user) or a shard's
 *                           messages not embedded by M
 *   stdin                   {"text"} → its query embedding (search_query);
 *                           {"conversation_id","message_id"} → that message
 *
 * Embeddings come from a provider chain (lib/embed_cohere.h): Cohere Embed, 96 texts
 * per call, then the local n-gram embedder (lib/embed_local.h) when no key
 * is set or Cohere fails; the model that answered is stored with the
 * vector (messages.embedding_model) and search compares only vectors of
 * one model. memory_snippet is the rule's, or an LLM's through
 * SNIPPET_PROVIDERS (snippet.c). A batch is stored with one UPDATE per
 * EMBED_STORE_BATCH messages (store.c); every UPDATE re-checks that the message
 * is neither forgotten nor erased, so a message forgotten while queued is
 * never enriched. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "conf.h"
#include "counters.h"
#include "embed.h"
#include "embed_local.h"
#include "filter.h"
#include "log.h"
#include "metrics.h"
#include "pg.h"
#include "shardc.h"

struct embed_state {
	struct shard_ctx x;
	struct embed_conf conf;
	const char *user, *model_opt;
	int reembed, local_only;
	long timeout_ms, store_batch;
	struct counters *k;
	struct snippet_chain snip;
	long enriched, errors, marked, backfilled, snippet_wanted, snippet_null, statements;
};

static const struct provider *const cohere_only[] = { &embed_cohere, NULL };
static const struct provider *const no_providers[] = { NULL };

/* Embed texts (≤ EMBED_BATCH) as input_type: the answer {"model",
 * "vectors"} and who gave it, or NULL with the chain's reason in res. */
static json_t *embed_texts(struct embed_state *s, json_t *texts, const char *input_type,
			   struct chain_result *res)
{
	struct chain ch = {
		.providers = s->local_only ? no_providers : cohere_only,
		/* a re-embed into a provider's model must not fall back to another */
		.local = s->reembed && !s->local_only ? NULL : embed_local_answer,
		.reserve_ms = 50,
	};
	json_t *in = json_pack("{s:O, s:s}", "texts", texts, "input_type", input_type);
	s->conf.expect = json_array_size(texts);
	chain_run(&ch, &s->conf, in, deadline_in(s->timeout_ms), res);
	json_decref(in);
	if (!res->answer) {
		s->errors += (long)json_array_size(texts);
		counters_add(s->k, "embedding_ingestion_errors", NULL, json_array_size(texts));
		log_event(LOG_ERROR, "no embedding provider answered",
			  json_pack("{s:s, s:s, s:O?}", "code", res->code, "error", res->message,
				    "providers_skipped", res->skipped));
	}
	return res->answer;
}

/* The shards to work on: --url/--shard, --user's, production's list, or 0. */
static json_t *shard_ids(struct embed_state *s)
{
	json_t *ids = json_array();
	struct shard_err e;
	if (s->x.url || s->x.shard >= 0) {
		json_array_append_new(ids, json_integer(s->x.shard >= 0 ? s->x.shard : 0));
	} else if (s->user) {
		long sid;
		if (sctx_for_user(&s->x, s->user, 0, &sid, &e))
			json_array_append_new(ids, json_integer(sid));
		else if (!e.code || strcmp(e.code, "unknown_user") != 0)
			log_event(LOG_ERROR, e.msg, json_pack("{s:s}", "code", e.code));
	} else {
		PGconn *p = sctx_production(&s->x, 0, &e);
		PGresult *r = p ? pg_query(p, "SELECT shard_id FROM shards ORDER BY shard_id", 0, NULL) : NULL;
		for (int i = 0; r && i < PQntuples(r); i++)
			json_array_append_new(ids, json_integer(shard_pg_long(r, i, 0, 0)));
		PQclear(r);
		if (!p && s->x.prod_missing)
			json_array_append_new(ids, json_integer(0));
	}
	return ids;
}

#define ROW_COLS "conversation_id::text, id::text, role, content," \
		 " is_embeddable, role = 'user' AND is_embeddable AND memory_snippet IS NULL, needs_enrichment"
#define ALIVE " NOT is_forgotten AND deleted_at IS NULL"
#define OF_USER " AND ($2::uuid IS NULL OR conversation_id IN (SELECT id FROM conversations WHERE user_id = $2))"

/* A message row as a record for on_batch/on_record. */
static json_t *row_record(PGresult *r, int i, long sid)
{
	int embeddable = PQgetvalue(r, i, 4)[0] == 't';
	return json_pack("{s:I, s:s, s:s, s:s, s:s, s:b, s:b, s:b}", "shard_id", (json_int_t)sid,
			 "conversation_id", PQgetvalue(r, i, 0), "message_id", PQgetvalue(r, i, 1),
			 "role", PQgetvalue(r, i, 2), "content", PQgetvalue(r, i, 3), "embed",
			 embeddable, "snippet", PQgetvalue(r, i, 5)[0] == 't',
			 "marked", PQgetvalue(r, i, 6)[0] == 't');
}

static json_t *embed_select(void *state, struct filter_run *run, enum filter_source src, long limit)
{
	(void)run, (void)src;
	struct embed_state *s = state;
	json_t *out = json_array(), *ids = shard_ids(s);
	size_t i;
	json_t *id;
	json_array_foreach(ids, i, id)
	{
		long left = limit - (long)json_array_size(out);
		if (left <= 0)
			break;
		struct shard_err e;
		long sid = (long)json_integer_value(id);
		PGconn *c = sctx_shard(&s->x, sid, &e);
		if (!c) {
			log_event(LOG_ERROR, e.msg, json_pack("{s:s, s:i}", "code", e.code, "shard_id", (int)sid));
			continue;
		}
		char lim[24];
		snprintf(lim, sizeof lim, "%ld", left);
		const char *pp[] = { lim, s->user, s->conf.model };
		PGresult *r = s->reembed
			? pg_query(c, "SELECT " ROW_COLS " FROM messages WHERE" ALIVE OF_USER
				      " AND is_embeddable AND embedding_model IS DISTINCT FROM $3"
				      " ORDER BY created_at LIMIT $1::int", 3, pp)
			: pg_query(c, "SELECT " ROW_COLS " FROM messages WHERE" ALIVE OF_USER
				      " AND ((is_embeddable AND embedding IS NULL) OR needs_enrichment)"
				      " ORDER BY created_at LIMIT $1::int", 2, pp);
		for (int k = 0; r && k < PQntuples(r); k++) {
			json_array_append_new(out, row_record(r, k, sid));
		}
		PQclear(r);
	}
	json_decref(ids);
	return out;
}

/* Embed every record that wants it, EMBED_BATCH texts per call; each gets
 * "_vector", "embedding_model" and "provider", or "_error". */
static void embed_records(struct embed_state *s, json_t *recs)
{
	size_t n = json_array_size(recs), i = 0;
	while (i < n) {
		json_t *texts = json_array(), *who = json_array();
		for (; i < n && json_array_size(texts) < EMBED_BATCH; i++) {
			json_t *r = json_array_get(recs, i);
			if (json_is_true(json_object_get(r, "embed")) && !json_object_get(r, "_vector") &&
			    !json_object_get(r, "_error")) {
				json_array_append(texts, json_object_get(r, "content"));
				json_array_append(who, r);
			}
		}
		if (json_array_size(texts)) {
			struct chain_result res;
			json_t *a = embed_texts(s, texts, "search_document", &res);
			size_t j;
			json_t *r;
			json_array_foreach(who, j, r)
			{
				if (a) {
					json_object_set(r, "_vector", json_array_get(json_object_get(a, "vectors"), j));
					json_object_set(r, "embedding_model", json_object_get(a, "model"));
					json_object_set_new(r, "provider", json_string(res.provider));
				} else {
					json_object_set_new(r, "_error", json_string(res.message));
				}
			}
			chain_result_free(&res);
		}
		json_decref(texts);
		json_decref(who);
	}
}

/* Give every user record that wants one its memory_snippet ("_snippet",
 * "_snippet_provider"), unless its embedding failed (it fails anyway). */
static void snippet_records(struct embed_state *s, json_t *recs)
{
	size_t i;
	json_t *r;
	json_array_foreach(recs, i, r)
	{
		if (!json_is_true(json_object_get(r, "snippet")) ||
		    (json_is_true(json_object_get(r, "embed")) && json_object_get(r, "_error")))
			continue;
		char who[64];
		char *sn = snippet_make(&s->snip, shard_jstr(r, "content"), who, sizeof who);
		if (sn) {
			json_object_set_new(r, "_snippet", json_string(sn));
			json_object_set_new(r, "_snippet_provider", json_string(who));
			struct buf lb = { 0 };
			counters_label(&lb, "provider", who);
			counters_add(s->k, "unde_embed_snippets_total", lb.data, 1);
			buf_free(&lb);
		}
		free(sn);
	}
}

/* The whole enrichment of recs before their lines are written: embeddings
 * (EMBED_BATCH texts per call), snippets, then the store, one UPDATE per
 * EMBED_STORE_BATCH records of a shard (store.c). Each record ends with
 * "_stored" or "_store_error", unless its embedding failed ("_error"). */
static void enrich_records(struct embed_state *s, json_t *recs)
{
	embed_records(s, recs);
	snippet_records(s, recs);
	json_t *by_shard = json_object();
	size_t i;
	json_t *r;
	json_array_foreach(recs, i, r)
	{
		json_object_set_new(r, "_prepared", json_true());
		if (json_is_true(json_object_get(r, "embed")) && json_object_get(r, "_error"))
			continue;
		char key[24];
		snprintf(key, sizeof key, "%lld", (long long)json_integer_value(json_object_get(r, "shard_id")));
		json_t *list = json_object_get(by_shard, key);
		if (!list)
			json_object_set_new(by_shard, key, list = json_array());
		json_array_append(list, r);
	}
	const char *key;
	json_t *list;
	json_object_foreach(by_shard, key, list)
	{
		struct shard_err e;
		PGconn *c = sctx_shard(&s->x, strtol(key, NULL, 10), &e);
		if (c) {
			s->statements += embed_store(c, list, (size_t)s->store_batch);
			continue;
		}
		json_array_foreach(list, i, r)
			json_object_set_new(r, "_store_error", json_pack("{s:i, s:s, s:s}", "status", e.status,
									  "code", e.code ? e.code : "shard_unavailable",
									  "message", e.msg));
	}
	json_decref(by_shard);
}

static int embed_batch(void *state, struct filter_run *run, json_t *recs)
{
	(void)run;
	enrich_records(state, recs);
	return 0;
}

/* {"text"}: the query's embedding, nothing stored. */
static int embed_query(struct embed_state *s, struct filter_run *run, json_t *rec)
{
	const char *text = shard_jstr(rec, "text");
	const char *it = shard_jstr(rec, "input_type") ? shard_jstr(rec, "input_type") : "search_query";
	if (!text || !*text)
		return filter_fail(run, EX_DATAERR, "invalid_field", "text must be a non-empty string");
	if (strcmp(it, "search_query") != 0 && strcmp(it, "search_document") != 0)
		return filter_fail(run, EX_DATAERR, "invalid_field", "input_type must be search_query or search_document");
	json_t *texts = json_pack("[s]", text);
	struct chain_result res;
	json_t *a = embed_texts(s, texts, it, &res);
	json_decref(texts);
	int rc = 0;
	if (!a) {
		rc = filter_fail(run, res.status ? res.status : EX_UNAVAILABLE, res.code, "%s", res.message);
	} else {
		json_object_set(rec, "embedding", json_array_get(json_object_get(a, "vectors"), 0));
		json_object_set(rec, "embedding_model", json_object_get(a, "model"));
		chain_annotate(&res, rec);
	}
	chain_result_free(&res);
	return rc;
}

/* A stdin {"conversation_id","message_id"}: the row, as embed_select
 * would give it. 0, or the failure. */
static int load_message(struct embed_state *s, struct filter_run *run, json_t *rec)
{
	const char *conv = shard_jstr(rec, "conversation_id"), *id = shard_jstr(rec, "message_id");
	if (!conv || !shard_uuid_valid(conv) || !id || !shard_uuid_valid(id))
		return filter_fail(run, EX_DATAERR, "invalid_field",
				   "a record is {\"text\"} or {\"conversation_id\", \"message_id\"} (UUIDs)");
	struct shard_err e;
	long sid;
	PGconn *c = sctx_for_conversation(&s->x, conv, shard_jstr(rec, "user_id"), 0, &sid, &e);
	if (!c)
		return sctx_fail(run, &e);
	const char *pp[] = { conv, id };
	PGresult *r = pg_query(c, "SELECT " ROW_COLS ", is_forgotten OR deleted_at IS NOT NULL FROM messages"
				  " WHERE conversation_id = $1 AND id = $2", 2, pp);
	if (!r)
		return sctx_query_fail(run, c, "cannot read the message");
	int rc = 0;
	if (PQntuples(r) != 1)
		rc = filter_fail(run, EX_DATAERR, "unknown_message", "message %s is not in conversation %s", id, conv);
	else if (PQgetvalue(r, 0, 7)[0] == 't')
		rc = filter_fail(run, EX_DATAERR, "message_forgotten", "message %s is forgotten or erased: never enriched", id);
	else {
		json_t *row = row_record(r, 0, sid);
		json_object_update(rec, row);
		json_decref(row);
	}
	PQclear(r);
	return rc;
}

/* A message record after enrich_records: its line, or its failure. */
static int enriched_result(struct embed_state *s, struct filter_run *run, json_t *rec)
{
	const char *err = shard_jstr(rec, "_error");
	int want_vec = json_is_true(json_object_get(rec, "embed"));
	int marked = json_is_true(json_object_get(rec, "marked"));
	const json_t *se = json_object_get(rec, "_store_error");
	s->marked += marked;
	if (want_vec && err)
		return filter_fail(run, EX_TEMPFAIL, "embedding_failed", "%s", err);
	if (se) {
		int st = (int)json_integer_value(json_object_get(se, "status"));
		return filter_fail(run, st == EX_CONFIG ? EX_UNAVAILABLE : st ? st : EX_SOFTWARE,
				   shard_jstr(se, "code"), "%s", shard_jstr(se, "message"));
	}
	if (!json_is_true(json_object_get(rec, "_stored")))
		return filter_fail(run, EX_DATAERR, "message_forgotten",
				   "message %s was forgotten or erased meanwhile: not enriched",
				   shard_jstr(rec, "message_id"));
	s->enriched++;
	s->backfilled += marked;
	if (json_is_true(json_object_get(rec, "snippet"))) {
		s->snippet_wanted++;
		s->snippet_null += json_is_true(json_object_get(rec, "_snippet_null"));
	}
	const char *snippet = shard_jstr(rec, "_snippet");
	json_t *done = json_pack("{s:s?, s:s?, s:s?, s:s?}", "embedding_model",
				 want_vec ? shard_jstr(rec, "embedding_model") : NULL, "provider",
				 want_vec ? shard_jstr(rec, "provider") : NULL, "memory_snippet", snippet,
				 "snippet_provider", snippet ? shard_jstr(rec, "_snippet_provider") : NULL);
	json_object_set_new(rec, "enriched", done);
	if (want_vec) {
		struct buf lb = { 0 };
		counters_label(&lb, "provider", shard_jstr(rec, "provider"));
		counters_add(s->k, "unde_embed_messages_total", lb.data, 1);
		buf_free(&lb);
	}
	return 0;
}

static int embed_record(void *state, struct filter_run *run, json_t *rec)
{
	struct embed_state *s = state;
	if (json_object_get(rec, "text"))
		return embed_query(s, run, rec);
	int rc = 0;
	if (!json_is_true(json_object_get(rec, "_prepared"))) {
		/* from stdin: this record alone */
		if (!json_object_get(rec, "content"))
			rc = load_message(s, run, rec);
		if (!rc) {
			json_t *one = json_pack("[O]", rec);
			enrich_records(s, one);
			json_decref(one);
		}
	}
	if (!rc)
		rc = enriched_result(s, run, rec);
	static const char *const internal[] = { "_vector", "_error", "content", "embed", "snippet",
						"marked", "_snippet", "_snippet_provider", "_stored",
						"_snippet_null", "_store_error", "_prepared" };
	for (size_t i = 0; i < sizeof internal / sizeof *internal; i++)
		json_object_del(rec, internal[i]);
	return rc;
}

enum { OPT_USER = 300, OPT_MODEL };

/* What the table cannot check alone: --user must be a UUID, --model not
 * empty; --shard and --url go to the shard client. */
static int embed_option(void *state, int opt, const char *arg)
{
	struct embed_state *s = state;
	switch (opt) {
	case OPT_USER: return shard_uuid_valid(arg) ? 0 : -1;
	case OPT_MODEL: return *arg ? 0 : -1;
	case SCTX_OPT_URL:
	case SCTX_OPT_SHARD: return sctx_option(&s->x, opt, arg) == 1 ? 0 : -1;
	default: return 0; /* stored by the table */
	}
}

static int embed_start(void *state, struct filter_run *run, int argc, char **argv)
{
	(void)run, (void)argv;
	struct embed_state *s = state;
	if (s->reembed && !s->model_opt) {
		log_event(LOG_ERROR, "--reembed needs --model M", json_pack("{s:i}", "exit", EX_USAGE));
		return EX_USAGE;
	}
	embed_conf_load(&s->conf, s->model_opt);
	s->timeout_ms = s->conf.timeout_ms;
	s->local_only = s->conf.local_only;
	s->store_batch = conf_long("EMBED_STORE_BATCH", STORE_BATCH, 1, 1000);
	snippet_init(&s->snip);
	s->k = counters_open_service("unde-embed");
	return 0;
}

static void embed_finish(void *state, struct filter_run *run)
{
	(void)run;
	struct embed_state *s = state;
	const char *dir = getenv("UNDE_METRICS_DIR");
	if (dir && *dir) {
		char path[4096];
		snprintf(path, sizeof path, "%s/unde-embed.prom", dir);
		struct metrics *m = metrics_new();
		metrics_add(m, "embedding_ingestion_errors", "counter",
			    "Messages no embedding provider could embed (since the counters file was made)",
			    NULL, (double)(s->k ? counters_get(s->k, "embedding_ingestion_errors", NULL) : (uint64_t)s->errors));
		metrics_add(m, "enrichment_backfill_rate", "gauge",
			    "Share of the rows marked needs_enrichment that the last run enriched", NULL,
			    s->marked ? (double)s->backfilled / (double)s->marked : 1.0);
		metrics_add(m, "memory_snippet_null_rate", "gauge",
			    "Share of the user messages the last run enriched that got no memory_snippet", NULL,
			    s->snippet_wanted ? (double)s->snippet_null / (double)s->snippet_wanted : 0.0);
		metrics_add(m, "unde_embed_enriched", "gauge", "Messages the last run enriched", NULL,
			    (double)s->enriched);
		metrics_add(m, "unde_embed_update_statements", "gauge",
			    "UPDATE statements the last run sent to store its messages", NULL,
			    (double)s->statements);
		metrics_add(m, "unde_embed_snippet_fallbacks", "gauge",
			    "Messages of the last run no snippet provider answered for (the rule was used)",
			    NULL, (double)s->snip.fallbacks);
		metrics_write_textfile(m, path);
		metrics_free(m);
	}
	counters_close(s->k);
	sctx_close(&s->x);
}

int main(int argc, char **argv)
{
	static struct embed_state s;
	static const struct filter_option options[] = {
		{ "shard", 0, "N", "use shard N (SHARD_<N>_DB_URL), not the routing table",
		  .id = SCTX_OPT_SHARD },
		{ "url", 0, "URL", "use this shard database directly", .id = SCTX_OPT_URL },
		{ "user", 0, "U", "only user U's messages", .id = OPT_USER, .string = &s.user },
		{ "model", 0, "M", "the model to embed with (default EMBEDDING_MODEL;\n"
				   "                       " EMBED_LOCAL_MODEL " is the local embedder)",
		  .id = OPT_MODEL, .string = &s.model_opt },
		{ "reembed", 0, NULL, "with --pending: messages not embedded by --model M",
		  .flag = &s.reembed },
		{ 0 },
	};
	static const struct filter_def def = {
		.name = "unde-embed",
		.summary = "embeddings and memory snippets for the chat history (spec §13 ASYNC):\n"
			   "--pending enriches queued messages; stdin {\"text\"} answers a query embedding.",
		.synopsis = "[--pending [--limit N] | --reembed --model M --pending] [--user U] [--shard N | --url URL]",
		.options = options,
		.max_operands = FILTER_NO_OPERANDS,
		.on_option = embed_option,
		.on_start = embed_start,
		.on_record = embed_record,
		.on_finish = embed_finish,
		.select_pending = embed_select,
		.on_batch = embed_batch,
		.default_limit = 1000,
	};
	sctx_init(&s.x);
	log_init("unde-embed");
	return filter_main(&def, &s, argc, argv);
}
