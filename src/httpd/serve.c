/* serve.c — one request: route it, read its body, hand one JSON line to
 * the route's command, turn what comes back (a line, an exit status, or
 * silence) into an answer, then log and count it. */
#include "config.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/random.h>
#include <sys/types.h>
#include <unistd.h>

#include <jansson.h>

#include "httpd.h"
#include "jscan.h"
#include "log.h"
#include "serve.h"
#include "util.h"

#define SERVE_QUERY_PART_MAX 8192
#define SERVE_SHOWN_MAX 64 /* bytes of a query key quoted in a message */

/* The access-log line (one per request, journald picks it up) and the
 * shared counters, for every answer whatever its source. */
static void serve_log(struct conn *c, const char *rid, const struct outcome *o)
{
	double ms = util_now_ms() - c->started_ms;
	access_log(c, rid, o->label, o->status, o->error[0] ? o->error : NULL, ms);
	stats_request(c->stats, o->label, o->status, ms);
	c->served++;
}

void serve_log_message(struct conn *c, const char *rid, const char *label, int status,
		       const char *error, double started_ms)
{
	double ms = util_now_ms() - started_ms;
	access_log(c, rid, label, status, error, ms);
	stats_request(c->stats, label, status, ms);
}

/* The short error code of a status we produce ourselves. */
static const char *serve_code(int status)
{
	switch (status) {
	case 400: return "bad_request";
	case 404: return "not_found";
	case 405: return "method_not_allowed";
	case 408: return "request_timeout";
	case 411: return "length_required";
	case 413: return "body_too_large";
	case 417: return "expectation_failed";
	case 431: return "header_too_large";
	case 501: return "not_implemented";
	case 503: return "unavailable";
	case 504: return "timeout";
	case 505: return "http_version_not_supported";
	default: return "internal";
	}
}

/* A new request id (UUID v4). util_uuid4() would do, but its first use
 * initialises OpenSSL's RNG, reading openssl.cnf: about 5 ms, paid again
 * by every connection since each is a fresh process. Ids need to be
 * unique, not secret: splitmix64 seeded once per process by getrandom(2)
 * saves that start-up and a system call per request. */
void serve_new_rid(char out[37])
{
	static uint64_t state;
	static int seeded;
	if (!seeded) {
		if (getrandom(&state, sizeof state, 0) != (ssize_t)sizeof state)
			state = (uint64_t)util_now_ms() ^ ((uint64_t)getpid() << 32);
		seeded = 1;
	}
	unsigned char b[16];
	for (int half = 0; half < 2; half++) {
		uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
		z ^= z >> 31;
		memcpy(b + 8 * half, &z, 8);
	}
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[b[i] >> 4];
		out[o++] = hex[b[i] & 15];
	}
	out[o] = '\0';
}

/* An X-Request-Id we can carry: 1..128 of [A-Za-z0-9._:-]. */
static int serve_rid_ok(const char *s, size_t n)
{
	if (n == 0 || n > HTTPD_REQUEST_ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		      ch == '.' || ch == '_' || ch == ':' || ch == '-'))
			return 0;
	}
	return 1;
}

void outcome_error(struct outcome *o, const char *label, int status, const char *code,
		   const char *fmt, ...)
{
	o->label = label;
	o->status = status;
	snprintf(o->error, sizeof o->error, "%s", code ? code : serve_code(status));
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(o->message, sizeof o->message, fmt, ap);
	va_end(ap);
}

/* The one place a request is answered and logged. An error answer of ours
 * keeps the connection open only when the request was read whole (or had
 * no body): unread body bytes would be taken for the next request. */
void serve_finish(struct conn *c, char *rid, struct outcome *o)
{
	if (o->silent) {
		buf_free(&o->body);
		return;
	}
	assert(o->label && o->status >= 100); /* every path says what became of it */
	if (!rid[0])
		serve_new_rid(rid);
	if (o->close)
		c->keep_alive = 0;
	if (!o->sent) {
		if (o->body.len || !o->error[0]) {
			struct answer a = { .status = o->status, .ctype = o->ctype, .body = o->body.data,
					    .len = o->body.len, .allow = o->allow[0] ? o->allow : NULL,
					    .extra = o->extra, .request_id = rid, .close = o->close };
			resp_send(c, &a);
		} else {
			int close = o->close || (o->unread_body && c->req.body != HP_BODY_NONE);
			resp_error(c, o->status, o->error, o->message, rid, o->allow[0] ? o->allow : NULL,
				   o->extra, close);
		}
	}
	serve_log(c, rid, o);
	buf_free(&o->body);
}

