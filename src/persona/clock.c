/* clock.c — the agent's one clock. UNDE_NOW (RFC 3339 or seconds since
 * the epoch) replaces the wall clock, so tests can walk a user through
 * days of idempotency windows, daily caps and stage downgrades. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "conf.h"
#include "persona.h"
#include "util.h"

double persona_now(void)
{
	const char *s = getenv("UNDE_NOW");
	double t;
	char *end;
	if (!s || !*s)
		return util_wall_seconds();
	t = strtod(s, &end);
	if (*end == 0 && end != s)
		return t;
	if (persona_parse_time(s, &t) == 0)
		return t;
	conf_die("UNDE_NOW", "expected RFC 3339 (2026-02-13T19:30:00Z) or seconds since the epoch");
}

void persona_day(double t, char out[11])
{
	time_t s = (time_t)t;
	struct tm tm;
	gmtime_r(&s, &tm);
	strftime(out, 11, "%Y-%m-%d", &tm);
}

void persona_iso(double t, char out[40])
{
	time_t s = (time_t)t;
	struct tm tm;
	gmtime_r(&s, &tm);
	int ms = (int)((t - (double)s) * 1000);
	char base[32];
	strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, 40, "%s.%03dZ", base, ms < 0 ? 0 : ms > 999 ? 999 : ms);
}
