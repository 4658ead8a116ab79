/* log.c — JSON line logging on stderr; see log.h. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <errno.h>
#include <unistd.h>

#include "log.h"

static char log_cmd_name[64] = "unde";
/* per thread: see log.h */
static _Thread_local char log_rid[128];
static enum log_level log_min = LOG_INFO;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void log_init(const char *cmd)
{
	const char *base = strrchr(cmd, '/');
	snprintf(log_cmd_name, sizeof log_cmd_name, "%s", base ? base + 1 : cmd);
	const char *lvl = getenv("UNDE_LOG_LEVEL");
	if (lvl) {
		for (int i = 0; i < 4; i++)
			if (strcmp(lvl, level_names[i]) == 0)
				log_min = (enum log_level)i;
	}
}

const char *log_cmd(void) { return log_cmd_name; }

void log_set_min_level(enum log_level level) { log_min = level; }

/* Request ids come from clients: keep only a bounded, printable copy so a
 * hostile id can neither overflow nor inject header lines downstream. */
void log_set_request_id(const char *request_id)
{
	size_t n = 0;
	if (request_id) {
		for (const char *p = request_id; *p && n + 1 < sizeof log_rid; p++)
			if ((unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f)
				log_rid[n++] = *p;
	}
	log_rid[n] = '\0';
}

const char *log_request_id(void) { return log_rid[0] ? log_rid : NULL; }

static void log_timestamp(char *buf, size_t len)
{
	struct timeval tv;
	struct tm tm;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%03ldZ", (long)(tv.tv_usec / 1000));
}

/* One write(2) per line, newline included: lines up to PIPE_BUF from
 * several processes sharing one stderr pipe (a pipeline, unde-httpd and
 * its children) never interleave, since such writes are atomic. A longer
 * line may be split by the kernel and interleave with other writers. */
static void log_emit(json_t *line)
{
	char *s = json_dumps(line, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(line);
	if (!s)
		return;
	size_t n = strlen(s);
	char *l = realloc(s, n + 2);
	if (!l) {
		free(s);
		return;
	}
	l[n] = '\n';
	l[n + 1] = '\0';
	fflush(stderr);
	for (size_t off = 0; off < n + 1;) {
		ssize_t w = write(STDERR_FILENO, l + off, n + 1 - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	free(l);
}

static json_t *log_head(enum log_level level)
{
	char ts[40];
	log_timestamp(ts, sizeof ts);
	json_t *line = json_object();
	json_object_set_new(line, "ts", json_string(ts));
	json_object_set_new(line, "level", json_string(level_names[level]));
	json_object_set_new(line, "cmd", json_string(log_cmd_name));
	json_object_set_new(line, "request_id",
			    log_rid[0] ? json_string(log_rid) : json_null());
	return line;
}

void log_event(enum log_level level, const char *msg, json_t *fields)
{
	if (level < log_min) {
		json_decref(fields);
		return;
	}
	json_t *line = log_head(level);
	if (msg)
		json_object_set_new(line, "msg", json_string(msg));
	if (fields) {
		json_object_update_missing(line, fields);
		json_decref(fields);
	}
	log_emit(line);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	log_event(level, buf, NULL);
}

void log_record_error(const json_t *record, const char *code, const char *message,
		      json_t *extra)
{
	json_t *line = log_head(LOG_ERROR);
	json_object_set_new(line, "record", record ? json_deep_copy(record) : json_null());
	json_t *err = json_pack("{s:s, s:s}", "code", code, "message", message);
	if (extra) {
		json_object_update_missing(err, extra);
		json_decref(extra);
	}
	json_object_set_new(line, "error", err);
	log_emit(line);
}
