/* unde-collage's work ahead on a queue of products (--pending,
 * --retry-failed): while the main thread uploads one product's collage and
 * records it in the database, worker threads are already building the next
 * ones, one product per thread. A product is not split between threads:
 * five parts on two cores leave one idle for a part in three, and the
 * encoding would wait for the slowest part; whole products keep every
 * core busy and need no hand-over at all.
 *
 * The main thread does all the I/O (the object store, the database) and
 * hands over the originals it fetched; the workers only decode and encode.
 * Results are taken in the order the products were handed over; how many
 * are handed over at once is the caller's choice (memory: the originals
 * of each, the collage being built by each worker). */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collage.h"
#include "util.h"

struct ahead_item {
	struct ahead_item *next;
	char id[24];
	char *urls_json;
	struct buf bufs[COLLAGE_MAX_PHOTOS];
	size_t n;
	enum { AHEAD_QUEUED, AHEAD_BUILDING, AHEAD_DONE } state;
	int dropped; /* taken out of the list while being built: its worker frees it */
	int rc;
	double ms;
	struct collage_out out;
	char why[512];
};

struct collage_ahead {
	pthread_mutex_t lock;
	pthread_cond_t work, done;
	struct ahead_item *head, *tail; /* handed over, not taken */
	size_t count;
	int stop;
	int max_width, quality;
	pthread_t tids[COLLAGE_MAX_PHOTOS];
	size_t nthreads;
};

/* Free a product handed over: its originals, its collage, itself. */
static void ahead_item_free(struct ahead_item *it)
{
	for (size_t i = 0; i < it->n; i++)
		buf_free(&it->bufs[i]);
	free(it->out.jpeg);
	free(it->urls_json);
	free(it);
}

/* The first item not yet started, or NULL. Called locked. */
static struct ahead_item *ahead_next_queued(struct collage_ahead *a)
{
	for (struct ahead_item *it = a->head; it; it = it->next)
		if (it->state == AHEAD_QUEUED)
			return it;
	return NULL;
}

/* A worker: build the next product handed over, until stopped. The
 * originals are freed as soon as the collage is made. */
static void *ahead_worker(void *arg)
{
	struct collage_ahead *a = arg;
	pthread_mutex_lock(&a->lock);
	for (;;) {
		struct ahead_item *it = NULL;
		while (!a->stop && !(it = ahead_next_queued(a)))
			pthread_cond_wait(&a->work, &a->lock);
		if (a->stop)
			break;
		it->state = AHEAD_BUILDING;
		pthread_mutex_unlock(&a->lock);
		double t0 = util_now_ms();
		it->rc = collage_build(it->bufs, it->n, a->max_width, a->quality, 1, &it->out, it->why,
				       sizeof it->why);
		it->ms = util_now_ms() - t0;
		for (size_t i = 0; i < it->n; i++)
			buf_free(&it->bufs[i]);
		pthread_mutex_lock(&a->lock);
		it->state = AHEAD_DONE;
		if (it->dropped)
			ahead_item_free(it);
		pthread_cond_broadcast(&a->done);
	}
	pthread_mutex_unlock(&a->lock);
	collage_thread_done();
	return NULL;
}

/* collage_ahead_new: see collage.h. */
struct collage_ahead *collage_ahead_new(int threads, int max_width, int quality)
{
	struct collage_ahead *a = calloc(1, sizeof *a);
	if (!a)
		return NULL;
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->work, NULL);
	pthread_cond_init(&a->done, NULL);
	a->max_width = max_width;
	a->quality = quality;
	if (threads < 1)
		threads = 1;
	for (int t = 0; t < threads && t < COLLAGE_MAX_PHOTOS; t++)
		if (pthread_create(&a->tids[a->nthreads], NULL, ahead_worker, a) == 0)
			a->nthreads++;
	if (a->nthreads == 0) {
		collage_ahead_free(a);
		return NULL;
	}
	return a;
}

/* collage_ahead_submit: see collage.h. */
void collage_ahead_submit(struct collage_ahead *a, const char *id, const char *urls_json,
			  struct buf *bufs, size_t n)
{
	struct ahead_item *it = xcalloc(1, sizeof *it);
	snprintf(it->id, sizeof it->id, "%s", id);
	it->urls_json = xstrdup(urls_json);
	it->n = n < COLLAGE_MAX_PHOTOS ? n : COLLAGE_MAX_PHOTOS;
	for (size_t i = 0; i < it->n; i++) {
		it->bufs[i] = bufs[i];
		memset(&bufs[i], 0, sizeof bufs[i]);
	}
	pthread_mutex_lock(&a->lock);
	if (a->tail)
		a->tail->next = it;
	else
		a->head = it;
	a->tail = it;
	a->count++;
	pthread_cond_signal(&a->work);
	pthread_mutex_unlock(&a->lock);
}

/* collage_ahead_queued: see collage.h. */
size_t collage_ahead_queued(const struct collage_ahead *a)
{
	return a->count; /* only the caller's thread changes it */
}

/* Take the list's first item out. Called locked. */
static struct ahead_item *ahead_pop(struct collage_ahead *a)
{
	struct ahead_item *it = a->head;
	a->head = it->next;
	if (!a->head)
		a->tail = NULL;
	a->count--;
	it->next = NULL;
	return it;
}

/* collage_ahead_take: see collage.h. */
int collage_ahead_take(struct collage_ahead *a, const char *id, const char *urls_json, int *rc,
		       double *ms, struct collage_out *out, char *why, size_t whylen)
{
	pthread_mutex_lock(&a->lock);
	struct ahead_item *it = a->head;
	while (it && strcmp(it->id, id) != 0)
		it = it->next;
	if (!it) {
		pthread_mutex_unlock(&a->lock);
		return 0;
	}
	/* those before it were skipped (taken by another run, done before…) */
	while (a->head != it) {
		struct ahead_item *old = ahead_pop(a);
		if (old->state == AHEAD_BUILDING)
			old->dropped = 1;
		else
			ahead_item_free(old);
	}
	while (it->state != AHEAD_DONE)
		pthread_cond_wait(&a->done, &a->lock);
	ahead_pop(a);
	pthread_mutex_unlock(&a->lock);
	int same = urls_json && strcmp(urls_json, it->urls_json) == 0;
	if (same) {
		*rc = it->rc;
		*ms = it->ms;
		*out = it->out;
		memset(&it->out, 0, sizeof it->out);
		snprintf(why, whylen, "%s", it->why);
	}
	ahead_item_free(it);
	return same;
}

/* collage_ahead_free: see collage.h. */
void collage_ahead_free(struct collage_ahead *a)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->lock);
	a->stop = 1;
	pthread_cond_broadcast(&a->work);
	pthread_mutex_unlock(&a->lock);
	for (size_t t = 0; t < a->nthreads; t++)
		pthread_join(a->tids[t], NULL);
	/* a worker stops between products: none is being built now */
	while (a->head)
		ahead_item_free(ahead_pop(a));
	pthread_cond_destroy(&a->work);
	pthread_cond_destroy(&a->done);
	pthread_mutex_destroy(&a->lock);
	free(a);
}
