/* unde-context — the Context Agent (spec §15): what is around the user now.
 *
 *   echo '{"user_id":"…","lat":25.1181,"lng":55.2006,"compact_preferences":{…}}' | unde-context
 *
 * Per record: the mall (given, or the nearest whose radius holds the fix)
 * and its nearest store; the weather (WeatherAPI through a file cache
 * shared by all processes); the time in the mall's zone (day, part of day,
 * hours to closing, rush hour); the cultural calendar (Ramadan with today's
 * sunset by libnova, holidays, weekends) worded by sensitivity level; and
 * the mall's events crossed with compact_preferences into opportunities. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "calendar.h"
#include "conf.h"
#include "filter.h"
#include "log.h"
#include "pg.h"
#include "place.h"
#include "agent_stats.h"
#include "sun.h"
#include "util.h"
#include "weather.h"

struct events_cache {
	char mall_id[101];
	time_t at;       /* the moment the rows were selected for */
	double fetched;  /* wall clock */
	PGresult *rows;
};

struct ctx_state {
	PGconn *db;
	struct places places;
	struct calendar *cal;
	struct weather_cfg weather;
	long events_ttl;
	struct events_cache ev;
	const char *calendar_path;
};

/* A file of ours: $VAR, the installed copy, or the source tree's. */
static const char *data_path(const char *var, const char *installed, const char *source)
{
	const char *env = conf_str(var, NULL);
	if (env && *env)
		return env;
	return access(installed, R_OK) == 0 ? installed : source;
}

static int ctx_on_start(void *state, struct filter_run *run, int argc, char **argv)
{
	struct ctx_state *s = state;
	(void)run;
	(void)argv;
	char err[512];
	const char *cal = data_path("CONTEXT_CALENDAR", UNDE_PKGDATADIR "/context/calendar.json",
				    UNDE_SRCDIR "/src/context/calendar.json");
	s->cal = calendar_load(cal, err, sizeof err);
	if (!s->cal) {
		log_event(LOG_ERROR, "cannot load the cultural calendar",
			  json_pack("{s:s, s:s}", "variable", "CONTEXT_CALENDAR", "error", err));
		return EX_CONFIG;
	}
	s->weather.base_url = conf_str("WEATHER_API_URL", "https://api.weatherapi.com/v1");
	const char *key = conf_str("WEATHER_API_KEY", "");
	s->weather.api_key = key && *key ? key : NULL;
	s->weather.ttl = conf_long("WEATHER_CACHE_TTL", 1800, 0, 86400 * 7);
	s->weather.timeout_ms = conf_long("WEATHER_TIMEOUT_MS", 80, 1, 60000);
	const char *dir = conf_str("WEATHER_CACHE_DIR", NULL);
	if (!dir || !*dir) {
		/* shared by every connection's process: systemd's RuntimeDirectory
		 * (the units use PrivateTmp, so /tmp is per connection there) */
		static char def[600];
		const char *rt = getenv("RUNTIME_DIRECTORY"), *t = getenv("TMPDIR");
		if (rt && *rt && !strchr(rt, ':'))
			snprintf(def, sizeof def, "%s/context-cache", rt);
		else if (access("/var/cache/unde", W_OK) == 0)
			snprintf(def, sizeof def, "/var/cache/unde/context");
		else
			snprintf(def, sizeof def, "%s/unde-context-cache", t && *t ? t : "/tmp");
		dir = def;
	}
	s->weather.cache_dir = dir;
	s->events_ttl = conf_long("EVENTS_CACHE_TTL", 3600, 0, 86400);
	const char *url = conf_str("PRODUCTION_DB_URL", NULL);
	if (url && *url) {
		s->db = pg_connect(url, "PRODUCTION_DB_URL");
		if (!s->db)
			return EX_UNAVAILABLE;
		if (places_load(s->db, &s->places) != 0)
			return EX_UNAVAILABLE;
	} else {
		log_msg(LOG_INFO, "PRODUCTION_DB_URL unset: no malls, stores or events known");
	}
	agent_stats_init("unde-context", "context_agent");
	return 0;
}

