/* unde-llm — the LLM Orchestrator of spec §13: one user message in, the
 * avatar's answer out, at the end of the dialogue pipe
 *
 *   unde-mood | unde-context | unde-persona | unde-llm
 *
 * or behind unde-httpd as POST /chat (etc/httpd/llm.routes). The order of
 * a turn is §13's: frames (sensors.c), route, hybrid search + knowledge +
 * recent messages + artifact + catalog, emotional filter and density cap
 * (memory.c), the ContextPack (pack.c), the LLM chain (providers.c,
 * responder.c), saving both messages through the shard client, the line. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "conf.h"
#include "counters.h"
#include "filter.h"
#include "inflight.h"
#include "llm.h"
#include "log.h"
#include "pg.h"
#include "shardc.h"
#include "util.h"

struct lstate {
	struct shard_ctx x;
	struct shard_keys keys;
	struct llm_conf cf;
	struct counters *k;
	int show_pack;
	int stream_all; /* --stream */
	/* the persona feedback of the record just answered, sent after its line */
	char fb_user[37], fb_exchange[37], fb_message[37];
	json_t *fb_signals;
	PGconn *order; /* the per-user turn lock's connection (turn_lock) */
};

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
static int turn_lock(struct lstate *s, const char *user_id, struct deadline dl, struct shard_err *e)
{
	if (!s->order) {
		const char *url = conf_str("PRODUCTION_DB_URL", NULL), *what = "PRODUCTION_DB_URL";
		if (!url || !*url) {
			url = s->x.url ? s->x.url : conf_str("SHARD_0_DB_URL", NULL);
			what = s->x.url ? "--url" : "SHARD_0_DB_URL";
		}
		if (!url || !*url)
			return 0; /* --shard N alone: no shared place for the lock */
		s->order = pg_connect(url, what);
		if (!s->order)
			return shard_err_set(e, EX_UNAVAILABLE, "shard_unavailable",
					     "cannot connect for the turn lock (%s)", what);
	}
	char cls[16], timeout[32];
	snprintf(cls, sizeof cls, "%d", TURN_LOCK_CLASS);
	long left = deadline_set(dl) ? ms_left(dl) : 30000;
	snprintf(timeout, sizeof timeout, "%ld", left > 0 ? left : 1);
	const char *pp[] = { timeout };
	const char *pl[] = { cls, user_id };
	if (pg_begin(s->order) != 0 ||
	    pg_exec(s->order, "SELECT set_config('lock_timeout', $1, true)", 1, pp) != 0 ||
	    pg_exec(s->order, "SELECT pg_advisory_xact_lock($1::int, hashtext($2))", 2, pl) != 0) {
		int lost = pg_connection_lost(s->order);
		shard_err_query(e, s->order, "cannot take the user's turn lock");
		if (!lost && !strcmp(pg_last_sqlstate(), "55P03"))
			shard_err_set(e, EX_TEMPFAIL, "turn_busy",
				      "another turn of this user held the lock past the deadline");
		pg_rollback(s->order);
		if (lost) {
			PQfinish(s->order);
			s->order = NULL;
		}
		return -1;
	}
	return 0;
}

/* End the turn lock's transaction, whatever became of the turn. */
static void turn_unlock(struct lstate *s)
{
	if (s->order && PQtransactionStatus(s->order) != PQTRANS_IDLE)
		pg_commit(s->order);
}

enum { OPT_SHOW_PACK = 300, OPT_STREAM };
static const struct filter_option options[] = {
	SCTX_OPTIONS,
	{ "show-context-pack", 0, NULL, "add the turn's ContextPack to the output line (debugging, tests)",
	  .id = OPT_SHOW_PACK },
	{ "stream", 0, NULL, "every record streams (as if it had \"stream\":true): delta lines, then \"stage\":\"done\"",
	  .id = OPT_STREAM },
	{ 0 },
};

