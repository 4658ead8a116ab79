/* stats.h — request metrics shared by every connection of a service.
 *
 * Each connection is its own unde-httpd process, so counters cannot live
 * in memory: they live in a lib/counters block (lib/counters.h: a file
 * mapped MAP_SHARED by every process, series claimed once with a
 * compare-and-swap and then bumped with atomic adds, labels kept whole
 * however long). A file on tmpfs (/run) lives exactly as long as the
 * machine: the counters cover all the service answered since boot, which
 * is what Prometheus counters want (a reset shows as a restart). A file
 * written by an older unde-httpd has another format and is refused
 * (logged; /metrics answers 503) until it is removed. */
#ifndef UNDE_HTTPD_STATS_H
#define UNDE_HTTPD_STATS_H

struct stats;

enum stats_counter {
	STATS_CONNECTIONS,      /* connections served */
	STATS_CHILDREN_STARTED, /* filter processes started */
	STATS_CHILD_TIMEOUTS,   /* filter processes killed after a route timeout */
	STATS_WS_OPENED,        /* WebSocket connections opened (handshake done) */
	STATS_WS_CLOSED,        /* … and closed */
	STATS_COUNTERS
};

/* Map path, creating it (mode 0600) when missing. NULL when it cannot be
 * used (logged): the service still answers, /metrics says 503. */
struct stats *stats_open(const char *path);
void stats_close(struct stats *s);

/* Count one answered request: label is the route ("POST /analyze"),
 * "unmatched" or a built-in; ms its duration. */
void stats_request(struct stats *s, const char *label, int status, double ms);
void stats_count(struct stats *s, enum stats_counter which);

/* The Prometheus text exposition of the block (caller frees). */
char *stats_render(const struct stats *s);

#endif
