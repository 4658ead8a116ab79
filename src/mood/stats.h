/* stats.h — the agents' metrics (mood_agent_*, context_agent_*), summed
 * across processes. unde-httpd runs one process per connection, so each
 * process adds its counts into one Prometheus textfile
 * ($UNDE_METRICS_DIR/<cmd>.prom) under an flock: read, add, write to a
 * temporary file, rename. Without UNDE_METRICS_DIR nothing is written.
 * (Kept behind this small module until lib/ has shared counters.) */
#ifndef UNDE_MOOD_STATS_H
#define UNDE_MOOD_STATS_H

/* Start counting for cmd; prefix is "mood_agent" or "context_agent". */
void stats_init(const char *cmd, const char *prefix);
/* Add delta to counter <prefix>_<name>{labels} (labels may be NULL). */
void stats_count(const char *name, const char *labels, double delta);
/* Observe one request's latency into the <prefix>_latency_ms histogram. */
void stats_latency(double ms);
/* Merge what was counted since the last flush into the file. */
void stats_flush(void);

#endif