/* Parse an RFC 3339 time ("2026-02-13T19:30:00+04:00", "…Z"). */
static int parse_time(const char *s, time_t *out)
{
	struct tm tm = {0};
	const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!p)
		return -1;
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++)
			;
	long off = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int h, m;
		if (sscanf(p + 1, "%2d:%2d", &h, &m) != 2 || h > 23 || m > 59)
			return -1;
		off = (h * 3600L + m * 60L) * (*p == '-' ? -1 : 1);
		p += 6;
	} else {
		return -1;
	}
	if (*p)
		return -1;
	*out = timegm(&tm) - off;
	return 0;
}

/* RFC 3339 in the current zone (TZ), with a colon in the offset. */
static void format_local(time_t t, char out[40])
{
	struct tm lt;
	localtime_r(&t, &lt);
	char z[8];
	strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &lt);
	strftime(z, sizeof z, "%z", &lt);
	size_t n = strlen(out);
	snprintf(out + n, 40 - n, "%.3s:%.2s", z, z + 3);
}

static void hhmm(time_t t, char out[6])
{
	struct tm lt;
	localtime_r(&t, &lt);
	strftime(out, 6, "%H:%M", &lt);
}

static int minutes_of(const char *hm)
{
	int h, m;
	if (!hm || sscanf(hm, "%d:%d", &h, &m) != 2 || h < 0 || h > 24 || m < 0 || m > 59)
		return -1;
	return h * 60 + m;
}

/* Minutes until the mall closes, -1 when it is closed now, -2 when its
 * hours are unknown. Yesterday's hours count when they run past midnight. */
static int closes_in_minutes(const json_t *hours, const struct tm *lt)
{
	static const char *days[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
	if (!json_is_object(hours))
		return -2;
	int now = lt->tm_hour * 60 + lt->tm_min;
	for (int back = 1; back >= 0; back--) {
		const json_t *d = json_object_get(hours, days[(lt->tm_wday + 7 - back) % 7]);
		int open = minutes_of(json_string_value(json_array_get(d, 0)));
		int close = minutes_of(json_string_value(json_array_get(d, 1)));
		if (open < 0 || close < 0)
			continue;
		if (close <= open)
			close += 24 * 60; /* past midnight */
		int t = now + back * 24 * 60;
		if (t >= open && t < close)
			return close - t;
	}
	return -1;
}

static const char *part_of_day(int hour)
{
	return hour >= 5 && hour < 12   ? "morning"
	       : hour >= 12 && hour < 17 ? "afternoon"
	       : hour >= 17 && hour < 22 ? "evening"
					 : "night";
}

/* The mall's events overlapping [at, at + 1 day), from the process cache
 * when it is fresh (EVENTS_CACHE_TTL) and for nearly the same moment. */
static PGresult *events_for(struct ctx_state *s, const char *mall_id, time_t at)
{
	struct events_cache *c = &s->ev;
	if (c->rows && strcmp(c->mall_id, mall_id) == 0 &&
	    util_wall_seconds() - c->fetched < (double)s->events_ttl && llabs((long long)(at - c->at)) < 600)
		return c->rows;
	if (!s->db)
		return NULL;
	char ts[32];
	snprintf(ts, sizeof ts, "%lld", (long long)at);
	const char *params[] = {mall_id, ts};
	PGresult *r = pg_query(
	    s->db,
	    "SELECT e.id, e.type, e.title, e.discount, array_to_json(e.tags)::text, "
	    "  coalesce(s.name, ''), coalesce(s.brand, ''), e.starts_at, e.ends_at "
	    "FROM events e LEFT JOIN stores s ON s.id = e.store_id "
	    "WHERE (e.mall_id = $1 OR s.mall_id = $1) "
	    "  AND e.starts_at < to_timestamp($2::float8) + interval '1 day' "
	    "  AND (e.ends_at IS NULL OR e.ends_at >= to_timestamp($2::float8)) "
	    "ORDER BY e.starts_at, e.id",
	    2, params);
	if (!r)
		return NULL;
	if (c->rows)
		PQclear(c->rows);
	snprintf(c->mall_id, sizeof c->mall_id, "%s", mall_id);
	c->at = at;
	c->fetched = util_wall_seconds();
	c->rows = r;
	return r;
}

static int in_list(const json_t *list, const char *v)
{
	size_t i;
	const json_t *e;
	json_array_foreach(list, i, e) if (json_is_string(e) && *v &&
					   strcasecmp(json_string_value(e), v) == 0) return 1;
	return 0;
}

/* The OpportunityMatcher: an event is an opportunity when its store's
 * brand is a favourite, a tag is an interest, or it is free of an allergen
 * ("gluten" → tag "gluten_free"); an event tagged "contains_<allergen>" is
 * never offered. */
static json_t *opportunities(PGresult *r, const json_t *prefs)
{
	json_t *out = json_array();
	const json_t *brands = json_object_get(prefs, "favorite_brands");
	const json_t *interests = json_object_get(prefs, "interests");
	const json_t *allergies = json_object_get(prefs, "allergies");
	for (int i = 0; r && i < PQntuples(r); i++) {
		json_t *tags = json_loads(PQgetvalue(r, i, 4), 0, NULL);
		char reason[200] = "";
		int excluded = 0;
		size_t k;
		const json_t *t, *a;
		json_array_foreach(tags, k, t)
		{
			size_t j;
			json_array_foreach(allergies, j, a)
			{
				char bad[120];
				snprintf(bad, sizeof bad, "contains_%s", json_string_value(a) ? json_string_value(a) : "");
				if (strcasecmp(json_string_value(t), bad) == 0)
					excluded = 1;
			}
		}
		const char *store = PQgetvalue(r, i, 5), *brand = PQgetvalue(r, i, 6);
		if (in_list(brands, brand) || in_list(brands, store))
			snprintf(reason, sizeof reason, "user_favorite_brand");
		json_array_foreach(tags, k, t) if (!*reason && in_list(interests, json_string_value(t)))
		    snprintf(reason, sizeof reason, "user_loves_%s", json_string_value(t));
		json_array_foreach(tags, k, t)
		{
			size_t j;
			json_array_foreach(allergies, j, a)
			{
				char good[120];
				snprintf(good, sizeof good, "%s_free", json_string_value(a) ? json_string_value(a) : "");
				if (!*reason && strcasecmp(json_string_value(t), good) == 0)
					snprintf(reason, sizeof reason, "suits_allergy_%s", json_string_value(a));
			}
		}
		json_decref(tags);
		if (!*reason || excluded)
			continue;
		json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "event_id", PQgetvalue(r, i, 0), "store",
				      *store ? store : "", "type", PQgetvalue(r, i, 1),
				      "relevance_reason", reason);
		if (!PQgetisnull(r, i, 3))
			json_object_set_new(o, "discount", json_string(PQgetvalue(r, i, 3)));
		if (!PQgetisnull(r, i, 2))
			json_object_set_new(o, "title", json_string(PQgetvalue(r, i, 2)));
		json_array_append_new(out, o);
	}
	return out;
}

