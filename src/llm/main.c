/* unde-llm — the LLM Orchestrator of spec §13: one user message in, the
 * avatar's answer out, at the end of the dialogue pipe
 *
 *   unde-mood | unde-context | unde-persona | unde-llm
 *
 * or behind unde-httpd as POST /chat (etc/httpd/llm.routes). The order of
 * a turn is §13's: frames (sensors.c), then under the user's turn lock the
 * hybrid search (query.c's worker) beside the route, knowledge, recent
 * messages, artifact and catalog, the emotional filter and density cap
 * (gather.c, memory.c), the ContextPack (pack.c), the LLM chain
 * (providers.c, stream.c, responder.c), saving both messages through the
 * shard client, the line; after it the answer's density record, the end
 * of the lock, the persona feedback. This file is the filter and that
 * order; gather.c is what the pack is made of. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	struct llm_proc p;
	int show_pack;
	int stream_all; /* --stream */
	/* the persona feedback of the record just answered, sent after its line */
	char fb_user[37], fb_exchange[37], fb_message[37];
	json_t *fb_signals;
	/* the answer's density record, written after its line (record_answer) */
	json_t *pending_used;
	long pending_shard;
	char pending_user[37], pending_message[37], pending_exchange[37];
};

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
	{ "llm_orchestrator_response_time_seconds", "histogram", "Whole turn, message in to line out (streamed turns too: to the done line)" },
	{ "llm_orchestrator_stream_first_delta_seconds", "histogram", "Streamed turns: message in to the first delta line out" },
	{ "llm_orchestrator_errors", "counter", "Turns that failed" },
	{ "llm_orchestrator_cost_microdollars", "counter", "Provider cost in millionths of a US dollar, §19's llm_orchestrator_cost_usd × 10^6 (price table in unde-llm(1))" },
	{ "llm_orchestrator_provider_fallbacks", "counter", "Providers skipped before the one that answered" },
	{ "llm_orchestrator_context_pack_time_seconds", "histogram", "ContextPack assembly, frames included" },
	{ "llm_orchestrator_answers_total", "counter", "Answers by provider" },
	{ "llm_orchestrator_sensor_defaults_total", "counter", "Sensors replaced by their default frame" },
	{ "hybrid_search_latency_seconds", "histogram", "Hybrid search on the shard" },
	{ "llm_answer_records_failed", "counter", "Answers sent whose density record (llm_answer_meta) could not be written" },
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
	return sctx_option(&s->p.x, opt, arg) == 1 ? 0 : -1;
}

