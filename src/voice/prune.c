/* prune.c — `unde-voice prune`: the phrase cache's eviction, run daily from
 * cron. The cache is bounded two ways:
 *   age   a phrase written more than VOICE_CACHE_MAX_AGE_DAYS days ago (30)
 *         is removed: it is made again, fresh, the next time it is asked
 *         for (a TTL: an old voice or model does not linger);
 *   size  then, while the objects left under VOICE_CACHE_PREFIX hold more
 *         than VOICE_CACHE_MAX_BYTES (1 GiB), the oldest are removed first.
 * "Written" is the object's LastModified (S3) or mtime (file://): the store
 * keeps no time of last reading, and a hit writes nothing, so a lookup
 * stays one GET. Each object removed is one JSON line on stdout; the
 * counts are logged and counted in voice_cache_pruned_total{reason}. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "jsonl.h"
#include "log.h"
#include "objstore.h"
#include "options.h"
#include "voice.h"

struct prune_obj {
	char *key;
	size_t size;
	double mtime;
};

struct prune_list {
	struct prune_obj *v;
	size_t n, cap;
};

/* objstore_list's callback: keep every object seen. */
static int prune_collect(void *ud, const struct objstore_entry *e)
{
	struct prune_list *l = ud;
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 256;
		l->v = xrealloc(l->v, l->cap * sizeof *l->v);
	}
	l->v[l->n++] = (struct prune_obj){ xstrdup(e->key), e->size, e->mtime };
	return 0;
}

/* Oldest first; the key breaks ties, so a rerun removes the same ones. */
static int prune_cmp(const void *a, const void *b)
{
	const struct prune_obj *x = a, *y = b;
	if (x->mtime != y->mtime)
		return x->mtime < y->mtime ? -1 : 1;
	return strcmp(x->key, y->key);
}

/* Remove one object (unless dry) and say so on stdout. 0, or -1 when the
 * store refused; *retry set when that is worth retrying. */
static int prune_remove(struct objstore *os, const struct prune_obj *o, const char *reason, int dry,
			int *retry)
{
	struct objstore_error e;
	if (!dry && objstore_delete(os, o->key, &e) != OBJSTORE_OK) {
		log_event(LOG_ERROR, "cannot remove a cached phrase",
			  json_pack("{s:s, s:s, s:s}", "key", o->key, "code", e.code, "error", e.message));
		*retry |= e.retryable;
		return -1;
	}
	time_t t = (time_t)o->mtime;
	struct tm tm;
	char when[32];
	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
	json_t *line = json_pack("{s:s, s:I, s:s, s:s, s:b}", "key", o->key, "bytes", (json_int_t)o->size,
				 "last_modified", when, "reason", reason, "removed", !dry);
	jsonl_write(stdout, line);
	json_decref(line);
	char labels[48];
	snprintf(labels, sizeof labels, "reason=\"%s\"", reason);
	if (!dry)
		voice_metrics_count("voice_cache_pruned_total", labels);
	return 0;
}

static void prune_usage(FILE *f, const struct filter_option *opts)
{
	fprintf(f, "Usage: unde-voice prune [--max-age-days N] [--max-bytes N] [--now EPOCH] [--dry-run]\n"
		   "Evict the phrase cache: objects written more than VOICE_CACHE_MAX_AGE_DAYS ago, then the\n"
		   "oldest while the cache holds more than VOICE_CACHE_MAX_BYTES. One JSON line per object\n"
		   "removed. See unde-voice(1).\n\nOptions:\n");
	options_help(f, opts);
}

