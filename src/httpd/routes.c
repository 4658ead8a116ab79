/* routes.c — loading and matching the routes file; see routes.h. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "routes.h"
#include "util.h"

#define ROUTE_TIMEOUT_MAX_S 3600.0

/* Format "FILE:LINE: what" into err and return -1. */
__attribute__((format(printf, 5, 6))) static int routes_error(char *err, size_t errlen,
							      const char *file, int line,
							      const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	snprintf(err, errlen, "%s:%d: %s", file, line, msg);
	return -1;
}

static int routes_method_ok(const char *m)
{
	size_t n = strlen(m);
	if (n == 0 || n > ROUTE_METHOD_MAX)
		return 0;
	for (; *m; m++)
		if (*m < 'A' || *m > 'Z')
			return 0;
	return 1;
}

/* A route path: '/' then pchar without '%' (no escapes to normalise), and
 * no "." or ".." segment. */
static const char *routes_path_problem(const char *p)
{
	if (p[0] != '/')
		return "path must start with /";
	if (strlen(p) > ROUTE_PATH_MAX)
		return "path too long";
	for (const char *c = p; *c; c++) {
		if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9'))
			continue;
		if (!strchr("/-._~!$&'()*+,;=:@", *c))
			return "path has a character outside [A-Za-z0-9/-._~!$&'()*+,;=:@]";
	}
	for (const char *s = p; s; s = strchr(s + 1, '/')) {
		const char *seg = s + 1;
		size_t n = strcspn(seg, "/");
		if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
			return "path has a . or .. segment";
	}
	if (strcmp(p, "/health") == 0 || strcmp(p, "/metrics") == 0)
		return "path is served by unde-httpd itself";
	return NULL;
}

/* A route option's word: 1..max of [A-Za-z0-9_], or with media also the
 * token characters of a media type ("audio/mpeg", "application/x-ndjson"):
 * nothing that could end a header line. */
static int routes_word_ok(const char *s, size_t max, int media)
{
	size_t n = strlen(s);
	if (n == 0 || n > max)
		return 0;
	for (; *s; s++) {
		char ch = *s;
		int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
			 ch == '_' || (media && strchr("/.+-", ch));
		if (!ok)
			return 0;
	}
	return 1;
}

static int routes_parse_timeout(const char *v, long *ms)
{
	char *end;
	errno = 0;
	double s = strtod(v, &end);
	if (errno || end == v || *end || !(s > 0) || s > ROUTE_TIMEOUT_MAX_S)
		return -1;
	*ms = (long)(s * 1000.0 + 0.5);
	if (*ms < 1)
		*ms = 1;
	return 0;
}

/* Split line into blank-separated words, in place. A word starting with
 * '#' starts a comment. Returns the word count, or -1 when over max. */
static int routes_split(char *line, char **w, int max)
{
	int n = 0;
	char *save = NULL;
	for (char *t = strtok_r(line, " \t\r\n", &save); t; t = strtok_r(NULL, " \t\r\n", &save)) {
		if (t[0] == '#')
			break;
		if (n == max)
			return -1;
		w[n++] = t;
	}
	return n;
}

static void routes_clear_one(struct route *r)
{
	for (int i = 0; r->argv[i]; i++)
		free(r->argv[i]);
	memset(r, 0, sizeof *r);
}