static const struct filter_field fields[] = {
	{ "user_id", FILTER_UUID, .required = 1 },
	{ "message", FILTER_STRING, .max = 8000 },
	{ "text", FILTER_STRING, .max = 8000 },
	{ "input_type", FILTER_STRING, .max = 20 },
	{ "explicit_reply_to", FILTER_UUID, .required = 0 },
	{ "photo_url", FILTER_STRING, .max = 2048 },
	{ "lat", FILTER_NUMBER, .min = -90, .max = 90 },
	{ "lng", FILTER_NUMBER, .min = -180, .max = 180 },
	{ "mall_id", FILTER_STRING, .max = 100 },
	{ "mood_frame", FILTER_OBJECT, .required = 0 },
	{ "context_frame", FILTER_OBJECT, .required = 0 },
	{ "persona", FILTER_OBJECT, .required = 0 },
	{ "request_id", FILTER_STRING, .max = 128 },
	{ "stream", FILTER_BOOL, .required = 0 },
	{ NULL, 0, .required = 0 },
};

static const struct counters_help metrics_help[] = {
	{ "llm_orchestrator_response_time_seconds", "histogram", "Whole turn, message in to line out" },
	{ "llm_orchestrator_errors", "counter", "Turns that failed" },
	{ "llm_orchestrator_cost_microdollars", "counter", "Provider cost in millionths of a US dollar, §19's llm_orchestrator_cost_usd × 10^6 (price table in unde-llm(1))" },
	{ "llm_orchestrator_provider_fallbacks", "counter", "Providers skipped before the one that answered" },
	{ "llm_orchestrator_context_pack_time_seconds", "histogram", "ContextPack assembly, frames included" },
	{ "llm_orchestrator_answers_total", "counter", "Answers by provider" },
	{ "llm_orchestrator_sensor_defaults_total", "counter", "Sensors replaced by their default frame" },
	{ "hybrid_search_latency_seconds", "histogram", "Hybrid search on the shard" },
	{ "user_knowledge_decrypt_errors", "counter", "User knowledge reads that failed to decrypt" },
	{ "user_knowledge_decrypt_latency_seconds", "histogram", "User knowledge read and decrypt" },
	{ "llm_query_embedding_fallbacks", "counter", "Queries the local embedder embedded because Cohere failed or was late" },
	{ "intelistyle_requests_total", "counter", "Stylist turns by Intelistyle's result (ok, no_key, timeout, 429, 5xx, malformed, catalog, …)" },
	{ "intelistyle_errors", "counter", "Stylist turns Intelistyle (or the SKU check) failed: answered without outfits" },
	{ "intelistyle_unknown_skus", "counter", "SKUs Intelistyle named that production does not have in stock (left out)" },
	{ "intelistyle_latency_seconds", "histogram", "Intelistyle calls, retries included" },
	{ NULL, NULL, NULL },
};

static int on_option(void *sp, int opt, const char *arg)
{
	struct lstate *s = sp;
	if (opt == OPT_SHOW_PACK) {
		s->show_pack = 1;
		return 0;
	}
	if (opt == OPT_STREAM) {
		s->stream_all = 1;
		return 0;
	}
	return sctx_option(&s->x, opt, arg) == 1 ? 0 : -1;
}

