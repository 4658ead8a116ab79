/* http.c — libcurl multi client with retries; see http.h. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <curl/curl.h>

#include "conf.h"
#include "http.h"
#include "http_int.h"
#include "log.h"
#include "util.h"

struct transfer {
	const struct http_request *req;
	struct http_response *resp;
	CURL *easy;
	struct curl_slist *hdrs;
	double start_at_ms;   /* when the next attempt may start */
	double began_ms;
	double retry_after_ms;
	int running, finished;
	size_t max_response;
	int too_large;
	int stopped;          /* on_chunk asked to stop */
	long body_status;     /* the status seen at the first body byte, -1 before */
	char rid_header[160];
	char refused[160];    /* the guard refused this address ("" if not) */
};

int http_status_retryable(long status)
{
	return status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
}

static size_t http_on_body(char *p, size_t size, size_t n, void *ud)
{
	struct transfer *t = ud;
	size_t len = size * n;
	if (t->req->on_chunk) {
		if (t->body_status < 0) {
			long st = 0;
			curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &st);
			t->body_status = st;
		}
		if (t->body_status >= 200 && t->body_status < 300) {
			if (t->req->on_chunk(t->req->chunk_ud, p, len) != 0) {
				t->stopped = 1;
				return 0;
			}
			t->resp->streamed += len;
			return len;
		}
	}
	if (t->resp->body.len + len > t->max_response) {
		t->too_large = 1;
		return 0;
	}
	buf_append(&t->resp->body, p, len);
	return len;
}

static void http_copy_header_value(char *dst, size_t dstlen, const char *v, size_t n)
{
	while (n && (*v == ' ' || *v == '\t'))
		v++, n--;
	while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
		n--;
	if (n >= dstlen)
		n = dstlen - 1;
	memcpy(dst, v, n);
	dst[n] = '\0';
}

/* Retry-After is either delta-seconds or an HTTP-date. */
static double http_parse_retry_after(const char *v)
{
	char *end;
	double s = strtod(v, &end);
	if (end != v && *end == '\0' && s >= 0)
		return s * 1000.0;
	time_t when = curl_getdate(v, NULL);
	if (when > 0) {
		double d = ((double)when - util_wall_seconds()) * 1000.0;
		return d > 0 ? d : 0;
	}
	return -1;
}

static size_t http_on_header(char *p, size_t size, size_t n, void *ud)
{
	struct transfer *t = ud;
	size_t len = size * n;
	char val[128];
	if (len > 12 && strncasecmp(p, "retry-after:", 12) == 0) {
		http_copy_header_value(val, sizeof val, p + 12, len - 12);
		t->retry_after_ms = http_parse_retry_after(val);
	} else if (len > 13 && strncasecmp(p, "content-type:", 13) == 0) {
		http_copy_header_value(t->resp->content_type, sizeof t->resp->content_type, p + 13,
				       len - 13);
	} else if (len > 5 && strncasecmp(p, "etag:", 5) == 0) {
		http_copy_header_value(t->resp->etag, sizeof t->resp->etag, p + 5, len - 5);
	}
	return len;
}

static long http_setting(long given, const char *var, long def, long max)
{
	return given > 0 ? given : conf_long(var, def, 1, max);
}

static int http_has_header(const char *const *h, const char *name)
{
	size_t n = strlen(name);
	for (; h && *h; h++)
		if (strncasecmp(*h, name, n) == 0 && (*h)[n] == ':')
			return 1;
	return 0;
}

/* With a guard: open the socket only to an address it allows. libcurl
 * calls this with the address it is about to connect to (after DNS, for
 * each address it tries and each redirect's host), so a name that resolves
 * to a private address is caught where it matters. */
static curl_socket_t http_open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct transfer *t = ud;
	const char *what = NULL;
	if (purpose == CURLSOCKTYPE_IPCXN && !netguard_allowed(t->req->guard, &a->addr, &what)) {
		char host[INET6_ADDRSTRLEN] = "?";
		const void *ip = a->family == AF_INET6 ? (const void *)&((struct sockaddr_in6 *)(void *)&a->addr)->sin6_addr
						       : (const void *)&((struct sockaddr_in *)(void *)&a->addr)->sin_addr;
		if (a->family == AF_INET || a->family == AF_INET6)
			inet_ntop(a->family, ip, host, sizeof host);
		snprintf(t->refused, sizeof t->refused, "refused to connect to %s: a %s address", host, what);
		return CURL_SOCKET_BAD;
	}
	return socket(a->family, a->socktype, a->protocol);
}

