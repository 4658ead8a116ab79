/* serve.h — what serve.c (routing, input, built-ins) and exchange.c (the
 * conversation with a route's command) share. */
#ifndef UNDE_HTTPD_SERVE_H
#define UNDE_HTTPD_SERVE_H

#include "httpd.h"

#define SERVE_LABEL_UNMATCHED "unmatched"

/* Where an answer came from, for the access log and the metrics. */
struct outcome {
	const char *label;  /* route label, built-in, or "unmatched" */
	int status;
	const char *error;  /* short code of an error answer, or NULL */
};

/* Write the access-log line of the current request and count it. */
void serve_log(struct conn *c, const char *rid, const struct outcome *o);

/* Answer with an error (code NULL: derived from status), then log it. The
 * connection stays open only when the request was read whole. */
void serve_fail(struct conn *c, const char *rid, const char *label, int status,
		const char *code, const char *message, const char *allow, int body_read);

/* accesslog.c: write the access-log line of a request (log.h's shape). */
void access_log(const struct conn *c, const char *rid, const char *label, int status,
		const char *error, double ms);

/* A new request id: a UUID v4 (37 bytes with the NUL). */
void serve_new_rid(char out[37]);

/* exchange.c: run the request line through the route's command and answer. */
void exchange_route(struct conn *c, const struct route *r, const char *line, size_t len,
		    const char *rid);
void exchange_stream(struct conn *c, const struct route *r, const char *line, size_t len,
		     const char *rid);

#endif
