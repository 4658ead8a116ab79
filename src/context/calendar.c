/* calendar.c — the cultural calendar (see calendar.h). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "calendar.h"
#include "util.h"

struct calendar {
	json_t *root;
};

static int is_date(const json_t *v)
{
	const char *s = json_string_value(v);
	int y, m, d;
	char tail;
	return s && strlen(s) == 10 && sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &tail) == 3 &&
	       m >= 1 && m <= 12 && d >= 1 && d <= 31;
}

/* Every period and holiday has a name and start <= end dates. */
static int check_spans(const json_t *a, const char *what, char *err, size_t errlen)
{
	size_t i;
	const json_t *e;
	if (!json_is_array(a)) {
		snprintf(err, errlen, "%s: want an array", what);
		return -1;
	}
	json_array_foreach(a, i, e)
	{
		const json_t *s = json_object_get(e, "start"), *t = json_object_get(e, "end");
		if (!json_is_string(json_object_get(e, "name")) || !is_date(s) || !is_date(t) ||
		    strcmp(json_string_value(s), json_string_value(t)) > 0) {
			snprintf(err, errlen, "%s[%zu]: want name, start <= end (YYYY-MM-DD)", what, i);
			return -1;
		}
	}
	return 0;
}

struct calendar *calendar_load(const char *path, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		snprintf(err, errlen, "%s:%d: %s", path, jerr.line, jerr.text);
		return NULL;
	}
	char why[200];
	if (check_spans(json_object_get(root, "periods"), "periods", why, sizeof why) ||
	    check_spans(json_object_get(root, "holidays"), "holidays", why, sizeof why) ||
	    !json_is_object(json_object_get(root, "weekends"))) {
		snprintf(err, errlen, "%s: %s", path,
			 json_is_object(json_object_get(root, "weekends")) ? why : "weekends: want an object");
		json_decref(root);
		return NULL;
	}
	struct calendar *c = xcalloc(1, sizeof *c);
	c->root = root;
	return c;
}

void calendar_free(struct calendar *c)
{
	if (!c)
		return;
	json_decref(c->root);
	free(c);
}

static int has_country(const json_t *e, const char *country)
{
	const json_t *one = json_object_get(e, "country");
	if (one)
		return json_is_string(one) && strcmp(json_string_value(one), country) == 0;
	const json_t *many = json_object_get(e, "countries");
	size_t i;
	const json_t *v;
	json_array_foreach(many, i, v) if (strcmp(json_string_value(v), country) == 0) return 1;
	return many == NULL;
}

const char *calendar_period(const struct calendar *c, const char *country, const char *date)
{
	size_t i;
	const json_t *e;
	json_array_foreach(json_object_get(c->root, "periods"), i, e)
	{
		if (!has_country(e, country))
			continue;
		if (strcmp(json_string_value(json_object_get(e, "start")), date) <= 0 &&
		    strcmp(date, json_string_value(json_object_get(e, "end"))) <= 0)
			return json_string_value(json_object_get(e, "name"));
	}
	return NULL;
}

int calendar_is_weekend(const struct calendar *c, const char *country, int wday)
{
	static const char *names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
	const json_t *w = json_object_get(c->root, "weekends");
	const json_t *days = json_object_get(w, country);
	if (!days)
		days = json_object_get(w, "default");
	size_t i;
	const json_t *v;
	json_array_foreach(days, i, v) if (json_is_string(v) &&
					   strcmp(json_string_value(v), names[wday % 7]) == 0) return 1;
	return 0;
}

/* date + days as YYYY-MM-DD. */
static void date_add(const char *date, int days, char out[11])
{
	struct tm tm = {0};
	sscanf(date, "%4d-%2d-%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday);
	tm.tm_year -= 1900, tm.tm_mon -= 1, tm.tm_mday += days, tm.tm_hour = 12;
	time_t t = timegm(&tm);
	gmtime_r(&t, &tm);
	strftime(out, 11, "%Y-%m-%d", &tm);
}

json_t *calendar_nearby(const struct calendar *c, const char *country, const char *date,
			int days)
{
	char last[11];
	date_add(date, days - 1, last);
	json_t *a = json_array();
	size_t i;
	const json_t *e;
	json_array_foreach(json_object_get(c->root, "holidays"), i, e)
	{
		if (!has_country(e, country))
			continue;
		const char *s = json_string_value(json_object_get(e, "start"));
		const char *t = json_string_value(json_object_get(e, "end"));
		if (strcmp(s, last) <= 0 && strcmp(t, date) >= 0)
			json_array_append_new(a, json_pack("{s:O, s:s, s:s}", "name",
							   json_object_get(e, "name"), "start", s, "end",
							   t));
	}
	return a;
}
