/* stats.c — the shared, file-backed metrics block; see stats.h. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "stats.h"
#include "util.h"

/* The layout is part of the file format: change it, change the magic. */
#define STATS_MAGIC 0x3153544850444e55ULL /* "UNDPHTS1" */
#define STATS_SLOTS 1024
#define STATS_LABEL 168
#define STATS_BUCKETS 14

static const double stats_bounds[STATS_BUCKETS] = { 0.001, 0.0025, 0.005, 0.01, 0.025,
						    0.05,  0.1,    0.25,  0.5,  1,
						    2.5,   5,      10,    30 };

enum { SLOT_FREE = 0, SLOT_CLAIMED = 1, SLOT_READY = 2 };

struct stats_slot {
	uint32_t state;
	uint32_t status;
	char label[STATS_LABEL];
	uint64_t count;
	uint64_t sum_us;
	uint64_t bucket[STATS_BUCKETS]; /* requests whose duration fell in this bucket */
};

struct stats_block {
	uint64_t magic;
	uint64_t created_unix;
	uint64_t counter[8];
	struct stats_slot slot[STATS_SLOTS];
};

struct stats {
	struct stats_block *b;
};

struct stats *stats_open(const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	struct stat st;
	const char *what = NULL;
	if (fd < 0)
		what = "cannot open the metrics file";
	else if (fstat(fd, &st) != 0)
		what = "cannot stat the metrics file";
	else if (!S_ISREG(st.st_mode))
		what = "the metrics file is not a regular file";
	else if ((size_t)st.st_size < sizeof(struct stats_block) &&
		 ftruncate(fd, (off_t)sizeof(struct stats_block)) != 0)
		what = "cannot size the metrics file";
	void *map = MAP_FAILED;
	if (!what) {
		map = mmap(NULL, sizeof(struct stats_block), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (map == MAP_FAILED)
			what = "cannot map the metrics file";
	}
	int saved = errno;
	if (fd >= 0)
		close(fd);
	if (what) {
		log_event(LOG_WARN, what,
			  json_pack("{s:s, s:s}", "path", path, "error", strerror(saved)));
		return NULL;
	}
	struct stats_block *b = map;
	uint64_t expect = 0;
	if (__atomic_compare_exchange_n(&b->magic, &expect, STATS_MAGIC, 0, __ATOMIC_ACQ_REL,
					__ATOMIC_ACQUIRE)) {
		__atomic_store_n(&b->created_unix, (uint64_t)time(NULL), __ATOMIC_RELEASE);
	} else if (expect != STATS_MAGIC) {
		log_event(LOG_WARN, "the metrics file has another format; not using it",
			  json_pack("{s:s}", "path", path));
		munmap(map, sizeof(struct stats_block));
		return NULL;
	}
	struct stats *s = xmalloc(sizeof *s);
	s->b = b;
	return s;
}

void stats_close(struct stats *s)
{
	if (!s)
		return;
	munmap(s->b, sizeof *s->b);
	free(s);
}

/* Wait (briefly) for a slot another process is filling in. A process that
 * died between claiming and filling leaves it claimed for ever: give up on
 * it after a while and let the caller go on to the next slot. */
static int stats_slot_ready(struct stats_slot *sl)
{
	for (int spin = 0; spin < 10000; spin++) {
		uint32_t st = __atomic_load_n(&sl->state, __ATOMIC_ACQUIRE);
		if (st == SLOT_READY)
			return 1;
		if (spin > 100)
			sched_yield();
	}
	return 0;
}

/* The slot counting (label, status): found, or claimed for it. Two
 * processes may claim two slots for one pair; rendering adds them up. */
static struct stats_slot *stats_slot_for(struct stats_block *b, const char *label, int status)
{
	for (size_t i = 0; i < STATS_SLOTS; i++) {
		struct stats_slot *sl = &b->slot[i];
		uint32_t st = __atomic_load_n(&sl->state, __ATOMIC_ACQUIRE);
		if (st == SLOT_FREE) {
			uint32_t expect = SLOT_FREE;
			if (__atomic_compare_exchange_n(&sl->state, &expect, SLOT_CLAIMED, 0,
							__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
				snprintf(sl->label, sizeof sl->label, "%s", label);
				sl->status = (uint32_t)status;
				__atomic_store_n(&sl->state, SLOT_READY, __ATOMIC_RELEASE);
				return sl;
			}
			st = expect;
		}
		if (st == SLOT_CLAIMED && !stats_slot_ready(sl))
			continue;
		if (sl->status == (uint32_t)status && strncmp(sl->label, label, sizeof sl->label) == 0)
			return sl;
	}
	return NULL;
}

void stats_request(struct stats *s, const char *label, int status, double ms)
{
	if (!s)
		return;
	struct stats_slot *sl = stats_slot_for(s->b, label, status);
	if (!sl)
		sl = stats_slot_for(s->b, "overflow", status);
	if (!sl)
		return;
	double secs = ms / 1000.0;
	size_t k = 0;
	while (k < STATS_BUCKETS && secs > stats_bounds[k])
		k++;
	if (k < STATS_BUCKETS)
		__atomic_fetch_add(&sl->bucket[k], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&sl->sum_us, (uint64_t)(ms * 1000.0 + 0.5), __ATOMIC_RELAXED);
	__atomic_fetch_add(&sl->count, 1, __ATOMIC_RELAXED);
}

void stats_count(struct stats *s, enum stats_counter which)
{
	if (s && which < STATS_COUNTERS)
		__atomic_fetch_add(&s->b->counter[which], 1, __ATOMIC_RELAXED);
}

/* Append printf output to b (lines here are short and bounded). */
__attribute__((format(printf, 2, 3))) static void stats_out(struct buf *b, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (n > 0)
		buf_append(b, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

/* A label value with \, " and newline escaped, as the text format asks. */
static void stats_escape(const char *in, char *out, size_t cap)
{
	size_t o = 0;
	for (; *in && o + 3 < cap; in++) {
		if (*in == '\\' || *in == '"') {
			out[o++] = '\\';
			out[o++] = *in;
		} else if (*in == '\n') {
			out[o++] = '\\';
			out[o++] = 'n';
		} else {
			out[o++] = *in;
		}
	}
	out[o] = '\0';
}

/* Ready slots, copied out so that rendering sees one consistent label. */
struct stats_view {
	char label[STATS_LABEL * 2 + 1];
	uint32_t status;
	uint64_t count, sum_us, bucket[STATS_BUCKETS];
};

static size_t stats_snapshot(const struct stats_block *b, struct stats_view *v)
{
	size_t n = 0;
	for (size_t i = 0; i < STATS_SLOTS; i++) {
		const struct stats_slot *sl = &b->slot[i];
		uint32_t st = __atomic_load_n(&sl->state, __ATOMIC_ACQUIRE);
		if (st == SLOT_FREE)
			break;
		if (st != SLOT_READY)
			continue;
		char raw[STATS_LABEL];
		memcpy(raw, sl->label, sizeof raw);
		raw[sizeof raw - 1] = '\0';
		stats_escape(raw, v[n].label, sizeof v[n].label);
		v[n].status = sl->status;
		v[n].count = __atomic_load_n(&sl->count, __ATOMIC_RELAXED);
		v[n].sum_us = __atomic_load_n(&sl->sum_us, __ATOMIC_RELAXED);
		for (size_t k = 0; k < STATS_BUCKETS; k++)
			v[n].bucket[k] = __atomic_load_n(&sl->bucket[k], __ATOMIC_RELAXED);
		n++;
	}
	return n;
}

static int stats_seen_before(const struct stats_view *v, size_t i, int by_status)
{
	for (size_t j = 0; j < i; j++)
		if (strcmp(v[j].label, v[i].label) == 0 && (!by_status || v[j].status == v[i].status))
			return 1;
	return 0;
}

static void stats_render_requests(struct buf *b, const struct stats_view *v, size_t n)
{
	stats_out(b, "# HELP unde_httpd_requests_total Requests answered, by route and status.\n"
		     "# TYPE unde_httpd_requests_total counter\n");
	for (size_t i = 0; i < n; i++) {
		if (stats_seen_before(v, i, 1))
			continue;
		uint64_t total = 0;
		for (size_t j = i; j < n; j++)
			if (v[j].status == v[i].status && strcmp(v[j].label, v[i].label) == 0)
				total += v[j].count;
		stats_out(b, "unde_httpd_requests_total{route=\"%s\",status=\"%u\"} %llu\n",
			  v[i].label, v[i].status, (unsigned long long)total);
	}
}

static void stats_render_latency(struct buf *b, const struct stats_view *v, size_t n)
{
	stats_out(b, "# HELP unde_httpd_request_duration_seconds Time from a request's head to "
		     "the end of its answer, by route.\n"
		     "# TYPE unde_httpd_request_duration_seconds histogram\n");
	for (size_t i = 0; i < n; i++) {
		if (stats_seen_before(v, i, 0))
			continue;
		uint64_t bucket[STATS_BUCKETS] = { 0 }, count = 0, sum_us = 0;
		for (size_t j = i; j < n; j++) {
			if (strcmp(v[j].label, v[i].label) != 0)
				continue;
			for (size_t k = 0; k < STATS_BUCKETS; k++)
				bucket[k] += v[j].bucket[k];
			count += v[j].count;
			sum_us += v[j].sum_us;
		}
		uint64_t cum = 0;
		for (size_t k = 0; k < STATS_BUCKETS; k++) {
			cum += bucket[k];
			stats_out(b,
				  "unde_httpd_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
				  v[i].label, stats_bounds[k], (unsigned long long)cum);
		}
		stats_out(b,
			  "unde_httpd_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n"
			  "unde_httpd_request_duration_seconds_sum{route=\"%s\"} %.6f\n"
			  "unde_httpd_request_duration_seconds_count{route=\"%s\"} %llu\n",
			  v[i].label, (unsigned long long)count, v[i].label, (double)sum_us / 1e6,
			  v[i].label, (unsigned long long)count);
	}
}

char *stats_render(const struct stats *s)
{
	struct buf b = { 0 };
	struct stats_view *v = xcalloc(STATS_SLOTS, sizeof *v);
	size_t n = stats_snapshot(s->b, v);
	stats_render_requests(&b, v, n);
	stats_render_latency(&b, v, n);
	free(v);
	static const struct {
		enum stats_counter which;
		const char *name, *help;
	} counters[] = {
		{ STATS_CONNECTIONS, "unde_httpd_connections_total", "Client connections served." },
		{ STATS_CHILDREN_STARTED, "unde_httpd_children_started_total",
		  "Filter processes started (one per route per keep-alive connection)." },
		{ STATS_CHILD_TIMEOUTS, "unde_httpd_child_timeouts_total",
		  "Filter processes killed because a route's timeout passed." },
	};
	for (size_t i = 0; i < sizeof counters / sizeof *counters; i++)
		stats_out(&b, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", counters[i].name,
			  counters[i].help, counters[i].name, counters[i].name,
			  (unsigned long long)__atomic_load_n(&s->b->counter[counters[i].which],
							      __ATOMIC_RELAXED));
	stats_out(&b,
		  "# HELP unde_httpd_start_time_seconds When these counters started (Unix time).\n"
		  "# TYPE unde_httpd_start_time_seconds gauge\n"
		  "unde_httpd_start_time_seconds %llu\n",
		  (unsigned long long)__atomic_load_n(&s->b->created_unix, __ATOMIC_ACQUIRE));
	return b.data;
}
