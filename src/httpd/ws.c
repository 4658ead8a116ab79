/* ws.c — a WebSocket route (RFC 6455), framed by Debian's wslay.
 *
 *   WS /stream  timeout=30 binary=audio  unde-voice --stream
 *
 * The handshake is a GET with Upgrade: websocket, Connection: Upgrade,
 * Sec-WebSocket-Version: 13 and a Sec-WebSocket-Key of 16 bytes; anything
 * else is refused with 400 (426 with the version we speak for a wrong
 * version). After the 101 the connection carries messages, one exchange at
 * a time with the route's command, kept for the whole connection like a
 * keep-alive HTTP one:
 *
 *  - each text message is a JSON object: it goes to the command as one
 *    line (request_id added, as for a body); its progress lines are sent
 *    back as they come — a line carrying the route's binary=KEY as a
 *    binary message of the decoded bytes, any other as a text message —
 *    and its answer line ends the exchange as a text message;
 *  - a message that is not a JSON object, or a command that fails, times
 *    out or crashes, gets a text message {"error":…} and the connection
 *    goes on (the command is started again for the next message);
 *  - invalid UTF-8 closes with 1007, a binary message with 1003, a message
 *    over --max-body with 1009 (wslay), an unmasked or malformed frame
 *    with 1002 (wslay), too many messages waiting with 1008, no frame for
 *    --ws-idle-timeout with 1001; pings are answered (wslay); fragments
 *    are joined (wslay) before a message counts.
 *
 * One access-log line per message, and one for the connection (status 101)
 * when it ends, with the close code. */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <wslay/wslay.h>

#include "httpd.h"
#include "log.h"
#include "serve.h"
#include "util.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_QUEUE_MAX 8        /* text messages waiting for the command */
#define WS_CLOSE_GRACE_MS 2000 /* for the peer's close after ours */
#define WS_SLICE_MS 1          /* one look at the command's output */

struct ws {
	struct conn *c;
	const struct route *r;
	wslay_event_context_ptr ctx;
	struct child *k;
	struct buf queue[WS_QUEUE_MAX];
	size_t qhead, qn;
	int busy;                 /* a message is with the command */
	char rid[HTTPD_REQUEST_ID_MAX + 1];
	double msg_started, msg_deadline;
	double last_frame;        /* for the idle timeout */
	double close_deadline;    /* after we queued a close: 0 before */
	int peer_gone;
	int close_code;           /* ours, 0 when we did not close */
	unsigned long messages;
};

/* The value of header name in the request, or NULL (*len set). */
static const char *ws_header(const struct conn *c, const char *name, size_t *len)
{
	for (unsigned i = 0; i < c->req.nheaders; i++) {
		const struct hp_header *h = &c->req.headers[i];
		if (hp_span_eq(c->head, h->name, name)) {
			*len = h->value.len;
			return c->head + h->value.off;
		}
	}
	return NULL;
}

/* Does the comma-separated header value list the token (any case)? */
static int ws_has_token(const char *v, size_t len, const char *token)
{
	size_t tl = strlen(token), i = 0;
	while (i < len) {
		while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		size_t s = i;
		while (i < len && v[i] != ',')
			i++;
		size_t e = i;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e - s == tl && strncasecmp(v + s, token, tl) == 0)
			return 1;
	}
	return 0;
}

/* Is s[0..n) valid UTF-8 (RFC 3629: no overlongs, surrogates or values
 * above U+10FFFF)? Text messages must be (RFC 6455 §8.1). */
static int ws_utf8_ok(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned char b = s[i];
		size_t len = b < 0x80 ? 1 : (b & 0xe0) == 0xc0 ? 2 : (b & 0xf0) == 0xe0 ? 3
			   : (b & 0xf8) == 0xf0 ? 4 : 0;
		if (len == 0 || i + len > n || (len == 2 && b < 0xc2) || (len == 4 && b > 0xf4))
			return 0;
		for (size_t j = 1; j < len; j++)
			if ((s[i + j] & 0xc0) != 0x80)
				return 0;
		if ((len == 3 && b == 0xe0 && s[i + 1] < 0xa0) || (len == 3 && b == 0xed && s[i + 1] > 0x9f) ||
		    (len == 4 && b == 0xf0 && s[i + 1] < 0x90) || (len == 4 && b == 0xf4 && s[i + 1] > 0x8f))
			return 0;
		i += len;
	}
	return 1;
}

/* Check the handshake; fill accept (base64 SHA-1 of key + GUID). 0, or -1
 * with o set to the refusal. */