static int on_start(void *sp, struct filter_run *run, int argc, char **argv)
{
	(void)run, (void)argc, (void)argv;
	struct lstate *s = sp;
	struct llm_conf *cf = &s->cf;
	cf->context_pack_timeout_ms = conf_long("CONTEXT_PACK_TIMEOUT", 3, 1, 60) * 1000;
	cf->llm_timeout_ms = conf_long("LLM_TIMEOUT", 15, 1, 300) * 1000;
	cf->top_k = conf_long("RETRIEVAL_TOP_K", 15, 1, 100);
	cf->max_episodes = conf_long("MAX_EPISODES_PER_RESPONSE", 3, 0, 15);
	cf->max_density = conf_double("MAX_MEMORY_DENSITY_ROLLING_10", 0.3, 0, 1);
	cf->max_tokens = conf_long("LLM_CONTEXT_MAX_TOKENS", 3000, 200, 200000);
	cf->recent_limit = 10;
	const char *mk = conf_str("MASTER_ENCRYPTION_KEY", NULL);
	cf->have_keys = mk && *mk;
	if (cf->have_keys)
		shard_keys_load(&s->keys);
	char why[256];
	if (llm_chain_init(cf, why, sizeof why) != 0)
		conf_die("LLM_FALLBACK_PROVIDERS", "%s", why);
	if (!s->x.url && s->x.shard < 0 && !conf_str("PRODUCTION_DB_URL", NULL) &&
	    !conf_str("SHARD_0_DB_URL", NULL))
		conf_die("SHARD_0_DB_URL", "unde-llm needs the user's shard: set PRODUCTION_DB_URL (routing), "
					   "SHARD_0_DB_URL, --shard or --url");
	s->k = counters_open_service("unde-llm");
	return 0;
}

void turn_free(struct turn *t)
{
	json_t **all[] = { &t->mood, &t->context, &t->persona, &t->sensors, &t->knowledge,
			   &t->episodes, &t->episodes_dropped, &t->recent, &t->catalog, &t->artifact,
			   &t->recognition, &t->pack, &t->query, &t->stylist };
	for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
		json_decref(*all[i]);
		*all[i] = NULL;
	}
}

/* Now as the shard stores it, UTC with milliseconds; offset_ms later. */
static void iso_now(char out[40], long offset_ms)
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

static void observe(struct lstate *s, const char *name, double ms)
{
	counters_observe_ms(s->k, name, NULL, ms);
}

/* Where a turn's ContextPack time went (ms), for the log line and bench/llm. */
static struct {
	double lock, route, embed, search, knowledge, recent, catalog, filters;
} stage;

/* Shard reads of one turn; 0, or -1 with e (a shard that cannot answer). */
static int shard_reads(struct lstate *s, struct turn *t, const json_t *rec, struct deadline dl,
		       struct shard_err *e)
{
	long sid;
	double ts = util_now_ms();
	PGconn *c = sctx_for_user(&s->x, t->user_id, 0, &sid, e);
	if (!c && strcmp(e->code ? e->code : "", "unknown_user"))
		return -1;
	memset(e, 0, sizeof *e);
	if (c && memory_conversation(c, t->user_id, t->conv, e) != 0)
		return -1;
	int routed = c != NULL; /* knowledge may exist before any message */
	if (!t->conv[0])
		c = NULL; /* nothing stored yet: no history to read */
	stage.route = util_now_ms() - ts;
	/* the query embedded by the model that embedded the history (query.c):
	 * Cohere's search_query, else the local embedder */
	struct shard_search_opts so = { 0 };
	shard_search_defaults(&so);
	char qmodel[128];
	json_t *emb = query_embed(t, dl, &so, qmodel, sizeof qmodel, s->k);
	stage.embed = util_now_ms() - ts - stage.route;
	double t0 = util_now_ms();
	t->episodes = c ? shard_search_model(&s->x, &so, t->user_id, t->message, emb, qmodel, s->cf.top_k, e)
			: json_array();
	query_note_hits(t);
	stage.search = util_now_ms() - ts - stage.route - stage.embed;
	if (c)
		observe(s, "hybrid_search_latency_seconds", util_now_ms() - t0);
	json_decref(emb);
	if (!t->episodes)
		return -1;
	if (s->cf.have_keys && routed) {
		struct shard_err ke = { 0 };
		t0 = util_now_ms();
		t->knowledge = shard_knowledge_get(&s->x, &s->keys, t->user_id, NULL, &ke);
		observe(s, "user_knowledge_decrypt_latency_seconds", util_now_ms() - t0);
		if (!t->knowledge) {
			counters_add(s->k, "user_knowledge_decrypt_errors", NULL, 1);
			log_event(LOG_WARN, "user knowledge left out", json_pack("{s:s}", "why", ke.msg));
		}
	}
	if (!t->knowledge)
		t->knowledge = json_array();
	ts = util_now_ms();
	t->recent = c ? memory_recent(c, t->conv, s->cf.recent_limit, e) : json_array();
	if (!t->recent)
		return -1;
	t->artifact = referenced_artifact(c, t->conv, json_string_value(json_object_get(rec, "explicit_reply_to")));
	stage.recent = util_now_ms() - ts;
	ts = util_now_ms();
	struct shard_err pe = { 0 };
	PGconn *prod = sctx_production(&s->x, 0, &pe);
	t->catalog = catalog_context(prod, t->message, json_string_value(json_object_get(rec, "mall_id")));
	if (!t->catalog)
		t->catalog = json_array();
	stage.catalog = util_now_ms() - ts;
	ts = util_now_ms();
	if (c && memory_filter(c, t, e) != 0)
		return -1;
	int rc = memory_density(c, t, &s->cf, e);
	stage.filters = util_now_ms() - ts;
	return rc;
}

