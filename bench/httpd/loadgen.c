/* loadgen.c — a closed-loop HTTP/1.1 keep-alive load generator that
 * measures every request's latency, for bench/httpd/run.
 *
 *   loadgen PORT CONNECTIONS SECONDS WARMUP_SECONDS
 *
 * Opens CONNECTIONS to 127.0.0.1:PORT, keeps one POST /echo in flight on
 * each, and times each from the write of its request to the read of the
 * last byte of its answer (CLOCK_MONOTONIC). Requests sent in the
 * first WARMUP_SECONDS are not counted (the start-up of the server's
 * per-connection processes). Prints one JSON line: rps and latency
 * percentiles in ms, and L = rps × mean latency, which Little's law says
 * must equal CONNECTIONS — a check that the latencies are real.
 *
 * LOADGEN_RATE=R makes it an open loop instead: R requests a second in
 * all, each connection sending on its own schedule (every CONNECTIONS/R
 * seconds, the connections staggered), as callers that send when a user
 * acts do. A request whose turn comes while its connection still waits
 * for the previous answer goes as soon as that answer is in, and its
 * latency counts from when it was due (no coordinated omission), so a
 * server that falls behind shows it. In a closed loop latency is only
 * CONNECTIONS / throughput (Little's law); the open loop measures the
 * service at a load it can carry.
 *
 * Why not wrk's latency: against unde-httpd, wrk's latency samples add up
 * to 2 to 6 times more requests in flight than it has connections, which
 * cannot be; its request rates agree with this tool. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 1024
#define ANSWER_MAX 65536

struct client {
	int fd;
	double sent;           /* when the request in flight was written (due) */
	double due;            /* open loop: when the next request is due */
	int busy;              /* open loop: a request is in flight */
	char buf[ANSWER_MAX];
	size_t len;
};

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int by_value(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Length of the first whole answer in buf, or 0 when it is not all there. */
static size_t answer_length(const char *buf, size_t len)
{
	const char *end = memmem(buf, len, "\r\n\r\n", 4);
	if (!end)
		return 0;
	size_t head = (size_t)(end - buf) + 4;
	char tmp[ANSWER_MAX + 1];
	memcpy(tmp, buf, head);
	tmp[head] = '\0';
	const char *cl = strcasestr(tmp, "\r\ncontent-length:");
	if (!cl)
		return 0;
	size_t total = head + strtoul(cl + 17, NULL, 10);
	return total <= len ? total : 0;
}

static int send_request(struct client *c, const char *req, size_t len)
{
	c->sent = now();
	return write(c->fd, req, len) == (ssize_t)len ? 0 : -1;
}

/* Open loop: send every idle connection's request that is due by t, its
 * latency counted from when it was due; return how long until the next
 * one is due (at most 0.1 s), for the wait. */
static double send_due(struct client *cs, int n, double t, const char *req, size_t len)
{
	double next = t + 0.1;
	for (int i = 0; i < n; i++) {
		struct client *c = &cs[i];
		if (c->busy)
			continue;
		if (c->due <= t) {
			if (write(c->fd, req, len) != (ssize_t)len)
				return -1;
			c->sent = c->due;
			c->busy = 1;
		} else if (c->due < next) {
			next = c->due;
		}
	}
	return next - t;
}

/* Open loop: how many connections wait for an answer. */
static int busy_count(const struct client *cs, int n)
{
	int k = 0;
	for (int i = 0; i < n; i++)
		k += cs[i].busy;
	return k;
}

/* Open loop: one untimed request on every connection at once, then each
 * answer read, so every per-connection process is up before the schedule
 * starts (a start-up late by seconds would otherwise push every due time
 * behind it) and none has sat idle past the server's keep-alive timeout. */
static int prime(struct client *cs, int n, const char *req, size_t len)
{
	for (int i = 0; i < n; i++)
		if (write(cs[i].fd, req, len) != (ssize_t)len)
			return -1;
	for (int i = 0; i < n; i++) {
		struct client *c = &cs[i];
		size_t whole = 0;
		while (!whole) {
			ssize_t r = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
			if (r <= 0)
				return -1;
			c->len += (size_t)r;
			whole = answer_length(c->buf, c->len);
		}
		memmove(c->buf, c->buf + whole, c->len - whole);
		c->len -= whole;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 5 && argc != 7) {
		fputs("usage: loadgen PORT CONNECTIONS SECONDS WARMUP_SECONDS [PATH BODY]\n", stderr);
		return 64;
	}
	int port = atoi(argv[1]), n = atoi(argv[2]);
	double seconds = atof(argv[3]), warmup = atof(argv[4]);
	const char *rate_s = getenv("LOADGEN_RATE");
	double rate = rate_s ? atof(rate_s) : 0;
	if (n < 1 || n > MAX_CONNS || seconds <= 0 || warmup < 0 || rate < 0)
		return 64;
	/* PATH and BODY (bench/persona): another route and request body */
	/* or LOADGEN_PATH / LOADGEN_BODY (bench/mood) */
	const char *path = argc == 7 ? argv[5] : getenv("LOADGEN_PATH") ? getenv("LOADGEN_PATH") : "/echo";
	const char *body = argc == 7 ? argv[6] : getenv("LOADGEN_BODY") ? getenv("LOADGEN_BODY") :
		"{\"user_id\":\"u1\",\"text\":\"I am so happy today\"}";
	static char req[32768];
	int rl = snprintf(req, sizeof req,
			  "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
			  "Content-Length: %zu\r\n\r\n%s",
			  path, strlen(body), body);
	if (rl < 0 || (size_t)rl >= sizeof req)
		return 64;
	size_t cap = 1u << 25, count = 0;
	double *lat = malloc(cap * sizeof *lat);
	struct client *cs = calloc((size_t)n, sizeof *cs);
	int ep = epoll_create1(0);
	if (!lat || !cs || ep < 0)
		return 70;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	double start = now(), measure_from = start + warmup, stop = measure_from + seconds;
	for (int i = 0; i < n; i++) {
		int one = 1;
		cs[i].fd = socket(AF_INET, SOCK_STREAM, 0);
		setsockopt(cs[i].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		if (connect(cs[i].fd, (struct sockaddr *)&a, sizeof a) != 0) {
			perror("loadgen: connect");
			return 69;
		}
		struct epoll_event e = { .events = EPOLLIN, .data.u32 = (uint32_t)i };
		epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &e);
		if (rate == 0 && send_request(&cs[i], req, (size_t)rl) != 0)
			return 74;
	}
	if (rate > 0) {
		if (prime(cs, n, req, (size_t)rl) != 0) {
			fprintf(stderr, "loadgen: connection lost while priming\n");
			return 74;
		}
		start = now();
		measure_from = start + warmup;
		stop = measure_from + seconds;
		for (int i = 0; i < n; i++)
			cs[i].due = start + (double)i / rate;
	}
	struct epoll_event ev[64];
	double t;
	/* the open loop drains: every request due before stop is answered and counted */
	while ((t = now()) < stop || (rate > 0 && busy_count(cs, n) > 0 && t < stop + 30)) {
		struct timespec wait = { 0, 100000000 };
		if (rate > 0 && t < stop) {
			double w = send_due(cs, n, t, req, (size_t)rl);
			if (w < 0)
				return 74;
			wait.tv_sec = (time_t)w;
			wait.tv_nsec = (long)((w - (double)wait.tv_sec) * 1e9);
		}
		int k = epoll_pwait2(ep, ev, 64, &wait, NULL);
		for (int j = 0; j < k; j++) {
			struct client *c = &cs[ev[j].data.u32];
			ssize_t r = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
			if (r <= 0) {
				fprintf(stderr, "loadgen: connection lost\n");
				return 74;
			}
			c->len += (size_t)r;
			size_t whole = answer_length(c->buf, c->len);
			if (!whole)
				continue;
			double done = now();
			/* requests sent (open loop: due) after the warm-up: a first
			 * request that waited out a process start-up is not a sample */
			if (c->sent >= measure_from && c->sent < stop && count < cap)
				lat[count++] = done - c->sent;
			memmove(c->buf, c->buf + whole, c->len - whole);
			c->len -= whole;
			if (rate > 0) {
				c->busy = 0;
				c->due += (double)n / rate;
			} else if (send_request(c, req, (size_t)rl) != 0) {
				return 74;
			}
		}
	}
	if (count == 0)
		return 70;
	qsort(lat, count, sizeof *lat, by_value);
	double sum = 0;
	for (size_t i = 0; i < count; i++)
		sum += lat[i];
	double rps = (double)count / seconds;
	printf("{\"offered_rps\":%.1f,\"requests\":%zu,\"rps\":%.1f,\"p50_ms\":%.3f,\"p95_ms\":%.3f,\"p99_ms\":%.3f,"
	       "\"p999_ms\":%.3f,\"max_ms\":%.3f,\"little_L\":%.1f}\n",
	       rate, count, rps, lat[count / 2] * 1e3, lat[count * 95 / 100] * 1e3,
	       lat[count * 99 / 100] * 1e3, lat[count * 999 / 1000] * 1e3, lat[count - 1] * 1e3,
	       rps * sum / (double)count);
	return 0;
}
