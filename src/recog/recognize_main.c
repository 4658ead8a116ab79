/* unde-recognize — the Recognition Orchestrator (spec §8):
 *
 *   unde-recognize             POST /recognize {photo_url, user_id?} → stages, then done
 *   unde-recognize feedback    {request_id, user_feedback} → the log row updated
 *   unde-recognize metrics     §19's orchestrator metrics
 *
 * Steps: detect (gateway) → per item tag (gateway and reranker) → search
 * (gateway) → rerank (reranker) → exact / similar / style by the §8
 * thresholds. Each step's answer is written at once as a "stage" line
 * (detected, tagged, matches per item), the last line is stage "done".
 *
 * The gateway and the reranker are called over HTTP (lib/svc.h) at
 * XIMILAR_GW_URL and LLM_RERANKER_URL. When a URL is unset the same code
 * those services run (gw.c, rr.c) is called in this process: one pipe on
 * one machine needs no service running. Always an answer: reranker down →
 * the search order with the gateway's scores ("degraded"); search down →
 * the attribute fallback over the detected categories; only a failed
 * detection ends the request with an error (upstream_unavailable). */
#include "config.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "conf.h"
#include "filter.h"
#include "inflight.h"
#include "http.h"
#include "log.h"
#include "pg.h"
#include "recog.h"
#include "recognize.h"
#include "shardc.h"
#include "svc.h"

typedef json_t *(*local_fn)(const json_t *, struct deadline, struct recog_err *);

/* Call a sibling (service "ximilar-gw" → XIMILAR_GW_URL) or, without its
 * URL, the same function here. The answer, or NULL with e set. */
static json_t *step_call(const char *service, const char *url_var, const char *path, local_fn local,
			 const json_t *body, struct deadline dl, struct recog_err *e, double *ms)
{
	double t0 = util_now_ms();
	const char *u = conf_str(url_var, NULL);
	json_t *ans = NULL;
	if (u && *u) {
		struct svc_answer a;
		if (svc_call(service, path, body, dl, &a) == 0 && json_is_object(a.answer) &&
		    !json_object_get(a.answer, "error")) {
			ans = json_incref(a.answer);
		} else {
			recog_fail(e, a.status ? a.status : EX_UNAVAILABLE, a.code[0] ? a.code : "upstream_error", "%s %s: %s",
				   service, path, a.message[0] ? a.message : "no answer");
		}
		svc_answer_free(&a);
	} else {
		ans = local(body, dl, e);
	}
	*ms += util_now_ms() - t0;
	if (!ans) {
		char lab[64];
		snprintf(lab, sizeof lab, "step=\"%s%s\"", service, path);
		rmetrics_add("recognition_orchestrator_errors", lab, 1);
		log_event(LOG_WARN, "step failed",
			  json_pack("{s:s, s:s, s:s, s:s}", "service", service, "path", path, "code", e->code, "message",
				    e->message));
	}
	return ans;
}

/* Copy src's members except the bookkeeping ones into dst. */
static void merge_tags(json_t *dst, const json_t *src)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)src, k, v)
	{
		if (strcmp(k, "provider") && strcmp(k, "providers_skipped") && strcmp(k, "url") &&
		    strcmp(k, "request_id") && !(json_is_null(v) && json_object_get(dst, k)))
			json_object_set(dst, k, v);
	}
}

/* One detected item's steps 2-4. */
struct item_job {
	struct filter_run *run;
	pthread_mutex_t *emit_lock;
	const char *id; /* the caller's request_id, on every line and upstream call */
	size_t index;
	const json_t *item;
	struct deadline dl;
	pthread_t thread;
	int started;
	/* out */
	double ms[4]; /* detect (unused), tag, search, rerank */
	json_t *tags, *candidates, *matches, *out;
	const char *degraded;
};

static void item_emit(struct item_job *j, json_t *line)
{
	pthread_mutex_lock(j->emit_lock);
	filter_emit(j->run, line);
	pthread_mutex_unlock(j->emit_lock);
}

/* The reranker's tag call, in a thread of its own beside the gateway's. */
struct tag_job {
	const json_t *q;
	struct deadline dl;
	const char *rid;
	json_t *answer;
	struct recog_err e;
	double ms;
};

static void *tag_thread(void *p)
{
	struct tag_job *t = p;
	log_set_request_id(t->rid);
	t->answer = step_call("llm-reranker", "LLM_RERANKER_URL", "/tag", rr_tag, t->q, t->dl, &t->e, &t->ms);
	gw_thread_done();
	http_thread_cleanup();
	return NULL;
}

