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
#include "svc.h"

typedef json_t *(*local_fn)(const json_t *, struct deadline, struct recog_err *);

/* Call a sibling (service "ximilar-gw" → XIMILAR_GW_URL) or, without its
 * URL, the same function here. The answer, or NULL with e set. */
static json_t *call(const char *service, const char *url_var, const char *path, local_fn local, const json_t *body,
		    struct deadline dl, struct recog_err *e, double *ms)
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

/* "In this style" (§8): production products of the tags' type and colour,
 * in stock in KZ stores first. "In stock" counts only stores whose place
 * (their own city/country, else their mall's) is RECOGNITION_STOCK_COUNTRY
 * (default KZ; empty: any) and, when set, RECOGNITION_STOCK_CITY: a store
 * id of products.availability that production's stores table does not
 * know, or that is elsewhere, is not stock the user can walk to. */
static json_t *attribute_fallback(const json_t *tags, const char *category, struct recog_err *e)
{
	PGconn *db = gw_production_db(e);
	if (!db)
		return NULL;
	const char *type = json_string_value(json_object_get(tags, "type"));
	const char *color = json_string_value(json_object_get(tags, "color"));
	const char *style = json_string_value(json_object_get(tags, "style"));
	if (!type && category && strcmp(category, "whole_photo"))
		type = strrchr(category, '/') ? strrchr(category, '/') + 1 : category;
	const char *country, *city;
	recog_stock_place(&country, &city);
	const char *params[] = { type, color, style, country, city };
	/* each attribute that matches counts one; stock in the stores first */
	PGresult *r = pg_query(db,
			       "WITH here AS (SELECT lower(s.brand) AS brand, s.external_store_id::text AS store,"
			       "    json_build_object('id', s.id, 'name', s.name, 'city', COALESCE(s.city, m.city),"
			       "      'mall_id', s.mall_id, 'floor', s.floor) AS j"
			       "   FROM stores s LEFT JOIN malls m ON m.id = s.mall_id"
			       "  WHERE s.external_store_id IS NOT NULL"
			       "    AND ($4::text IS NULL OR upper(COALESCE(s.country, m.country)) = upper($4))"
			       "    AND ($5::text IS NULL OR lower(COALESCE(s.city, m.city)) = lower($5))),"
			       " p AS (SELECT pr.*, (SELECT json_agg(here.j ORDER BY here.store) FROM here"
			       "     WHERE here.brand = lower(pr.brand) AND pr.availability ? here.store) AS stock"
			       "   FROM products pr)"
			       " SELECT sku, brand, name, price, category, colour, image_urls, stock IS NOT NULL,"
			       "  (CASE WHEN $1::text IS NOT NULL AND (category ILIKE '%' || $1 || '%' OR name ILIKE '%' || $1 || '%') THEN 1 ELSE 0 END"
			       "   + CASE WHEN $2::text IS NOT NULL AND colour ILIKE '%' || $2 || '%' THEN 1 ELSE 0 END"
			       "   + CASE WHEN $3::text IS NOT NULL AND (name ILIKE '%' || $3 || '%' OR description ILIKE '%' || $3 || '%') THEN 1 ELSE 0 END) AS hits,"
			       "  COALESCE(stock, '[]'::json)"
			       " FROM p"
			       " ORDER BY hits DESC, (stock IS NOT NULL) DESC, synced_at DESC NULLS LAST, id"
			       " LIMIT 5",
			       5, params);
	if (!r) {
		recog_fail(e, pg_failure_status(db), "database_error", "attribute fallback: %s", pg_last_error(db));
		return NULL;
	}
	json_t *out = json_array();
	for (int i = 0; i < PQntuples(r); i++) {
		json_t *urls = json_loads(PQgetvalue(r, i, 6), 0, NULL);
		json_t *stock = json_loads(PQgetvalue(r, i, 9), 0, NULL);
		json_t *m = json_pack("{s:s, s:s, s:s, s:s, s:s?, s:s?, s:o, s:b, s:o, s:i}", "match_type", "style", "sku_id",
				      PQgetvalue(r, i, 0), "brand", PQgetvalue(r, i, 1), "name", PQgetvalue(r, i, 2),
				      "category", PQgetisnull(r, i, 4) ? NULL : PQgetvalue(r, i, 4), "colour",
				      PQgetisnull(r, i, 5) ? NULL : PQgetvalue(r, i, 5), "image_urls",
				      urls ? urls : json_array(), "in_stock", PQgetvalue(r, i, 7)[0] == 't', "in_stock_stores",
				      stock ? stock : json_array(), "attributes_matched", atoi(PQgetvalue(r, i, 8)));
		if (!PQgetisnull(r, i, 3))
			json_object_set_new(m, "price", json_real(strtod(PQgetvalue(r, i, 3), NULL)));
		json_array_append_new(out, m);
	}
	PQclear(r);
	return out;
}