/* A request refused before routing (bad head or framing, 408, 413, 431):
 * answered, logged as "unmatched", and the connection closed: the stream
 * can no longer be trusted to be in step. */
void serve_reject(struct conn *c, const struct conn_error *e)
{
	char rid[37] = "";
	struct outcome o = { 0 };
	outcome_error(&o, SERVE_LABEL_UNMATCHED, e->status, NULL, "%s", e->why);
	o.close = 1;
	serve_finish(c, rid, &o);
}

/* Built-in GET /health: 200 when every route's command can be run. */
static void serve_health(struct conn *c, struct outcome *o)
{
	json_t *missing = json_array();
	for (size_t i = 0; i < c->routes->n; i++) {
		const struct route *r = &c->routes->r[i];
		if (routes_command_exists(r))
			continue;
		int dup = 0;
		size_t k;
		json_t *v;
		json_array_foreach(missing, k, v) dup |= strcmp(json_string_value(v), r->argv[0]) == 0;
		if (!dup)
			json_array_append_new(missing, json_string(r->argv[0]));
	}
	int ok = json_array_size(missing) == 0;
	json_t *j = ok ? json_pack("{s:s}", "status", "ok")
		       : json_pack("{s:s, s:o}", "status", "unavailable", "missing", missing);
	if (ok)
		json_decref(missing);
	char *text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	buf_append(&o->body, text, strlen(text));
	buf_append(&o->body, "\n", 1);
	free(text);
	o->label = "GET /health";
	o->status = ok ? 200 : 503;
	if (!ok)
		snprintf(o->error, sizeof o->error, "command_missing");
}

/* Built-in GET /metrics: the shared counters in Prometheus text format. */
static void serve_metrics(struct conn *c, struct outcome *o)
{
	if (!c->stats) {
		outcome_error(o, "GET /metrics", 503, "metrics_unavailable",
			      "the metrics file could not be opened (see the log)");
		return;
	}
	char *text = stats_render(c->stats);
	buf_append(&o->body, text, strlen(text));
	free(text);
	o->label = "GET /metrics";
	o->status = 200;
	o->ctype = "text/plain; version=0.0.4; charset=utf-8";
}

