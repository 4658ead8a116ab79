/* cache.h — an in-process LRU cache with a TTL, keyed by string.
 *
 * For what an online filter reads again and again (a user's profile, a
 * mood frame): values are JSON, held by reference. Its lifetime is one
 * filter process: unde-httpd runs one process per kept-alive connection,
 * so two processes may each hold an entry for one key, and a change
 * written by one is seen by another only when its entry expires. Keep the
 * TTL as short as that staleness is acceptable, and drop an entry
 * (cache_del) when this process changes the thing it caches. Safe to use
 * from several threads (one lock). */
#ifndef UNDE_CACHE_H
#define UNDE_CACHE_H

#include <stddef.h>

#include <jansson.h>

struct cache;

/* At most max_entries (>= 1); each lives ttl_ms after it was put. */
struct cache *cache_new(size_t max_entries, long ttl_ms);
void cache_free(struct cache *c);

/* The value under key (a new reference), or NULL when missing or expired. */
json_t *cache_get(struct cache *c, const char *key);
/* Put value (a reference is taken) under key, evicting the least recently
 * used entry when full. */
void cache_put(struct cache *c, const char *key, json_t *value);
void cache_del(struct cache *c, const char *key);

struct cache_stats {
	unsigned long hits, misses, expired, evicted;
	size_t entries;
};
struct cache_stats cache_stats(struct cache *c);

#endif