static int num_field(const json_t *rec, const char *k, double lo, double hi, double *out)
{
	const json_t *v = json_object_get(rec, k);
	if (!v || json_is_null(v))
		return 1;
	if (!json_is_number(v) || json_number_value(v) < lo || json_number_value(v) > hi)
		return -1;
	*out = json_number_value(v);
	return 0;
}

#define CTX_FAIL(run, ...) \
	(agent_stats_count("errors_total", NULL, 1), agent_stats_flush(), filter_fail(run, __VA_ARGS__))

static int ctx_on_record(void *state, struct filter_run *run, json_t *rec)
{
	struct ctx_state *s = state;
	double t0 = util_now_ms();
	double lat = 0, lng = 0;
	int rl = num_field(rec, "lat", -90, 90, &lat), rg = num_field(rec, "lng", -180, 180, &lng);
	if (rl < 0 || rg < 0)
		return CTX_FAIL(run, EX_DATAERR, "invalid_field",
				"field %s: want a number in [%d,%d]", rl < 0 ? "lat" : "lng",
				rl < 0 ? -90 : -180, rl < 0 ? 90 : 180);
	int have_pos = rl == 0 && rg == 0;
	const json_t *jmall = json_object_get(rec, "mall_id");
	if (jmall && !json_is_null(jmall) && !json_is_string(jmall))
		return CTX_FAIL(run, EX_DATAERR, "invalid_field", "field mall_id: want a string");
	const json_t *prefs = json_object_get(rec, "compact_preferences");
	if (prefs && !json_is_null(prefs) && !json_is_object(prefs))
		return CTX_FAIL(run, EX_DATAERR, "invalid_field",
				"field compact_preferences: want an object");
	const char *level = json_string_value(json_object_get(prefs, "cultural_sensitivity_level"));
	if (json_object_get(prefs, "cultural_sensitivity_level") &&
	    (!level || (strcmp(level, "high") && strcmp(level, "medium") && strcmp(level, "low"))))
		return CTX_FAIL(run, EX_DATAERR, "invalid_field",
				"field compact_preferences.cultural_sensitivity_level: want high, "
				"medium or low");
	if (!level)
		level = "medium";
	time_t at = time(NULL);
	const json_t *jat = json_object_get(rec, "at");
	if (jat && (!json_is_string(jat) || parse_time(json_string_value(jat), &at) != 0))
		return CTX_FAIL(run, EX_DATAERR, "invalid_field",
				"field at: want an RFC 3339 time such as 2026-02-13T19:30:00+04:00");

	/* where */
	const struct mall *mall = NULL, *nearest = NULL;
	double dist = INFINITY;
	if (jmall && json_is_string(jmall)) {
		mall = places_mall(&s->places, json_string_value(jmall));
		if (!mall)
			return CTX_FAIL(run, EX_DATAERR, "unknown_mall", "field mall_id: no mall '%s'",
					json_string_value(jmall));
		if (!have_pos)
			lat = mall->lat, lng = mall->lng, have_pos = 1;
		nearest = mall;
	} else if (have_pos) {
		nearest = places_nearest_mall(&s->places, lat, lng, &dist);
		if (nearest && dist <= nearest->radius_m)
			mall = nearest;
	} else {
		return CTX_FAIL(run, EX_DATAERR, "invalid_field",
				"fields lat and lng (numbers) or mall_id are required");
	}
	/* the zone and country: the mall's (or the nearest one's), else the
	 * record's own "timezone" and "country", else UTC and none */
	const char *tz = nearest ? nearest->tz : json_string_value(json_object_get(rec, "timezone"));
	const char *country = nearest ? nearest->country
				      : json_string_value(json_object_get(rec, "country"));
	if (!tz)
		tz = "UTC";
	if (!country)
		country = "";
	if (!nearest && sun_use_zone(tz) != 0)
		return CTX_FAIL(run, EX_DATAERR, "invalid_field", "field timezone: unknown zone '%s'",
				tz);
	if (sun_use_zone(tz) != 0)
		return CTX_FAIL(run, EX_SOFTWARE, "bad_timezone", "mall %s: unknown time zone %s",
				nearest->id, tz);
	json_t *location;
	if (mall) {
		double sd;
		const struct store *st = places_nearest_store(&s->places, mall->id, lat, lng, &sd);
		location = json_pack("{s:s, s:s, s:s, s:o, s:o}", "type", "mall", "mall_id", mall->id,
				     "mall_name", mall->name, "near_store",
				     st ? json_string(st->id) : json_null(), "floor",
				     st && st->has_floor ? json_integer(st->floor) : json_null());
	} else {
		location = json_pack("{s:s, s:o, s:o}", "type", nearest ? "outside_mall" : "unknown",
				     "nearest_mall_id", nearest ? json_string(nearest->id) : json_null(),
				     "distance_m", nearest ? json_integer((json_int_t)round(dist)) : json_null());
	}

	/* when */
	struct tm lt;
	localtime_r(&at, &lt);
	char date[11], day[16], stamp[40];
	strftime(date, sizeof date, "%Y-%m-%d", &lt);
	strftime(day, sizeof day, "%A", &lt);
	for (char *p = day; *p; p++)
		*p = (char)(*p | 0x20);
	format_local(at, stamp);
	int weekend = calendar_is_weekend(s->cal, country, lt.tm_wday);
	int closes = mall ? closes_in_minutes(mall->hours, &lt) : -2;
	int h = lt.tm_hour;
	int rush = weekend ? (h >= 16 && h < 22) : (h >= 18 && h < 21);
	json_t *timectx = json_pack("{s:s, s:s, s:o, s:o, s:b, s:b}", "day_of_week", day,
				    "part_of_day", part_of_day(h), "mall_closes_in_hours",
				    closes >= 0 ? json_real(round(closes / 6.0) / 10.0)
						: closes == -1 ? json_real(0) : json_null(),
				    "mall_open", closes >= 0 ? json_true() : closes == -1 ? json_false() : json_null(),
				    "is_rush_hour", rush, "is_weekend", weekend);

	/* sun and weather */
	time_t sunset = 0;
	char sunset_hm[6] = "";
	int have_sunset = sun_sunset(lat, lng, tz, at, &sunset) == 0;
	if (have_sunset)
		hhmm(sunset, sunset_hm);
	const char *why = NULL;
	int hit = 0;
	json_t *weather = weather_get(&s->weather, lat, lng, &why, &hit);
	agent_stats_count("weather_cache_hit_total", hit ? "result=\"hit\"" : "result=\"miss\"", 1);
	if (weather && have_sunset)
		json_object_set_new(weather, "sunset", json_string(sunset_hm));
	json_t *env = json_pack("{s:o, s:o, s:o}", "weather", weather ? weather : json_null(),
				"sunset", have_sunset ? json_string(sunset_hm) : json_null(),
				"time_context", timectx);
	if (!weather) {
		json_object_set_new(env, "weather_unavailable", json_string(why));
		log_event(LOG_INFO, "weather unavailable", json_pack("{s:s}", "reason", why));
	}

	/* cultural */
	const char *period = calendar_period(s->cal, country, date);
	int ramadan = period && strcmp(period, "ramadan") == 0 && have_sunset;
	int before = ramadan && at < sunset;
	long mins = before ? (long)((sunset - at + 59) / 60) : 0;
	int pre = before && mins <= 120;
	int high = strcmp(level, "high") == 0, low = strcmp(level, "low") == 0;
	json_t *cultural = json_pack("{s:s, s:o, s:o, s:b, s:o, s:s}", "sensitivity_level", level,
				     "active_period", period ? json_string(period) : json_null(),
				     "next_meal_break",
				     ramadan && !low ? json_string(sunset_hm) : json_null(),
				     "is_pre_meal_break", pre, "nearby_holidays",
				     calendar_nearby(s->cal, country, date, 7), "mention",
				     high ? "explicit" : low ? "none" : "neutral");
	if (ramadan && high)
		json_object_set_new(cultural, "iftar_time", json_string(sunset_hm));
	char hint[160];
	if (ramadan && before && high)
		snprintf(hint, sizeof hint, "До ифтара %ld мин", mins);
	else if (ramadan && before && !low)
		snprintf(hint, sizeof hint, "Рестораны откроются после %s", sunset_hm);
	else
		hint[0] = '\0';
	json_object_set_new(cultural, "hint", *hint ? json_string(hint) : json_null());
	json_object_set_new(cultural, "timing",
			    ramadan ? json_pack("{s:b, s:s}", "avoid_daytime_food", before,
						"food_after", sunset_hm)
				    : json_null());

	/* events */
	PGresult *ev = mall ? events_for(s, mall->id, at) : NULL;
	json_t *opps = opportunities(ev, prefs);

	char id[37];
	util_uuid4(id);
	json_t *frame = json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:s}", "context_frame_id", id,
				  "timestamp", stamp, "location", location, "environment", env,
				  "cultural", cultural, "opportunities", opps, "timezone", tz);
	json_object_set_new(rec, "context_frame", frame);
	agent_stats_count("requests_total", NULL, 1);
	agent_stats_latency(util_now_ms() - t0);
	agent_stats_flush();
	return 0;
}

static void ctx_on_finish(void *state, struct filter_run *run)
{
	struct ctx_state *s = state;
	(void)run;
	agent_stats_flush();
	if (s->ev.rows)
		PQclear(s->ev.rows);
	s->ev.rows = NULL;
	places_free(&s->places);
	calendar_free(s->cal);
	s->cal = NULL;
	if (s->db)
		PQfinish(s->db);
	s->db = NULL;
}

int main(int argc, char **argv)
{
	static struct ctx_state state;
	static const struct filter_def def = {
	    .name = "unde-context",
	    .summary = "Describe what is around the user now in a context_frame (spec §15).",
	    .synopsis = "[OPTIONS]",
	    .max_operands = FILTER_NO_OPERANDS,
	    .on_start = ctx_on_start,
	    .on_record = ctx_on_record,
	    .on_finish = ctx_on_finish,
	};
	return filter_main(&def, &state, argc, argv);
}
