/* calendar.h — the cultural calendar (src/context/calendar.json): periods
 * (Ramadan 2025–2030), national and religious holidays of the UAE and
 * Kazakhstan, weekend days by country. Dates are local calendar days. */
#ifndef UNDE_CONTEXT_CALENDAR_H
#define UNDE_CONTEXT_CALENDAR_H

#include <jansson.h>

struct calendar;

/* Load and check path. NULL with err set on a bad file. */
struct calendar *calendar_load(const char *path, char *err, size_t errlen);
void calendar_free(struct calendar *c);

/* The period active on date ("YYYY-MM-DD") in country, or NULL. */
const char *calendar_period(const struct calendar *c, const char *country, const char *date);
/* Is weekday wday (0 = Sunday) a weekend day in country? */
int calendar_is_weekend(const struct calendar *c, const char *country, int wday);
/* Holidays of country overlapping [date, date + days): a new array of
 * {name, start, end}. */
json_t *calendar_nearby(const struct calendar *c, const char *country, const char *date,
			int days);

#endif