static int on_start(void *sp, struct filter_run *run, int argc, char **argv)
{
	(void)run, (void)argc, (void)argv;
	struct lstate *s = sp;
	struct llm_proc *p = &s->p;
	struct llm_conf *cf = &p->cf;
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
		shard_keys_load(&p->keys);
	char why[256];
	if (llm_chain_init(cf, why, sizeof why) != 0)
		conf_die("LLM_FALLBACK_PROVIDERS", "%s", why);
	if (!p->x.url && p->x.shard < 0 && !conf_str("PRODUCTION_DB_URL", NULL) &&
	    !conf_str("SHARD_0_DB_URL", NULL))
		conf_die("SHARD_0_DB_URL", "unde-llm needs the user's shard: set PRODUCTION_DB_URL (routing), "
					   "SHARD_0_DB_URL, --shard or --url");
	p->k = counters_open_service("unde-llm");
	p->recall = recall_open(&p->x, cf->top_k, p->k);
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

/* Save the user's message and the answer (§13 step 8) through the shard
 * client: the route lock, the SYNC rules, model_used and duration_ms. The
 * answer's density record (llm_answer_meta) is left for after the line
 * (record_answer), still under the turn lock; s->pending_* keep what it
 * needs. */
static int save_turn(struct lstate *s, struct turn *t, const json_t *rec, const char *text,
		     const char *model, long duration_ms, const char *exchange,
		     json_t *out, struct shard_err *e)
{
	char uid[37], aid[37], now[40];
	util_uuid4(uid);
	util_uuid4(aid);
	llm_iso_now(now, 1);
	json_t *um = json_pack("{s:s, s:s, s:s, s:s, s:O, s:s}", "id", uid, "role", "user", "content",
			       t->message, "input_type", t->input_type, "mood_frame", t->mood,
			       "created_at", t->locked_at);
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
	int rc = shard_save_turn(&s->p.x, sv, e);
	if (rc == 0) {
		json_object_set(out, "conversation_id", json_object_get(sv, "conversation_id"));
		json_object_set_new(out, "user_message_id", json_string(uid));
		json_object_set_new(out, "assistant_message_id", json_string(aid));
		const json_t *ids = json_object_get(t->pack, "episode_ids");
		json_decref(s->pending_used);
		s->pending_used = json_array();
		size_t i;
		const json_t *id;
		json_array_foreach(ids, i, id) json_array_append_new(s->pending_used, json_pack("{s:O}", "id", id));
		s->pending_shard = json_integer_value(json_object_get(json_object_get(sv, "saved"), "shard_id"));
		snprintf(s->pending_user, sizeof s->pending_user, "%s", t->user_id);
		snprintf(s->pending_message, sizeof s->pending_message, "%s", aid);
		snprintf(s->pending_exchange, sizeof s->pending_exchange, "%s", exchange);
	}
	json_decref(sv);
	return rc;
}

/* The density window's record of the answer just sent (how many episodes
 * its ContextPack carried), on the shard that saved it: after the line,
 * before the turn lock ends, so the user's next turn reads it. A failure
 * is logged: the messages are saved and the user has the answer. */
static void record_answer(struct lstate *s)
{
	if (!s->pending_used)
		return;
	struct shard_err e = { 0 };
	PGconn *c = sctx_shard(&s->p.x, s->pending_shard, &e);
	if (!c || memory_record(c, s->pending_user, s->pending_message, s->pending_used,
				s->pending_exchange, &e) != 0) {
		counters_add(s->p.k, "llm_answer_records_failed", NULL, 1);
		log_event(LOG_ERROR, "the answer's density record is missing",
			  json_pack("{s:s, s:s}", "message_id", s->pending_message, "error", e.msg));
	}
	json_decref(s->pending_used);
	s->pending_used = NULL;
}

/* A streamed turn's progress line, out at once (stream.c's emit); the
 * first one's latency is the streamed turn's own metric. */
struct stream_out {
	struct filter_run *run;
	struct lstate *s;
	double t0;
	int first_seen;
};

static void emit_line(void *ud, json_t *line)
{
	struct stream_out *so = ud;
	if (!so->first_seen && !strcmp(json_string_value(json_object_get(line, "stage")) ?: "", "delta")) {
		so->first_seen = 1;
		counters_observe_ms(so->s->p.k, "llm_orchestrator_stream_first_delta_seconds", NULL,
				    util_now_ms() - so->t0);
	}
	filter_emit(so->run, line);
}

/* The answer's keys of the output line (out gets them; rec is merged
 * with it by the caller), and the persona feedback for after_record. */
static void turn_output(struct lstate *s, struct turn *t, struct chain_result *res, json_t *out,
			int streaming, long duration_ms, const char *exchange)
{
	json_int_t tin = json_integer_value(json_object_get(res->answer, "tokens_in"));
	json_int_t tout = json_integer_value(json_object_get(res->answer, "tokens_out"));
	const json_t *pe = t->persona;
	json_object_set(out, "text", json_object_get(res->answer, "text"));
	json_object_set(out, "voice_params", json_object_get(pe, "voice_params"));
	json_object_set(out, "avatar_state", json_object_get(pe, "avatar_state"));
	json_object_set(out, "render_hints", json_object_get(pe, "render_hints"));
	json_object_set_new(out, "intent", json_string(t->intent));
	json_object_set_new(out, "duration_ms", json_integer(duration_ms));
	json_object_set(out, "model_used", json_object_get(res->answer, "model"));
	json_object_set_new(out, "exchange_id", json_string(exchange));
	json_object_set_new(out, "episodes_used",
			    json_integer((json_int_t)json_array_size(json_object_get(t->pack, "episode_ids"))));
	json_object_set_new(out, "tokens", json_pack("{s:I, s:I}", "in", tin, "out", tout));
	json_object_set_new(out, "cost_usd", json_real(llm_cost_usd(res->provider, (long)tin, (long)tout)));
	json_object_set(out, "sensors", t->sensors);
	if (t->recognition)
		json_object_set(out, "recognition", t->recognition);
	if (t->stylist)
		json_object_set(out, "stylist", t->stylist);
	if (t->query)
		json_object_set(out, "query_embedding", t->query);
	chain_annotate(res, out);
	if (streaming) /* the deltas' end: this line is the answer */
		json_object_set_new(out, "stage", json_string("done"));
	if (s->show_pack) {
		json_object_set(t->pack, "episodes_dropped", t->episodes_dropped);
		json_object_set(out, "context_pack", t->pack);
	}
	/* the signals about the previous answer, for after_record */
	json_decref(s->fb_signals);
	s->fb_signals = t->prev_exchange[0] ? feedback_signals(t->message, t->prev_used_memory) : NULL;
	snprintf(s->fb_user, sizeof s->fb_user, "%s", t->user_id);
	snprintf(s->fb_exchange, sizeof s->fb_exchange, "%s", t->prev_exchange);
	snprintf(s->fb_message, sizeof s->fb_message, "%s",
		 json_string_value(json_object_get(out, "user_message_id")) ?: "");
	if (s->fb_signals)
		json_object_set(out, "feedback_signals", s->fb_signals);
}

/* §19's counts of an answered turn: by provider, its cost, the fallbacks. */
static void turn_count(struct lstate *s, const struct chain_result *res)
{
	json_int_t tin = json_integer_value(json_object_get(res->answer, "tokens_in"));
	json_int_t tout = json_integer_value(json_object_get(res->answer, "tokens_out"));
	double cost = llm_cost_usd(res->provider, (long)tin, (long)tout);
	struct buf lb = { 0 };
	counters_label(&lb, "provider", res->provider);
	counters_add(s->p.k, "llm_orchestrator_answers_total", lb.data, 1);
	counters_add(s->p.k, "llm_orchestrator_cost_microdollars", lb.data, (uint64_t)(cost * 1e6 + 0.5));
	buf_free(&lb);
	counters_add(s->p.k, "llm_orchestrator_provider_fallbacks", NULL, (uint64_t)json_array_size(res->skipped));
}

/* A failed turn: counted, reported through the error contract; one that
 * lost a database drops every connection (gather_reset). */
static int turn_failed(struct lstate *s, struct turn *t, int status)
{
	turn_free(t);
	if (status == EX_UNAVAILABLE) {
		gather_unlock(&s->p);
		gather_reset(&s->p);
	}
	counters_add(s->p.k, "llm_orchestrator_errors", NULL, 1);
	return status;
}

static int llm_record(void *sp, struct filter_run *run, json_t *rec)
{
	struct lstate *s = sp;
	struct llm_proc *p = &s->p;
	double t0 = util_now_ms();
	inflight_enter("unde-llm"); /* llm_orchestrator_queue_size, until after_record */
	struct turn t = { 0 };
	t.user_id = json_string_value(json_object_get(rec, "user_id"));
	t.message = json_string_value(json_object_get(rec, "message"));
	if (!t.message)
		t.message = json_string_value(json_object_get(rec, "text"));
	if (!t.message || !*t.message)
		return turn_failed(s, &t, filter_fail(run, EX_DATAERR, "invalid_field",
						      "message (or text) must be a non-empty string"));
	t.input_type = json_string_value(json_object_get(rec, "input_type"));
	if (!t.input_type)
		t.input_type = "text";
	if (strcmp(t.input_type, "text") && strcmp(t.input_type, "voice"))
		return turn_failed(s, &t, filter_fail(run, EX_DATAERR, "invalid_field",
						      "input_type must be text or voice"));
	t.request_id = json_string_value(json_object_get(rec, "request_id"));
	t.sensors = json_object();
	t.episodes_dropped = json_array();
	t.intent = intent_classify(t.message, rec);

	struct deadline dl = filter_deadline(run);
	struct deadline pack_dl = deadline_min(dl, deadline_in(p->cf.context_pack_timeout_ms));
	/* the query's embedding starts now, on the worker: it needs only the
	 * message, and overlaps the frames and the turn lock */
	recall_start(p->recall, &t, pack_dl);
	/* mood and context first (the persona needs both), leaving a third
	 * of the budget to the persona even when one of them is late */
	sensors_frames(&t, rec, deadline_less(pack_dl, p->cf.context_pack_timeout_ms / 3), p->k);
	struct persona_call *pc = sensors_persona_start(&t, rec, pack_dl);
	/* the turn lock, the shard reads and the search, the filters */
	struct shard_err e = { 0 };
	int rc = gather_turn(p, &t, rec, dl, &e);
	sensors_persona_join(pc, &t, p->k);
	if (rc != 0)
		return turn_failed(s, &t, sctx_fail(run, &e));
	if (!strcmp(t.intent, "recognition"))
		t.recognition = recognition_call(&t, rec, dl);
	if (!strcmp(t.intent, "stylist"))
		t.stylist = stylist_call(&t, &p->x, rec, dl, p->k);
	t.pack = pack_build(&t, &p->cf);
	double pack_ms = util_now_ms() - t0;
	counters_observe_ms(p->k, "llm_orchestrator_context_pack_time_seconds", NULL, pack_ms);

	struct chain_result res;
	int streaming = s->stream_all || json_is_true(json_object_get(rec, "stream"));
	struct stream_out so = { .run = run, .s = s, .t0 = t0 };
	if ((streaming ? llm_ask_stream(&t, dl, &res, emit_line, &so) : llm_ask(&t, dl, &res)) != 0) {
		int st = filter_fail(run, res.status, res.code, "%s", res.message);
		chain_result_free(&res);
		return turn_failed(s, &t, st);
	}
	double llm_ms = util_now_ms() - t0 - pack_ms;
	const char *text = json_string_value(json_object_get(res.answer, "text"));
	const char *model = json_string_value(json_object_get(res.answer, "model"));
	long duration_ms = (long)(util_now_ms() - t0);
	char exchange[37];
	util_uuid4(exchange);
	json_t *out = json_object();
	double ts = util_now_ms();
	if (save_turn(s, &t, rec, text, model, duration_ms, exchange, out, &e) != 0) {
		json_decref(out);
		chain_result_free(&res);
		return turn_failed(s, &t, sctx_fail(run, &e));
	}
	double save_ms = util_now_ms() - ts;
	turn_output(s, &t, &res, out, streaming, duration_ms, exchange);
	json_object_update(rec, out);
	json_decref(out);
	turn_count(s, &res);
	double total_ms = util_now_ms() - t0;
	counters_observe_ms(p->k, "llm_orchestrator_response_time_seconds", NULL, total_ms);
	const struct turn_times *tt = &t.times;
	log_event(LOG_INFO, "turn answered",
		  json_pack("{s:s, s:s, s:b, s:I, s:f, s:f, s:f, s:f,"
			    " s:{s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f}, s:I, s:s}",
			    "provider", res.provider, "intent", t.intent, "streamed", streaming,
			    "duration_ms", (json_int_t)duration_ms, "context_pack_ms", pack_ms, "llm_ms",
			    llm_ms, "save_ms", save_ms, "total_ms", total_ms, "stages_ms", "lock", tt->lock,
			    "route", tt->route, "knowledge", tt->knowledge, "recent", tt->recent, "catalog",
			    tt->catalog, "density", tt->density, "wait", tt->wait, "filters", tt->filters,
			    "embed", tt->embed, "search", tt->search, "episodes_used",
			    (json_int_t)json_array_size(json_object_get(t.pack, "episode_ids")), "exchange_id",
			    exchange));
	chain_result_free(&res);
	turn_free(&t);
	return 0;
}

/* §13 step 9: after the line is out, the answer's density record, the end
 * of the turn lock, then the persona feedback about the previous answer
 * and the flush of its exchange (feedback.c). */
static void after_record(void *sp, struct filter_run *run, json_t *rec, int status)
{
	(void)rec;
	struct lstate *s = sp;
	record_answer(s);
	gather_unlock(&s->p);
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
	struct llm_proc *p = &s->p;
	recall_close(p->recall);
	p->recall = NULL;
	if (p->cf.have_keys) {
		shard_keys_metrics(&p->keys);
		shard_keys_wipe(&p->keys);
	}
	const char *dir = conf_str("UNDE_METRICS_DIR", NULL);
	if (p->k && dir && *dir) {
		char path[4096];
		snprintf(path, sizeof path, "%s/unde-llm.prom", dir);
		counters_write_textfile(p->k, metrics_help, path);
	}
	counters_close(p->k);
	catalog_done();
	if (p->order)
		PQfinish(p->order);
	json_decref(s->pending_used);
	sctx_close(&p->x);
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
	sctx_init(&s.p.x);
	return filter_main(&def, &s, argc, argv);
}
