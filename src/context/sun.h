/* sun.h — today's sunset at a position, computed locally with libnova. */
#ifndef UNDE_CONTEXT_SUN_H
#define UNDE_CONTEXT_SUN_H

#include <time.h>

/* The sunset (sun's upper limb at the standard -0.833° horizon) of the
 * local calendar day that contains `at` in time zone tz, at lat/lng (east
 * positive). Returns 0 and sets *out (seconds since the epoch), or -1 when
 * the sun does not set that day (polar day or night). */
int sun_sunset(double lat, double lng, const char *tz, time_t at, time_t *out);

/* Set the process's time zone (TZ) to tz, or UTC when tz is NULL/empty.
 * Returns 0, or -1 when the zone is unknown to the system's tzdata. */
int sun_use_zone(const char *tz);

#endif