/* Parse the words of one non-empty line into r. */
static int routes_parse_line(char **w, int nw, int lineno, const char *file,
			     long default_timeout_ms, struct route *r, char *err, size_t errlen)
{
	if (nw < 3)
		return routes_error(err, errlen, file, lineno,
				    "expected METHOD PATH COMMAND [ARG...]");
	if (!routes_method_ok(w[0]))
		return routes_error(err, errlen, file, lineno,
				    "method must be upper-case letters (at most %d): '%.40s'",
				    ROUTE_METHOD_MAX, w[0]);
	if (strcmp(w[0], "HEAD") == 0)
		return routes_error(err, errlen, file, lineno,
				    "HEAD cannot be routed: its answers have no body");
	const char *problem = routes_path_problem(w[1]);
	if (problem)
		return routes_error(err, errlen, file, lineno, "%s: '%.140s'", problem, w[1]);
	memset(r, 0, sizeof *r);
	r->line = lineno;
	r->timeout_ms = default_timeout_ms;
	snprintf(r->method, sizeof r->method, "%s", w[0]);
	snprintf(r->path, sizeof r->path, "%s", w[1]);
	snprintf(r->label, sizeof r->label, "%s %s", r->method, r->path);

	int i = 2;
	for (; i < nw && strchr(w[i], '=') && strncmp(w[i], "stream:", 7) != 0; i++) {
		if (strncmp(w[i], "binary=", 7) == 0) {
			if (!routes_word_ok(w[i] + 7, ROUTE_KEY_MAX, 0))
				return routes_error(err, errlen, file, lineno,
						    "binary= takes a key of letters, digits and '_' (at most %d)",
						    ROUTE_KEY_MAX);
			snprintf(r->binary_key, sizeof r->binary_key, "%s", w[i] + 7);
			continue;
		}
		if (strncmp(w[i], "type=", 5) == 0) {
			if (!routes_word_ok(w[i] + 5, ROUTE_CTYPE_MAX, 1) || !strchr(w[i] + 5, '/'))
				return routes_error(err, errlen, file, lineno,
						    "type= takes a media type such as audio/mpeg: '%.60s'",
						    w[i] + 5);
			snprintf(r->ctype, sizeof r->ctype, "%s", w[i] + 5);
			continue;
		}
		if (strncmp(w[i], "start=", 6) == 0) {
			if (strcmp(w[i] + 6, "early") != 0 && strcmp(w[i] + 6, "first-use") != 0)
				return routes_error(err, errlen, file, lineno,
						    "start= takes early or first-use: '%.60s'", w[i] + 6);
			r->start_early = strcmp(w[i] + 6, "early") == 0;
			continue;
		}
		if (strncmp(w[i], "keep=", 5) == 0) {
			if (strcmp(w[i] + 5, "connection") != 0 && strcmp(w[i] + 5, "request") != 0)
				return routes_error(err, errlen, file, lineno,
						    "keep= takes connection or request: '%.60s'", w[i] + 5);
			r->keep_command = strcmp(w[i] + 5, "connection") == 0;
			continue;
		}
		if (strncmp(w[i], "timeout=", 8) != 0)
			return routes_error(err, errlen, file, lineno,
					    "unknown route option '%.60s' (known: timeout=SECONDS, binary=KEY, type=MEDIA/TYPE, start=early, keep=connection)", w[i]);
		if (routes_parse_timeout(w[i] + 8, &r->timeout_ms) != 0)
			return routes_error(err, errlen, file, lineno,
					    "timeout must be seconds, above 0 and at most %.0f",
					    ROUTE_TIMEOUT_MAX_S);
	}
	if (i < nw && strncmp(w[i], "stream:", 7) == 0) {
		r->streaming = 1;
		if (w[i][7]) {
			w[i] += 7;
		} else {
			i++;
		}
	}
	if (i >= nw)
		return routes_error(err, errlen, file, lineno, "no command");
	if (r->ctype[0] && !r->binary_key[0])
		return routes_error(err, errlen, file, lineno, "type= needs binary=KEY");
	if (r->binary_key[0] && r->streaming)
		return routes_error(err, errlen, file, lineno,
				    "binary= answers one body: not on a stream: route");
	if (r->start_early && r->streaming)
		return routes_error(err, errlen, file, lineno,
				    "start=early keeps a command for the connection: not on a stream: route");
	if (r->keep_command && !r->streaming)
		return routes_error(err, errlen, file, lineno,
				    "keep=connection is for a stream: route (a plain route's command is always kept)");
	if (r->binary_key[0] && !r->ctype[0])
		snprintf(r->ctype, sizeof r->ctype, "application/octet-stream");
	if (nw - i > ROUTE_ARGS_MAX)
		return routes_error(err, errlen, file, lineno, "more than %d command words",
				    ROUTE_ARGS_MAX);
	for (int a = 0; i < nw; i++, a++)
		r->argv[a] = xstrdup(w[i]);
	return 0;
}