/* Save the user's message and the answer (§13 step 8) through the shard
 * client: the route lock, the SYNC rules, model_used and duration_ms. */
static int save_turn(struct lstate *s, struct turn *t, const json_t *rec, const char *text,
		     const char *model, long duration_ms, const char *t0_iso, const char *exchange,
		     json_t *out, struct shard_err *e)
{
	char uid[37], aid[37], now[40];
	util_uuid4(uid);
	util_uuid4(aid);
	iso_now(now, 1);
	json_t *um = json_pack("{s:s, s:s, s:s, s:s, s:O, s:s}", "id", uid, "role", "user", "content",
			       t->message, "input_type", t->input_type, "mood_frame", t->mood,
			       "created_at", t0_iso);
	const char *photo = json_string_value(json_object_get(rec, "photo_url"));
	if (photo && *photo)
		json_object_set_new(um, "media_urls", json_pack("[s]", photo));
	if (t->artifact)
		json_object_set(um, "reply_to_id", json_object_get(t->artifact, "id"));
	json_t *am = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s}", "id", aid, "role", "assistant",
			       "content", text, "model_used", model, "duration_ms", (json_int_t)duration_ms,
			       "created_at", now);
	/* an answer that presents products is an artifact: the shard's template
	 * makes its response_description, the next turn's reply_to finds it */
	json_t *pool = stylist_artifact_pool(t); /* the catalog and the outfits' products */
	json_t *art = catalog_artifact(pool, t->intent, text);
	json_decref(pool);
	if (art) {
		json_object_set(am, "artifact", art);
		json_object_set_new(out, "artifact", art);
	}
	json_t *sv = json_pack("{s:s, s:[o, o]}", "user_id", t->user_id, "messages", um, am);
	int rc = shard_save_turn(&s->x, sv, e);
	if (rc == 0) {
		json_object_set(out, "conversation_id", json_object_get(sv, "conversation_id"));
		json_object_set_new(out, "user_message_id", json_string(uid));
		json_object_set_new(out, "assistant_message_id", json_string(aid));
		long sid;
		PGconn *c = sctx_for_user(&s->x, t->user_id, 0, &sid, e);
		json_t *used = json_array();
		const json_t *ids = json_object_get(t->pack, "episode_ids");
		size_t i;
		const json_t *id;
		json_array_foreach(ids, i, id) json_array_append_new(used, json_pack("{s:O}", "id", id));
		rc = c ? memory_record(c, t->user_id, aid, used, exchange, e) : -1;
		json_decref(used);
	}
	json_decref(sv);
	return rc;
}

/* A streamed turn's progress line, out at once (stream.c's emit). */
static void emit_line(void *ud, json_t *line)
{
	filter_emit(ud, line);
}

