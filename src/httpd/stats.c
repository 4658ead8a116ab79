/* stats.c — httpd's request metrics on lib/counters; see stats.h. */
#include "config.h"

#include <stdlib.h>

#include "counters.h"
#include "stats.h"
#include "util.h"

struct stats {
	struct counters *k;
};

static const char *const stats_counter_names[STATS_COUNTERS] = {
	[STATS_CONNECTIONS] = "unde_httpd_connections_total",
	[STATS_CHILDREN_STARTED] = "unde_httpd_children_started_total",
	[STATS_CHILD_TIMEOUTS] = "unde_httpd_child_timeouts_total",
	[STATS_WS_OPENED] = "unde_httpd_ws_opened_total",
	[STATS_WS_CLOSED] = "unde_httpd_ws_closed_total",
};

static const struct counters_help stats_help[] = {
	{ "unde_httpd_requests_total", "counter", "Requests answered, by route and status." },
	{ "unde_httpd_request_duration_seconds", "histogram",
	  "Time from a request's head to the end of its answer, by route." },
	{ "unde_httpd_connections_total", "counter", "Client connections served." },
	{ "unde_httpd_children_started_total", "counter",
	  "Filter processes started (one per route per keep-alive connection)." },
	{ "unde_httpd_child_timeouts_total", "counter",
	  "Filter processes killed because a route's timeout passed." },
	{ "unde_httpd_ws_opened_total", "counter", "WebSocket connections opened." },
	{ "unde_httpd_ws_closed_total", "counter", "WebSocket connections closed." },
	{ NULL, NULL, NULL },
};

struct stats *stats_open(const char *path)
{
	struct counters *k = counters_open(path);
	if (!k)
		return NULL;
	struct stats *s = xmalloc(sizeof *s);
	s->k = k;
	return s;
}

void stats_close(struct stats *s)
{
	if (!s)
		return;
	counters_close(s->k);
	free(s);
}

void stats_request(struct stats *s, const char *label, int status, double ms)
{
	if (!s)
		return;
	/* the route label is escaped once here and kept whole, however long */
	struct buf route = { 0 }, both = { 0 };
	counters_label(&route, "route", label);
	buf_printf(&both, "%s,status=\"%d\"", route.data, status);
	counters_add(s->k, "unde_httpd_requests_total", both.data, 1);
	counters_observe_ms(s->k, "unde_httpd_request_duration_seconds", route.data, ms);
	buf_free(&route);
	buf_free(&both);
}

void stats_count(struct stats *s, enum stats_counter which)
{
	if (s && which < STATS_COUNTERS)
		counters_add(s->k, stats_counter_names[which], NULL, 1);
}

char *stats_render(const struct stats *s)
{
	struct buf b = { 0 };
	counters_render(s->k, stats_help, &b);
	buf_printf(&b,
		   "# HELP unde_httpd_start_time_seconds When these counters started (Unix time).\n"
		   "# TYPE unde_httpd_start_time_seconds gauge\n"
		   "unde_httpd_start_time_seconds %llu\n",
		   (unsigned long long)counters_created(s->k));
	/* open now, across every process of the service (the spec's
	 * voice_ws_connections on the voice server) */
	uint64_t opened = counters_get(s->k, "unde_httpd_ws_opened_total", NULL);
	uint64_t closed = counters_get(s->k, "unde_httpd_ws_closed_total", NULL);
	buf_printf(&b,
		   "# HELP unde_httpd_ws_connections WebSocket connections open now (all processes).\n"
		   "# TYPE unde_httpd_ws_connections gauge\n"
		   "unde_httpd_ws_connections %llu\n",
		   (unsigned long long)(opened > closed ? opened - closed : 0));
	return buf_take(&b);
}