static int ws_handshake(struct conn *c, const struct route *r, char accept[64], struct outcome *o)
{
	size_t n = 0;
	const char *v;
	if (c->req.minor != 1) {
		outcome_error(o, r->label, 400, "bad_handshake", "a WebSocket handshake needs HTTP/1.1");
		return -1;
	}
	if (c->req.body != HP_BODY_NONE) {
		outcome_error(o, r->label, 400, "bad_handshake", "a WebSocket handshake has no body");
		o->unread_body = 1;
		return -1;
	}
	v = ws_header(c, "upgrade", &n);
	if (!v || !ws_has_token(v, n, "websocket")) {
		outcome_error(o, r->label, 426, "upgrade_required",
			      "this path is a WebSocket: send Upgrade: websocket");
		o->extra = "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n";
		return -1;
	}
	v = ws_header(c, "connection", &n);
	if (!v || !ws_has_token(v, n, "upgrade")) {
		outcome_error(o, r->label, 400, "bad_handshake", "Connection must list Upgrade");
		return -1;
	}
	v = ws_header(c, "sec-websocket-version", &n);
	if (!v || n != 2 || memcmp(v, "13", 2) != 0) {
		outcome_error(o, r->label, 426, "bad_websocket_version",
			      "Sec-WebSocket-Version must be 13");
		o->extra = "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n";
		return -1;
	}
	v = ws_header(c, "sec-websocket-key", &n);
	unsigned char raw[24];
	if (!v || n != 24 || v[22] != '=' || v[23] != '=' ||
	    EVP_DecodeBlock(raw, (const unsigned char *)v, 24) != 18) {
		outcome_error(o, r->label, 400, "bad_handshake",
			      "Sec-WebSocket-Key must be the base64 of 16 bytes");
		return -1;
	}
	char both[24 + sizeof WS_GUID];
	memcpy(both, v, 24);
	memcpy(both + 24, WS_GUID, sizeof WS_GUID);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_Digest(both, 24 + sizeof WS_GUID - 1, md, &mdlen, EVP_sha1(), NULL);
	EVP_EncodeBlock((unsigned char *)accept, md, (int)mdlen);
	return 0;
}

/* wslay reads: first what came after the handshake's head, then the socket. */
static ssize_t ws_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
		       void *user)
{
	struct ws *w = user;
	struct conn *c = w->c;
	(void)flags;
	if (c->ilen > 0) {
		size_t take = c->ilen < len ? c->ilen : len;
		memcpy(buf, c->ibuf, take);
		memmove(c->ibuf, c->ibuf + take, c->ilen - take);
		c->ilen -= take;
		return (ssize_t)take;
	}
	ssize_t n = read(c->in, buf, len);
	if (n > 0)
		return n;
	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	w->peer_gone = 1;
	wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
	return -1;
}

static ssize_t ws_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
		       void *user)
{
	struct ws *w = user;
	(void)flags;
	ssize_t n = write(w->c->out, data, len);
	if (n >= 0)
		return n;
	if (errno == EAGAIN || errno == EINTR) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	w->peer_gone = 1;
	wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
	return -1;
}

static void ws_close(struct ws *w, int code, const char *reason)
{
	if (w->close_deadline)
		return;
	w->close_code = code;
	w->close_deadline = util_now_ms() + WS_CLOSE_GRACE_MS;
	wslay_event_queue_close(w->ctx, (uint16_t)code, (const uint8_t *)reason, strlen(reason));
}

static void ws_queue(struct ws *w, int opcode, const void *data, size_t len)
{
	struct wslay_event_msg m = { (uint8_t)opcode, data, len };
	wslay_event_queue_msg(w->ctx, &m); /* wslay copies the data */
}

static void ws_on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
		      void *user)
{
	struct ws *w = user;
	(void)ctx;
	w->last_frame = util_now_ms();
	if (arg->opcode == WSLAY_BINARY_FRAME) {
		ws_close(w, WSLAY_CODE_UNSUPPORTED_DATA, "send JSON objects as text messages");
		return;
	}
	if (arg->opcode != WSLAY_TEXT_FRAME)
		return; /* ping (answered by wslay), pong, close (handled by wslay) */
	if (!ws_utf8_ok(arg->msg, arg->msg_length)) {
		ws_close(w, WSLAY_CODE_INVALID_FRAME_PAYLOAD_DATA, "text message is not valid UTF-8");
		return;
	}
	if (w->qn == WS_QUEUE_MAX) {
		ws_close(w, WSLAY_CODE_POLICY_VIOLATION, "too many messages waiting for an answer");
		return;
	}
	struct buf *b = &w->queue[(w->qhead + w->qn++) % WS_QUEUE_MAX];
	buf_reset(b);
	buf_append(b, arg->msg, arg->msg_length);
}

