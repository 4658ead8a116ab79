/* exchange.c — the conversation with a route's command.
 *
 * A plain route keeps one command per connection: a line in, a line out,
 * as many times as the client asks (keep-alive never pays a fork+exec per
 * request). Progress lines (a "stage" other than "done") are skipped; the
 * first other line is the answer. A streaming route starts its command
 * per request and sends every line as it comes, until the command exits;
 * with keep=connection its command is kept like a plain route's, and
 * each stream ends with the line that would be a plain route's answer.
 * Whatever goes wrong — no answer in time, a crash, an exit, garbage — the
 * command is reaped or killed and the client gets a JSON error. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "deadline.h"
#include "httpd.h"
#include "jscan.h"
#include "log.h"
#include "serve.h"
#include "status.h"
#include "util.h"


/* HTTP status for a command's {"error":…} line, by its sysexits status
 * (lib/status.h); an error line without a status is the record's fault. */
static int exchange_error_line_status(const json_t *err)
{
	json_int_t st = json_integer_value(json_object_get(err, "status"));
	return st == 0 ? 400 : status_http_for_exit((int)st);
}

/* HTTP status for a command that ended without answering: exit 64/65 →
 * 400, 69/75 → 503, a signal or any other exit → 500. */
static int exchange_exit_status(int wstatus, const char *cmd, char *msg, size_t msglen,
				const char **code)
{
	if (WIFSIGNALED(wstatus)) {
		int sig = WTERMSIG(wstatus);
		snprintf(msg, msglen, "%s was killed by signal %d (%s)", cmd, sig, strsignal(sig));
		*code = "command_crashed";
		return 500;
	}
	int st = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
	if (st == 0)
		snprintf(msg, msglen, "%s exited without answering", cmd);
	else
		snprintf(msg, msglen, "%s exited with status %d", cmd, st);
	*code = "command_failed";
	return st > 0 ? status_http_for_exit(st) : 500;
}


/* A small top-level member's value, decoded by jansson (NULL if absent). */
static json_t *exchange_member(const struct jscan *sc, const char *line, const char *key)
{
	const struct jscan_key *k = jscan_find(sc, key, strlen(key));
	return k ? json_loadb(line + k->vs, k->ve - k->vs, JSON_DECODE_ANY, NULL) : NULL;
}

/* What an output line is, by a full validating scan of it (two values on
 * a line, invalid UTF-8, duplicate or escaped keys: what the client gets
 * is what we checked); no tree of it is built, only its stage and error
 * members are decoded. A line with a "stage" other than "done" is
 * progress; any other object is the answer. A line whose request_id is not
 * rid — or an answer without one, when require_rid — belongs to another
 * request: foreign. *status is 200, or the error line's status with its
 * code copied to code. */
int exchange_classify(const char *line, size_t n, const char *rid, int require_rid,
			     int *status, char *code)
{
	*status = 200;
	code[0] = '\0';
	struct jscan sc;
	const char *why;
	size_t where;
	if (jscan_object(&sc, line, n, &why, &where) != 0) {
		jscan_free(&sc);
		return LINE_GARBAGE;
	}
	int kind = LINE_ANSWER;
	json_t *stage = exchange_member(&sc, line, "stage");
	if (json_is_string(stage) && strcmp(json_string_value(stage), "done") != 0)
		kind = LINE_PROGRESS;
	json_decref(stage);
	if (sc.has_rid ? !sc.rid_is_string || sc.ridlen != strlen(rid) || strcmp(sc.rid, rid) != 0
		       : kind == LINE_ANSWER && require_rid)
		kind = LINE_FOREIGN;
	json_t *err = kind == LINE_ANSWER ? exchange_member(&sc, line, "error") : NULL;
	if (err && !json_is_null(err)) {
		*status = exchange_error_line_status(err);
		const char *c = json_string_value(json_object_get(err, "code"));
		snprintf(code, EXCHANGE_CODE_MAX, "%s", c ? c : "command_error");
	}
	json_decref(err);
	jscan_free(&sc);
	return kind;
}

/* The command broke the conversation (garbage, a line for another request,
 * two answers): it is stopped, the client gets 500 and the connection
 * closes, since nothing after this can be trusted to be in step. */
