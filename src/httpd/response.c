/* response.c — writing answers: a status line and a fixed, small set of
 * headers (nothing a command wrote ever becomes a header), then the body
 * in the same write. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>

#include <jansson.h>

#include "httpd.h"

/* The Date header value, formatted once per second. */
static const char *resp_date(void)
{
	static char cached[64];
	static time_t cached_at = -1;
	time_t now = time(NULL);
	if (now != cached_at) {
		struct tm tm;
		gmtime_r(&now, &tm);
		strftime(cached, sizeof cached, "%a, %d %b %Y %H:%M:%S GMT", &tm);
		cached_at = now;
	}
	return cached;
}

/* Format the head into buf. clen < 0: no Content-Length. Returns its
 * length, or 0 when it does not fit (cannot happen with bounded inputs). */
static size_t resp_head(char *buf, size_t cap, int status, const char *ctype, long long clen,
			const char *rid, const char *allow, const char *extra, int close, int chunked)
{
	char length[48] = "";
	if (clen >= 0)
		snprintf(length, sizeof length, "Content-Length: %lld\r\n", clen);
	int n = snprintf(buf, cap,
			 "HTTP/1.1 %d %s\r\n"
			 "Date: %s\r\n"
			 "Content-Type: %s\r\n"
			 "%s%s"
			 "X-Request-Id: %s\r\n"
			 "%s%s%s%s"
			 "Connection: %s\r\n"
			 "\r\n",
			 status, hp_reason(status), resp_date(), ctype, length,
			 chunked ? "Transfer-Encoding: chunked\r\n" : "", rid ? rid : "-",
			 allow ? "Allow: " : "", allow ? allow : "", allow ? "\r\n" : "",
			 extra ? extra : "", close ? "close" : "keep-alive");
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

int resp_send(struct conn *c, const struct answer *a)
{
	char head[2048];
	int close = a->close || !c->keep_alive;
	size_t hl = resp_head(head, sizeof head, a->status, a->ctype ? a->ctype : "application/json",
			      (long long)a->len, a->request_id, a->allow, a->extra, close, 0);
	if (hl == 0)
		return -1;
	if (close)
		c->keep_alive = 0;
	/* An answer to HEAD has the same head and no body (RFC 9110 §9.3.2). */
	int body = a->len && !c->head_method;
	struct iovec iov[2] = { { head, hl }, { (void *)a->body, a->len } };
	if (body)
		c->sent += a->len;
	return conn_write(c, iov, body ? 2 : 1);
}

int resp_error(struct conn *c, int status, const char *code, const char *message,
	       const char *rid, const char *allow, const char *extra, int close)
{
	json_t *j = json_pack("{s:{s:s, s:s}, s:s?}", "error", "code", code, "message", message,
			      "request_id", rid);
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	/* A message jansson refused (not UTF-8) still gets an error body with
	 * the request id: ids are [A-Za-z0-9._:-], nothing to escape. */
	char fallback[256];
	snprintf(fallback, sizeof fallback,
		 "{\"error\":{\"code\":\"%s\",\"message\":\"the error message could not be encoded\"},\"request_id\":\"%s\"}",
		 code, rid ? rid : "");
	size_t len = text ? strlen(text) : strlen(fallback);
	char *body = malloc(len + 2);
	if (!body) {
		free(text);
		return -1;
	}
	memcpy(body, text ? text : fallback, len);
	body[len++] = '\n';
	free(text);
	struct answer a = { .status = status, .body = body, .len = len, .allow = allow,
			    .extra = extra, .request_id = rid, .close = close };
	int rc = resp_send(c, &a);
	free(body);
	return rc;
}

int resp_stream_start(struct conn *c, const char *rid)
{
	char head[1024];
	/* HTTP/1.0 has no chunked coding: the end of the body is the close. */
	int chunked = c->req.minor == 1;
	if (!chunked)
		c->keep_alive = 0;
	size_t hl = resp_head(head, sizeof head, 200, "application/x-ndjson", -1, rid, NULL,
			      NULL, !c->keep_alive, chunked);
	if (hl == 0)
		return -1;
	struct iovec iov[1] = { { head, hl } };
	return conn_write(c, iov, 1);
}

int resp_stream_line(struct conn *c, const char *line, size_t len)
{
	char size[32];
	int n = snprintf(size, sizeof size, "%zx\r\n", len + 1);
	struct iovec iov[4] = { { size, (size_t)n },
				{ (void *)line, len },
				{ (void *)"\n\r\n", 3 },
				{ NULL, 0 } };
	c->sent += len + 1;
	if (c->req.minor == 0) {
		struct iovec raw[2] = { { (void *)line, len }, { (void *)"\n", 1 } };
		return conn_write(c, raw, 2);
	}
	return conn_write(c, iov, 3);
}

int resp_stream_end(struct conn *c)
{
	if (c->req.minor == 0)
		return 0;
	struct iovec iov[1] = { { (void *)"0\r\n\r\n", 5 } };
	return conn_write(c, iov, 1);
}

int resp_continue(struct conn *c)
{
	struct iovec iov[1] = { { (void *)"HTTP/1.1 100 Continue\r\n\r\n", 25 } };
	return conn_write(c, iov, 1);
}

int resp_switching(struct conn *c, const char *accept, const char *rid)
{
	char head[512];
	int n = snprintf(head, sizeof head,
			 "HTTP/1.1 101 Switching Protocols\r\n"
			 "Upgrade: websocket\r\n"
			 "Connection: Upgrade\r\n"
			 "Sec-WebSocket-Accept: %s\r\n"
			 "X-Request-Id: %s\r\n"
			 "\r\n",
			 accept, rid);
	if (n <= 0 || (size_t)n >= sizeof head)
		return -1;
	struct iovec iov[1] = { { head, (size_t)n } };
	return conn_write(c, iov, 1);
}
