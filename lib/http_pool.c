/* http_pool.c — lib/http's state beyond one call: libcurl's global init
 * and the share handle (DNS answers, TLS sessions) of the process, and
 * each thread's multi handle, whose connections outlive a call and, when
 * the thread ends, serve the next thread calling the same origin. */
#include "config.h"

#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "http.h"
#include "http_int.h"
#include "util.h"

#define HTTP_IDLE_MAX 8 /* multi handles kept for the next thread */

/* --- process-wide state: libcurl's global init and the share handle ---- */

static pthread_once_t http_once = PTHREAD_ONCE_INIT;
static CURLSH *http_share;
static pthread_mutex_t http_share_lock[CURL_LOCK_DATA_LAST];

static void http_share_lock_fn(CURL *h, curl_lock_data data, curl_lock_access access, void *ud)
{
	(void)h, (void)access, (void)ud;
	assert((int)data >= 0 && data < CURL_LOCK_DATA_LAST);
	pthread_mutex_lock(&http_share_lock[data]);
}

static void http_share_unlock_fn(CURL *h, curl_lock_data data, void *ud)
{
	(void)h, (void)ud;
	pthread_mutex_unlock(&http_share_lock[data]);
}

/* Once per process (curl_global_init is not thread-safe in 7.88): DNS
 * answers and TLS sessions go in one share handle every thread uses. */
static void http_global_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&http_share_lock[i], NULL);
	http_share = curl_share_init();
	if (http_share) {
		curl_share_setopt(http_share, CURLSHOPT_LOCKFUNC, http_share_lock_fn);
		curl_share_setopt(http_share, CURLSHOPT_UNLOCKFUNC, http_share_unlock_fn);
		curl_share_setopt(http_share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
		curl_share_setopt(http_share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	}
}

/* http_global_init: see http_int.h. */
CURLSH *http_global_init(void)
{
	pthread_once(&http_once, http_global_init_once);
	return http_share;
}

/* --- per-thread state: one multi handle whose pool outlives a call ----- */

static pthread_mutex_t http_threads_lock = PTHREAD_MUTEX_INITIALIZER;
static struct http_thread *http_threads;
static pthread_key_t http_thread_key;
static pthread_once_t http_key_once = PTHREAD_ONCE_INIT;
/* Handles of threads that ended, their connections still open: the next
 * thread that calls one of their origins takes them (a worker thread's
 * connection to a sibling serves the main thread's next call to it). */
static struct http_conns http_idle[HTTP_IDLE_MAX];
static size_t http_nidle;

/* http_origin: see http_int.h. */
void http_origin(const char *url, char *out, size_t len)
{
	const char *p = strstr(url, "://");
	size_t n = p ? strcspn(p + 3, "/?#") + (size_t)(p + 3 - url) : strlen(url);
	snprintf(out, len, "%.*s", (int)n, url);
}

static int http_conns_know(const struct http_conns *c, const char *origin)
{
	for (int i = 0; i < HTTP_ORIGINS; i++)
		if (c->origins[i][0] && strcmp(c->origins[i], origin) == 0)
			return 1;
	return 0;
}

/* Remember origin as c's most recent. */
void http_conns_note(struct http_conns *c, const char *origin)
{
	int at = HTTP_ORIGINS - 1;
	for (int i = 0; i < HTTP_ORIGINS; i++)
		if (strcmp(c->origins[i], origin) == 0)
			at = i;
	memmove(c->origins[1], c->origins[0], (size_t)at * HTTP_ORIGIN_MAX);
	snprintf(c->origins[0], HTTP_ORIGIN_MAX, "%s", origin);
}

/* Keep c for the next thread, or close it when enough are kept. */
static void http_idle_put(struct http_conns *c)
{
	pthread_mutex_lock(&http_threads_lock);
	if (http_nidle < HTTP_IDLE_MAX) {
		http_idle[http_nidle++] = *c;
		c->multi = NULL;
	}
	pthread_mutex_unlock(&http_threads_lock);
	if (c->multi)
		curl_multi_cleanup(c->multi);
	c->multi = NULL;
}

/* An idle handle with a connection to origin (any one when origin is
 * NULL), taken out of the idle list; 0 when there is none. */
static int http_idle_take(const char *origin, struct http_conns *out)
{
	int got = 0;
	pthread_mutex_lock(&http_threads_lock);
	for (size_t i = http_nidle; i-- > 0;) {
		if (origin && !http_conns_know(&http_idle[i], origin))
			continue;
		*out = http_idle[i];
		http_idle[i] = http_idle[--http_nidle];
		got = 1;
		break;
	}
	pthread_mutex_unlock(&http_threads_lock);
	return got;
}

static void http_thread_free(void *p)
{
	struct http_thread *ht = p;
	if (!ht)
		return;
	pthread_mutex_lock(&http_threads_lock);
	if (ht->prev)
		ht->prev->next = ht->next;
	else
		http_threads = ht->next;
	if (ht->next)
		ht->next->prev = ht->prev;
	pthread_mutex_unlock(&http_threads_lock);
	http_idle_put(&ht->c);
	free(ht);
}

static void http_key_init(void)
{
	pthread_key_create(&http_thread_key, http_thread_free);
}

/* This thread's multi handle, made on first use: an ended thread's that
 * was connected to origin ("": none) when one is kept, else a new one. */
struct http_thread *http_thread_get(const char *origin)
{
	pthread_once(&http_key_once, http_key_init);
	struct http_thread *ht = pthread_getspecific(http_thread_key);
	if (ht)
		return ht;
	ht = xcalloc(1, sizeof *ht);
	if (!origin[0] || !http_idle_take(origin, &ht->c)) {
		ht->c.multi = curl_multi_init();
		if (!ht->c.multi) {
			free(ht);
			return NULL;
		}
		curl_multi_setopt(ht->c.multi, CURLMOPT_MAXCONNECTS, 32L);
	}
	pthread_mutex_lock(&http_threads_lock);
	ht->next = http_threads;
	if (http_threads)
		http_threads->prev = ht;
	http_threads = ht;
	pthread_mutex_unlock(&http_threads_lock);
	pthread_setspecific(http_thread_key, ht);
	return ht;
}

/* Before a call to origin: when this thread's handle has never been
 * there but an ended thread's has, swap them (ours is kept in its place). */
void http_thread_adopt(struct http_thread *ht, const char *origin)
{
	struct http_conns other;
	if (http_conns_know(&ht->c, origin) || !http_idle_take(origin, &other))
		return;
	http_idle_put(&ht->c);
	ht->c = other;
}

void http_thread_cleanup(void)
{
	pthread_once(&http_key_once, http_key_init);
	struct http_thread *ht = pthread_getspecific(http_thread_key);
	if (!ht || ht->busy)
		return;
	pthread_setspecific(http_thread_key, NULL);
	http_thread_free(ht);
}

void http_close_idle(void)
{
	http_thread_cleanup();
	struct http_conns c;
	while (http_idle_take(NULL, &c))
		curl_multi_cleanup(c.multi);
}