static void item_run(struct item_job *j)
{
	const char *id = j->id;
	struct deadline dl = j->dl;
	const json_t *it = j->item;
	size_t i = j->index;
	const char *crop = json_string_value(json_object_get(it, "crop_url"));
	const char *cat = json_string_value(json_object_get(it, "category"));
	json_t *q = json_pack("{s:s?, s:s?, s:s}", "url", crop, "category", cat, "request_id", id);
	json_t *tags = json_object(), *tag_providers = json_object();
	struct recog_err e1 = { 0 };
	struct tag_job tj = { .q = q, .dl = dl, .rid = log_request_id() };
	pthread_t tt;
	int threaded = pthread_create(&tt, NULL, tag_thread, &tj) == 0;
	double gms = 0;
	json_t *xt = step_call("ximilar-gw", "XIMILAR_GW_URL", "/tag", gw_tag, q, dl, &e1, &gms);
	if (threaded)
		pthread_join(tt, NULL);
	else
		tag_thread(&tj);
	j->ms[1] = gms > tj.ms ? gms : tj.ms;
	json_t *lt = tj.answer;
	json_decref(q);
	if (xt) {
		merge_tags(tags, xt);
		json_object_set(tag_providers, "ximilar_gw", json_object_get(xt, "provider"));
	}
	if (lt) {
		merge_tags(tags, lt);
		json_object_set(tag_providers, "llm_reranker", json_object_get(lt, "provider"));
	}
	json_decref(xt);
	json_decref(lt);
	item_emit(j, json_pack("{s:s, s:s, s:I, s:O, s:o}", "stage", "tagged", "request_id", id, "item", (json_int_t)i,
			  "tags", tags, "providers", tag_providers));
	/* step 3: search; step 4: rerank */
	json_t *sq = json_pack("{s:s?, s:s?, s:i, s:s}", "crop_url", crop, "category",
			       json_string_value(json_object_get(tags, "type")), "top_k", 10, "request_id", id);
	struct recog_err e3 = { 0 };
	json_t *sr = step_call("ximilar-gw", "XIMILAR_GW_URL", "/search", gw_search, sq, dl, &e3, &j->ms[2]);
	json_decref(sq);
	json_t *cands = sr ? json_object_get(sr, "candidates") : NULL;
	json_t *ranked = NULL;
	const char *why_degraded = NULL;
	if (cands && json_array_size(cands)) {
		json_t *rq = json_pack("{s:s?, s:O, s:O, s:s}", "crop_url", crop, "candidates", cands, "tags", tags,
				       "request_id", id);
		struct recog_err e4 = { 0 };
		json_t *rr = step_call("llm-reranker", "LLM_RERANKER_URL", "/rerank", rr_rerank, rq, dl, &e4, &j->ms[3]);
		json_decref(rq);
		if (rr && json_is_array(json_object_get(rr, "ranked"))) {
			ranked = json_incref(json_object_get(rr, "ranked"));
		} else {
			/* the reranker is down: the gateway's order and scores */
			ranked = json_incref(cands);
			why_degraded = "reranker_unavailable";
		}
		json_decref(rr);
	} else {
		ranked = json_array();
		if (!sr)
			why_degraded = "search_unavailable";
	}
	const char *mtype;
	struct recog_err e5 = { 0 };
	json_t *matches = recognize_decide(ranked, tags, cat, &mtype, &e5);
	if (!matches) {
		matches = json_array();
		if (!why_degraded)
			why_degraded = "fallback_unavailable";
	}
	json_t *line = json_pack("{s:s, s:s, s:I, s:s, s:O}", "stage", "matches", "request_id", id, "item",
				 (json_int_t)i, "match_type", mtype, "matches", matches);
	json_t *oi = json_pack("{s:I, s:O?, s:O?, s:O?, s:O, s:s, s:O}", "index", (json_int_t)i, "category",
			       json_object_get(it, "category"), "bbox", json_object_get(it, "bbox"), "crop_url",
			       json_object_get(it, "crop_url"), "tags", tags, "match_type", mtype, "matches", matches);
	if (why_degraded) {
		json_object_set_new(line, "degraded", json_string(why_degraded));
		json_object_set_new(oi, "degraded", json_string(why_degraded));
	}
	item_emit(j, line);
	j->tags = tags;
	j->candidates = cands ? json_incref(cands) : NULL;
	j->matches = matches;
	j->out = oi;
	j->degraded = why_degraded;
	json_decref(ranked);
	json_decref(sr);
}

static void *item_thread(void *p)
{
	struct item_job *j = p;
	log_set_request_id(j->id);
	item_run(j);
	gw_thread_done();
	http_thread_cleanup();
	return NULL;
}

/* The production connection (for the request's log row, and the
 * attribute fallback), opened while the detection runs: a process per
 * request would otherwise connect after the last step, on the path to the
 * done line. */
struct db_warm {
	pthread_t thread;
	int started;
	const char *rid; /* for its log lines */
	PGconn *db;
};

