/* weather.c — WeatherAPI current.json with a shared file cache. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "log.h"
#include "util.h"
#include "weather.h"

/* WeatherAPI's condition codes to the frame's few words. */
static const char *condition_word(int code, const char *text)
{
	if (code == 1000)
		return "clear";
	if (code == 1003)
		return "partly_cloudy";
	if (code == 1006 || code == 1009)
		return "cloudy";
	if (code == 1030 || code == 1135 || code == 1147)
		return "fog";
	if (code == 1087 || (code >= 1273 && code <= 1282))
		return "storm";
	if (code == 1066 || code == 1114 || code == 1117 || (code >= 1210 && code <= 1225) ||
	    code == 1255 || code == 1258 || code == 1069 || code == 1204 || code == 1207 ||
	    code == 1237 || code == 1249 || code == 1252 || code == 1261 || code == 1264)
		return "snow";
	if (code >= 1063)
		return "rain";
	return text && *text ? "other" : "unknown";
}

/* Percent-encode s for a query value (caller frees). */
static char *url_escape(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	char *o = xmalloc(strlen(s) * 3 + 1), *p = o;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_' || c == '.' || c == '~') {
			*p++ = (char)c;
		} else {
			*p++ = '%';
			*p++ = hex[c >> 4];
			*p++ = hex[c & 15];
		}
	}
	*p = '\0';
	return o;
}

static void cache_path(const struct weather_cfg *cfg, double lat, double lng, char *out,
		       size_t len)
{
	snprintf(out, len, "%s/weather-%.2f_%.2f.json", cfg->cache_dir, round(lat * 100) / 100,
		 round(lng * 100) / 100);
}

static json_t *cache_read(const struct weather_cfg *cfg, const char *path)
{
	json_error_t jerr;
	json_t *o = json_load_file(path, 0, &jerr);
	if (!o)
		return NULL;
	double at = json_number_value(json_object_get(o, "fetched_at"));
	json_t *w = json_object_get(o, "weather");
	if (!json_is_object(w) || util_wall_seconds() - at > (double)cfg->ttl ||
	    util_wall_seconds() < at - 60) {
		json_decref(o);
		return NULL;
	}
	json_incref(w);
	json_decref(o);
	return w;
}

/* Replace the cache file atomically; a failure only costs the next hit. */
static void cache_write(const struct weather_cfg *cfg, const char *path, const json_t *w)
{
	if (mkdir(cfg->cache_dir, 0755) != 0 && errno != EEXIST)
		return;
	char tmp[1200];
	snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
	json_t *o = json_pack("{s:f, s:O}", "fetched_at", util_wall_seconds(), "weather", w);
	int rc = json_dump_file(o, tmp, JSON_COMPACT);
	json_decref(o);
	if (rc != 0 || rename(tmp, path) != 0) {
		log_msg(LOG_WARN, "weather cache: cannot write %s: %s", path, strerror(errno));
		unlink(tmp);
	}
}

json_t *weather_get(const struct weather_cfg *cfg, double lat, double lng, const char **reason,
		    int *cache_hit)
{
	*cache_hit = 0;
	*reason = NULL;
	char path[1024];
	cache_path(cfg, lat, lng, path, sizeof path);
	json_t *w = cache_read(cfg, path);
	if (w) {
		*cache_hit = 1;
		return w;
	}
	if (!cfg->api_key) {
		*reason = "no_key";
		return NULL;
	}
	char *key = url_escape(cfg->api_key);
	char url[1400];
	snprintf(url, sizeof url, "%s/current.json?key=%s&q=%.4f,%.4f&aqi=no", cfg->base_url, key,
		 lat, lng);
	free(key);
	struct http_request req = {.url = url,
				   .timeout_ms = cfg->timeout_ms,
				   .connect_timeout_ms = cfg->timeout_ms,
				   .max_attempts = 1,
				   .max_response = 1 << 20};
	struct http_response resp;
	if (http_perform(&req, &resp) != 0) {
		*reason = resp.timed_out ? "timeout" : "unreachable";
		http_response_free(&resp);
		return NULL;
	}
	if (resp.status != 200) {
		static char why[32];
		snprintf(why, sizeof why, "http_%ld", resp.status);
		*reason = why;
		http_response_free(&resp);
		return NULL;
	}
	json_error_t jerr;
	json_t *o = json_loads(resp.body.data ? resp.body.data : "", 0, &jerr);
	http_response_free(&resp);
	json_t *cur = json_object_get(o, "current");
	json_t *t = json_object_get(cur, "temp_c"), *fl = json_object_get(cur, "feelslike_c"),
	       *h = json_object_get(cur, "humidity");
	json_t *cond = json_object_get(cur, "condition");
	if (!json_is_number(t) || !json_is_number(fl) || !json_is_number(h) ||
	    !json_is_integer(json_object_get(cond, "code")) || json_number_value(h) < 0 ||
	    json_number_value(h) > 100 || fabs(json_number_value(t)) > 80) {
		json_decref(o);
		*reason = "bad_answer";
		return NULL;
	}
	const char *text = json_string_value(json_object_get(cond, "text"));
	w = json_pack("{s:f, s:f, s:I, s:s, s:s}", "temp_c", json_number_value(t), "feels_like_c",
		      json_number_value(fl), "humidity", (json_int_t)round(json_number_value(h)),
		      "condition",
		      condition_word((int)json_integer_value(json_object_get(cond, "code")), text),
		      "condition_text", text ? text : "");
	json_decref(o);
	cache_write(cfg, path, w);
	return w;
}