int voice_prune(int argc, char **argv)
{
	long long max_age = -1, max_bytes = -1, now_opt = -1;
	int dry = 0;
	const char *env_file = NULL;
	const struct filter_option opts[] = {
		{ "max-age-days", 0, "N", "remove what was written more than N days ago (VOICE_CACHE_MAX_AGE_DAYS)",
		  .number = &max_age, .min = 0, .max = 36500 },
		{ "max-bytes", 0, "N", "then the oldest until the rest holds N bytes (VOICE_CACHE_MAX_BYTES)",
		  .number = &max_bytes, .min = 0, .max = (long long)1 << 50 },
		{ "now", 0, "EPOCH", "judge ages as at this time, seconds since 1970 (default: now)",
		  .number = &now_opt, .min = 0, .max = 32503680000LL },
		{ "dry-run", 'n', NULL, "say what would be removed, remove nothing", .flag = &dry },
		{ "env-file", 0, "FILE", "read KEY=VALUE settings from FILE", .string = &env_file },
		{ 0 } };
	const struct options_table table = { opts, NULL, NULL };
	switch (options_parse("unde-voice", &table, 1, OPTIONS_PERMUTE, argc, argv)) {
	case OPTIONS_HELP: prune_usage(stdout, opts); return 0;
	case OPTIONS_VERSION: return 0;
	case OPTIONS_USAGE: return EX_USAGE;
	case OPTIONS_OK: break;
	}
	if (optind < argc)
		return options_usage_error("unde-voice", "prune takes no operands");
	int rc = conf_load_env(env_file);
	if (rc)
		return rc;
	if (max_age < 0)
		max_age = conf_long("VOICE_CACHE_MAX_AGE_DAYS", 30, 0, 36500);
	if (max_bytes < 0)
		max_bytes = conf_long("VOICE_CACHE_MAX_BYTES", 1L << 30, 0, 1L << 50);
	const char *mode = conf_str("VOICE_CACHE", "on");
	if (strcmp(mode, "on") != 0 && strcmp(mode, "off") != 0)
		conf_die("VOICE_CACHE", "must be on or off");
	const char *ep = conf_str("S3_ENDPOINT", NULL);
	if (strcmp(mode, "off") == 0 || !ep || !*ep) {
		log_msg(LOG_INFO, "phrase cache off (VOICE_CACHE=off or no S3_ENDPOINT): nothing to prune");
		return 0;
	}
	const char *prefix = conf_str("VOICE_CACHE_PREFIX", "voice-cache/");
	if (!*prefix)
		conf_die("VOICE_CACHE_PREFIX", "must not be empty: prune would empty the whole bucket");
	struct objstore *os = objstore_open();
	voice_metrics_open();
	struct prune_list l = { 0 };
	struct objstore_error e;
	if (objstore_list(os, prefix, prune_collect, &l, &e) != OBJSTORE_OK) {
		log_event(LOG_ERROR, "cannot list the phrase cache",
			  json_pack("{s:s, s:s, s:s}", "prefix", prefix, "code", e.code, "error", e.message));
		rc = e.retryable ? EX_TEMPFAIL : EX_UNAVAILABLE;
		goto out;
	}
	if (l.n) /* an empty cache lists nothing: l.v is NULL */
		qsort(l.v, l.n, sizeof *l.v, prune_cmp);
	double now = now_opt >= 0 ? (double)now_opt : (double)time(NULL);
	double cutoff = now - (double)max_age * 86400.0;
	size_t total = 0, kept_n = 0, by_age = 0, by_size = 0, failed = 0;
	int retry = 0;
	for (size_t i = 0; i < l.n; i++)
		total += l.v[i].size;
	size_t before = total;
	/* age, then size: both walk oldest first */
	for (size_t i = 0; i < l.n; i++) {
		struct prune_obj *o = &l.v[i];
		const char *reason = o->mtime < cutoff ? "age" : total > (size_t)max_bytes ? "size" : NULL;
		if (!reason) {
			kept_n++;
			continue;
		}
		if (prune_remove(os, o, reason, dry, &retry) != 0) {
			failed++;
			kept_n++;
			continue;
		}
		total -= o->size;
		*(reason[0] == 'a' ? &by_age : &by_size) += 1;
	}
	log_event(LOG_INFO, dry ? "phrase cache prune (dry run)" : "phrase cache pruned",
		  json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "prefix", prefix,
			    "objects", (json_int_t)l.n, "bytes", (json_int_t)before,
			    "removed_age", (json_int_t)by_age, "removed_size", (json_int_t)by_size,
			    "failed", (json_int_t)failed, "kept", (json_int_t)kept_n,
			    "kept_bytes", (json_int_t)total, "max_bytes", (json_int_t)max_bytes));
	rc = failed ? (retry ? EX_TEMPFAIL : EX_UNAVAILABLE) : 0;
out:
	for (size_t i = 0; i < l.n; i++)
		free(l.v[i].key);
	free(l.v);
	objstore_close(os);
	voice_metrics_close();
	return rc;
}
