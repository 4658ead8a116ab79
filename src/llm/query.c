/* query.c — the user's message as a search query (§13 phase 2): embedded
 * by the model that embedded the history it searches, then the shard's
 * hybrid search, both on a worker thread of their own.
 *
 * unde-embed stores messages' vectors through lib/embed_cohere.h's chain
 * (Cohere with input_type "search_document", else the local n-gram
 * embedder) and records the model with each. The query goes through the
 * same chain with input_type "search_query": when Cohere answers, the
 * shard's search compares it only with Cohere-embedded messages of that
 * model (SIMILARITY_THRESHOLD); when Cohere has no key, fails or is late,
 * the local embedder stands in and only locally embedded messages are
 * compared (LOCAL_SIMILARITY_THRESHOLD: its cosines run lower). Vectors of
 * two models are never compared (shard_search_model).
 *
 * The worker (struct recall) lives as long as the process, with a shard
 * context of its own (its connections to production and to the shards,
 * opened once, kept between turns) and its own HTTP pool (Cohere kept
 * alive). A turn posts its message as soon as it is read, so the
 * embedding overlaps the frames and the turn lock; the search waits for
 * the gate, opened once the turn holds its user's lock (the history it
 * reads must hold the user's previous turn), and then runs while the main
 * thread reads the recent messages, the knowledge, the artifact, the
 * catalog and the density window. The ContextPack costs about the longer
 * of the two, not their sum. */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "embed_cohere.h"
#include "embed_local.h"
#include "http.h"
#include "llm.h"
#include "log.h"
#include "util.h"

static struct embed_conf qconf;
static pthread_once_t qconf_once = PTHREAD_ONCE_INIT;

static void qconf_load(void)
{
	embed_conf_load(&qconf, NULL);
}

/* The message embedded as a search query: a new JSON array, or NULL (full
 * text only); model gets who embedded it, so->threshold the local model's
 * threshold when it did, *info the {provider, model, providers_skipped?}
 * the output line shows. */
static json_t *query_embed(const char *message, struct deadline dl, struct shard_search_opts *so,
			   char *model, size_t mlen, json_t **info, struct counters *k)
{
	pthread_once(&qconf_once, qconf_load);
	struct chain_result res;
	const json_t *v = embed_text(&qconf, message, "search_query", dl, &res);
	const char *m = json_string_value(json_object_get(res.answer, "model"));
	snprintf(model, mlen, "%s", v && m ? m : EMBED_LOCAL_MODEL);
	/* SIMILARITY_THRESHOLD (0.5) is the spec's for Cohere's vectors; the
	 * local n-gram model's cosines run lower (one shared word among several
	 * gives 0.25–0.45, unrelated sentences stay under 0.15), so a query it
	 * embeds is compared with its own threshold */
	if (!strcmp(model, EMBED_LOCAL_MODEL))
		so->threshold = conf_double("LOCAL_SIMILARITY_THRESHOLD", 0.2, 0, 1);
	*info = json_pack("{s:s, s:s}", "provider", res.provider[0] ? res.provider : "none", "model",
			  v ? model : "");
	if (json_array_size(res.skipped)) {
		json_object_set(*info, "providers_skipped", res.skipped);
		/* Cohere was meant to embed it (a key is set) and did not */
		if (!qconf.local_only && provider_configured(&embed_cohere))
			counters_add(k, "llm_query_embedding_fallbacks", NULL, 1);
	}
	json_t *out = v ? json_deep_copy(v) : NULL;
	if (!v)
		log_event(LOG_INFO, "the query has no embedding; full-text search only",
			  json_pack("{s:s}", "why", res.message));
	chain_result_free(&res);
	return out;
}

/* One turn's job and its result, handed between the threads under mu. */
struct recall {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t th;
	int running; /* the worker thread exists (else jobs run inline) */
	int quit;
	struct shard_ctx x; /* the worker's own connections */
	struct counters *k;
	long top_k;
	/* the job: posted (recall_start), gated (recall_go), done */
	int posted, gate, done;
	const char *user_id, *message;
	char request_id[128];
	struct deadline dl;
	/* the result */
	json_t *episodes, *query;
	struct shard_err e;
	double embed_ms, search_ms;
};

/* The job's two halves: embed (any time), search (once gated, gate > 0). */
static void recall_embed(struct recall *w, json_t **emb, struct shard_search_opts *so, char *qmodel,
			 size_t qlen)
{
	double t0 = util_now_ms();
	shard_search_defaults(so);
	*emb = query_embed(w->message, w->dl, so, qmodel, qlen, &w->query, w->k);
	w->embed_ms = util_now_ms() - t0;
}