static int llm_record(void *sp, struct filter_run *run, json_t *rec)
{
	struct lstate *s = sp;
	double t0 = util_now_ms();
	inflight_enter("unde-llm"); /* llm_orchestrator_queue_size, until after_record */
	char t0_iso[40];
	struct turn t = { 0 };
	t.user_id = json_string_value(json_object_get(rec, "user_id"));
	t.message = json_string_value(json_object_get(rec, "message"));
	if (!t.message)
		t.message = json_string_value(json_object_get(rec, "text"));
	if (!t.message || !*t.message) {
		counters_add(s->k, "llm_orchestrator_errors", NULL, 1);
		return filter_fail(run, EX_DATAERR, "invalid_field", "message (or text) must be a non-empty string");
	}
	t.input_type = json_string_value(json_object_get(rec, "input_type"));
	if (!t.input_type)
		t.input_type = "text";
	if (strcmp(t.input_type, "text") && strcmp(t.input_type, "voice")) {
		counters_add(s->k, "llm_orchestrator_errors", NULL, 1);
		return filter_fail(run, EX_DATAERR, "invalid_field", "input_type must be text or voice");
	}
	t.request_id = json_string_value(json_object_get(rec, "request_id"));
	t.sensors = json_object();
	t.episodes_dropped = json_array();
	t.intent = intent_classify(t.message, rec);

	struct deadline dl = filter_deadline(run);
	struct deadline pack_dl = deadline_min(dl, deadline_in(s->cf.context_pack_timeout_ms));
	/* mood and context first (the persona needs both), leaving a third
	 * of the budget to the persona even when one of them is late */
	sensors_frames(&t, rec, deadline_less(pack_dl, s->cf.context_pack_timeout_ms / 3), s->k);
	struct persona_call *pc = sensors_persona_start(&t, rec, pack_dl);
	struct shard_err e = { 0 };
	double tl = util_now_ms();
	int rc = turn_lock(s, t.user_id, dl, &e);
	stage.lock = util_now_ms() - tl;
	/* the user's message is stamped when its turn has the lock, so the
	 * history's order is the turns' order */
	iso_now(t0_iso, 0);
	if (rc == 0)
		rc = shard_reads(s, &t, rec, pack_dl, &e);
	sensors_persona_join(pc, &t, s->k);
	if (rc != 0) {
		turn_free(&t);
		counters_add(s->k, "llm_orchestrator_errors", NULL, 1);
		return sctx_fail(run, &e);
	}
	if (!strcmp(t.intent, "recognition"))
		t.recognition = recognition_call(&t, rec, dl);
	if (!strcmp(t.intent, "stylist"))
		t.stylist = stylist_call(&t, &s->x, rec, dl, s->k);
	t.pack = pack_build(&t, &s->cf);
	double pack_ms = util_now_ms() - t0;
	observe(s, "llm_orchestrator_context_pack_time_seconds", pack_ms);

	struct chain_result res;
	int streaming = s->stream_all || json_is_true(json_object_get(rec, "stream"));
	if ((streaming ? llm_ask_stream(&t, dl, &res, emit_line, run) : llm_ask(&t, dl, &res)) != 0) {
		int st = filter_fail(run, res.status, res.code, "%s", res.message);
		chain_result_free(&res);
		turn_free(&t);
		counters_add(s->k, "llm_orchestrator_errors", NULL, 1);
		return st;
	}
	const char *text = json_string_value(json_object_get(res.answer, "text"));
	const char *model = json_string_value(json_object_get(res.answer, "model"));
	long duration_ms = (long)(util_now_ms() - t0);
	char exchange[37];
	util_uuid4(exchange);
	json_t *out = json_object();
	if (save_turn(s, &t, rec, text, model, duration_ms, t0_iso, exchange, out, &e) != 0) {
		json_decref(out);
		chain_result_free(&res);
		turn_free(&t);
		counters_add(s->k, "llm_orchestrator_errors", NULL, 1);
		return sctx_fail(run, &e);
	}
	json_int_t tin = json_integer_value(json_object_get(res.answer, "tokens_in"));
	json_int_t tout = json_integer_value(json_object_get(res.answer, "tokens_out"));
	double cost = llm_cost_usd(res.provider, (long)tin, (long)tout);
	const json_t *pe = t.persona;
	json_object_set(out, "text", json_object_get(res.answer, "text"));
	json_object_set(out, "voice_params", json_object_get(pe, "voice_params"));
	json_object_set(out, "avatar_state", json_object_get(pe, "avatar_state"));
	json_object_set(out, "render_hints", json_object_get(pe, "render_hints"));
	json_object_set_new(out, "intent", json_string(t.intent));
	json_object_set_new(out, "duration_ms", json_integer(duration_ms));
	json_object_set_new(out, "model_used", json_string(model));
	json_object_set_new(out, "exchange_id", json_string(exchange));
	json_object_set_new(out, "episodes_used",
			    json_integer((json_int_t)json_array_size(json_object_get(t.pack, "episode_ids"))));
	json_object_set_new(out, "tokens", json_pack("{s:I, s:I}", "in", tin, "out", tout));
	json_object_set_new(out, "cost_usd", json_real(cost));
	json_object_set(out, "sensors", t.sensors);
	if (t.recognition)
		json_object_set(out, "recognition", t.recognition);
	if (t.stylist)
		json_object_set(out, "stylist", t.stylist);
	if (t.query)
		json_object_set(out, "query_embedding", t.query);
	chain_annotate(&res, out);
	if (streaming) /* the deltas' end: this line is the answer */
		json_object_set_new(out, "stage", json_string("done"));
	if (s->show_pack) {
		json_object_set(t.pack, "episodes_dropped", t.episodes_dropped);
		json_object_set(out, "context_pack", t.pack);
	}
	/* the signals about the previous answer, for after_record */
	json_decref(s->fb_signals);
	s->fb_signals = t.prev_exchange[0] ? feedback_signals(t.message, t.prev_used_memory) : NULL;
	snprintf(s->fb_user, sizeof s->fb_user, "%s", t.user_id);
	snprintf(s->fb_exchange, sizeof s->fb_exchange, "%s", t.prev_exchange);
	snprintf(s->fb_message, sizeof s->fb_message, "%s",
		 json_string_value(json_object_get(out, "user_message_id")) ?: "");
	if (s->fb_signals)
		json_object_set(out, "feedback_signals", s->fb_signals);
	json_object_update(rec, out);
	json_decref(out);

	struct buf lb = { 0 };
	counters_label(&lb, "provider", res.provider);
	counters_add(s->k, "llm_orchestrator_answers_total", lb.data, 1);
	counters_add(s->k, "llm_orchestrator_cost_microdollars", lb.data, (uint64_t)(cost * 1e6 + 0.5));
	buf_free(&lb);
	counters_add(s->k, "llm_orchestrator_provider_fallbacks", NULL,
		     (uint64_t)json_array_size(res.skipped));
	observe(s, "llm_orchestrator_response_time_seconds", util_now_ms() - t0);
	log_event(LOG_INFO, "turn answered",
		  json_pack("{s:s, s:s, s:I, s:f, s:{s:f, s:f, s:f, s:f, s:f, s:f, s:f}, s:I, s:s}", "provider",
			    res.provider, "intent", t.intent, "duration_ms", (json_int_t)duration_ms,
			    "context_pack_ms", pack_ms, "stages_ms", "lock", stage.lock, "route", stage.route,
			    "embed", stage.embed, "search", stage.search, "recent", stage.recent, "catalog", stage.catalog,
			    "filters", stage.filters, "episodes_used",
			    (json_int_t)json_array_size(json_object_get(t.pack, "episode_ids")),
			    "exchange_id", exchange));
	chain_result_free(&res);
	turn_free(&t);
	return 0;
}