/* Build a fresh easy handle for the next attempt of t. */
static CURL *http_make_easy(struct transfer *t)
{
	const struct http_request *rq = t->req;
	CURL *e = curl_easy_init();
	if (!e)
		return NULL;
	curl_slist_free_all(t->hdrs);
	t->hdrs = NULL;
	t->refused[0] = '\0';
	for (const char *const *h = rq->headers; h && *h; h++)
		t->hdrs = curl_slist_append(t->hdrs, *h);
	const char *rid = log_request_id();
	if (rid && !http_has_header(rq->headers, "X-Request-Id")) {
		snprintf(t->rid_header, sizeof t->rid_header, "X-Request-Id: %s", rid);
		t->hdrs = curl_slist_append(t->hdrs, t->rid_header);
	}
	if (rq->body && !http_has_header(rq->headers, "Content-Type"))
		t->hdrs = curl_slist_append(t->hdrs, "Content-Type: application/json");
	/* No "Expect: 100-continue" round trip on uploads. With SigV4 the
	 * header-removal form "Expect:" cannot be used: libcurl 7.88 signs it as
	 * an empty header it then does not send, and S3 answers 403
	 * SignatureDoesNotMatch. There a zero 100-continue wait does the same. */
	if (!rq->aws_sigv4)
		t->hdrs = curl_slist_append(t->hdrs, "Expect:");
	else
		curl_easy_setopt(e, CURLOPT_EXPECT_100_TIMEOUT_MS, 0L);

	curl_easy_setopt(e, CURLOPT_URL, rq->url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, t);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->hdrs);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "unde/" PACKAGE_VERSION);
	/* Each attempt fits in what is left of the deadline (at least 1 ms:
	 * 0 would mean "no timeout" to libcurl; the caller checked time is left). */
	long connect_ms = deadline_cap(rq->deadline, http_setting(rq->connect_timeout_ms,
								  "HTTP_CONNECT_TIMEOUT_MS", 5000, 600000));
	long total_ms = deadline_cap(rq->deadline,
				     http_setting(rq->timeout_ms, "HTTP_TIMEOUT_MS", 30000, 3600000));
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect_ms > 0 ? connect_ms : 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, total_ms > 0 ? total_ms : 1L);
	CURLSH *share = http_global_init();
	if (share)
		curl_easy_setopt(e, CURLOPT_SHARE, share);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, http_on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, http_on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, t);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
	if (rq->guard) {
		/* a kept-alive connection was opened unchecked (a sibling on
		 * loopback): a guarded request opens its own and keeps none */
		curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, http_open_socket);
		curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, t);
		curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
		curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
	}
	const char *method = rq->method ? rq->method : (rq->body ? "POST" : "GET");
	if (strcmp(method, "HEAD") == 0 || strcmp(method, "GET") == 0) {
		/* a CDN's 301/302 to the file itself: a few hops, http(s) only;
		 * requests with a body or another method are never redirected */
		curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
		curl_easy_setopt(e, CURLOPT_MAXREDIRS, 5L);
		curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	}
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	else if (strcmp(method, "GET") != 0)
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	if (rq->body) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, rq->body);
	} else if (strcmp(method, "PUT") == 0 || strcmp(method, "POST") == 0) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
	}
	if (rq->aws_sigv4)
		curl_easy_setopt(e, CURLOPT_AWS_SIGV4, rq->aws_sigv4);
	if (rq->userpwd)
		curl_easy_setopt(e, CURLOPT_USERPWD, rq->userpwd);
	return e;
}

static int http_transport_retryable(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_GOT_NOTHING:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_PARTIAL_FILE:
	case CURLE_COULDNT_RESOLVE_HOST:
		return 1;
	default:
		return 0;
	}
}

/* Strip the query string: it may hold signatures or keys. */
static void http_log_url(const char *url, char *out, size_t len)
{
	conf_redact_url(url, out, len);
	char *q = strchr(out, '?');
	if (q)
		*q = '\0';
}

