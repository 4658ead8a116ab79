/* httpd.h — what the modules of unde-httpd share: its settings and the
 * state of the one connection a process serves. */
#ifndef UNDE_HTTPD_HTTPD_H
#define UNDE_HTTPD_HTTPD_H

#include <stddef.h>

#include "child.h"
#include "parse.h"
#include "routes.h"
#include "stats.h"

#define HTTPD_REQUEST_ID_MAX 128
#define HTTPD_MAX_REQUEST_LINE 8192 /* request line bytes, without CRLF: 431 above */

struct httpd_conf {
	const char *routes_file;
	const char *metrics_file;
	size_t max_body;          /* --max-body: 413 above */
	size_t max_head;          /* --max-header: 431 above */
	size_t max_request_line;  /* 431 above */
	size_t max_response;      /* longest output line accepted from a command */
	long read_timeout_ms;     /* --read-timeout: total for a head, and for a body */
	long idle_timeout_ms;     /* --keepalive-timeout: wait for the next request */
	long ws_idle_timeout_ms;  /* --ws-idle-timeout: a WebSocket without frames */
	long route_timeout_ms;    /* --timeout: default per-route timeout */
	long write_timeout_ms;    /* sending one response */
};

struct conn {
	const struct httpd_conf *conf;
	const struct routes *routes;
	struct stats *stats;
	int in, out;              /* the client socket (stdin and stdout) */
	char *ibuf;               /* bytes read from the client, not yet used */
	size_t ilen, icap;
	char *head;               /* the current request's head (req spans point here) */
	struct hp_request req;
	char *body;               /* the current request's (decoded) body */
	size_t blen, bcap;
	struct child *kids;       /* one per route, started on first use */
	int started_early;        /* the start=early routes' commands were started */
	unsigned long served;     /* requests answered on this connection */
	double opened_ms;         /* when the connection was handed to us */
	double started_ms;        /* when the current request's first byte came */
	int have_head;            /* c->req describes the current request */
	unsigned long long sent;  /* body bytes of the current answer */
	int keep_alive;           /* serve another request after this one */
	int head_method;          /* the request is a HEAD: answers carry no body */
	int broken;               /* the client is gone or out of sync: close */
};

/* conn.c: the client side. */
enum conn_read { CONN_READY, CONN_QUIET_CLOSE, CONN_ERROR };
struct conn_error {
	int status;       /* 400, 408, 413, 431, … */
	const char *why;  /* static text for the error body */
};
void conn_init(struct conn *c, const struct httpd_conf *conf);
void conn_free(struct conn *c);
/* Read the next request head into c->head / c->req, setting c->started_ms
 * when its first byte arrived. CONN_QUIET_CLOSE: the client went away or
 * stayed idle between requests. */
enum conn_read conn_read_head(struct conn *c, struct conn_error *e);
/* Does the client wait for "100 Continue" before sending the body (it
 * said Expect: 100-continue and nothing of the body has come)? The caller
 * answers it: this layer only moves bytes. */
int conn_waits_for_continue(const struct conn *c);
/* Read the current request's body into c->body (decoding chunked). */
enum conn_read conn_read_body(struct conn *c, struct conn_error *e);
/* Finish with the client: half-close, drain what it still sends (bounded),
 * close. */
void conn_close_client(struct conn *c);
/* Write all of iov to the client by the write deadline; -1 marks the
 * connection broken. */
struct iovec;
int conn_write(struct conn *c, struct iovec *iov, int n);

/* response.c: answers. Each returns 0, or -1 when the client is gone. */
struct answer {
	int status;
	const char *ctype;        /* NULL: application/json */
	const char *body;
	size_t len;
	const char *allow;        /* for 405 */
	const char *extra;        /* more header lines of ours ("Name: v\r\n"…), or NULL */
	const char *request_id;
	int close;                /* Connection: close, and close after */
};
int resp_send(struct conn *c, const struct answer *a);
/* An error answer with the JSON body {"error":{code,message},"request_id"}. */
int resp_error(struct conn *c, int status, const char *code, const char *message,
	       const char *rid, const char *allow, const char *extra, int close);
/* Streaming: the head of a chunked (for HTTP/1.0: close-delimited)
 * application/x-ndjson answer, then one chunk per line, then the end. */
int resp_stream_start(struct conn *c, const char *rid);
int resp_stream_line(struct conn *c, const char *line, size_t len);
int resp_stream_end(struct conn *c);
int resp_continue(struct conn *c);
/* The 101 answer that turns the connection into a WebSocket. */
int resp_switching(struct conn *c, const char *accept, const char *rid);

/* ws.c: a WebSocket route (RFC 6455 through wslay): the handshake, then
 * text messages in, the command's lines out, until either side closes. */
struct route;
struct outcome;
void ws_serve(struct conn *c, const struct route *r, char *rid, struct outcome *o);

/* serve.c: one request, from a parsed head to the logged answer. */
void serve_request(struct conn *c);
/* Answer, log and count a request refused before it could be routed. */
void serve_reject(struct conn *c, const struct conn_error *e);

#endif