/* The length of the valid UTF-8 character at s[0..n), or 0. */
static size_t serve_utf8_char(const unsigned char *s, size_t n)
{
	size_t len = s[0] < 0x80 ? 1 : (s[0] & 0xe0) == 0xc0 ? 2 : (s[0] & 0xf0) == 0xe0 ? 3
		   : (s[0] & 0xf8) == 0xf0 ? 4 : 0;
	if (len == 0 || len > n || (len == 2 && s[0] < 0xc2) || (len == 4 && s[0] > 0xf4))
		return 0;
	for (size_t i = 1; i < len; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	if ((len == 3 && s[0] == 0xe0 && s[1] < 0xa0) || (len == 3 && s[0] == 0xed && s[1] > 0x9f) ||
	    (len == 4 && s[0] == 0xf0 && s[1] < 0x90) || (len == 4 && s[0] == 0xf4 && s[1] > 0x8f))
		return 0;
	return len;
}

/* At most max bytes of s for a message, cut on a character boundary, with
 * bytes that are not UTF-8 shown as '?', so the error body can always be
 * built (an error that cannot be written is no error at all). */
static void serve_show(const char *s, size_t max, char *out, size_t cap)
{
	size_t n = strlen(s), i = 0, o = 0;
	assert(cap > max);
	while (i < n) {
		size_t k = serve_utf8_char((const unsigned char *)s + i, n - i);
		size_t w = k ? k : 1;
		if (o + w > max)
			break;
		if (k)
			memcpy(out + o, s + i, k);
		else
			out[o] = '?';
		o += w;
		i += w;
	}
	out[o] = '\0';
}

/* Add the query parameters to fields; a name given twice, or also present
 * in the body, is refused rather than guessed at. */
static int serve_query(struct conn *c, json_t *fields, const struct jscan *body, char *msg,
		       size_t msglen)
{
	const char *q = c->head + c->req.query.off;
	size_t qlen = c->req.query.len, pos = 0, kl, vl;
	char key[SERVE_QUERY_PART_MAX], val[SERVE_QUERY_PART_MAX];
	const char *why = NULL;
	int rc;
	while ((rc = hp_query_next(q, qlen, &pos, key, sizeof key, &kl, val, sizeof val, &vl,
				   &why)) == 1) {
		if (strlen(key) != kl || strcmp(key, "request_id") == 0 || json_object_get(fields, key) ||
		    (body && jscan_has_key(body, key, kl))) {
			char shown[SERVE_SHOWN_MAX + 1];
			serve_show(key, SERVE_SHOWN_MAX, shown, sizeof shown);
			snprintf(msg, msglen, "query parameter '%s' is repeated, reserved or also in the body",
				 shown);
			return -1;
		}
		json_t *v = json_stringn(val, vl);
		if (!v || json_object_set_new(fields, key, v) != 0) {
			snprintf(msg, msglen, "query parameter is not valid UTF-8");
			return -1;
		}
	}
	if (rc < 0) {
		snprintf(msg, msglen, "%s", why);
		return -1;
	}
	return 0;
}

/* The body with the fields spliced in front of its own members, keeping
 * the client's text as sent (numbers are not re-formatted). Line breaks
 * can only be whitespace in valid JSON: they become spaces. */
static char *serve_splice(const char *body, size_t blen, size_t body_keys, const json_t *fields,
			  size_t *outlen)
{
	char *ftext = json_dumps(fields, JSON_COMPACT);
	size_t flen = strlen(ftext);
	size_t s = 0, e = blen;
	while (s < e && body[s] != '{')
		s++;
	while (e > s && body[e - 1] != '}')
		e--;
	size_t cap = flen + (e - s) + 3;
	char *line = xmalloc(cap);
	size_t n = 0;
	if (body_keys == 0 || blen == 0) {
		memcpy(line, ftext, flen);
		n = flen;
	} else if (json_object_size(fields) == 0) {
		memcpy(line, body + s, e - s);
		n = e - s;
	} else {
		memcpy(line, ftext, flen - 1);
		n = flen - 1;
		line[n++] = ',';
		memcpy(line + n, body + s + 1, e - s - 1);
		n += e - s - 1;
	}
	free(ftext);
	for (size_t i = 0; i < n; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	line[n++] = '\n';
	*outlen = n;
	return line;
}

/* The body with its top-level request_id's value replaced by rid, the
 * rest of the text untouched (numbers keep their digits); vs..ve is the
 * value's span, found by the scan. */
static char *serve_replace_rid(const char *body, size_t blen, size_t vs, size_t ve,
			       const char *rid, size_t *outlen)
{
	size_t rl = strlen(rid), n = vs + rl + 2 + (blen - ve);
	char *out = xmalloc(n + 1);
	memcpy(out, body, vs);
	out[vs] = '"';
	memcpy(out + vs + 1, rid, rl); /* [A-Za-z0-9._:-]: nothing to escape */
	out[vs + 1 + rl] = '"';
	memcpy(out + vs + rl + 2, body + ve, blen - ve);
	out[n] = '\0';
	*outlen = n;
	return out;
}

/* Build the command's input line: the body object, the query parameters
 * and request_id. Sets rid (from X-Request-Id, else the body's own, else
 * new). Returns the line, or NULL with msg set (a 400). */
char *serve_input(struct conn *c, char rid[HTTPD_REQUEST_ID_MAX + 1], size_t *len,
			 char *msg, size_t msglen)
{
	struct jscan sc;
	int have = c->blen > 0;
	if (have) {
		const char *why;
		size_t where;
		if (jscan_object(&sc, c->body, c->blen, &why, &where) != 0) {
			if (strcmp(why, "request body must be a JSON object") == 0)
				snprintf(msg, msglen, "%s", why);
			else
				snprintf(msg, msglen, "request body is not valid JSON: %s at byte %zu",
					 why, where);
			jscan_free(&sc);
			return NULL;
		}
	}
	int body_rid = have && sc.has_rid;
	int from_body = 0;
	if (!rid[0] && body_rid && sc.rid_is_string && sc.ridlen < sizeof sc.rid &&
	    strlen(sc.rid) == sc.ridlen && serve_rid_ok(sc.rid, sc.ridlen)) {
		snprintf(rid, HTTPD_REQUEST_ID_MAX + 1, "%s", sc.rid);
		from_body = 1;
	}
	if (!rid[0])
		serve_new_rid(rid);
	json_t *fields = json_object();
	char *replaced = NULL;
	size_t rlen = 0;
	if (body_rid && !from_body)
		/* The body's own request_id is replaced in its text, so that the
		 * rest stays as the client wrote it. */
		replaced = serve_replace_rid(c->body, c->blen, sc.rid_off, sc.rid_end, rid, &rlen);
	else if (!from_body)
		json_object_set_new(fields, "request_id", json_string(rid));
	char *line = NULL;
	if (serve_query(c, fields, have ? &sc : NULL, msg, msglen) == 0) {
		size_t keys = have ? sc.top_n : 0;
		line = replaced ? serve_splice(replaced, rlen, keys, fields, len)
				: serve_splice(c->body, c->blen, keys, fields, len);
	}
	free(replaced);
	json_decref(fields);
	if (have)
		jscan_free(&sc);
	return line;
}


/* A built-in answers GET only; a body sent to it is not read, so the
 * connection closes after the answer. */
static void serve_builtin(struct conn *c, const char *method, const char *path,
			  struct outcome *o)
{
	const char *label = strcmp(path, "/health") == 0 ? "GET /health" : "GET /metrics";
	if (strcmp(method, "GET") != 0) {
		outcome_error(o, label, 405, NULL, "this path answers GET only");
		snprintf(o->allow, sizeof o->allow, "GET");
		o->unread_body = 1;
		return;
	}
	if (c->req.body != HP_BODY_NONE)
		o->close = 1;
	if (label[5] == 'h')
		serve_health(c, o);
	else
		serve_metrics(c, o);
}

/* Route the request, read its body, run it: everything but answering. */
static void serve_route(struct conn *c, char rid[HTTPD_REQUEST_ID_MAX + 1], struct outcome *o)
{
	const struct hp_request *q = &c->req;
	char method[HP_MAX_METHOD + 1];
	char path[HTTPD_MAX_REQUEST_LINE + 1];
	char msg[512];
	const char *why = "bad path";
	memcpy(method, c->head + q->method.off, q->method.len);
	method[q->method.len] = '\0';
	if (hp_decode_path(c->head + q->path.off, q->path.len, path, sizeof path, &why) < 0) {
		outcome_error(o, SERVE_LABEL_UNMATCHED, 400, "bad_path", "%s", why);
		o->unread_body = 1;
		return;
	}
	if (strcmp(path, "/health") == 0 || strcmp(path, "/metrics") == 0) {
		serve_builtin(c, method, path, o);
		return;
	}
	int known = 0;
	char allow[512];
	const struct route *r = routes_find(c->routes, method, path, &known, allow, sizeof allow);
	if (!r && strcmp(method, "GET") == 0)
		r = routes_find(c->routes, "WS", path, &known, allow, sizeof allow);
	if (!r) {
		o->unread_body = 1;
		if (known) {
			outcome_error(o, SERVE_LABEL_UNMATCHED, 405, NULL, "method not allowed on this path");
			snprintf(o->allow, sizeof o->allow, "%s", allow);
		} else {
			outcome_error(o, SERVE_LABEL_UNMATCHED, 404, NULL, "no route for this path");
		}
		return;
	}
	if (strcmp(r->method, "WS") == 0) {
		ws_serve(c, r, rid, o);
		return;
	}
	struct conn_error e;
	if (conn_waits_for_continue(c) && resp_continue(c) != 0) {
		o->silent = 1;
		c->broken = 1;
		return;
	}
	enum conn_read rd = conn_read_body(c, &e);
	if (rd != CONN_READY) {
		if (rd == CONN_ERROR) {
			outcome_error(o, r->label, e.status, NULL, "%s", e.why);
			o->unread_body = 1;
		} else {
			/* The client left half-way: nothing reaches the command. */
			c->broken = 1;
			o->silent = 1;
			if (!rid[0])
				serve_new_rid(rid);
			log_set_request_id(rid);
			log_event(LOG_INFO, "client closed the connection before sending the whole body",
				  json_pack("{s:s}", "route", r->label));
			log_set_request_id(NULL);
		}
		return;
	}
	size_t len = 0;
	char *line = serve_input(c, rid, &len, msg, sizeof msg);
	if (!line) {
		outcome_error(o, r->label, 400, "invalid_body", "%s", msg);
		return;
	}
	if (r->streaming)
		exchange_stream(c, r, line, len, rid, o);
	else
		exchange_route(c, r, line, len, rid, o);
	free(line);
}

void serve_request(struct conn *c)
{
	const struct hp_request *q = &c->req;
	char rid[HTTPD_REQUEST_ID_MAX + 1] = "";
	c->keep_alive = q->keep_alive;
	c->sent = 0;
	if (q->has_request_id && serve_rid_ok(c->head + q->request_id.off, q->request_id.len)) {
		memcpy(rid, c->head + q->request_id.off, q->request_id.len);
		rid[q->request_id.len] = '\0';
	}
	struct outcome o = { 0 };
	serve_route(c, rid, &o);
	serve_finish(c, rid, &o);
}