/* One attempt of t has ended: decide whether it is final. */
static void http_attempt_done(struct transfer *t, CURLcode rc, double now)
{
	struct http_response *r = t->resp;
	const struct http_request *rq = t->req;
	long status = 0;
	curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
	r->attempts++;
	r->transport_error = rc == CURLE_OK ? 0 : (int)rc;
	r->timed_out = rc == CURLE_OPERATION_TIMEDOUT;
	r->status = rc == CURLE_OK ? status : 0;
	curl_off_t clen = -1;
	if (curl_easy_getinfo(t->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &clen) != CURLE_OK)
		clen = -1;
	r->content_length = rc == CURLE_OK ? (long long)clen : -1;
	long nconn = 0;
	if (curl_easy_getinfo(t->easy, CURLINFO_NUM_CONNECTS, &nconn) == CURLE_OK)
		r->new_connections += (int)nconn;
	r->retry_after_ms = t->retry_after_ms;
	if (t->stopped)
		snprintf(r->error, sizeof r->error, "stopped by the caller");
	else if (t->too_large)
		snprintf(r->error, sizeof r->error, "response larger than %zu bytes", t->max_response);
	else if (rc != CURLE_OK && t->refused[0])
		snprintf(r->error, sizeof r->error, "%s", t->refused);
	else if (rc != CURLE_OK)
		snprintf(r->error, sizeof r->error, "%s", curl_easy_strerror(rc));
	else if (status >= 400)
		snprintf(r->error, sizeof r->error, "HTTP %ld", status);
	else
		r->error[0] = '\0';

	int max_attempts = (int)http_setting(rq->max_attempts, "HTTP_MAX_ATTEMPTS", 3, 100);
	r->refused = rc != CURLE_OK && t->refused[0];
	int retryable = !t->too_large && !t->stopped && r->streamed == 0 && !r->refused &&
			(rc == CURLE_OK ? http_status_retryable(status) : http_transport_retryable(rc));
	if (!retryable || r->attempts >= max_attempts) {
		t->finished = 1;
		r->elapsed_ms = now - t->began_ms;
		return;
	}
	long base = http_setting(rq->backoff_base_ms, "HTTP_BACKOFF_BASE_MS", 500, 600000);
	long cap = rq->backoff_max_ms > 0 ? rq->backoff_max_ms : 30000;
	long ra_cap = rq->retry_after_max_ms > 0 ? rq->retry_after_max_ms : 60000;
	double delay = (double)base * pow(2.0, r->attempts - 1);
	if (delay > (double)cap)
		delay = (double)cap;
	delay = delay / 2.0 + util_random_unit() * delay / 2.0;
	if (t->retry_after_ms >= 0)
		delay = t->retry_after_ms > (double)ra_cap ? (double)ra_cap : t->retry_after_ms;
	char url[1024];
	http_log_url(rq->url, url, sizeof url);
	/* No retry past the deadline: this answer is the last, now, so the
	 * caller has the time that is left for something else. */
	if (deadline_set(rq->deadline) && now + delay >= rq->deadline.at_ms) {
		t->finished = 1;
		r->deadline_cut = 1;
		r->elapsed_ms = now - t->began_ms;
		log_event(LOG_WARN, "not retrying: the deadline comes first",
			  json_pack("{s:s, s:I, s:s, s:i, s:f, s:I}", "url", url, "status",
				    (json_int_t)r->status, "error", r->error, "attempt", r->attempts,
				    "delay_ms", delay, "ms_left", (json_int_t)ms_left(rq->deadline)));
		return;
	}
	log_event(LOG_WARN, "retrying",
		  json_pack("{s:s, s:I, s:s, s:i, s:f}", "url", url, "status", (json_int_t)r->status,
			    "error", r->error, "attempt", r->attempts, "delay_ms", delay));
	t->start_at_ms = now + delay;
	buf_free(&r->body);
	r->content_type[0] = r->etag[0] = '\0';
}

/* The earliest time a waiting transfer may start, or -1 when none can
 * (nothing waiting, or no free slot). */
static double http_next_start(const struct transfer *ts, size_t n, int slot_free)
{
	double next = -1;
	for (size_t i = 0; slot_free && i < n; i++)
		if (!ts[i].finished && !ts[i].running && (next < 0 || ts[i].start_at_ms < next))
			next = ts[i].start_at_ms;
	return next;
}

