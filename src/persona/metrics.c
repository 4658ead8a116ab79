/* metrics.c — §19's Persona Agent metrics, summed over every process:
 * unde-httpd starts one unde-persona per connection, so the counts live in
 * lib/counters.h's shared file (PERSONA_METRICS_FILE, or
 * $UNDE_COUNTERS_DIR/unde-persona.counters). `unde-persona metrics'
 * renders them as Prometheus text; each process also rewrites
 * $UNDE_METRICS_DIR/unde-persona.prom when it ends. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "counters.h"
#include "metrics.h"
#include "persona.h"

static const double BUCKETS_MS[] = { 0.5, 1, 2, 5, 10, 15, 25, 50, 100 };
#define NBUCKETS ((int)(sizeof BUCKETS_MS / sizeof BUCKETS_MS[0]))

/* The service's shared counters (lib/counters.h): PERSONA_METRICS_FILE, or
 * $UNDE_COUNTERS_DIR/unde-persona.counters. NULL: uncounted (logged once
 * by the library). */
static struct counters *counters(void)
{
	static struct counters *k;
	static int tried;
	if (!tried) {
		tried = 1;
		const char *f = getenv("PERSONA_METRICS_FILE");
		k = f && *f ? counters_open(f) : counters_open_service("unde-persona");
	}
	return k;
}

static void name_of(const char *name, char *out, size_t len)
{
	snprintf(out, len, "persona_%s", name);
}

void pmetrics_add(const char *name, double v)
{
	char n[80];
	struct counters *k = counters();
	if (!k || v <= 0)
		return;
	name_of(name, n, sizeof n);
	counters_add(k, n, NULL, (uint64_t)v);
}

/* A gauge kept in a counter: add the difference (modulo 2^64), so the
 * sum over processes is the value last set. Only cleanup sets gauges, one
 * run at a time (unde-job's lock). */
void pmetrics_set(const char *name, double v)
{
	char n[80];
	struct counters *k = counters();
	if (!k || v < 0)
		return;
	name_of(name, n, sizeof n);
	uint64_t now = counters_get(k, n, NULL);
	counters_add(k, n, NULL, (uint64_t)v - now);
}

/* One POST /persona latency: cumulative buckets in milliseconds (the
 * spec's metric is in ms, and its alert is at 15), the sum in µs. */
void pmetrics_latency(double ms)
{
	struct counters *k = counters();
	char le[32];
	if (!k)
		return;
	for (int b = 0; b < NBUCKETS; b++)
		if (ms <= BUCKETS_MS[b]) {
			snprintf(le, sizeof le, "le=\"%g\"", BUCKETS_MS[b]);
			counters_add(k, "persona_agent_latency_ms_bucket", le, 1);
		}
	counters_add(k, "persona_agent_latency_ms_bucket", "le=\"+Inf\"", 1);
	counters_add(k, "persona_latency_us_sum", NULL, (uint64_t)(ms * 1000));
}

static double get(const char *name, const char *labels)
{
	struct counters *k = counters();
	return k ? (double)counters_get(k, name, labels) : 0;
}

static double pget(const char *name)
{
	char n[80];
	name_of(name, n, sizeof n);
	return get(n, NULL);
}

static struct metrics *build(void)
{
	struct metrics *m = metrics_new();
	char le[32];
	for (int b = 0; b <= NBUCKETS; b++) {
		if (b < NBUCKETS)
			snprintf(le, sizeof le, "le=\"%g\"", BUCKETS_MS[b]);
		else
			snprintf(le, sizeof le, "le=\"+Inf\"");
		metrics_add(m, "persona_agent_latency_ms_bucket", "histogram",
			    "POST /persona latency, milliseconds (histogram; §19 alert p95 > 15)", le,
			    get("persona_agent_latency_ms_bucket", le));
	}
	double count = get("persona_agent_latency_ms_bucket", "le=\"+Inf\"");
	metrics_add(m, "persona_agent_latency_ms_sum", "histogram", "sum of POST /persona latencies, ms", NULL,
		    get("persona_latency_us_sum", NULL) / 1000.0);
	metrics_add(m, "persona_agent_latency_ms_count", "histogram", "POST /persona requests answered", NULL, count);
	metrics_add(m, "persona_agent_errors", "counter", "records of every subcommand that failed (§19 alert > 5%)",
		    NULL, pget("errors"));
	metrics_add(m, "persona_feedback_signals_total", "counter", "feedback signals buffered (replays not counted)",
		    NULL, pget("feedback_signals"));
	double res = pget("signals_resolved"), dis = pget("signals_discarded");
	metrics_add(m, "persona_signal_discard_rate", "gauge",
		    "discarded / (resolved + discarded) signals of all flushes (§19 alert > 0.5)", NULL,
		    res + dis > 0 ? dis / (res + dis) : 0);
	metrics_add(m, "persona_stage_upgrades_total", "counter", "relationship stage upgrades", NULL,
		    pget("stage_upgrades"));
	metrics_add(m, "persona_stage_downgrades_total", "counter", "relationship stage downgrades for inactivity",
		    NULL, pget("stage_downgrades"));
	metrics_add(m, "persona_temp_blocks_active", "gauge", "active temp blocks on the shard at the last cleanup",
		    NULL, pget("temp_blocks_active"));
	metrics_add(m, "persona_temp_blocks_max_per_user", "gauge",
		    "most active temp blocks of one user at the last cleanup (§19 alert > 100)", NULL,
		    pget("temp_blocks_max_per_user"));
	return m;
}

int pmetrics_render(FILE *out)
{
	struct metrics *m = build();
	char *t = metrics_render(m);
	int rc = fputs(t, out) < 0 ? -1 : 0;
	free(t);
	metrics_free(m);
	return rc;
}

void pmetrics_write_textfile(void)
{
	if (!getenv("UNDE_METRICS_DIR"))
		return;
	struct metrics *m = build();
	metrics_write_default(m, "unde-persona");
	metrics_free(m);
}
