/* weather.h — current weather from WeatherAPI.com, through a file cache
 * shared by every process of the host (each unde-httpd connection is its
 * own process): one JSON file per location rounded to 0.01°, replaced
 * atomically (write a temporary file, rename), fresh for WEATHER_CACHE_TTL
 * seconds. */
#ifndef UNDE_CONTEXT_WEATHER_H
#define UNDE_CONTEXT_WEATHER_H

#include <jansson.h>

struct weather_cfg {
	const char *base_url;  /* WEATHER_API_URL */
	const char *api_key;   /* WEATHER_API_KEY, NULL: none */
	const char *cache_dir; /* WEATHER_CACHE_DIR */
	long ttl;              /* WEATHER_CACHE_TTL, seconds */
	long timeout_ms;       /* per request */
};

/* The weather object ({temp_c, feels_like_c, humidity, condition,
 * condition_text}) for lat/lng, new reference; NULL with *reason set
 * ("no_key", "timeout", "http_403", "bad_answer", …). *cache_hit says
 * whether the cache answered. */
json_t *weather_get(const struct weather_cfg *cfg, double lat, double lng, const char **reason,
		    int *cache_hit);

#endif