/* §13 step 9: after the line is out, the persona feedback about the
 * previous answer and the flush of its exchange (feedback.c). */
static void after_record(void *sp, struct filter_run *run, json_t *rec, int status)
{
	(void)rec;
	struct lstate *s = sp;
	turn_unlock(s);
	inflight_leave(); /* answered: the feedback below is not the user's wait */
	if (status == 0 && s->fb_signals)
		feedback_send(s->fb_user, s->fb_exchange, s->fb_message, s->fb_signals,
			      deadline_min(filter_deadline(run), deadline_in(2000)));
	json_decref(s->fb_signals);
	s->fb_signals = NULL;
}

static void on_finish(void *sp, struct filter_run *run)
{
	(void)run;
	struct lstate *s = sp;
	if (s->cf.have_keys) {
		shard_keys_metrics(&s->keys);
		shard_keys_wipe(&s->keys);
	}
	const char *dir = conf_str("UNDE_METRICS_DIR", NULL);
	if (s->k && dir && *dir) {
		char path[4096];
		snprintf(path, sizeof path, "%s/unde-llm.prom", dir);
		counters_write_textfile(s->k, metrics_help, path);
	}
	counters_close(s->k);
	catalog_done();
	if (s->order)
		PQfinish(s->order);
	sctx_close(&s->x);
}

