/* sun.c — sunset with libnova (see sun.h). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libnova/julian_day.h>
#include <libnova/rise_set.h>
#include <libnova/solar.h>

#include "sun.h"

int sun_use_zone(const char *tz)
{
	if (!tz || !*tz) {
		setenv("TZ", "UTC", 1);
		tzset();
		return 0;
	}
	/* an unknown name silently means UTC to the C library: check tzdata */
	if (tz[0] == '/' || strstr(tz, ".."))
		return -1;
	char path[512];
	snprintf(path, sizeof path, "/usr/share/zoneinfo/%s", tz);
	if (access(path, R_OK) != 0 && strcmp(tz, "UTC") != 0)
		return -1;
	setenv("TZ", tz, 1);
	tzset();
	return 0;
}

int sun_sunset(double lat, double lng, const char *tz, time_t at, time_t *out)
{
	if (sun_use_zone(tz) != 0)
		return -1;
	struct tm lt;
	localtime_r(&at, &lt);
	/* local noon of that day, as UT: libnova answers for the day around it */
	struct tm noon = lt;
	noon.tm_hour = 12, noon.tm_min = 0, noon.tm_sec = 0, noon.tm_isdst = -1;
	time_t noon_t = mktime(&noon);
	double jd = ln_get_julian_from_timet(&noon_t);
	struct ln_lnlat_posn obs = {.lng = lng, .lat = lat};
	struct ln_rst_time rst;
	/* libnova gives the set of the UT day of jd, or the next one */
	if (ln_get_solar_rst(jd, &obs, &rst) != 0)
		return -1;
	time_t set;
	ln_get_timet_from_julian(rst.set, &set);
	/* the set found may belong to the neighbouring local day: step to ours */
	struct tm st;
	for (int i = 0; i < 2; i++) {
		localtime_r(&set, &st);
		if (st.tm_yday == lt.tm_yday && st.tm_year == lt.tm_year)
			break;
		double djd = (st.tm_year > lt.tm_year ||
			      (st.tm_year == lt.tm_year && st.tm_yday > lt.tm_yday))
				 ? -1
				 : 1;
		jd += djd;
		if (ln_get_solar_rst(jd, &obs, &rst) != 0)
			return -1;
		ln_get_timet_from_julian(rst.set, &set);
	}
	*out = set;
	return 0;
}