static void exchange_broken(struct conn *c, struct child *k, const struct route *r, int kind,
			    struct outcome *o)
{
	child_kill(k);
	(void)c;
	if (kind == LINE_GARBAGE)
		outcome_error(o, r->label, 500, "bad_answer",
			      "%s answered with something that is not a JSON object", r->argv[0]);
	else if (kind == LINE_FOREIGN)
		outcome_error(o, r->label, 500, "unasked_answer",
			      "%s answered with a line that does not carry this request's request_id (late, unasked, or for another request)",
			      r->argv[0]);
	else
		outcome_error(o, r->label, 500, "unasked_answer",
			      "%s wrote more than one answer to one request", r->argv[0]);
	o->close = 1;
}

static void exchange_spawn_failed(const struct route *r, int err, struct outcome *o)
{
	if (err == ENOENT || err == EACCES || err == ENOTDIR)
		outcome_error(o, r->label, 503, "command_missing",
			      "%s: command not found or not executable", r->argv[0]);
	else
		outcome_error(o, r->label, 500, "spawn_failed", "%s: cannot start: %s", r->argv[0],
			      strerror(err));
}

int exchange_start(struct conn *c, struct child *k, const struct route *r,
			  struct outcome *o)
{
	/* The route's timeout= is the command's budget (filter_deadline()). */
	char budget[32];
	snprintf(budget, sizeof budget, "%ld", r->timeout_ms);
	setenv(DEADLINE_ENV, budget, 1);
	int err = child_start(k, r->argv, c->conf->max_response);
	if (err) {
		exchange_spawn_failed(r, err, o);
		return -1;
	}
	stats_count(c->stats, STATS_CHILDREN_STARTED);
	return 0;
}

/* A binary=KEY route: the answer body is the line's KEY member, a base64
 * string, decoded into out. 0, or -1 when the line has no such member. */
int exchange_binary_member(const char *line, size_t n, const char *key, struct buf *out)
{
	json_t *j = json_loadb(line, n, JSON_REJECT_DUPLICATES, NULL);
	const json_t *v = json_object_get(j, key);
	const char *b64 = json_string_value(v);
	size_t blen = json_string_length(v);
	int rc = -1;
	if (b64 && blen % 4 == 0) {
		buf_reset(out);
		char *raw = xmalloc(blen / 4 * 3 + 1);
		int got = blen ? EVP_DecodeBlock((unsigned char *)raw, (const unsigned char *)b64,
						 (int)blen) : 0;
		if (got >= 0) {
			size_t pad = blen && b64[blen - 1] == '=' ? (blen > 1 && b64[blen - 2] == '=' ? 2 : 1) : 0;
			buf_append(out, raw, (size_t)got - pad);
			rc = 0;
		}
		free(raw);
	}
	json_decref(j);
	return rc;
}

/* Status, code and message for a command that stopped answering (rc), and
 * make sure it is gone: reaped when its output ended, killed otherwise. */
int exchange_end(struct conn *c, struct child *k, const struct route *r,
			enum child_rc rc, double deadline, int *exited_ok, char *msg, size_t msglen,
			const char **code)
{
	int ws = 0;
	*exited_ok = 0;
	if (rc == CHILD_EOF && child_reap(k, deadline, &ws) == 0) {
		*exited_ok = WIFEXITED(ws) && WEXITSTATUS(ws) == 0;
		return exchange_exit_status(ws, r->argv[0], msg, msglen, code);
	}
	if (rc != CHILD_EOF)
		child_kill(k);
	if (rc == CHILD_EOF || rc == CHILD_TIMEOUT) {
		stats_count(c->stats, STATS_CHILD_TIMEOUTS);
		snprintf(msg, msglen, "%s did not answer within %.3g s (killed)", r->argv[0],
			 (double)r->timeout_ms / 1000.0);
		*code = "timeout";
		return 504;
	}
	if (rc == CHILD_TOO_LONG) {
		snprintf(msg, msglen, "%s wrote a line longer than %zu bytes (killed)", r->argv[0],
			 c->conf->max_response);
		*code = "answer_too_large";
		return 500;
	}
	snprintf(msg, msglen, "%s: I/O error talking to the command (killed)", r->argv[0]);
	*code = "internal";
	return 500;
}

/* start=early: once per connection, when a request to such a route has
 * been handed to its command, start the other such routes' commands (a
 * failure to start one is left for its own first request to report). */
static void exchange_start_early(struct conn *c, const struct route *current)
{
	if (c->started_early || !current->start_early)
		return;
	c->started_early = 1;
	for (size_t i = 0; i < c->routes->n; i++) {
		const struct route *r = &c->routes->r[i];
		struct child *k = &c->kids[r->index];
		if (r == current || !r->start_early || r->streaming || k->pid)
			continue;
		struct outcome scratch = { 0 };
		if (exchange_start(c, k, r, &scratch) != 0)
			log_event(LOG_WARN, "start=early: the command did not start",
				  json_pack("{s:s, s:s}", "route", r->label, "error", scratch.message));
		buf_free(&scratch.body);
	}
}

