/* http.h — the HTTP client every upstream call goes through (libcurl).
 *
 * What it promises:
 *  - connect and total timeouts on every attempt;
 *  - retries with exponential backoff and full jitter on 429, 5xx (not 501)
 *    and transport failures (refused, reset, timeout, empty reply), honouring
 *    Retry-After (seconds or HTTP-date, capped), up to max_attempts;
 *  - a cap on the response size (a larger body is an error, not a crash);
 *  - the current request_id sent as X-Request-Id on every request;
 *  - GET and HEAD follow up to 5 redirects, to http(s) URLs only (libcurl
 *    sends no credentials to another host);
 *  - many requests at once through the multi interface, at most
 *    max_concurrent in flight, each with its own retry schedule;
 *  - a deadline per request (lib/deadline.h): each attempt's connect and
 *    total timeouts are capped by the time left, no retry is scheduled past
 *    it, and a Retry-After longer than the time left ends the request at
 *    once with that answer (deadline_cut set), so a fallback can still run;
 *  - connection reuse: each thread keeps one multi handle across calls, so
 *    its connection pool (keep-alive) outlives a request; DNS answers and
 *    TLS sessions are shared by all threads through one share handle with
 *    locks. A connection is never used by two threads at once (libcurl
 *    7.88 documents a shared connection cache as unsafe between concurrent
 *    threads), but it outlives its thread: the handle of a thread that
 *    ends (or calls http_thread_cleanup) is kept, and the next call from
 *    any thread to an origin it was connected to takes it over, so a
 *    worker thread's connection to a sibling serves the next thread's call
 *    there (a new connection to unde-httpd is a new process);
 *  - with a guard (netguard.h), a URL someone else gave cannot reach
 *    loopback, private or link-local addresses: the address libcurl
 *    connects to is checked, after DNS and on every redirect;
 *  - streaming: with on_chunk set, a 2xx body is handed over chunk by
 *    chunk as it arrives and never buffered (error bodies still are, for
 *    the caller's error parser). Once a chunk was delivered the request is
 *    not retried.
 * A request that got an HTTP answer returns it whatever its status (after
 * the retries); the caller decides what a 404 means. */
#ifndef UNDE_HTTP_H
#define UNDE_HTTP_H

#include <stddef.h>

#include "deadline.h"
#include "netguard.h"
#include "util.h"

/* Called with each piece of a 2xx body as it arrives. Return 0 to go on,
 * non-zero to stop the transfer (the response then says "stopped by the
 * caller"). */
typedef int (*http_chunk_fn)(void *ud, const char *data, size_t len);

struct http_request {
	const char *method;          /* NULL: GET, or POST when body is set */
	const char *url;
	const char *const *headers;  /* NULL-terminated "Name: value" lines, or NULL */
	const void *body;
	size_t body_len;
	long connect_timeout_ms;     /* 0: HTTP_CONNECT_TIMEOUT_MS or 5000 */
	long timeout_ms;             /* 0: HTTP_TIMEOUT_MS or 30000; per attempt */
	int max_attempts;            /* 0: HTTP_MAX_ATTEMPTS or 3 */
	long backoff_base_ms;        /* 0: HTTP_BACKOFF_BASE_MS or 500 */
	long backoff_max_ms;         /* 0: 30000 */
	long retry_after_max_ms;     /* 0: 60000: a longer Retry-After is capped */
	size_t max_response;         /* 0: 64 MiB */
	const char *aws_sigv4;       /* e.g. "aws:amz:eu-central:s3", or NULL */
	const char *userpwd;         /* "user:password" for SigV4 / basic auth */
	struct deadline deadline;    /* zero: none */
	const struct netguard *guard; /* non-NULL: connect only to public addresses or
				       * the guard's networks, on a connection of its own
				       * (never a kept-alive one); see netguard.h */
	http_chunk_fn on_chunk;      /* NULL: buffer the body in resp->body */
	void *chunk_ud;
};

struct http_response {
	long status;            /* 0 when no HTTP answer was had */
	struct buf body;        /* NUL-terminated */
	char content_type[128];
	char etag[128];
	int attempts;
	int transport_error;    /* libcurl's code of the last attempt, 0 if none */
	int timed_out;          /* the last attempt timed out */
	char error[256];        /* why it failed, for people */
	double elapsed_ms;      /* all attempts and waits */
	long long content_length; /* the answer's Content-Length, -1 when it had none */
	int deadline_cut;       /* ended early because the deadline left no time */
	double retry_after_ms;  /* the last answer's Retry-After, -1 when none */
	int new_connections;    /* connections opened (0 when all were reused) */
	size_t streamed;        /* bytes handed to on_chunk */
	int refused;            /* the guard refused the address (error says which); not retried */
};

/* Perform one request. Returns 0 when an HTTP answer was had (see status),
 * -1 when none was (see error). Free the response with http_response_free. */
int http_perform(const struct http_request *req, struct http_response *resp);

/* Perform n requests with at most max_concurrent in flight. resps[i] gets
 * req[i]'s outcome. Returns how many got no HTTP answer. */
size_t http_perform_many(const struct http_request *reqs, struct http_response *resps, size_t n,
			 int max_concurrent);

void http_response_free(struct http_response *resp);

/* Is the status worth another attempt? (429, 500, 502, 503, 504) */
int http_status_retryable(long status);

/* A thread is done with its connections (call it before the thread ends,
 * or let its end do it): they are kept for the next thread's calls to the
 * same origins (a few handles at most; the rest are closed). */
void http_thread_cleanup(void);

/* Close this thread's kept-alive connections and those ended threads left
 * (tests): the next request opens a new one. */
void http_close_idle(void);

#endif
