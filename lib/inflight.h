/* inflight.h — how many requests of one service are in flight on this
 * host, counted across its processes (unde-httpd starts one per
 * connection), and right after a kill -9.
 *
 * Each process owns one file, $UNDE_COUNTERS_DIR/<service>.inflight/<pid>,
 * and holds an exclusive flock on it while it works a request. The count is
 * the number of files whose lock is held: the kernel drops a dead
 * process's lock, so a killed request stops counting at once (a counter
 * pair, started minus finished, would keep it forever). Files of dead
 * processes are removed by the count.
 *
 *   inflight_enter("unde-llm");  … the request …  inflight_leave();
 *   long n = inflight_count("unde-llm");   // `unde-llm metrics` */
#ifndef UNDE_INFLIGHT_H
#define UNDE_INFLIGHT_H

/* Count this process's request from now on. 0, or -1 when the directory
 * cannot be used (logged once; the request goes on uncounted). */
int inflight_enter(const char *service);
/* The request is done (a no-op when it was not counted). */
void inflight_leave(void);
/* The requests of service in flight on this host; 0 when none ever ran,
 * -1 when the directory cannot be read. */
long inflight_count(const char *service);

#endif
