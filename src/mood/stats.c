/* stats.c — cross-process counters in one textfile (see stats.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "log.h"
#include "stats.h"
#include "util.h"

#define STATS_MAX 64

static const double buckets[] = {1, 2, 5, 10, 25, 50, 100, 200, 500, 1000, 5000};
#define NBUCKETS (sizeof buckets / sizeof buckets[0])

struct sample {
	char key[192]; /* name{labels} as written */
	double value;
};

static struct {
	char cmd[64], prefix[32];
	struct sample s[STATS_MAX];
	int n;
	int dirty;
} st;

static void add(const char *key, double delta)
{
	for (int i = 0; i < st.n; i++)
		if (strcmp(st.s[i].key, key) == 0) {
			st.s[i].value += delta;
			st.dirty = 1;
			return;
		}
	if (st.n == STATS_MAX)
		return;
	snprintf(st.s[st.n].key, sizeof st.s[st.n].key, "%s", key);
	st.s[st.n++].value = delta;
	st.dirty = 1;
}

void stats_init(const char *cmd, const char *prefix)
{
	memset(&st, 0, sizeof st);
	snprintf(st.cmd, sizeof st.cmd, "%s", cmd);
	snprintf(st.prefix, sizeof st.prefix, "%s", prefix);
}

void stats_count(const char *name, const char *labels, double delta)
{
	char key[192];
	snprintf(key, sizeof key, "%s_%s%s%s%s", st.prefix, name, labels ? "{" : "",
		 labels ? labels : "", labels ? "}" : "");
	add(key, delta);
}

void stats_latency(double ms)
{
	char key[192];
	for (size_t b = 0; b < NBUCKETS; b++) {
		snprintf(key, sizeof key, "%s_latency_ms_bucket{le=\"%g\"}", st.prefix, buckets[b]);
		add(key, ms <= buckets[b] ? 1 : 0);
	}
	snprintf(key, sizeof key, "%s_latency_ms_bucket{le=\"+Inf\"}", st.prefix);
	add(key, 1);
	snprintf(key, sizeof key, "%s_latency_ms_sum", st.prefix);
	add(key, ms);
	snprintf(key, sizeof key, "%s_latency_ms_count", st.prefix);
	add(key, 1);
}

/* The metric family of a sample key: its name without labels and without
 * the histogram suffixes. */
static void family(const char *key, char *out, size_t outlen)
{
	size_t n = strcspn(key, "{ ");
	snprintf(out, outlen, "%.*s", (int)n, key);
	const char *suf[] = {"_bucket", "_sum", "_count"};
	size_t l = strlen(out);
	for (int i = 0; i < 3; i++) {
		size_t sl = strlen(suf[i]);
		if (l > sl && strcmp(out + l - sl, suf[i]) == 0 && strstr(out, "_latency_ms")) {
			out[l - sl] = '\0';
			return;
		}
	}
}

void stats_flush(void)
{
	const char *dir = getenv("UNDE_METRICS_DIR");
	if (!dir || !*dir || !st.dirty)
		return;
	char path[1024], lock[1100], tmp[1100];
	snprintf(path, sizeof path, "%s/%s.prom", dir, st.cmd);
	snprintf(lock, sizeof lock, "%s.lock", path);
	int lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (lfd < 0 || flock(lfd, LOCK_EX) != 0) {
		log_msg(LOG_WARN, "metrics: cannot lock %s: %s", lock, strerror(errno));
		if (lfd >= 0)
			close(lfd);
		return;
	}
	/* the file's samples plus ours */
	struct sample all[STATS_MAX * 2];
	int n = 0;
	FILE *f = fopen(path, "r");
	if (f) {
		char line[512];
		while (fgets(line, sizeof line, f) && n < STATS_MAX * 2) {
			if (line[0] == '#' || line[0] == '\n')
				continue;
			char *sp = strrchr(line, ' ');
			if (!sp)
				continue;
			*sp = '\0';
			if ((size_t)(sp - line) >= sizeof all[n].key)
				continue;
			memcpy(all[n].key, line, (size_t)(sp - line) + 1);
			all[n++].value = strtod(sp + 1, NULL);
		}
		fclose(f);
	}
	for (int i = 0; i < st.n; i++) {
		int j;
		for (j = 0; j < n; j++)
			if (strcmp(all[j].key, st.s[i].key) == 0)
				break;
		if (j == n) {
			if (n == STATS_MAX * 2)
				continue;
			all[n] = st.s[i];
			all[n++].value = 0;
		}
		all[j].value += st.s[i].value;
		st.s[i].value = 0;
	}
	/* group each family's samples together, keeping their order (stable) */
	for (int i = 1; i < n; i++) {
		struct sample x = all[i];
		char fx[192], fy[192];
		family(x.key, fx, sizeof fx);
		int j = i - 1;
		for (; j >= 0; j--) {
			family(all[j].key, fy, sizeof fy);
			if (strcmp(fy, fx) <= 0)
				break;
			all[j + 1] = all[j];
		}
		all[j + 1] = x;
	}
	snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
	FILE *o = fopen(tmp, "w");
	if (!o) {
		log_msg(LOG_WARN, "metrics: cannot write %s: %s", tmp, strerror(errno));
		close(lfd);
		return;
	}
	char last[192] = "";
	for (int i = 0; i < n; i++) {
		char fam[192];
		family(all[i].key, fam, sizeof fam);
		if (strcmp(fam, last) != 0) {
			int hist = strstr(all[i].key, "_latency_ms") != NULL;
			fprintf(o, "# HELP %s %s\n# TYPE %s %s\n", fam,
				hist ? "Time to answer one request, milliseconds."
				     : "Count since the file was created.",
				fam, hist ? "histogram" : "counter");
			snprintf(last, sizeof last, "%s", fam);
		}
		fprintf(o, "%s %.17g\n", all[i].key, all[i].value);
	}
	int bad = fclose(o) != 0;
	if (bad || rename(tmp, path) != 0) {
		log_msg(LOG_WARN, "metrics: cannot replace %s", path);
		unlink(tmp);
	}
	st.dirty = 0;
	close(lfd);
}
