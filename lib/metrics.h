/* metrics.h — Prometheus text exposition, written the node_exporter
 * textfile way: the whole file is rendered to a temporary file in the same
 * directory and renamed over the old one, so the collector never reads a
 * half-written file. Samples keep the order they were added in; samples of
 * one metric name share one HELP/TYPE header. */
#ifndef UNDE_METRICS_H
#define UNDE_METRICS_H

struct metrics;

struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);

/* Add a sample. type is "gauge", "counter" or "histogram" (then name ends
 * in _bucket, _sum or _count and the three share the family's header);
 * labels is the inside of the braces (`job="x",brand="zara"`) or NULL. */
void metrics_add(struct metrics *m, const char *name, const char *type, const char *help,
		 const char *labels, double value);

/* The exposition text (caller frees). */
char *metrics_render(const struct metrics *m);

/* Atomically replace path with the rendered text. Returns 0 or -1 (logged). */
int metrics_write_textfile(const struct metrics *m, const char *path);

/* Write to $UNDE_METRICS_DIR/<cmd>.prom when that variable is set; a no-op
 * (returning 0) when it is not. */
int metrics_write_default(const struct metrics *m, const char *cmd);

#endif
