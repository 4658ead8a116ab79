/* accesslog.c — the access-log line, one per request.
 *
 * The line has the shape of every log.h line (ts, level, cmd, request_id,
 * msg, then its fields), but it is written once per request on the hot
 * path, so it is formatted here with one snprintf-free pass into a buffer
 * and written whole, instead of building and dumping a jansson object:
 * that took a fifth of unde-httpd's own CPU per request. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "httpd.h"
#include "serve.h"

#define ALOG_START 4096

/* The line being built. It grows to fit (a path can be 8 KiB, escaped
 * six times over): a line is written whole or, when memory runs out, not
 * at all — never cut, never merged with the next. */
struct alog {
	char *b;
	size_t n, cap;
	int failed;
};

/* Room for need more bytes; 0, or -1 (and the line is dropped). */
static int alog_room(struct alog *l, size_t need)
{
	if (l->failed)
		return -1;
	if (l->cap - l->n >= need)
		return 0;
	size_t cap = l->cap ? l->cap : ALOG_START;
	while (cap - l->n < need)
		cap *= 2;
	char *nb = realloc(l->b, cap);
	if (!nb) {
		l->failed = 1;
		return -1;
	}
	l->b = nb;
	l->cap = cap;
	return 0;
}

static void alog_raw(struct alog *l, const char *s, size_t n)
{
	if (alog_room(l, n) != 0)
		return;
	memcpy(l->b + l->n, s, n);
	l->n += n;
}

static void alog_str(struct alog *l, const char *s) { alog_raw(l, s, strlen(s)); }

/* A JSON string: quotes, backslashes and control bytes escaped. */
static void alog_json(struct alog *l, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	/* at most 6 bytes per input byte, and the quotes */
	if (alog_room(l, 6 * n + 2) != 0)
		return;
	l->b[l->n++] = '"';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			l->b[l->n++] = '\\';
			l->b[l->n++] = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			char u[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
			memcpy(l->b + l->n, u, sizeof u);
			l->n += sizeof u;
		} else {
			l->b[l->n++] = (char)c;
		}
	}
	l->b[l->n++] = '"';
}

static void alog_num(struct alog *l, unsigned long long v)
{
	char d[24];
	size_t i = sizeof d;
	do {
		d[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	alog_raw(l, d + i, sizeof d - i);
}

/* "2026-11-25T19:45:19.899Z", the date part formatted once per second. */
static void alog_ts(struct alog *l)
{
	static char day[32];
	static time_t day_at = -1;
	struct timeval tv;
	gettimeofday(&tv, NULL);
	if (tv.tv_sec != day_at) {
		struct tm tm;
		gmtime_r(&tv.tv_sec, &tm);
		strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
		day_at = tv.tv_sec;
	}
	char ms[6] = { '.', '0', '0', '0', 'Z', '"' };
	long m = (long)(tv.tv_usec / 1000);
	ms[1] = (char)('0' + m / 100);
	ms[2] = (char)('0' + m / 10 % 10);
	ms[3] = (char)('0' + m % 10);
	alog_raw(l, "{\"ts\":\"", 7);
	alog_str(l, day);
	alog_raw(l, ms, sizeof ms);
}

/* -1 until read: the UNDE_LOG_LEVEL rule of log.h (info unless told). */
static int alog_min = -1;

void access_log(const struct conn *c, const char *rid, const char *label, int status,
		const char *error, double ms)
{
	if (alog_min < 0) {
		const char *v = getenv("UNDE_LOG_LEVEL");
		alog_min = !v ? 1 : strcmp(v, "debug") == 0 ? 0 : strcmp(v, "warn") == 0 ? 2
			       : strcmp(v, "error") == 0 ? 3 : 1;
	}
	int level = status >= 500 ? 2 : 1;
	if (level < alog_min)
		return;
	static struct alog l;
	l.n = 0;
	l.failed = 0;
	alog_ts(&l);
	alog_str(&l, level == 2 ? ",\"level\":\"warn\"" : ",\"level\":\"info\"");
	alog_str(&l, ",\"cmd\":\"unde-httpd\",\"request_id\":");
	alog_json(&l, rid, strlen(rid));
	alog_str(&l, ",\"msg\":\"request\",\"method\":");
	if (c->have_head) {
		alog_json(&l, c->head + c->req.method.off, c->req.method.len);
		alog_str(&l, ",\"path\":");
		alog_json(&l, c->head + c->req.path.off, c->req.path.len);
	} else {
		alog_str(&l, "null,\"path\":null");
	}
	alog_str(&l, ",\"route\":");
	alog_json(&l, label, strlen(label));
	alog_str(&l, ",\"status\":");
	alog_num(&l, (unsigned long long)status);
	alog_str(&l, ",\"bytes\":");
	alog_num(&l, c->sent);
	alog_str(&l, ",\"duration_ms\":");
	unsigned long long us = ms > 0 ? (unsigned long long)(ms * 1000.0 + 0.5) : 0;
	alog_num(&l, us / 1000);
	char frac[4] = { '.', (char)('0' + us % 1000 / 100), (char)('0' + us % 100 / 10),
			 (char)('0' + us % 10) };
	alog_raw(&l, frac, sizeof frac);
	if (error) {
		alog_str(&l, ",\"error\":");
		alog_json(&l, error, strlen(error));
	}
	alog_raw(&l, "}\n", 2);
	if (!l.failed)
		fwrite(l.b, 1, l.n, stderr);
	fflush(stderr);
}