/* The connection's command for route r, ready for a request: the one kept
 * from an earlier request when it is still in step, else a new one. NULL
 * (o says why) when it wrote something unasked or cannot be started. */
static struct child *exchange_kept_child(struct conn *c, const struct route *r,
					 struct outcome *o)
{
	struct child *k = &c->kids[r->index];
	if (k->pid) {
		int stale = child_stale(k);
		if (stale == CHILD_STALE_UNASKED) {
			log_event(LOG_WARN, "a command wrote a line nobody asked for: stopped",
				  json_pack("{s:s, s:i}", "route", r->label, "pid", (int)k->pid));
			exchange_broken(c, k, r, LINE_FOREIGN, o);
			return NULL;
		}
		if (stale == CHILD_STALE_EXITED) {
			log_event(LOG_WARN, "restarting a command that exited",
				  json_pack("{s:s, s:i}", "route", r->label, "pid", (int)k->pid));
			child_kill(k);
		}
	}
	if (!k->pid && exchange_start(c, k, r, o) != 0)
		return NULL;
	return k;
}

/* The command's next whole line, read while its input is still being
 * sent: its kind (exchange_classify), or -1 when there is none (*rc then
 * says why: the deadline, the command gone). A command that stopped
 * reading or exited may still have written its answer, so CHILD_EOF and
 * CHILD_EARLY from the send are read past. */
static int exchange_next_line(struct child *k, enum child_rc *rc, double deadline,
			      const char *rid, int require_rid, size_t *n, int *status,
			      char code[EXCHANGE_CODE_MAX])
{
	if (*rc == CHILD_EOF || *rc == CHILD_EARLY)
		*rc = CHILD_OK;
	if (*rc != CHILD_OK || (*rc = child_line(k, deadline, n)) != CHILD_OK)
		return -1;
	return exchange_classify(k->buf, *n, rid, require_rid, status, code);
}

void exchange_route(struct conn *c, const struct route *r, const char *line, size_t len,
		    const char *rid, struct outcome *o)
{
	double deadline = util_now_ms() + (double)r->timeout_ms;
	char code[EXCHANGE_CODE_MAX];
	o->label = r->label;
	struct child *k = exchange_kept_child(c, r, o);
	if (!k)
		return;
	size_t sent = 0;
	enum child_rc rc = child_send(k, line, len, &sent, deadline, 1);
	exchange_start_early(c, r);
	size_t n = 0;
	int status, kind;
	while ((kind = exchange_next_line(k, &rc, deadline, rid, 1, &n, &status, code)) >= 0) {
		if (kind == LINE_PROGRESS) {
			child_take(k, n + 1);
			if (sent < len)
				rc = child_send(k, line, len, &sent, deadline, 1);
			continue;
		}
		if (kind != LINE_ANSWER || k->len > n + 1) {
			exchange_broken(c, k, r, kind != LINE_ANSWER ? kind : -1, o);
			return;
		}
		o->status = status;
		snprintf(o->error, sizeof o->error, "%s", code);
		if (status == 200 && r->binary_key[0]) {
			if (exchange_binary_member(k->buf, n, r->binary_key, &o->body) != 0) {
				child_take(k, n + 1);
				outcome_error(o, r->label, 500, "bad_answer",
					      "%s answered without a base64 string in \"%s\"", r->argv[0],
					      r->binary_key);
			} else {
				o->ctype = r->ctype;
				child_take(k, n + 1);
			}
		} else {
			buf_append(&o->body, k->buf, n + 1);
			child_take(k, n + 1);
		}
		if (sent < len) {
			/* The rest of the line would be read as the next request. */
			log_event(LOG_INFO, "a command answered before reading its whole input: stopped",
				  json_pack("{s:s, s:i}", "route", r->label, "pid", (int)k->pid));
			child_kill(k);
		}
		return;
	}
	const char *ecode = "internal";
	char msg[512];
	int exited_ok;
	status = exchange_end(c, k, r, rc, deadline, &exited_ok, msg, sizeof msg, &ecode);
	outcome_error(o, r->label, status, ecode, "%s", msg);
}

