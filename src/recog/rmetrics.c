/* rmetrics — §19's recognition metrics, summed over every process of a
 * service (unde-httpd starts one per connection): lib/counters.h's shared
 * file, $UNDE_COUNTERS_DIR/<service>.counters. Latencies are histograms in
 * seconds (the spec's *_latency_ms become *_latency_seconds, Prometheus'
 * unit); the Gemini cost is counted in micro-dollars (an integer counter:
 * llm_reranker_cost_microdollars / 1e6 is the spec's llm_reranker_cost_usd). */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "counters.h"
#include "inflight.h"
#include "recog.h"

static struct counters *rk;
static const char *rservice;

static const struct counters_help HELP[] = {
	{ "ximilar_gw_detect_latency_seconds", "histogram", "Gateway detect, photo in to crops stored" },
	{ "ximilar_gw_search_latency_seconds", "histogram", "Gateway visual search" },
	{ "ximilar_gw_errors", "counter", "Ximilar calls that failed (the local provider answered)" },
	{ "ximilar_gw_rate_limit_hits", "counter", "Ximilar answers 429" },
	{ "ximilar_gw_rate_limit_waits", "counter", "Calls not made: no token of the host's bucket in time" },
	{ "llm_reranker_latency_seconds", "histogram", "Gemini calls (tag, rerank)" },
	{ "llm_reranker_rerank_seconds", "histogram", "Whole rerank requests" },
	{ "llm_reranker_errors", "counter", "Gemini answers that failed or were unusable" },
	{ "llm_reranker_cost_microdollars", "counter", "Gemini cost from token usage, in 1e-6 USD" },
	{ "recognition_pipeline_duration_seconds", "histogram", "Recognition requests, photo to done" },
	{ "recognition_orchestrator_errors", "counter", "Recognition steps that failed (by step)" },
	{ "recognition_requests", "counter", "Recognition answers by match type and degradation" },
	{ NULL, NULL, NULL },
};

void rmetrics_init(const char *service)
{
	rservice = service;
}

static pthread_once_t rk_once = PTHREAD_ONCE_INIT;

static void rcounters_open(void)
{
	if (rservice)
		rk = counters_open_service(rservice);
}

/* The service's counters, opened by whichever thread counts first (the
 * recognition steps count from several threads at once: opened once, not
 * once per thread with all but one lost). */
static struct counters *rcounters(void)
{
	pthread_once(&rk_once, rcounters_open);
	return rk;
}

void rmetrics_add(const char *name, const char *labels, double v)
{
	struct counters *k = rcounters();
	if (k && v > 0)
		counters_add(k, name, labels, (uint64_t)v);
}

void rmetrics_observe_ms(const char *name, const char *labels, double ms)
{
	struct counters *k = rcounters();
	if (k)
		counters_observe_ms(k, name, labels, ms);
}

int rmetrics_render(FILE *out)
{
	struct counters *k = rcounters();
	struct buf b = { 0 };
	if (k)
		counters_render(k, HELP, &b);
	/* §19's queue: recognitions of this host received and not yet done */
	long q = rservice && !strcmp(rservice, "unde-recognize") ? inflight_count(rservice) : -1;
	if (q >= 0)
		buf_printf(&b,
			   "# HELP recognition_queue_size Recognitions received and not yet done on this host\n"
			   "# TYPE recognition_queue_size gauge\nrecognition_queue_size %ld\n", q);
	int rc = b.len && fwrite(b.data, 1, b.len, out) != b.len ? -1 : 0;
	buf_free(&b);
	return rc;
}
