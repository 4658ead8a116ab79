/* metrics.c — §19's Persona Agent metrics, summed over every process:
 * unde-httpd starts one unde-persona per connection, so the counters live
 * in one small file mapped shared by all of them (PERSONA_METRICS_FILE, or
 * $UNDE_METRICS_DIR/unde-persona.counters) and are bumped with atomic adds.
 * `unde-persona metrics` renders them as Prometheus text; each process also
 * rewrites $UNDE_METRICS_DIR/unde-persona.prom when it ends. Without either
 * variable the counters are the process's own. The seam until lib/ has
 * shared counters. */
#include "config.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "metrics.h"
#include "persona.h"

static const char *const SLOTS[] = {
	"requests", "errors", "latency_us_sum", "feedback_signals", "signals_resolved",
	"signals_discarded", "stage_upgrades", "stage_downgrades", "temp_blocks_active",
	"temp_blocks_max_per_user",
};
#define NSLOTS ((int)(sizeof SLOTS / sizeof SLOTS[0]))
static const double BUCKETS_MS[] = { 0.5, 1, 2, 5, 10, 15, 25, 50, 100 };
#define NBUCKETS ((int)(sizeof BUCKETS_MS / sizeof BUCKETS_MS[0]))
#define MAGIC 0x756e6465706d3031ull /* "undepm01" */

struct shared {
	uint64_t magic;
	int64_t slot[NSLOTS];
	int64_t bucket[NBUCKETS + 1];
};

static struct shared local, *shm;

static struct shared *counters(void)
{
	if (shm)
		return shm;
	char path[4096];
	const char *f = getenv("PERSONA_METRICS_FILE"), *d = getenv("UNDE_METRICS_DIR");
	if (f && *f)
		snprintf(path, sizeof path, "%s", f);
	else if (d && *d)
		snprintf(path, sizeof path, "%s/unde-persona.counters", d);
	else
		return shm = &local;
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0 || ftruncate(fd, sizeof(struct shared)) < 0) {
		if (fd >= 0)
			close(fd);
		return shm = &local;
	}
	void *m = mmap(NULL, sizeof(struct shared), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (m == MAP_FAILED)
		return shm = &local;
	shm = m;
	uint64_t zero = 0;
	/* a new (all-zero) file gets its magic; a foreign one is used as is */
	__atomic_compare_exchange_n(&shm->magic, &zero, MAGIC, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
	return shm;
}

static int slot_of(const char *name)
{
	for (int i = 0; i < NSLOTS; i++)
		if (!strcmp(SLOTS[i], name))
			return i;
	return -1;
}

void pmetrics_add(const char *name, double v)
{
	int i = slot_of(name);
	if (i >= 0)
		__atomic_add_fetch(&counters()->slot[i], (int64_t)v, __ATOMIC_RELAXED);
}

void pmetrics_set(const char *name, double v)
{
	int i = slot_of(name);
	if (i >= 0)
		__atomic_store_n(&counters()->slot[i], (int64_t)v, __ATOMIC_RELAXED);
}

void pmetrics_latency(double ms)
{
	struct shared *s = counters();
	int b = 0;
	while (b < NBUCKETS && ms > BUCKETS_MS[b])
		b++;
	__atomic_add_fetch(&s->bucket[b], 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&s->slot[slot_of("latency_us_sum")], (int64_t)(ms * 1000), __ATOMIC_RELAXED);
	__atomic_add_fetch(&s->slot[slot_of("requests")], 1, __ATOMIC_RELAXED);
}

static double get(const struct shared *s, const char *name)
{
	return (double)__atomic_load_n(&s->slot[slot_of(name)], __ATOMIC_RELAXED);
}

static struct metrics *build(void)
{
	struct shared *s = counters();
	struct metrics *m = metrics_new();
	char le[32];
	int64_t cum = 0;
	for (int b = 0; b <= NBUCKETS; b++) {
		cum += __atomic_load_n(&s->bucket[b], __ATOMIC_RELAXED);
		if (b < NBUCKETS)
			snprintf(le, sizeof le, "le=\"%g\"", BUCKETS_MS[b]);
		else
			snprintf(le, sizeof le, "le=\"+Inf\"");
		metrics_add(m, "persona_agent_latency_ms_bucket", "counter",
			    "POST /persona latency, milliseconds (histogram; §19 alert p95 > 15)", le, (double)cum);
	}
	metrics_add(m, "persona_agent_latency_ms_sum", "counter", "sum of POST /persona latencies, ms", NULL,
		    get(s, "latency_us_sum") / 1000.0);
	metrics_add(m, "persona_agent_latency_ms_count", "counter", "POST /persona requests answered", NULL, (double)cum);
	double req = get(s, "requests"), err = get(s, "errors");
	metrics_add(m, "persona_agent_errors", "counter", "requests of every subcommand that failed (§19 alert > 5%)", NULL, err);
	metrics_add(m, "persona_agent_requests_total", "counter", "POST /persona requests", NULL, req);
	metrics_add(m, "persona_feedback_signals_total", "counter", "feedback signals buffered (replays not counted)", NULL,
		    get(s, "feedback_signals"));
	double res = get(s, "signals_resolved"), dis = get(s, "signals_discarded");
	metrics_add(m, "persona_signal_discard_rate", "gauge",
		    "discarded / (resolved + discarded) signals of all flushes (§19 alert > 0.5)", NULL,
		    res + dis > 0 ? dis / (res + dis) : 0);
	metrics_add(m, "persona_stage_upgrades_total", "counter", "relationship stage upgrades", NULL, get(s, "stage_upgrades"));
	metrics_add(m, "persona_stage_downgrades_total", "counter", "relationship stage downgrades for inactivity", NULL,
		    get(s, "stage_downgrades"));
	metrics_add(m, "persona_temp_blocks_active", "gauge", "active temp blocks on the shard at the last cleanup", NULL,
		    get(s, "temp_blocks_active"));
	metrics_add(m, "persona_temp_blocks_max_per_user", "gauge",
		    "most active temp blocks of one user at the last cleanup (§19 alert > 100)", NULL,
		    get(s, "temp_blocks_max_per_user"));
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