/* The last line of a stream that ended badly: the error, as a line. */
static void exchange_stream_error(struct conn *c, const char *code, const char *msg, int status,
				  const char *rid)
{
	json_t *j = json_pack("{s:{s:s, s:s, s:i}, s:s}", "error", "code", code, "message", msg,
			      "status", status, "request_id", rid);
	char *t = j ? json_dumps(j, JSON_COMPACT) : NULL;
	if (t)
		resp_stream_line(c, t, strlen(t));
	free(t);
	json_decref(j);
}

/* After a kept stream's last line: a command that has more output, or has
 * not read all of its input, is out of step with the connection; it is
 * stopped (the next request starts another) and the connection closes. */
static void exchange_stream_kept_end(struct child *k, const struct route *r, size_t sent,
				     size_t len, struct outcome *o)
{
	if (k->len == 0 && sent == len)
		return;
	log_event(LOG_WARN, k->len ? "a streaming command wrote past its answer: stopped"
				   : "a streaming command answered before reading its whole input: stopped",
		  json_pack("{s:s, s:i}", "route", r->label, "pid", (int)k->pid));
	if (k->len) {
		o->close = 1;
		if (!o->error[0])
			snprintf(o->error, sizeof o->error, "unasked_answer");
	}
	child_kill(k);
}

void exchange_stream(struct conn *c, const struct route *r, const char *line, size_t len,
		     const char *rid, struct outcome *o)
{
	struct child own, *k = &own;
	double deadline = util_now_ms() + (double)r->timeout_ms;
	char msg[512], code[EXCHANGE_CODE_MAX];
	int kept = r->keep_command;
	o->label = r->label;
	if (kept ? !(k = exchange_kept_child(c, r, o)) : exchange_start(c, k, r, o) != 0)
		return;
	size_t sent = 0;
	enum child_rc rc = child_send(k, line, len, &sent, deadline, kept);
	if (!kept)
		child_close_input(k);
	int started = 0, bad = 0;
	size_t n = 0;
	int status, kind;
	while ((kind = exchange_next_line(k, &rc, deadline, rid, 0, &n, &status, code)) >= 0) {
		if (kind == LINE_GARBAGE || kind == LINE_FOREIGN) {
			if (!started) {
				exchange_broken(c, k, r, kind, o);
				return;
			}
			bad = kind;
			break;
		}
		if (!started) {
			if (status != 200) {
				/* Not started yet: the answer can still be an error. */
				o->status = status;
				snprintf(o->error, sizeof o->error, "%s", code);
				buf_append(&o->body, k->buf, n + 1);
				child_take(k, n + 1);
				if (kept)
					exchange_stream_kept_end(k, r, sent, len, o);
				else
					child_reap(k, deadline, NULL);
				return;
			}
			if (resp_stream_start(c, rid) != 0)
				break;
			started = 1;
			o->sent = 1;
			o->status = 200;
		}
		if (resp_stream_line(c, k->buf, n) != 0)
			break;
		child_take(k, n + 1);
		if (kept && kind == LINE_ANSWER) {
			exchange_stream_kept_end(k, r, sent, len, o);
			resp_stream_end(c);
			return;
		}
		if (kept && sent < len)
			rc = child_send(k, line, len, &sent, deadline, 1);
	}
	if (c->broken) {
		child_kill(k);
		o->status = 200;
		o->sent = 1;
		snprintf(o->error, sizeof o->error, "client_gone");
		return;
	}
	const char *ecode = "internal";
	int exited_ok;
	if (bad) {
		child_kill(k);
		snprintf(msg, sizeof msg, bad == LINE_GARBAGE
				? "%s wrote a line that is not a JSON object (stopped)"
				: "%s wrote a line for another request (stopped)", r->argv[0]);
		ecode = bad == LINE_GARBAGE ? "bad_answer" : "unasked_answer";
		status = 500;
		exited_ok = 0;
	} else {
		status = exchange_end(c, k, r, rc, deadline, &exited_ok, msg, sizeof msg, &ecode);
		/* A kept command owes an answer line; ending without one is a failure. */
		if (kept && exited_ok && started) {
			exited_ok = 0;
			snprintf(msg, sizeof msg, "%s exited before its answer's last line", r->argv[0]);
			ecode = "command_failed";
			status = 500;
		}
	}
	if (!started) {
		outcome_error(o, r->label, status, ecode, "%s", msg);
		return;
	}
	if (!exited_ok) {
		exchange_stream_error(c, ecode, msg, status, rid);
		snprintf(o->error, sizeof o->error, "%s", ecode);
	}
	resp_stream_end(c);
}