size_t http_perform_many(const struct http_request *reqs, struct http_response *resps, size_t n,
			 int max_concurrent)
{
	http_global_init();
	if (max_concurrent < 1)
		max_concurrent = 1;
	struct transfer *ts = xcalloc(n ? n : 1, sizeof *ts);
	/* This thread's kept multi handle, unless a callback of a call running
	 * on it calls again: that one gets a handle of its own. */
	char origin[HTTP_ORIGIN_MAX] = "";
	/* a guarded request keeps no connection: nothing to match */
	if (n && reqs[0].url && !reqs[0].guard)
		http_origin(reqs[0].url, origin, sizeof origin);
	struct http_thread *ht = http_thread_get(origin);
	CURLM *multi = NULL;
	if (ht && !ht->busy) {
		if (origin[0])
			http_thread_adopt(ht, origin);
		multi = ht->c.multi;
		ht->busy = 1;
	} else {
		ht = NULL;
		multi = curl_multi_init();
	}
	double now = util_now_ms();
	for (size_t i = 0; i < n; i++) {
		memset(&resps[i], 0, sizeof resps[i]);
		resps[i].retry_after_ms = -1;
		ts[i].req = &reqs[i];
		ts[i].resp = &resps[i];
		ts[i].start_at_ms = now;
		ts[i].began_ms = now;
		ts[i].max_response = reqs[i].max_response ? reqs[i].max_response : 64u << 20;
	}
	size_t finished = 0;
	int running = 0;
	while (finished < n) {
		now = util_now_ms();
		for (size_t i = 0; i < n && running < max_concurrent; i++) {
			struct transfer *t = &ts[i];
			if (t->finished || t->running || t->start_at_ms > now)
				continue;
			if (deadline_set(t->req->deadline) && ms_left(t->req->deadline) < 1) {
				if (t->resp->attempts == 0) {
					snprintf(t->resp->error, sizeof t->resp->error,
						 "the deadline passed before the request was sent");
					t->resp->timed_out = 1;
				}
				t->resp->deadline_cut = 1;
				t->resp->elapsed_ms = now - t->began_ms;
				t->finished = 1;
				finished++;
				continue;
			}
			t->retry_after_ms = -1;
			t->too_large = 0;
			t->stopped = 0;
			t->body_status = -1;
			t->easy = http_make_easy(t);
			if (!t->easy || curl_multi_add_handle(multi, t->easy) != CURLM_OK) {
				snprintf(t->resp->error, sizeof t->resp->error, "cannot start transfer");
				t->finished = 1;
				finished++;
				continue;
			}
			t->running = 1;
			running++;
		}
		int still;
		curl_multi_perform(multi, &still);
		CURLMsg *msg;
		int left;
		while ((msg = curl_multi_info_read(multi, &left))) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			struct transfer *t;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
			CURLcode rc = msg->data.result;
			curl_multi_remove_handle(multi, t->easy);
			http_attempt_done(t, rc, util_now_ms());
			curl_easy_cleanup(t->easy);
			t->easy = NULL;
			t->running = 0;
			running--;
			if (t->finished)
				finished++;
		}
		if (finished >= n)
			break;
		/* Sleep until a transfer has news or a retry falls due, whichever
		 * is first; a slot freed above may let a waiting transfer start. */
		int wait_ms = 1000;
		double next_start = http_next_start(ts, n, running < max_concurrent);
		if (next_start >= 0) {
			double d = next_start - util_now_ms();
			wait_ms = d < 0 ? 0 : d > 1000 ? 1000 : (int)ceil(d);
		}
		if (running > 0)
			curl_multi_poll(multi, NULL, 0, wait_ms, NULL);
		else if (wait_ms > 0) {
			struct timespec ts2 = { wait_ms / 1000, (long)(wait_ms % 1000) * 1000000L };
			nanosleep(&ts2, NULL);
		}
	}
	size_t failed = 0;
	for (size_t i = 0; i < n; i++) {
		curl_slist_free_all(ts[i].hdrs);
		if (resps[i].status == 0)
			failed++;
	}
	if (ht) {
		for (size_t i = 0; i < n; i++) {
			char o[HTTP_ORIGIN_MAX];
			if (reqs[i].url && !reqs[i].guard) {
				http_origin(reqs[i].url, o, sizeof o);
				http_conns_note(&ht->c, o);
			}
		}
		ht->busy = 0;
	} else {
		curl_multi_cleanup(multi);
	}
	free(ts);
	return failed;
}

int http_perform(const struct http_request *req, struct http_response *resp)
{
	return http_perform_many(req, resp, 1, 1) == 0 ? 0 : -1;
}

void http_response_free(struct http_response *resp)
{
	buf_free(&resp->body);
}