int routes_load(const char *file, long default_timeout_ms, struct routes *out, char *err,
		size_t errlen)
{
	memset(out, 0, sizeof *out);
	FILE *f = fopen(file, "r");
	if (!f) {
		snprintf(err, errlen, "%s: cannot open routes file: %s", file, strerror(errno));
		return -1;
	}
	char line[ROUTE_LINE_MAX + 2];
	int lineno = 0, rc = 0;
	out->r = xcalloc(ROUTES_MAX, sizeof *out->r);
	while (rc == 0 && fgets(line, sizeof line, f)) {
		lineno++;
		size_t len = strlen(line);
		if (len > ROUTE_LINE_MAX || (len == sizeof line - 1 && line[len - 1] != '\n')) {
			rc = routes_error(err, errlen, file, lineno, "line longer than %d bytes",
					  ROUTE_LINE_MAX);
			break;
		}
		char *w[ROUTE_ARGS_MAX + 8];
		int nw = routes_split(line, w, (int)(sizeof w / sizeof *w));
		if (nw == 0)
			continue;
		if (nw < 0) {
			rc = routes_error(err, errlen, file, lineno, "too many words");
			break;
		}
		if (out->n == ROUTES_MAX) {
			rc = routes_error(err, errlen, file, lineno, "more than %d routes", ROUTES_MAX);
			break;
		}
		struct route *r = &out->r[out->n];
		if ((rc = routes_parse_line(w, nw, lineno, file, default_timeout_ms, r, err, errlen)))
			break;
		for (size_t k = 0; k < out->n; k++) {
			int ws_clash = strcmp(out->r[k].path, r->path) == 0 &&
				       ((strcmp(out->r[k].method, "WS") == 0 && strcmp(r->method, "GET") == 0) ||
					(strcmp(out->r[k].method, "GET") == 0 && strcmp(r->method, "WS") == 0));
			if (ws_clash) {
				rc = routes_error(err, errlen, file, lineno,
						  "GET and WS routes for one path (line %d): the handshake is a GET",
						  out->r[k].line);
				routes_clear_one(r);
				break;
			}
			if (strcmp(out->r[k].label, r->label) == 0) {
				rc = routes_error(err, errlen, file, lineno,
						  "duplicate route %s (first on line %d)", r->label,
						  out->r[k].line);
				routes_clear_one(r);
				break;
			}
		}
		if (rc == 0)
			r->index = out->n++;
	}
	if (rc == 0 && ferror(f))
		rc = routes_error(err, errlen, file, lineno, "read error: %s", strerror(errno));
	fclose(f);
	if (rc == 0 && out->n == 0) {
		snprintf(err, errlen, "%s: no routes", file);
		rc = -1;
	}
	if (rc != 0)
		routes_free(out);
	return rc;
}

void routes_free(struct routes *rs)
{
	if (!rs->r)
		return;
	for (size_t i = 0; i < ROUTES_MAX && i <= rs->n; i++)
		routes_clear_one(&rs->r[i]);
	free(rs->r);
	rs->r = NULL;
	rs->n = 0;
}

const struct route *routes_find(const struct routes *rs, const char *method, const char *path,
				int *path_known, char *allow, size_t allowlen)
{
	size_t used = 0;
	*path_known = 0;
	if (allowlen)
		allow[0] = '\0';
	for (size_t i = 0; i < rs->n; i++) {
		const struct route *r = &rs->r[i];
		if (strcmp(r->path, path) != 0)
			continue;
		if (strcmp(r->method, method) == 0)
			return r;
		*path_known = 1;
		/* a WebSocket route is reached by GET (the handshake) */
		const char *m = strcmp(r->method, "WS") == 0 ? "GET" : r->method;
		int n = snprintf(allow + used, allowlen - used, "%s%s", used ? ", " : "", m);
		if (n > 0 && (size_t)n < allowlen - used)
			used += (size_t)n;
	}
	return NULL;
}

int routes_command_exists(const struct route *r)
{
	const char *cmd = r->argv[0];
	if (strchr(cmd, '/'))
		return access(cmd, X_OK) == 0;
	const char *path = getenv("PATH");
	if (!path || !*path)
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	char full[4096];
	while (*path) {
		size_t n = strcspn(path, ":");
		int w = snprintf(full, sizeof full, "%.*s%s%s", (int)n, path, n ? "/" : "./", cmd);
		if (w > 0 && (size_t)w < sizeof full && access(full, X_OK) == 0)
			return 1;
		path += n;
		if (*path == ':')
			path++;
	}
	return 0;
}
