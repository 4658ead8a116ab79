/* metrics.c — textfile metrics; see metrics.h. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

static int metrics_header_seen(const struct metrics *m, size_t upto, const char *name)
{
	for (size_t i = 0; i < upto; i++)
		if (strcmp(m->s[i].name, name) == 0)
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
		if (!metrics_header_seen(m, i, s->name)) {
			int n = snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s %s\n", s->name,
					 s->help, s->name, s->type);
			buf_append(&b, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
		}
		int n = snprintf(line, sizeof line, "%s%s%s%s %.17g\n", s->name,
				 s->labels ? "{" : "", s->labels ? s->labels : "",
				 s->labels ? "}" : "", s->value);
		buf_append(&b, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
	}
	return b.data;
}

/* The text goes to an exclusive temp file made by mkstemp(3) in the target
 * directory (O_CREAT|O_EXCL: never a file or symlink planted under a
 * guessable name), readable by the exporter, then renamed over path: a
 * reader sees the old file or the new one, never half of one. */
int metrics_write_textfile(const struct metrics *m, const char *path)
{
	char tmp[4096];
	if (snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path) >= (int)sizeof tmp)
		return -1;
	char *text = metrics_render(m);
	int fd = mkstemp(tmp);
	int ok = fd >= 0;
	int err = errno;
	if (ok && fchmod(fd, 0644) != 0)
		ok = 0;
	size_t len = strlen(text), off = 0;
	while (ok && off < len) {
		ssize_t n = write(fd, text + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			ok = 0;
		else
			off += (size_t)n;
	}
	if (!ok)
		err = errno;
	if (fd >= 0 && close(fd) != 0 && ok) {
		err = errno;
		ok = 0;
	}
	free(text);
	if (ok && rename(tmp, path) != 0) {
		err = errno;
		ok = 0;
	}
	if (!ok) {
		log_event(LOG_ERROR, "cannot write metrics file",
			  json_pack("{s:s, s:s}", "path", path, "error", strerror(err)));
		if (fd >= 0)
			unlink(tmp);
		return -1;
	}
	return 0;
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