/* The §8 decision over ranked (best first). */
static json_t *decide(const json_t *ranked, const json_t *tags, const char *category, const char **type,
		      struct recog_err *e)
{
	double high = conf_double("CONFIDENCE_HIGH", 0.85, 0, 1), medium = conf_double("CONFIDENCE_MEDIUM", 0.50, 0, 1);
	double top = json_number_value(json_object_get(json_array_get(ranked, 0), "score"));
	json_t *out = json_array();
	size_t take = top > high ? 1 : top >= medium ? 5 : 0;
	*type = top > high ? "exact" : top >= medium ? "similar" : "style";
	for (size_t i = 0; i < take && i < json_array_size(ranked); i++) {
		json_t *m = json_deep_copy(json_array_get(ranked, i));
		json_object_set_new(m, "match_type", json_string(*type));
		json_object_set_new(m, "similarity_pct",
				    json_integer((json_int_t)lround(json_number_value(json_object_get(m, "score")) * 100)));
		json_array_append_new(out, m);
	}
	if (take == 0) {
		json_decref(out);
		out = attribute_fallback(tags, category, e);
	}
	return out;
}

/* Log the request (§8's table); a failure is logged, not the user's. */
static void save_request(const char *id, const char *rid, const json_t *rec, json_t *detected, json_t *tags, json_t *search,
			 json_t *final, const double ms[5], int nitems, int nmatched)
{
	struct recog_err e = { 0 };
	if (!conf_str("PRODUCTION_DB_URL", NULL))
		return;
	PGconn *db = gw_production_db(&e);
	if (!db)
		return;
	char *d = json_dumps(detected, JSON_COMPACT), *t = json_dumps(tags, JSON_COMPACT),
	     *s = json_dumps(search, JSON_COMPACT), *f = json_dumps(final, JSON_COMPACT);
	char n[5][24], ni[24], nm[24];
	/* the caller's own id, when it is not the row's */
	const char *caller = rid && strcmp(rid, id) ? rid : NULL;
	for (int i = 0; i < 5; i++)
		snprintf(n[i], sizeof n[i], "%ld", lround(ms[i]));
	snprintf(ni, sizeof ni, "%d", nitems);
	snprintf(nm, sizeof nm, "%d", nmatched);
	const char *params[] = { id, json_string_value(json_object_get(rec, "user_id")),
				 json_string_value(json_object_get(rec, "photo_url")), d, n[0], t, n[1], s, n[2], f, n[3],
				 n[4], ni, nm, caller };
	if (pg_exec(db,
		    "INSERT INTO recognition_requests (id, user_id, photo_url, detected_items, detection_time_ms,"
		    " tags, tagging_time_ms, search_results, search_time_ms, final_matches, rerank_time_ms,"
		    " total_time_ms, items_detected, items_matched, request_id)"
		    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
		    15, params))
		log_event(LOG_ERROR, "recognition_requests not written",
			  json_pack("{s:s, s:s}", "request_id", id, "error", pg_last_error(db)));
	free(d);
	free(t);
	free(s);
	free(f);
}

/* The request's log row, kept from its last step until its done line is
 * out (filter_def.after_record): the INSERT (≈5 ms) is then off the path
 * to the done line. One request at a time, so one slot. */
static struct {
	int set;
	char id[37];
	char *rid;
	json_t *rec, *detected, *tags, *search, *final;
	double ms[5];
	int nitems, nmatched;
} row;

