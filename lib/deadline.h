/* deadline.h — one clock for latency budgets.
 *
 * A deadline is a point on the monotonic clock (util_now_ms), not a
 * duration: pass it down unchanged and every layer (the HTTP client, a
 * provider chain, a sibling call) asks how much is left, so the budget is
 * spent once, not once per layer. The zero value is "no deadline".
 *
 *   struct deadline dl = deadline_in(800);     // 800 ms from now
 *   long left = ms_left(dl);                   // 0 once passed
 *   long t = deadline_cap(dl, 5000);           // a timeout that fits */
#ifndef UNDE_DEADLINE_H
#define UNDE_DEADLINE_H

#include <limits.h>

struct deadline {
	double at_ms; /* util_now_ms() value; 0: none */
};

/* What ms_left says of a deadline that is not set. */
#define DEADLINE_FOREVER_MS LONG_MAX

#define DEADLINE_NONE ((struct deadline){ 0 })

/* ms from now (ms <= 0: already passed). */
struct deadline deadline_in(long ms);
/* Whole milliseconds left, rounded down: 0 when passed,
 * DEADLINE_FOREVER_MS when d is not set. */
long ms_left(struct deadline d);
int deadline_set(struct deadline d);
int deadline_passed(struct deadline d);
/* Of two deadlines the earlier (an unset one never wins). */
struct deadline deadline_min(struct deadline a, struct deadline b);
/* d moved earlier by ms (keeping time back for a fallback); unset stays
 * unset. */
struct deadline deadline_less(struct deadline d, long ms);
/* timeout_ms capped by the time left (timeout_ms <= 0: just the time
 * left). Never more than DEADLINE_FOREVER_MS. */
long deadline_cap(struct deadline d, long timeout_ms);

/* The budget unde-httpd gives a filter it starts: UNDE_DEADLINE_MS (the
 * route's timeout=) counted from now, or no deadline when unset. */
#define DEADLINE_ENV "UNDE_DEADLINE_MS"
struct deadline deadline_from_env(void);

#endif
