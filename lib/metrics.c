/* metrics.c — textfile metrics; see metrics.h. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "util.h"

struct sample {
	char *name, *type, *help, *labels;
	double value;
};

struct metrics {
	struct sample *s;
	size_t n, cap;
};

struct metrics *metrics_new(void) { return xcalloc(1, sizeof(struct metrics)); }

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n; i++) {
		free(m->s[i].name);
		free(m->s[i].type);
		free(m->s[i].help);
		free(m->s[i].labels);
	}
	free(m->s);
	free(m);
}

void metrics_add(struct metrics *m, const char *name, const char *type, const char *help,
		 const char *labels, double value)
{
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 16;
		m->s = xrealloc(m->s, m->cap * sizeof *m->s);
	}
	struct sample *s = &m->s[m->n++];
	s->name = xstrdup(name);
	s->type = xstrdup(type ? type : "gauge");
	s->help = xstrdup(help ? help : name);
	s->labels = labels && *labels ? xstrdup(labels) : NULL;
	s->value = value;
}

/* The family a sample belongs to: its name, or for a histogram's series
 * the name without _bucket/_sum/_count, so the three share one header. */
static size_t metrics_family_len(const struct sample *s)
{
	size_t n = strlen(s->name);
	if (strcmp(s->type, "histogram") != 0)
		return n;
	static const char *const suffix[] = { "_bucket", "_sum", "_count" };
	for (size_t i = 0; i < sizeof suffix / sizeof *suffix; i++) {
		size_t k = strlen(suffix[i]);
		if (n > k && strcmp(s->name + n - k, suffix[i]) == 0)
			return n - k;
	}
	return n;
}

static int metrics_header_seen(const struct metrics *m, size_t upto, const struct sample *s)
{
	size_t n = metrics_family_len(s);
	for (size_t i = 0; i < upto; i++)
		if (metrics_family_len(&m->s[i]) == n && strncmp(m->s[i].name, s->name, n) == 0)
			return 1;
	return 0;
}

char *metrics_render(const struct metrics *m)
{
	struct buf b = { 0 };
	char line[1024];
	buf_append(&b, "", 0);
	for (size_t i = 0; i < m->n; i++) {
		const struct sample *s = &m->s[i];
		if (!metrics_header_seen(m, i, s)) {
			int f = (int)metrics_family_len(s);
			int n = snprintf(line, sizeof line, "# HELP %.*s %s\n# TYPE %.*s %s\n", f, s->name,
					 s->help, f, s->name, s->type);
			buf_append(&b, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
		}
		int n = snprintf(line, sizeof line, "%s%s%s%s %.17g\n", s->name,
				 s->labels ? "{" : "", s->labels ? s->labels : "",
				 s->labels ? "}" : "", s->value);
		buf_append(&b, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
	}
	return b.data;
}

int metrics_write_textfile(const struct metrics *m, const char *path)
{
	/* an exclusive temp file (mkstemp) renamed over path: never a
	 * predictable name a planted symlink could redirect */
	char *text = metrics_render(m);
	int rc = util_replace_file(path, text ? text : "", text ? strlen(text) : 0, 0644);
	free(text);
	if (rc != 0)
		log_event(LOG_ERROR, "cannot write metrics file",
			  json_pack("{s:s, s:s}", "path", path, "error", strerror(errno)));
	return rc;
}

int metrics_write_default(const struct metrics *m, const char *cmd)
{
	const char *dir = getenv("UNDE_METRICS_DIR");
	if (!dir || !*dir)
		return 0;
	char path[4096];
	if (snprintf(path, sizeof path, "%s/%s.prom", dir, cmd) >= (int)sizeof path)
		return -1;
	return metrics_write_textfile(m, path);
}
