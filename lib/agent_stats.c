/* agent_stats.c — the agents' metrics over lib/counters (see agent_stats.h). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "counters.h"
#include "log.h"
#include "agent_stats.h"

static struct {
	char cmd[64], prefix[32];
	struct counters *k;
	struct counters_help help[8];
	char names[8][96];
} st;

/* The families each agent renders, with their help lines. */
static void help_add(int i, const char *suffix, const char *type, const char *text)
{
	snprintf(st.names[i], sizeof st.names[i], "%s_%s", st.prefix, suffix);
	st.help[i] = (struct counters_help){st.names[i], type, text};
}

void agent_stats_init(const char *cmd, const char *prefix)
{
	if (st.k)
		counters_close(st.k);
	memset(&st, 0, sizeof st);
	snprintf(st.cmd, sizeof st.cmd, "%s", cmd);
	snprintf(st.prefix, sizeof st.prefix, "%s", prefix);
	help_add(0, "latency_seconds", "histogram", "Time to answer one record (the spec's _latency_ms, in seconds).");
	help_add(1, "requests_total", "counter", "Records answered.");
	help_add(2, "errors_total", "counter", "Refused records and failed providers.");
	help_add(3, "provider_fallbacks_total", "counter", "Providers given up on, by provider.");
	help_add(4, "weather_cache_hit_total", "counter", "Weather cache lookups by result.");
	st.k = counters_open_service(cmd);
}

void agent_stats_count(const char *name, const char *labels, double delta)
{
	if (!st.k)
		return;
	char full[128];
	snprintf(full, sizeof full, "%s_%s", st.prefix, name);
	counters_add(st.k, full, labels, (uint64_t)delta);
}

void agent_stats_latency(double ms)
{
	if (!st.k)
		return;
	char full[128];
	snprintf(full, sizeof full, "%s_latency_seconds", st.prefix);
	counters_observe_ms(st.k, full, NULL, ms);
}

void agent_stats_flush(void)
{
	const char *dir = getenv("UNDE_METRICS_DIR");
	if (!st.k || !dir || !*dir)
		return;
	char path[1024];
	snprintf(path, sizeof path, "%s/%s.prom", dir, st.cmd);
	if (counters_write_textfile(st.k, st.help, path) != 0)
		log_msg(LOG_WARN, "metrics: cannot write %s", path);
}
