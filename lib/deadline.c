/* deadline.c — latency budgets on the monotonic clock; see deadline.h. */
#include "config.h"

#include <math.h>

#include "conf.h"
#include "deadline.h"
#include "util.h"

struct deadline deadline_in(long ms)
{
	double now = util_now_ms();
	struct deadline d = { now + (ms > 0 ? (double)ms : 0.0) };
	if (d.at_ms <= 0)
		d.at_ms = 1e-3; /* zero means unset; a clock at 0 is a passed deadline */
	return d;
}

int deadline_set(struct deadline d) { return d.at_ms > 0; }

long ms_left(struct deadline d)
{
	if (!deadline_set(d))
		return DEADLINE_FOREVER_MS;
	double left = d.at_ms - util_now_ms();
	if (left <= 0)
		return 0;
	if (left >= (double)DEADLINE_FOREVER_MS)
		return DEADLINE_FOREVER_MS - 1;
	return (long)floor(left);
}

int deadline_passed(struct deadline d) { return deadline_set(d) && ms_left(d) == 0; }

struct deadline deadline_min(struct deadline a, struct deadline b)
{
	if (!deadline_set(a))
		return b;
	if (!deadline_set(b))
		return a;
	return a.at_ms <= b.at_ms ? a : b;
}

struct deadline deadline_less(struct deadline d, long ms)
{
	if (!deadline_set(d) || ms <= 0)
		return d;
	d.at_ms -= (double)ms;
	if (d.at_ms <= 0)
		d.at_ms = 1e-3;
	return d;
}

long deadline_cap(struct deadline d, long timeout_ms)
{
	long left = ms_left(d);
	if (timeout_ms <= 0)
		return left;
	return timeout_ms < left ? timeout_ms : left;
}

struct deadline deadline_from_env(void)
{
	long ms = conf_long(DEADLINE_ENV, 0, 0, 86400000L);
	return ms > 0 ? deadline_in(ms) : DEADLINE_NONE;
}
