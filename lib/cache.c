/* cache.c — LRU + TTL over a chained hash table; see cache.h. */
#include "config.h"

#include <assert.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "util.h"

struct cache_entry {
	char *key;
	json_t *value;
	double expires_ms;
	struct cache_entry *hnext;       /* hash chain */
	struct cache_entry *prev, *next; /* recency list: head is the newest */
};

struct cache {
	pthread_mutex_t lock;
	size_t max, n, nbuckets;
	long ttl_ms;
	struct cache_entry **buckets;
	struct cache_entry *head, *tail;
	struct cache_stats st;
};

static size_t cache_hash(const char *s)
{
	size_t h = 5381;
	for (; *s; s++)
		h = h * 33 ^ (unsigned char)*s;
	return h;
}

struct cache *cache_new(size_t max_entries, long ttl_ms)
{
	assert(max_entries >= 1);
	struct cache *c = xcalloc(1, sizeof *c);
	pthread_mutex_init(&c->lock, NULL);
	c->max = max_entries;
	c->ttl_ms = ttl_ms;
	c->nbuckets = 16;
	while (c->nbuckets < max_entries)
		c->nbuckets *= 2;
	c->buckets = xcalloc(c->nbuckets, sizeof *c->buckets);
	return c;
}

static void cache_unlink(struct cache *c, struct cache_entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		c->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		c->tail = e->prev;
	e->prev = e->next = NULL;
}

static void cache_push_front(struct cache *c, struct cache_entry *e)
{
	e->next = c->head;
	e->prev = NULL;
	if (c->head)
		c->head->prev = e;
	c->head = e;
	if (!c->tail)
		c->tail = e;
}

/* Take e out of the table and the list and free it. */
static void cache_remove(struct cache *c, struct cache_entry *e)
{
	struct cache_entry **pp = &c->buckets[cache_hash(e->key) & (c->nbuckets - 1)];
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	cache_unlink(c, e);
	json_decref(e->value);
	free(e->key);
	free(e);
	c->n--;
}

static struct cache_entry *cache_lookup(struct cache *c, const char *key)
{
	for (struct cache_entry *e = c->buckets[cache_hash(key) & (c->nbuckets - 1)]; e; e = e->hnext)
		if (strcmp(e->key, key) == 0)
			return e;
	return NULL;
}

json_t *cache_get(struct cache *c, const char *key)
{
	pthread_mutex_lock(&c->lock);
	struct cache_entry *e = cache_lookup(c, key);
	json_t *v = NULL;
	if (e && e->expires_ms <= util_now_ms()) {
		cache_remove(c, e);
		c->st.expired++;
		e = NULL;
	}
	if (e) {
		cache_unlink(c, e);
		cache_push_front(c, e);
		v = json_incref(e->value);
		c->st.hits++;
	} else {
		c->st.misses++;
	}
	pthread_mutex_unlock(&c->lock);
	return v;
}

void cache_put(struct cache *c, const char *key, json_t *value)
{
	pthread_mutex_lock(&c->lock);
	struct cache_entry *e = cache_lookup(c, key);
	if (e) {
		json_decref(e->value);
		cache_unlink(c, e);
	} else {
		while (c->n >= c->max) {
			cache_remove(c, c->tail);
			c->st.evicted++;
		}
		e = xcalloc(1, sizeof *e);
		e->key = xstrdup(key);
		size_t b = cache_hash(key) & (c->nbuckets - 1);
		e->hnext = c->buckets[b];
		c->buckets[b] = e;
		c->n++;
	}
	e->value = json_incref(value);
	e->expires_ms = util_now_ms() + (double)c->ttl_ms;
	cache_push_front(c, e);
	pthread_mutex_unlock(&c->lock);
}

void cache_del(struct cache *c, const char *key)
{
	pthread_mutex_lock(&c->lock);
	struct cache_entry *e = cache_lookup(c, key);
	if (e)
		cache_remove(c, e);
	pthread_mutex_unlock(&c->lock);
}

struct cache_stats cache_stats(struct cache *c)
{
	pthread_mutex_lock(&c->lock);
	struct cache_stats s = c->st;
	s.entries = c->n;
	pthread_mutex_unlock(&c->lock);
	return s;
}

void cache_free(struct cache *c)
{
	if (!c)
		return;
	while (c->head)
		cache_remove(c, c->head);
	free(c->buckets);
	pthread_mutex_destroy(&c->lock);
	free(c);
}