static void *db_warm_thread(void *p)
{
	struct db_warm *w = p;
	log_set_request_id(w->rid);
	w->db = pg_connect(conf_str("PRODUCTION_DB_URL", ""), "PRODUCTION_DB_URL");
	return NULL;
}

/* Start it when there is a database and this thread has no connection. */
static void db_warm_start(struct db_warm *w)
{
	const char *u = conf_str("PRODUCTION_DB_URL", NULL);
	memset(w, 0, sizeof *w);
	w->rid = log_request_id();
	if (!u || !*u || gw_production_connected())
		return;
	w->started = pthread_create(&w->thread, NULL, db_warm_thread, w) == 0;
}

/* The connection, this thread's from now on. */
static void db_warm_finish(struct db_warm *w)
{
	if (!w->started)
		return;
	pthread_join(w->thread, NULL);
	w->started = 0;
	gw_production_adopt(w->db);
}

/* §8 for one photo: detect, then per item tag, search, rerank, in
 * parallel; the stage lines as they come, one done line. */
static int recognize_work(struct filter_run *run, json_t *rec)
{
	double t0 = util_now_ms();
	struct deadline dl = filter_deadline(run);
	if (!deadline_set(dl))
		dl = deadline_in(conf_long("RECOGNITION_SOFT_TIME_LIMIT_MS", 25000, 100, 600000));
	const char *photo = json_string_value(json_object_get(rec, "photo_url"));
	if (!photo)
		return filter_fail(run, EX_DATAERR, "missing_field", "photo_url (a string) is required");
	const json_t *uid = json_object_get(rec, "user_id");
	if (uid && !json_is_null(uid) && !shard_uuid_valid(json_string_value(uid)))
		return filter_fail(run, EX_DATAERR, "invalid_field", "user_id must be a UUID");
	/* The caller's request_id (any string: unde-httpd's are up to 64 of
	 * [A-Za-z0-9._:-]) stays on every line we write and goes to every
	 * upstream; the log row's id is a UUID: the caller's when it is one,
	 * else a new one, given as recognition_id. */
	char id[37];
	const char *given = json_string_value(json_object_get(rec, "request_id"));
	if (shard_uuid_valid(given))
		snprintf(id, sizeof id, "%s", given);
	else
		util_uuid4(id);
	if (!given)
		log_set_request_id(id); /* none: the row's id is the request's */
	/* a copy: the done line replaces rec's own */
	char *rid = xstrdup(given ? given : id);
	double ms[5] = { 0 };
	struct recog_err e = { 0 };
	json_t *body = json_pack("{s:s, s:O?, s:s}", "url", photo, "user_id", uid, "request_id", rid);
	struct db_warm warm;
	db_warm_start(&warm);
	json_t *det = step_call("ximilar-gw", "XIMILAR_GW_URL", "/detect", gw_detect, body, dl, &e, &ms[0]);
	json_decref(body);
	db_warm_finish(&warm);
	if (!det) {
		rmetrics_add("recognition_requests", "result=\"failed\"", 1);
		free(rid);
		return filter_fail(run, e.status == EX_DATAERR ? EX_DATAERR : EX_UNAVAILABLE,
				   e.status == EX_DATAERR ? e.code : "upstream_unavailable", "detection failed: %s", e.message);
	}
	json_t *items = json_object_get(det, "items");
	size_t n = json_array_size(items);
	filter_emit(run, json_pack("{s:s, s:s, s:s, s:O, s:s?, s:i}", "stage", "detected", "request_id", rid,
				   "recognition_id", id, "items", items,
				   "provider", json_string_value(json_object_get(det, "provider")), "elapsed_ms",
				   (int)lround(util_now_ms() - t0)));
	/* steps 2-4 per item, the items in parallel */
	struct item_job *jobs = xcalloc(n ? n : 1, sizeof *jobs);
	pthread_mutex_t emit_lock = PTHREAD_MUTEX_INITIALIZER;
	for (size_t i = 0; i < n; i++) {
		jobs[i] = (struct item_job){ .run = run, .emit_lock = &emit_lock, .id = rid, .index = i,
					     .item = json_array_get(items, i), .dl = dl };
		jobs[i].started = n > 1 && pthread_create(&jobs[i].thread, NULL, item_thread, &jobs[i]) == 0;
		if (!jobs[i].started)
			item_run(&jobs[i]);
	}
	json_t *all_tags = json_array(), *all_search = json_array(), *final = json_array(), *out_items = json_array();
	int degraded_any = 0, matched = 0;
	for (size_t i = 0; i < n; i++) {
		struct item_job *j = &jobs[i];
		if (j->started)
			pthread_join(j->thread, NULL);
		for (int k = 1; k < 4; k++)
			if (j->ms[k] > ms[k])
				ms[k] = j->ms[k]; /* parallel: the slowest item's time */
		json_array_append_new(all_tags, j->tags);
		json_array_append_new(all_search, j->candidates ? j->candidates : json_null());
		json_array_append(final, j->matches);
		json_array_append_new(out_items, j->out);
		json_decref(j->matches);
		degraded_any |= j->degraded != NULL;
		matched += json_array_size(j->matches) > 0;
	}
	free(jobs);
	ms[4] = util_now_ms() - t0;
	recognize_row_keep(id, rid, rec, items, all_tags, all_search, final, ms, (int)n, matched);
	rmetrics_observe_ms("recognition_pipeline_duration_seconds", NULL, ms[4]);
	rmetrics_add("recognition_requests", degraded_any ? "result=\"degraded\"" : "result=\"ok\"", 1);
	json_object_set_new(rec, "stage", json_string("done"));
	json_object_set_new(rec, "request_id", json_string(rid));
	json_object_set_new(rec, "recognition_id", json_string(id));
	json_object_set_new(rec, "items", out_items);
	json_object_set_new(rec, "total_ms", json_integer((json_int_t)lround(ms[4])));
	if (degraded_any)
		json_object_set_new(rec, "degraded", json_true());
	json_decref(det);
	free(rid);
	return 0;
}