static void recall_search(struct recall *w, json_t *emb, const struct shard_search_opts *so,
			  const char *qmodel)
{
	double t0 = util_now_ms();
	memset(&w->e, 0, sizeof w->e);
	w->episodes = shard_search_model(&w->x, so, w->user_id, w->message, emb, qmodel, w->top_k, &w->e);
	w->search_ms = util_now_ms() - t0;
	if (w->episodes)
		counters_observe_ms(w->k, "hybrid_search_latency_seconds", NULL, w->search_ms);
}

static void *recall_thread(void *p)
{
	struct recall *w = p;
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->posted && !w->quit)
			pthread_cond_wait(&w->cv, &w->mu);
		if (w->quit)
			break;
		w->posted = 0;
		pthread_mutex_unlock(&w->mu);
		log_set_request_id(w->request_id[0] ? w->request_id : NULL);
		json_t *emb;
		struct shard_search_opts so = { 0 };
		char qmodel[128];
		recall_embed(w, &emb, &so, qmodel, sizeof qmodel);
		pthread_mutex_lock(&w->mu);
		while (!w->gate)
			pthread_cond_wait(&w->cv, &w->mu);
		int go = w->gate > 0;
		pthread_mutex_unlock(&w->mu);
		if (go)
			recall_search(w, emb, &so, qmodel);
		json_decref(emb);
		pthread_mutex_lock(&w->mu);
		w->done = 1;
		pthread_cond_broadcast(&w->cv);
	}
	pthread_mutex_unlock(&w->mu);
	sctx_close(&w->x);
	http_thread_cleanup();
	return NULL;
}

struct recall *recall_open(const struct shard_ctx *like, long top_k, struct counters *k)
{
	/* read (and check: a bad value exits 78 here, not on the worker) the
	 * embedding and search variables once, up front */
	pthread_once(&qconf_once, qconf_load);
	struct shard_search_opts check = { 0 };
	shard_search_defaults(&check);
	struct recall *w = xcalloc(1, sizeof *w);
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	sctx_init(&w->x);
	w->x.url = like->url;
	w->x.shard = like->shard;
	w->k = k;
	w->top_k = top_k;
	w->running = pthread_create(&w->th, NULL, recall_thread, w) == 0;
	if (!w->running)
		log_event(LOG_WARN, "no search worker thread: the search runs after the other reads", NULL);
	return w;
}

void recall_close(struct recall *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->quit = 1;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	if (w->running)
		pthread_join(w->th, NULL);
	else
		sctx_close(&w->x);
	json_decref(w->episodes);
	json_decref(w->query);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	free(w);
}

void recall_reset(struct recall *w)
{
	pthread_mutex_lock(&w->mu); /* the worker is idle: it touches x only between post and done */
	sctx_reset(&w->x);
	pthread_mutex_unlock(&w->mu);
}

void recall_start(struct recall *w, const struct turn *t, struct deadline dl)
{
	pthread_mutex_lock(&w->mu);
	w->user_id = t->user_id;
	w->message = t->message;
	snprintf(w->request_id, sizeof w->request_id, "%s", t->request_id ? t->request_id : "");
	w->dl = dl;
	w->gate = w->done = 0;
	w->episodes = w->query = NULL;
	w->embed_ms = w->search_ms = 0;
	memset(&w->e, 0, sizeof w->e);
	w->posted = w->running;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

void recall_go(struct recall *w, int search)
{
	pthread_mutex_lock(&w->mu);
	w->gate = search ? 1 : -1;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

int recall_join(struct recall *w, struct turn *t, struct shard_err *e, double *embed_ms,
		double *search_ms)
{
	if (w->running) {
		pthread_mutex_lock(&w->mu);
		while (!w->done)
			pthread_cond_wait(&w->cv, &w->mu);
		pthread_mutex_unlock(&w->mu);
	} else { /* no thread: the same job, here and now */
		json_t *emb;
		struct shard_search_opts so = { 0 };
		char qmodel[128];
		recall_embed(w, &emb, &so, qmodel, sizeof qmodel);
		if (w->gate > 0)
			recall_search(w, emb, &so, qmodel);
		json_decref(emb);
	}
	*embed_ms = w->embed_ms;
	*search_ms = w->search_ms;
	json_decref(t->query);
	t->query = w->query;
	w->query = NULL;
	t->episodes = w->episodes;
	w->episodes = NULL;
	if (w->gate > 0 && !t->episodes) {
		*e = w->e;
		return -1;
	}
	return 0;
}

void query_note_hits(struct turn *t)
{
	if (!t->query || !t->episodes)
		return;
	json_t *hits = json_array();
	size_t i;
	const json_t *e;
	json_array_foreach(t->episodes, i, e)
	{
		double v = json_number_value(json_object_get(e, "vec_score"));
		if (v > 0)
			json_array_append_new(hits, json_pack("{s:O, s:f}", "id", json_object_get(e, "id"), "vec_score", v));
	}
	json_object_set_new(t->query, "vector_hits", hits);
}
