/* counters.c — the shared, file-backed counters block; see counters.h. */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "counters.h"
#include "log.h"

/* The layout is part of the file format: change it, change the magic. */
#define COUNTERS_MAGIC 0x31544e43444e55ULL /* "UNDCNT1" */
#define COUNTERS_SLOTS 2048
#define COUNTERS_ARENA (256u * 1024u)
#define COUNTERS_BUCKETS 14

static const double counters_bounds[COUNTERS_BUCKETS] = { 0.001, 0.0025, 0.005, 0.01, 0.025,
							  0.05,	 0.1,	 0.25,	0.5,  1,
							  2.5,	 5,	 10,	30 };

enum slot_state { SLOT_FREE = 0, SLOT_CLAIMED, SLOT_READY, SLOT_DEAD };
enum series_kind { KIND_COUNTER = 1, KIND_HISTOGRAM = 2 };

struct counters_slot {
	uint32_t state, kind;
	uint32_t hash;
	uint32_t key_off, key_len; /* "name{labels}" in the arena */
	uint32_t name_len;
	uint64_t value; /* a counter's value; a histogram's count */
	uint64_t sum_us;
	uint64_t bucket[COUNTERS_BUCKETS];
};

struct counters_block {
	uint64_t magic;
	uint64_t created_unix;
	uint64_t dropped; /* increments with no slot or arena space left */
	uint32_t arena_used;
	uint32_t pad;
	struct counters_slot slot[COUNTERS_SLOTS];
	char arena[COUNTERS_ARENA];
};

struct counters {
	struct counters_block *b;
};

struct counters *counters_open(const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	struct stat st;
	const char *what = NULL;
	if (fd < 0)
		what = "cannot open the counters file";
	else if (fstat(fd, &st) != 0)
		what = "cannot stat the counters file";
	else if (!S_ISREG(st.st_mode))
		what = "the counters file is not a regular file";
	else if ((size_t)st.st_size < sizeof(struct counters_block) &&
		 ftruncate(fd, (off_t)sizeof(struct counters_block)) != 0)
		what = "cannot size the counters file";
	void *map = MAP_FAILED;
	if (!what) {
		map = mmap(NULL, sizeof(struct counters_block), PROT_READ | PROT_WRITE, MAP_SHARED,
			   fd, 0);
		if (map == MAP_FAILED)
			what = "cannot map the counters file";
	}
	int saved = errno;
	if (fd >= 0)
		close(fd);
	if (what) {
		log_event(LOG_WARN, what,
			  json_pack("{s:s, s:s}", "path", path, "error", strerror(saved)));
		return NULL;
	}
	struct counters_block *b = map;
	uint64_t expect = 0;
	if (__atomic_compare_exchange_n(&b->magic, &expect, COUNTERS_MAGIC, 0, __ATOMIC_ACQ_REL,
					__ATOMIC_ACQUIRE)) {
		__atomic_store_n(&b->created_unix, (uint64_t)time(NULL), __ATOMIC_RELEASE);
	} else if (expect != COUNTERS_MAGIC) {
		log_event(LOG_WARN, "the counters file has another format; not using it",
			  json_pack("{s:s}", "path", path));
		munmap(map, sizeof(struct counters_block));
		return NULL;
	}
	struct counters *k = xmalloc(sizeof *k);
	k->b = b;
	return k;
}

struct counters *counters_open_service(const char *service)
{
	const char *dir = conf_str("UNDE_COUNTERS_DIR", "/run/unde");
	struct buf p = { 0 };
	buf_printf(&p, "%s/%s.counters", dir, service);
	struct counters *k = counters_open(p.data);
	buf_free(&p);
	return k;
}

void counters_close(struct counters *k)
{
	if (!k)
		return;
	munmap(k->b, sizeof *k->b);
	free(k);
}

uint64_t counters_created(const struct counters *k)
{
	return k ? __atomic_load_n(&k->b->created_unix, __ATOMIC_ACQUIRE) : 0;
}

static uint32_t counters_hash(const char *s, size_t n)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 16777619u;
	return h;
}

/* Wait (briefly) for a slot another process is filling in. One that died
 * between claiming and filling leaves it claimed for ever: give up after a
 * while and let the caller go on to the next slot. */
static int counters_slot_ready(struct counters_slot *sl)
{
	for (int spin = 0; spin < 10000; spin++) {
		uint32_t st = __atomic_load_n(&sl->state, __ATOMIC_ACQUIRE);
		if (st == SLOT_READY)
			return 1;
		if (st == SLOT_DEAD)
			return 0;
		if (spin > 100)
			sched_yield();
	}
	return 0;
}

static int counters_slot_is(const struct counters_block *b, const struct counters_slot *sl,
			    uint32_t kind, uint32_t hash, const char *key, size_t len)
{
	return sl->kind == kind && sl->hash == hash && sl->key_len == len &&
	       memcmp(b->arena + sl->key_off, key, len) == 0;
}

