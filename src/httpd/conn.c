/* conn.c — reading requests from the client and writing bytes back, always
 * against a deadline. The head has one total deadline (a client trickling
 * a byte a second is still cut off), the body another; the wait for the
 * next request on a kept-alive connection ends quietly. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "deadline.h"
#include "httpd.h"
#include "util.h"

#define CONN_READ_ROOM 65536
#define CONN_DRAIN_MAX (4u * 1024u * 1024u)
#define CONN_DRAIN_MS 2000

enum { FILL_EOF = 0, FILL_ERROR = -1, FILL_TIMEOUT = -2, FILL_FULL = -3 };

void conn_init(struct conn *c, const struct httpd_conf *conf)
{
	memset(c, 0, sizeof *c);
	c->conf = conf;
	c->in = 0;
	c->out = 1;
	c->opened_ms = util_now_ms();
	/* Leading empty lines may precede a head of max_head bytes. */
	c->icap = 2 * conf->max_head + CONN_READ_ROOM;
	c->ibuf = xmalloc(c->icap);
	c->head = xmalloc(2 * conf->max_head + 8);
	fcntl(c->in, F_SETFL, fcntl(c->in, F_GETFL) | O_NONBLOCK);
	fcntl(c->out, F_SETFL, fcntl(c->out, F_GETFL) | O_NONBLOCK);
	/* Answers are written whole: do not let Nagle hold the last segment. */
	int one = 1;
	setsockopt(c->out, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

void conn_free(struct conn *c)
{
	free(c->ibuf);
	free(c->head);
	free(c->body);
	c->ibuf = c->head = c->body = NULL;
}

/* Read more from the client into ibuf, waiting until deadline. Returns the
 * byte count or one of the FILL_ values. */
static ssize_t conn_fill(struct conn *c, double deadline)
{
	if (c->ilen == c->icap)
		return FILL_FULL;
	/* Wait first: on a kept-alive connection the next request is rarely
	 * there yet, and a read that fails with EAGAIN is a wasted call. */
	for (;;) {
		struct pollfd p = { .fd = c->in, .events = POLLIN };
		int ms = deadline_poll_ms(deadline_at(deadline));
		if (ms == 0)
			return FILL_TIMEOUT;
		int r = poll(&p, 1, ms);
		if (r < 0 && errno != EINTR)
			return FILL_ERROR;
		if (r <= 0)
			continue;
		ssize_t n = read(c->in, c->ibuf + c->ilen, c->icap - c->ilen);
		if (n > 0) {
			c->ilen += (size_t)n;
			return n;
		}
		if (n == 0)
			return FILL_EOF;
		if (errno != EINTR && errno != EAGAIN)
			return FILL_ERROR;
	}
}

static void conn_consume(struct conn *c, size_t n)
{
	memmove(c->ibuf, c->ibuf + n, c->ilen - n);
	c->ilen -= n;
}

static enum conn_read conn_fail(struct conn_error *e, int status, const char *why)
{
	e->status = status;
	e->why = why;
	return CONN_ERROR;
}

enum conn_read conn_read_head(struct conn *c, struct conn_error *e)
{
	const struct httpd_conf *cf = c->conf;
	const struct hp_limits lim = { cf->max_request_line, cf->max_head, cf->max_body };
	int first = c->served == 0;
	c->have_head = 0;
	c->head_method = 0;
	if (c->ilen == 0) {
		/* The first request must come within the read timeout of the
		 * connection; later ones within the keep-alive timeout. */
		double until = first ? c->opened_ms + (double)cf->read_timeout_ms
				     : util_now_ms() + (double)cf->idle_timeout_ms;
		ssize_t n = conn_fill(c, until);
		if (n == FILL_TIMEOUT && first)
			return conn_fail(e, 408, "no request within the read timeout");
		if (n <= 0)
			return CONN_QUIET_CLOSE;
	}
	c->started_ms = util_now_ms();
	double deadline = (first ? c->opened_ms : c->started_ms) + (double)cf->read_timeout_ms;
	for (;;) {
		const char *why = "malformed request";
		long r = hp_parse_head(c->ibuf, c->ilen, &lim, &c->req, &why);
		if (r > 0) {
			memcpy(c->head, c->ibuf, (size_t)r);
			conn_consume(c, (size_t)r);
			c->have_head = 1;
			c->head_method = c->req.method.len == 4 &&
					 memcmp(c->head + c->req.method.off, "HEAD", 4) == 0;
			return CONN_READY;
		}
		if (r < 0)
			return conn_fail(e, (int)-r, why);
		ssize_t n = conn_fill(c, deadline);
		if (n == FILL_TIMEOUT)
			return conn_fail(e, 408, "request head not complete within the read timeout");
		if (n == FILL_FULL)
			return conn_fail(e, 431, "request header section too large");
		if (n <= 0)
			return CONN_QUIET_CLOSE;
	}
}

/* Make room for n more body bytes (bounded by max_body + read room). */
static void conn_body_room(struct conn *c, size_t n)
{
	if (c->bcap - c->blen >= n + 1)
		return;
	size_t want = c->blen + n + 1;
	size_t cap = c->bcap ? c->bcap : 4096;
	while (cap < want)
		cap *= 2;
	c->body = xrealloc(c->body, cap);
	c->bcap = cap;
}

int conn_waits_for_continue(const struct conn *c)
{
	return c->req.body != HP_BODY_NONE && c->req.expect_continue && c->ilen == 0;
}

static enum conn_read conn_body_length(struct conn *c, double deadline, struct conn_error *e)
{
	size_t need = (size_t)c->req.content_length;
	conn_body_room(c, need);
	for (;;) {
		size_t take = need - c->blen < c->ilen ? need - c->blen : c->ilen;
		memcpy(c->body + c->blen, c->ibuf, take);
		c->blen += take;
		conn_consume(c, take);
		if (c->blen == need)
			return CONN_READY;
		ssize_t n = conn_fill(c, deadline);
		if (n == FILL_TIMEOUT)
			return conn_fail(e, 408, "request body not complete within the read timeout");
		if (n <= 0)
			return CONN_QUIET_CLOSE;
	}
}

static enum conn_read conn_body_chunked(struct conn *c, double deadline, struct conn_error *e)
{
	struct hp_chunked ch;
	memset(&ch, 0, sizeof ch);
	for (;;) {
		if (c->ilen > 0) {
			size_t used = 0, made = 0;
			const char *why = "malformed chunked body";
			conn_body_room(c, c->ilen);
			int rc = hp_chunked_feed(&ch, c->ibuf, c->ilen, c->conf->max_body,
						 c->body + c->blen, &used, &made, &why);
			c->blen += made;
			conn_consume(c, used);
			if (rc == 1)
				return CONN_READY;
			if (rc < 0)
				return conn_fail(e, -rc, why);
		}
		ssize_t n = conn_fill(c, deadline);
		if (n == FILL_TIMEOUT)
			return conn_fail(e, 408, "request body not complete within the read timeout");
		if (n <= 0)
			return CONN_QUIET_CLOSE;
	}
}

enum conn_read conn_read_body(struct conn *c, struct conn_error *e)
{
	c->blen = 0;
	if (c->req.body == HP_BODY_NONE)
		return CONN_READY;
	double deadline = util_now_ms() + (double)c->conf->read_timeout_ms;
	if (c->req.body == HP_BODY_LENGTH)
		return conn_body_length(c, deadline, e);
	return conn_body_chunked(c, deadline, e);
}

int conn_write(struct conn *c, struct iovec *iov, int n)
{
	if (c->broken)
		return -1;
	double deadline = util_now_ms() + (double)c->conf->write_timeout_ms;
	while (n > 0) {
		ssize_t w = writev(c->out, iov, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			int ms = errno == EAGAIN ? deadline_poll_ms(deadline_at(deadline)) : 0;
			struct pollfd p = { .fd = c->out, .events = POLLOUT };
			if (ms == 0 || (poll(&p, 1, ms) < 0 && errno != EINTR)) {
				c->broken = 1;
				return -1;
			}
			continue;
		}
		size_t done = (size_t)w;
		while (n > 0 && done >= iov->iov_len) {
			done -= iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + done;
			iov->iov_len -= done;
		}
	}
	return 0;
}

void conn_close_client(struct conn *c)
{
	/* Half-close and read what the client still sends, so that closing
	 * with unread input does not turn into a reset that destroys the
	 * answer before the client has read it. */
	if (shutdown(c->out, SHUT_WR) == 0) {
		double until = util_now_ms() +
			       (c->conf->read_timeout_ms < CONN_DRAIN_MS ? (double)c->conf->read_timeout_ms
									 : CONN_DRAIN_MS);
		size_t drained = 0;
		while (drained < CONN_DRAIN_MAX) {
			c->ilen = 0;
			ssize_t n = conn_fill(c, until);
			if (n <= 0)
				break;
			drained += (size_t)n;
		}
	}
	c->ilen = 0;
	close(c->in);
	if (c->out != c->in)
		close(c->out);
}