/* Tell the client this message failed, as a text message, and log it. */
static void ws_error(struct ws *w, const char *rid, int status, const char *code, const char *msg)
{
	json_t *j = json_pack("{s:{s:s, s:s, s:i}, s:s}", "error", "code", code, "message", msg,
			      "status", status, "request_id", rid);
	char *t = j ? json_dumps(j, JSON_COMPACT) : NULL;
	if (t)
		ws_queue(w, WSLAY_TEXT_FRAME, t, strlen(t));
	free(t);
	json_decref(j);
	serve_log_message(w->c, rid, w->r->label, status, code, w->msg_started);
}

static void ws_pump(struct ws *w);

/* Hand the next waiting message to the command. */
static void ws_start_next(struct ws *w)
{
	struct conn *c = w->c;
	struct buf *b = &w->queue[w->qhead];
	w->qhead = (w->qhead + 1) % WS_QUEUE_MAX;
	w->qn--;
	w->msg_started = util_now_ms();
	w->rid[0] = '\0';
	w->messages++;
	/* serve_input reads the request's body: this message is it */
	free(c->body);
	c->body = b->data;
	c->blen = b->len;
	c->bcap = b->cap;
	memset(b, 0, sizeof *b);
	char msg[512];
	size_t len = 0;
	char *line = serve_input(c, w->rid, &len, msg, sizeof msg);
	if (!w->rid[0])
		serve_new_rid(w->rid);
	if (!line) {
		ws_error(w, w->rid, 400, "invalid_body", msg);
		return;
	}
	struct outcome o = { 0 };
	if (!w->k->pid && exchange_start(c, w->k, w->r, &o) != 0) {
		ws_error(w, w->rid, o.status, o.error, o.message);
		free(line);
		return;
	}
	w->msg_deadline = w->msg_started + (double)w->r->timeout_ms;
	size_t sent = 0;
	enum child_rc rc = child_send(w->k, line, len, &sent, w->msg_deadline, 0);
	free(line);
	w->busy = 1;
	if (rc == CHILD_OK || rc == CHILD_EOF || rc == CHILD_EARLY) {
		ws_pump(w); /* it may have answered while reading */
	} else {
		const char *code = "internal";
		int ok;
		char why[512];
		int st = exchange_end(c, w->k, w->r, rc, w->msg_deadline, &ok, why, sizeof why, &code);
		w->busy = 0;
		ws_error(w, w->rid, st, code, why);
	}
}

/* One output line of the command: a binary message, a text message, and
 * for its answer the end of the exchange. */
static void ws_line(struct ws *w, const char *line, size_t n)
{
	int status;
	char code[EXCHANGE_CODE_MAX];
	int kind = exchange_classify(line, n, w->rid, 0, &status, code);
	if (kind == LINE_GARBAGE || kind == LINE_FOREIGN) {
		child_kill(w->k);
		w->busy = 0;
		ws_error(w, w->rid, 500, kind == LINE_GARBAGE ? "bad_answer" : "unasked_answer",
			 kind == LINE_GARBAGE ? "the command wrote a line that is not a JSON object"
					      : "the command wrote a line for another request");
		return;
	}
	struct buf bin = { 0 };
	if (w->r->binary_key[0] && status == 200 &&
	    exchange_binary_member(line, n, w->r->binary_key, &bin) == 0) {
		ws_queue(w, WSLAY_BINARY_FRAME, bin.data, bin.len);
		if (kind == LINE_PROGRESS) {
			buf_free(&bin);
			return;
		}
		/* an answer with the bytes in it: they went as binary, the rest as text */
		json_t *j = json_loadb(line, n, 0, NULL);
		json_object_del(j, w->r->binary_key);
		char *t = json_dumps(j, JSON_COMPACT);
		ws_queue(w, WSLAY_TEXT_FRAME, t, strlen(t));
		free(t);
		json_decref(j);
	} else {
		ws_queue(w, WSLAY_TEXT_FRAME, line, n);
	}
	buf_free(&bin);
	if (kind == LINE_ANSWER) {
		w->busy = 0;
		serve_log_message(w->c, w->rid, w->r->label, status, code[0] ? code : NULL,
				  w->msg_started);
	}
}