/* One request, counted in flight (recognition_queue_size, lib/inflight.h)
 * from its line in to its done line out. */
static int recognize_record(void *sp, struct filter_run *run, json_t *rec)
{
	(void)sp;
	inflight_enter("unde-recognize");
	int rc = recognize_work(run, rec);
	inflight_leave();
	return rc;
}

/* feedback {recognition_id | request_id, user_feedback}: the row is found
 * by its id (recognition_id, or a request_id that is a UUID) or by the
 * caller's own request_id it was asked under (the latest such row). */
static int feedback_record(void *sp, struct filter_run *run, json_t *rec)
{
	(void)sp;
	const char *id = json_string_value(json_object_get(rec, "recognition_id"));
	if (!id)
		id = json_string_value(json_object_get(rec, "request_id"));
	const json_t *fb = json_object_get(rec, "user_feedback");
	if (!id || !*id || !fb || json_is_null(fb))
		return filter_fail(run, EX_DATAERR, "invalid_field",
				   "feedback needs recognition_id or request_id (a string) and user_feedback");
	struct recog_err e = { 0 };
	PGconn *db = gw_production_db(&e);
	if (!db)
		return filter_fail(run, e.status, e.code, "%s", e.message);
	char *f = json_dumps(fb, JSON_COMPACT | JSON_ENCODE_ANY);
	const char *params[] = { shard_uuid_valid(id) ? id : NULL, f, id };
	PGresult *r = pg_query(db,
			       "UPDATE recognition_requests SET user_feedback = $2::jsonb WHERE id = COALESCE($1::uuid,"
			       " (SELECT id FROM recognition_requests WHERE request_id = $3 ORDER BY created_at DESC LIMIT 1))"
			       " RETURNING id",
			       3, params);
	free(f);
	if (!r)
		return filter_fail(run, pg_failure_status(db), "database_error", "%s", pg_last_error(db));
	int found = PQntuples(r) == 1;
	PQclear(r);
	if (!found)
		return filter_fail(run, EX_DATAERR, "not_found", "no recognition request %s", id);
	json_object_set_new(rec, "updated", json_true());
	return 0;
}

int main(int argc, char **argv)
{
	int rc = recog_start("unde-recognize", argc, argv);
	if (rc >= 0)
		return rc;
	const char *sub = argc > 1 ? argv[1] : "";
	int fb = !strcmp(sub, "feedback");
	if (!fb && sub[0] && sub[0] != '-') {
		log_event(LOG_ERROR, "unknown subcommand", json_pack("{s:s}", "subcommand", sub));
		fputs("Try 'unde-recognize --help'.\n", stderr);
		return EX_USAGE;
	}
	const struct filter_def def = {
		.name = "unde-recognize",
		.summary = fb ? "feedback: {request_id, user_feedback} → {updated:true}: the request log's user_feedback."
			      : "The Recognition Orchestrator (spec §8): {photo_url, user_id?} → stage lines detected,\n"
				"tagged, matches (per item), then {stage:\"done\", request_id, items, total_ms}.\n"
				"Subcommands: feedback, metrics (see unde-recognize(1)).",
		.synopsis = fb ? "feedback" : "[feedback|metrics]",
		.max_operands = FILTER_NO_OPERANDS,
		.on_finish = recog_finish,
		.on_record = fb ? feedback_record : recognize_record,
		.after_record = fb ? NULL : recognize_row_save,
	};
	return filter_main(&def, NULL, argc - fb, argv + fb);
}