/* The slot of (kind, key): found, or claimed for it. Two processes may
 * claim two slots for one key; reading adds them up. */
static struct counters_slot *counters_slot_for(struct counters_block *b, uint32_t kind,
					       const char *key, size_t len, size_t name_len)
{
	uint32_t hash = counters_hash(key, len);
	for (size_t i = 0; i < COUNTERS_SLOTS; i++) {
		struct counters_slot *sl = &b->slot[i];
		uint32_t st = __atomic_load_n(&sl->state, __ATOMIC_ACQUIRE);
		if (st == SLOT_FREE) {
			uint32_t expect = SLOT_FREE;
			if (__atomic_compare_exchange_n(&sl->state, &expect, SLOT_CLAIMED, 0,
							__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
				uint32_t off = __atomic_fetch_add(&b->arena_used, (uint32_t)len + 1,
								  __ATOMIC_RELAXED);
				if ((size_t)off + len + 1 > COUNTERS_ARENA) {
					__atomic_store_n(&sl->state, SLOT_DEAD, __ATOMIC_RELEASE);
					return NULL;
				}
				memcpy(b->arena + off, key, len);
				b->arena[off + len] = '\0';
				sl->key_off = off;
				sl->key_len = (uint32_t)len;
				sl->name_len = (uint32_t)name_len;
				sl->kind = kind;
				sl->hash = hash;
				__atomic_store_n(&sl->state, SLOT_READY, __ATOMIC_RELEASE);
				return sl;
			}
			st = expect;
		}
		if (st != SLOT_READY && !counters_slot_ready(sl))
			continue;
		if (counters_slot_is(b, sl, kind, hash, key, len))
			return sl;
	}
	return NULL;
}

/* "name{labels}", or "name" without labels. */
static void counters_key(struct buf *key, const char *name, const char *labels)
{
	assert(name && *name);
	if (labels && *labels)
		buf_printf(key, "%s{%s}", name, labels);
	else
		buf_printf(key, "%s", name);
}

static struct counters_slot *counters_find(struct counters *k, uint32_t kind, const char *name,
					   const char *labels)
{
	struct buf key = { 0 };
	counters_key(&key, name, labels);
	struct counters_slot *sl = counters_slot_for(k->b, kind, key.data, key.len, strlen(name));
	buf_free(&key);
	if (!sl)
		__atomic_fetch_add(&k->b->dropped, 1, __ATOMIC_RELAXED);
	return sl;
}

void counters_add(struct counters *k, const char *name, const char *labels, uint64_t delta)
{
	if (!k)
		return;
	struct counters_slot *sl = counters_find(k, KIND_COUNTER, name, labels);
	if (sl)
		__atomic_fetch_add(&sl->value, delta, __ATOMIC_RELAXED);
}

void counters_observe_ms(struct counters *k, const char *name, const char *labels, double ms)
{
	if (!k)
		return;
	struct counters_slot *sl = counters_find(k, KIND_HISTOGRAM, name, labels);
	if (!sl)
		return;
	if (ms < 0)
		ms = 0;
	double secs = ms / 1000.0;
	size_t b = 0;
	while (b < COUNTERS_BUCKETS && secs > counters_bounds[b])
		b++;
	if (b < COUNTERS_BUCKETS)
		__atomic_fetch_add(&sl->bucket[b], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&sl->sum_us, (uint64_t)(ms * 1000.0 + 0.5), __ATOMIC_RELAXED);
	__atomic_fetch_add(&sl->value, 1, __ATOMIC_RELAXED);
}

uint64_t counters_get(const struct counters *k, const char *name, const char *labels)
{
	if (!k)
		return 0;
	struct buf key = { 0 };
	counters_key(&key, name, labels);
	uint32_t hash = counters_hash(key.data, key.len);
	uint64_t sum = 0;
	for (size_t i = 0; i < COUNTERS_SLOTS; i++) {
		const struct counters_slot *sl = &k->b->slot[i];
		uint32_t st = __atomic_load_n(&sl->state, __ATOMIC_ACQUIRE);
		if (st == SLOT_FREE)
			break;
		if (st == SLOT_READY && counters_slot_is(k->b, sl, KIND_COUNTER, hash, key.data, key.len))
			sum += __atomic_load_n(&sl->value, __ATOMIC_RELAXED);
	}
	buf_free(&key);
	return sum;
}

void counters_label(struct buf *b, const char *key, const char *value)
{
	buf_printf(b, "%s%s=\"", b->len ? "," : "", key);
	for (const char *p = value ? value : ""; *p; p++) {
		if (*p == '\\' || *p == '"')
			buf_printf(b, "\\%c", *p);
		else if (*p == '\n')
			buf_printf(b, "\\n");
		else
			buf_append(b, p, 1);
	}
	buf_append(b, "\"", 1);
}

/* A ready slot, copied out so that rendering sees one consistent value. */
struct counters_view {
	const char *key; /* in the arena: stable once ready */
	uint32_t key_len, name_len, kind;
	uint64_t value, sum_us, bucket[COUNTERS_BUCKETS];
	int merged; /* added into an earlier view of the same key */
};

static size_t counters_snapshot(const struct counters_block *b, struct counters_view *v)
{
	size_t n = 0;
	for (size_t i = 0; i < COUNTERS_SLOTS; i++) {
		const struct counters_slot *sl = &b->slot[i];
		uint32_t st = __atomic_load_n(&sl->state, __ATOMIC_ACQUIRE);
		if (st == SLOT_FREE)
			break;
		if (st != SLOT_READY)
			continue;
		struct counters_view *w = &v[n];
		w->key = b->arena + sl->key_off;
		w->key_len = sl->key_len;
		w->name_len = sl->name_len;
		w->kind = sl->kind;
		w->value = __atomic_load_n(&sl->value, __ATOMIC_RELAXED);
		w->sum_us = __atomic_load_n(&sl->sum_us, __ATOMIC_RELAXED);
		for (size_t k = 0; k < COUNTERS_BUCKETS; k++)
			w->bucket[k] = __atomic_load_n(&sl->bucket[k], __ATOMIC_RELAXED);
		w->merged = 0;
		/* the same series claimed twice (a race between processes): sum */
		for (size_t j = 0; j < n; j++) {
			if (v[j].merged || v[j].kind != w->kind || v[j].key_len != w->key_len ||
			    memcmp(v[j].key, w->key, w->key_len) != 0)
				continue;
			v[j].value += w->value;
			v[j].sum_us += w->sum_us;
			for (size_t k = 0; k < COUNTERS_BUCKETS; k++)
				v[j].bucket[k] += w->bucket[k];
			w->merged = 1;
			break;
		}
		n++;
	}
	return n;
}

static void counters_render_series(struct buf *out, const struct counters_view *w)
{
	const char *name = w->key;
	int nl = (int)w->name_len;
	/* the labels without their braces, or "" */
	const char *labels = w->key_len > w->name_len ? w->key + w->name_len + 1 : "";
	int ll = w->key_len > w->name_len ? (int)(w->key_len - w->name_len - 2) : 0;
	if (w->kind == KIND_COUNTER) {
		buf_printf(out, "%.*s%s%.*s%s %llu\n", nl, name, ll ? "{" : "", ll, labels,
			   ll ? "}" : "", (unsigned long long)w->value);
		return;
	}
	uint64_t cum = 0;
	for (size_t k = 0; k < COUNTERS_BUCKETS; k++) {
		cum += w->bucket[k];
		buf_printf(out, "%.*s_bucket{%.*s%sle=\"%g\"} %llu\n", nl, name, ll, labels,
			   ll ? "," : "", counters_bounds[k], (unsigned long long)cum);
	}
	buf_printf(out, "%.*s_bucket{%.*s%sle=\"+Inf\"} %llu\n", nl, name, ll, labels, ll ? "," : "",
		   (unsigned long long)w->value);
	buf_printf(out, "%.*s_sum%s%.*s%s %.6f\n", nl, name, ll ? "{" : "", ll, labels, ll ? "}" : "",
		   (double)w->sum_us / 1e6);
	buf_printf(out, "%.*s_count%s%.*s%s %llu\n", nl, name, ll ? "{" : "", ll, labels,
		   ll ? "}" : "", (unsigned long long)w->value);
}

void counters_render(const struct counters *k, const struct counters_help *help, struct buf *out)
{
	if (!k)
		return;
	struct counters_view *v = xcalloc(COUNTERS_SLOTS, sizeof *v);
	size_t n = counters_snapshot(k->b, v);
	for (const struct counters_help *h = help; h && h->name; h++) {
		size_t hl = strlen(h->name);
		uint32_t kind = strcmp(h->type, "histogram") == 0 ? KIND_HISTOGRAM : KIND_COUNTER;
		buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", h->name, h->help, h->name, h->type);
		int any = 0;
		for (size_t i = 0; i < n; i++) {
			if (v[i].merged || v[i].kind != kind || v[i].name_len != hl ||
			    memcmp(v[i].key, h->name, hl) != 0)
				continue;
			counters_render_series(out, &v[i]);
			any = 1;
		}
		if (!any && kind == KIND_COUNTER)
			buf_printf(out, "%s 0\n", h->name);
	}
	free(v);
}

int counters_write_textfile(const struct counters *k, const struct counters_help *help,
			    const char *path)
{
	struct buf text = { 0 };
	counters_render(k, help, &text);
	int rc = util_replace_file(path, text.data ? text.data : "", text.len, 0644);
	if (rc != 0)
		log_event(LOG_ERROR, "cannot write the metrics textfile",
			  json_pack("{s:s, s:s}", "path", path, "error", strerror(errno)));
	buf_free(&text);
	return rc;
}