/* Take every line the command has written; notice its end or timeout. */
static void ws_pump(struct ws *w)
{
	size_t n = 0;
	enum child_rc rc;
	while (w->busy && (rc = child_line(w->k, util_now_ms() + WS_SLICE_MS, &n)) == CHILD_OK) {
		ws_line(w, w->k->buf, n);
		child_take(w->k, n + 1);
	}
	if (!w->busy)
		return;
	if (rc == CHILD_TIMEOUT && util_now_ms() < w->msg_deadline)
		return;
	const char *code = "internal";
	int ok;
	char why[512];
	int st = exchange_end(w->c, w->k, w->r, rc, w->msg_deadline, &ok, why, sizeof why, &code);
	w->busy = 0;
	ws_error(w, w->rid, st, code, why);
}

/* The connection's loop: frames in and out, the command's lines out. */
static void ws_loop(struct ws *w)
{
	struct conn *c = w->c;
	long idle = c->conf->ws_idle_timeout_ms;
	w->last_frame = util_now_ms();
	for (;;) {
		if (!w->busy && w->qn && !w->close_deadline)
			ws_start_next(w);
		if (wslay_event_send(w->ctx) != 0 || w->peer_gone)
			break;
		if (!wslay_event_want_read(w->ctx) && !wslay_event_want_write(w->ctx))
			break;
		double now = util_now_ms();
		if (w->close_deadline && now >= w->close_deadline)
			break;
		if (!w->close_deadline && !w->busy && now - w->last_frame >= (double)idle) {
			ws_close(w, WSLAY_CODE_GOING_AWAY, "idle timeout");
			continue;
		}
		double until = w->close_deadline ? w->close_deadline
			       : w->busy ? w->msg_deadline : w->last_frame + (double)idle;
		int ms = until > now ? (int)(until - now) + 1 : 0;
		struct pollfd p[3] = {
			{ .fd = c->in, .events = wslay_event_want_read(w->ctx) ? POLLIN : 0 },
			{ .fd = c->out, .events = wslay_event_want_write(w->ctx) ? POLLOUT : 0 },
			{ .fd = w->busy ? w->k->from : -1, .events = POLLIN },
		};
		/* bytes after the head are already in ibuf: read them now */
		if (c->ilen > 0)
			ms = 0;
		if (poll(p, 3, ms) < 0 && errno != EINTR)
			break;
		if ((p[0].revents & (POLLIN | POLLHUP | POLLERR)) || c->ilen > 0) {
			if (wslay_event_recv(w->ctx) != 0 || w->peer_gone)
				break;
		}
		if (w->busy && (p[2].revents || w->k->len > 0 || util_now_ms() >= w->msg_deadline))
			ws_pump(w);
	}
}

void ws_serve(struct conn *c, const struct route *r, char *rid, struct outcome *o)
{
	char accept[64];
	o->label = r->label;
	c->keep_alive = 0;
	if (ws_handshake(c, r, accept, o) != 0)
		return;
	if (!rid[0])
		serve_new_rid(rid);
	if (resp_switching(c, accept, rid) != 0) {
		o->silent = 1;
		return;
	}
	o->sent = 1;
	o->status = 101;
	stats_count(c->stats, STATS_WS_OPENED);
	struct ws w = { .c = c, .r = r, .k = &c->kids[r->index] };
	struct wslay_event_callbacks cb = { ws_recv, ws_send, NULL, NULL, NULL, NULL, ws_on_msg };
	if (wslay_event_context_server_init(&w.ctx, &cb, &w) != 0) {
		snprintf(o->error, sizeof o->error, "internal");
		stats_count(c->stats, STATS_WS_CLOSED);
		return;
	}
	wslay_event_config_set_max_recv_msg_length(w.ctx, c->conf->max_body);
	ws_loop(&w);
	if (w.busy)
		child_kill(w.k);
	int peer = wslay_event_get_close_received(w.ctx) ? wslay_event_get_status_code_received(w.ctx)
							 : 0;
	int ours = wslay_event_get_close_sent(w.ctx) ? wslay_event_get_status_code_sent(w.ctx) : 0;
	if (w.peer_gone && !peer)
		snprintf(o->error, sizeof o->error, "client_gone");
	else if (ours && ours != WSLAY_CODE_NORMAL_CLOSURE && ours != peer)
		snprintf(o->error, sizeof o->error, "ws_close_%d", ours);
	log_set_request_id(rid);
	log_event(LOG_INFO, "websocket closed",
		  json_pack("{s:s, s:I, s:i, s:i}", "route", r->label, "messages",
			    (json_int_t)w.messages, "close_sent", ours, "close_received", peer));
	log_set_request_id(NULL);
	for (size_t i = 0; i < WS_QUEUE_MAX; i++)
		buf_free(&w.queue[i]);
	wslay_event_context_free(w.ctx);
	stats_count(c->stats, STATS_WS_CLOSED);
}