/* Keep the row (detected borrowed, the arrays taken) for row_save. */
static void row_later(const char *id, const char *rid, const json_t *rec, json_t *detected, json_t *tags,
		      json_t *search, json_t *final, const double ms[5], int nitems, int nmatched)
{
	assert(!row.set);
	row.set = 1;
	snprintf(row.id, sizeof row.id, "%s", id);
	row.rid = xstrdup(rid);
	row.rec = json_pack("{s:O?, s:O?}", "user_id", json_object_get(rec, "user_id"), "photo_url",
			    json_object_get(rec, "photo_url"));
	row.detected = json_incref(detected);
	row.tags = tags;
	row.search = search;
	row.final = final;
	memcpy(row.ms, ms, sizeof row.ms);
	row.nitems = nitems;
	row.nmatched = nmatched;
}

/* after_record: write the kept row, whatever became of the record. */
static void row_save(void *sp, struct filter_run *run, json_t *rec, int status)
{
	(void)sp;
	(void)run;
	(void)rec;
	(void)status;
	if (!row.set)
		return;
	save_request(row.id, row.rid, row.rec, row.detected, row.tags, row.search, row.final, row.ms, row.nitems,
		     row.nmatched);
	free(row.rid);
	json_decref(row.rec);
	json_decref(row.detected);
	json_decref(row.tags);
	json_decref(row.search);
	json_decref(row.final);
	memset(&row, 0, sizeof row);
}

static int is_uuid(const char *s)
{
	if (!s || strlen(s) != 36)
		return 0;
	for (int i = 0; i < 36; i++)
		if ((i == 8 || i == 13 || i == 18 || i == 23) ? s[i] != '-' : !strchr("0123456789abcdefABCDEF", s[i]))
			return 0;
	return 1;
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

static void emit(struct item_job *j, json_t *line)
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
	t->answer = call("llm-reranker", "LLM_RERANKER_URL", "/tag", rr_tag, t->q, t->dl, &t->e, &t->ms);
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
	json_t *xt = call("ximilar-gw", "XIMILAR_GW_URL", "/tag", gw_tag, q, dl, &e1, &gms);
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
	emit(j, json_pack("{s:s, s:s, s:I, s:O, s:o}", "stage", "tagged", "request_id", id, "item", (json_int_t)i,
			  "tags", tags, "providers", tag_providers));
	/* step 3: search; step 4: rerank */
	json_t *sq = json_pack("{s:s?, s:s?, s:i, s:s}", "crop_url", crop, "category",
			       json_string_value(json_object_get(tags, "type")), "top_k", 10, "request_id", id);
	struct recog_err e3 = { 0 };
	json_t *sr = call("ximilar-gw", "XIMILAR_GW_URL", "/search", gw_search, sq, dl, &e3, &j->ms[2]);
	json_decref(sq);
	json_t *cands = sr ? json_object_get(sr, "candidates") : NULL;
	json_t *ranked = NULL;
	const char *why_degraded = NULL;
	if (cands && json_array_size(cands)) {
		json_t *rq = json_pack("{s:s?, s:O, s:O, s:s}", "crop_url", crop, "candidates", cands, "tags", tags,
				       "request_id", id);
		struct recog_err e4 = { 0 };
		json_t *rr = call("llm-reranker", "LLM_RERANKER_URL", "/rerank", rr_rerank, rq, dl, &e4, &j->ms[3]);
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
	json_t *matches = decide(ranked, tags, cat, &mtype, &e5);
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
	emit(j, line);
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
	if (uid && !json_is_null(uid) && !is_uuid(json_string_value(uid)))
		return filter_fail(run, EX_DATAERR, "invalid_field", "user_id must be a UUID");
	/* The caller's request_id (any string: unde-httpd's are up to 64 of
	 * [A-Za-z0-9._:-]) stays on every line we write and goes to every
	 * upstream; the log row's id is a UUID: the caller's when it is one,
	 * else a new one, given as recognition_id. */
	char id[37];
	const char *given = json_string_value(json_object_get(rec, "request_id"));
	if (is_uuid(given))
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
	json_t *det = call("ximilar-gw", "XIMILAR_GW_URL", "/detect", gw_detect, body, dl, &e, &ms[0]);
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
	row_later(id, rid, rec, items, all_tags, all_search, final, ms, (int)n, matched);
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
	const char *params[] = { is_uuid(id) ? id : NULL, f, id };
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
		.after_record = fb ? NULL : row_save,
	};
	return filter_main(&def, NULL, argc - fb, argv + fb);
}