/* `unde-llm metrics`: §19's metrics summed over every process of this
 * host's unde-llm (the shared counters file), in Prometheus text. */
static int metrics_main(int argc, char **argv)
{
	if (argc > 2 && (!strcmp(argv[2], "--help") || !strcmp(argv[2], "-h"))) {
		puts("Usage: unde-llm metrics\nPrint §19's metrics of every unde-llm process of this host.");
		return 0;
	}
	int rc = conf_load_env(NULL);
	if (rc)
		return rc;
	struct counters *k = counters_open_service("unde-llm");
	if (!k)
		return EX_UNAVAILABLE;
	struct buf b = { 0 };
	counters_render(k, metrics_help, &b);
	/* §19's queue: turns of this host received and not yet answered, those
	 * waiting for their user's turn lock among them (lib/inflight.h) */
	long q = inflight_count("unde-llm");
	if (q >= 0)
		buf_printf(&b,
			   "# HELP llm_orchestrator_queue_size Turns received and not yet answered on this host"
			   " (waiting for the user's turn lock or in flight)\n"
			   "# TYPE llm_orchestrator_queue_size gauge\nllm_orchestrator_queue_size %ld\n", q);
	rc = fwrite(b.data ? b.data : "", 1, b.len, stdout) == b.len ? 0 : EX_IOERR;
	buf_free(&b);
	counters_close(k);
	return rc;
}

int main(int argc, char **argv)
{
	log_init("unde-llm");
	if (argc > 1 && !strcmp(argv[1], "metrics"))
		return metrics_main(argc, argv);
	static const struct filter_def def = {
		.name = "unde-llm",
		.summary = "The LLM Orchestrator (spec §13): {user_id, message, input_type?, explicit_reply_to?,\n"
			   "photo_url?, lat?, lng?, mall_id?, mood_frame?, context_frame?, persona?} → the record plus\n"
			   "{text, voice_params, avatar_state, render_hints, intent, duration_ms, model_used, provider,\n"
			   "exchange_id, conversation_id, user_message_id, assistant_message_id, episodes_used}.",
		.synopsis = "[--shard N | --url URL] [--show-context-pack] [--stream] | metrics",
		.options = options,
		.on_option = on_option,
		.on_start = on_start,
		.on_record = llm_record,
		.on_finish = on_finish,
		.after_record = after_record,
		.fields = fields,
		.max_operands = FILTER_NO_OPERANDS,
	};
	struct lstate s = { 0 };
	sctx_init(&s.x);
	return filter_main(&def, &s, argc, argv);
}
