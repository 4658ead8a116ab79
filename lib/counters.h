/* counters.h — counters and latency histograms shared by all processes of
 * one service.
 *
 * An online command runs as many processes (one per kept-alive connection
 * of unde-httpd), so counts cannot live in memory or in last-writer-wins
 * textfiles. They live in one small file mapped MAP_SHARED by every
 * process, bumped with atomic adds: a series (a metric name plus its label
 * text) is claimed once with a compare-and-swap and then only incremented,
 * so no lock is taken and a process killed half-way loses at most its own
 * increment. Label text is kept in an arena in the file, sized from the
 * input (a 300-character route name is kept whole); only a full arena or a
 * full slot table sends a series to "overflow". A file on tmpfs (/run)
 * lives as long as the machine, which is what Prometheus counters want.
 *
 *   struct counters *k = counters_open_service("unde-mood");
 *   counters_add(k, "unde_mood_provider_total", "provider=\"gemini\"", 1);
 *   counters_observe_ms(k, "unde_mood_duration_seconds", NULL, 12.5);
 *   counters_write_textfile(k, help, "/var/lib/node_exporter/unde-mood.prom");
 *
 * Label text goes in as written between the braces; build it with
 * counters_label() so values are escaped. */
#ifndef UNDE_COUNTERS_H
#define UNDE_COUNTERS_H

#include <stdint.h>

#include "util.h"

struct counters;

/* Map path (created mode 0600 when missing; a symlink is not followed).
 * NULL when it cannot be used (logged): the command goes on uncounted. */
struct counters *counters_open(const char *path);
/* $UNDE_COUNTERS_DIR/<service>.counters (default /run/unde). */
struct counters *counters_open_service(const char *service);
void counters_close(struct counters *k);

/* Add delta to the counter name{labels} (labels may be NULL). */
void counters_add(struct counters *k, const char *name, const char *labels, uint64_t delta);
/* One observation of ms milliseconds in the histogram name{labels}
 * (rendered in seconds; buckets 1 ms … 30 s). */
void counters_observe_ms(struct counters *k, const char *name, const char *labels, double ms);
/* The sum over every process of the counter name{labels} (tests, gauges). */
uint64_t counters_get(const struct counters *k, const char *name, const char *labels);
/* When the file was made (Unix time). */
uint64_t counters_created(const struct counters *k);

/* Append key="value" (value escaped as the text format asks; a comma
 * first when b is not empty) to b. */
void counters_label(struct buf *b, const char *key, const char *value);

/* HELP and TYPE of the metrics to render, in order; { NULL }-terminated.
 * A counter without labels that was never bumped renders as 0. */
struct counters_help {
	const char *name;
	const char *type; /* "counter" or "histogram" */
	const char *help;
};

/* Append the Prometheus text of every series named in help to out. */
void counters_render(const struct counters *k, const struct counters_help *help,
		     struct buf *out);
/* Render and replace path atomically (util_replace_file). 0 or -1. */
int counters_write_textfile(const struct counters *k, const struct counters_help *help,
			    const char *path);

#endif
