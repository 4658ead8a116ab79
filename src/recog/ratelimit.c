/* ratelimit — one token bucket for every gateway process of the host
 * (spec §9: "one point of control" for Ximilar's limits).
 *
 * unde-httpd runs one unde-ximilar per connection, so the bucket lives in
 * a small file (XIMILAR_RATE_FILE, default
 * $UNDE_COUNTERS_DIR/ximilar-gw.bucket) read and rewritten under flock(2):
 * {tokens, the time they were counted, blocked-until}. It refills at
 * XIMILAR_RATE_LIMIT requests per second (default 10; 0 turns it off) up
 * to as many as one second's worth, and at least one (a rate below one a
 * second still lets a request through now and then). A 429 from Ximilar blocks every
 * process until its Retry-After has passed. A caller that cannot get a
 * token before its deadline is told so at once (and answers locally). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "recog.h"

struct rl_state {
	double tokens;
	double at_ms;            /* CLOCK_MONOTONIC ms (the same for every process) */
	double blocked_until_ms; /* 0: not blocked */
};

static double rl_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

/* The bucket's file, opened (and locked) for one update; -1 when it cannot
 * be used (logged once: the limit is then not enforced). */
static int rl_open(void)
{
	char path[1024];
	const char *f = conf_str("XIMILAR_RATE_FILE", NULL);
	if (f && *f)
		snprintf(path, sizeof path, "%s", f);
	else
		snprintf(path, sizeof path, "%s/ximilar-gw.bucket", conf_str("UNDE_COUNTERS_DIR", "/run/unde"));
	int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || flock(fd, LOCK_EX) != 0) {
		static int warned;
		if (!warned++)
			log_event(LOG_WARN, "rate-limit bucket unusable: not enforced",
				  json_pack("{s:s, s:s}", "path", path, "error", strerror(errno)));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* How many tokens the bucket holds at most. */
static double rl_capacity(double rate)
{
	return rate < 1 ? 1 : rate;
}

static void rl_read(int fd, struct rl_state *s, double rate)
{
	if (pread(fd, s, sizeof *s, 0) != (ssize_t)sizeof *s || s->at_ms <= 0 || s->tokens < 0 ||
	    s->tokens > rl_capacity(rate)) {
		s->tokens = rl_capacity(rate);
		s->at_ms = rl_now_ms();
		s->blocked_until_ms = 0;
	}
}

static void rl_write(int fd, const struct rl_state *s)
{
	if (pwrite(fd, s, sizeof *s, 0) != (ssize_t)sizeof *s)
		log_event(LOG_WARN, "rate-limit bucket not written", json_pack("{s:s}", "error", strerror(errno)));
}

int rl_take(struct deadline dl)
{
	double rate = conf_double("XIMILAR_RATE_LIMIT", 10, 0, 100000);
	if (rate <= 0)
		return 0;
	for (;;) {
		int fd = rl_open();
		if (fd < 0)
			return 0;
		struct rl_state s;
		rl_read(fd, &s, rate);
		double now = rl_now_ms(), wait;
		s.tokens += (now - s.at_ms) / 1000.0 * rate;
		if (s.tokens > rl_capacity(rate))
			s.tokens = rl_capacity(rate);
		s.at_ms = now;
		if (s.blocked_until_ms > now) {
			wait = s.blocked_until_ms - now;
		} else if (s.tokens >= 1) {
			s.tokens -= 1;
			rl_write(fd, &s);
			close(fd);
			return 0;
		} else {
			wait = (1 - s.tokens) / rate * 1000.0;
		}
		rl_write(fd, &s);
		close(fd);
		if (deadline_set(dl) && wait + 50 > (double)ms_left(dl))
			return -1;
		/* waiting for the bucket is the point here: no event to wait on */
		struct timespec ts = { (time_t)(wait / 1000), (long)((wait - (long)(wait / 1000) * 1000) * 1e6) };
		nanosleep(&ts, NULL);
	}
}

void rl_block(double ms)
{
	if (ms <= 0)
		ms = 1000;
	int fd = rl_open();
	if (fd < 0)
		return;
	struct rl_state s;
	double rate = conf_double("XIMILAR_RATE_LIMIT", 10, 0, 100000);
	rl_read(fd, &s, rate > 0 ? rate : 1);
	double until = rl_now_ms() + ms;
	if (until > s.blocked_until_ms)
		s.blocked_until_ms = until;
	rl_write(fd, &s);
	close(fd);
}
