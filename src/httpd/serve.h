/* serve.h — what serve.c (routing, input, built-ins) and exchange.c (the
 * conversation with a route's command) share. */
#ifndef UNDE_HTTPD_SERVE_H
#define UNDE_HTTPD_SERVE_H

#include "httpd.h"
#include "util.h"

#define SERVE_LABEL_UNMATCHED "unmatched"

/* What became of one request. Routing, the built-ins and the exchange
 * with a command only fill this in; serve_finish() is the one place that
 * answers (unless the answer is already on the wire) and logs, exactly
 * once per request. */
struct outcome {
	const char *label;   /* route label, built-in, or "unmatched" */
	int status;
	char error[64];      /* short code of an error answer, "" for none */
	char message[512];   /* the message of an error answer we write */
	char allow[512];     /* for 405: the Allow header */
	int sent;            /* already answered (a stream): only log */
	int close;           /* close the connection after the answer */
	int unread_body;     /* the body was not read: the connection cannot go on */
	int silent;          /* nothing to answer or log (the client left mid-body) */
	struct buf body;     /* a command's answer, sent as is (owned) */
	const char *ctype;   /* its Content-Type (NULL: application/json) */
	const char *extra;   /* header lines of ours to add, or NULL */
};

/* Log one WebSocket message's answer as a request of the route. */
void serve_log_message(struct conn *c, const char *rid, const char *label, int status,
		       const char *error, double started_ms);

/* The command's input line for the JSON object in c->body (query
 * parameters and request_id added; rid set: the body's own, else new).
 * NULL with msg set when the body is not an acceptable object. */
char *serve_input(struct conn *c, char rid[HTTPD_REQUEST_ID_MAX + 1], size_t *len, char *msg,
		  size_t msglen);

/* exchange.c: what a command's output line is. */
enum { LINE_ANSWER, LINE_PROGRESS, LINE_GARBAGE, LINE_FOREIGN };
int exchange_classify(const char *line, size_t n, const char *rid, int require_rid, int *status,
		      char *code);
#define EXCHANGE_CODE_MAX 64
int exchange_start(struct conn *c, struct child *k, const struct route *r, struct outcome *o);
int exchange_end(struct conn *c, struct child *k, const struct route *r, enum child_rc rc,
		 double deadline, int *exited_ok, char *msg, size_t msglen, const char **code);

/* An error answer of ours (code NULL: derived from status). */
void outcome_error(struct outcome *o, const char *label, int status, const char *code,
		   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Answer o unless sent, write the access-log line, count it; frees o's
 * body. rid is made when still empty. */
void serve_finish(struct conn *c, char *rid, struct outcome *o);

/* accesslog.c: write the access-log line of a request (log.h's shape). */
void access_log(const struct conn *c, const char *rid, const char *label, int status,
		const char *error, double ms);

/* A new request id: a UUID v4 (37 bytes with the NUL). */
void serve_new_rid(char out[37]);

/* exchange.c: run the request line through the route's command; o says
 * what to answer (or, for a stream, what was answered). */
void exchange_route(struct conn *c, const struct route *r, const char *line, size_t len,
		    const char *rid, struct outcome *o);
void exchange_stream(struct conn *c, const struct route *r, const char *line, size_t len,
		     const char *rid, struct outcome *o);

/* The base64 string member key of a JSON line, decoded into out (reset
 * first). 0, or -1 when there is none or it is not base64. */
int exchange_binary_member(const char *line, size_t n, const char *key, struct buf *out);

#endif
