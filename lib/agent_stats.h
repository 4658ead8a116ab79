/* agent_stats.h — the agents' metrics (mood_agent_*, context_agent_*), summed
 * across processes: unde-httpd runs one process per connection, so the
 * counts live in lib/counters' shared file ($UNDE_COUNTERS_DIR/<cmd>.counters,
 * default /run/unde), and with UNDE_METRICS_DIR set each record also
 * renders them into $UNDE_METRICS_DIR/<cmd>.prom (atomic replace) for
 * node_exporter's textfile collector. The names the two agents share are
 * kept in one place here. */
#ifndef UNDE_AGENT_STATS_H
#define UNDE_AGENT_STATS_H

/* Start counting for cmd; prefix is "mood_agent" or "context_agent". */
void agent_stats_init(const char *cmd, const char *prefix);
/* Add delta to counter <prefix>_<name>{labels} (labels may be NULL). */
void agent_stats_count(const char *name, const char *labels, double delta);
/* Observe one request's latency into the <prefix>_latency_seconds histogram. */
void agent_stats_latency(double ms);
/* Render the counters into $UNDE_METRICS_DIR/<cmd>.prom when that is set. */
void agent_stats_flush(void);

#endif
