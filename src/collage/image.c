/* unde-collage's image work: n encoded originals in, one JPEG out (§5).
 *
 * The common height is worked out from the headers alone, before any pixel
 * is decoded. Then each part is decoded straight into its place in one
 * RGB buffer as wide as the collage (a plain JPEG by libjpeg with DCT
 * scaling, jpeg.c; anything else by libvips, vips.c), and that buffer is
 * encoded. The buffer (2048×546×3 = 3.4 MB for five 3:4 photos) is the
 * only copy of pixels that outlives a few rows. */
#include "config.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collage.h"
#include "image.h"
#include "util.h"

/* One part: where its pixels go and how to get them. */
struct collage_part_job {
	const struct buf *b;
	const char *type;  /* image/jpeg, image/png, image/webp */
	int plain;         /* a JPEG libjpeg does alone (collage_jpeg_probe) */
	int orientation;   /* its EXIF orientation, when plain */
	int dh;            /* upright height, from the header */
	int swap;          /* the EXIF orientation turns it by 90 degrees */
	int w, h;          /* upright size wanted */
	unsigned char *dst; /* its top left pixel in the collage */
	size_t stride;
	int failed;
	char error[400]; /* why, when failed */
	int cm_failed;
};

/* Decode one part into its place. A plain JPEG that libjpeg refuses
 * halfway is tried again by libvips, which then gives the error (or reads
 * it after all): the outcome for an odd file is the same as before there
 * was a libjpeg path. Not one whose data ends early: libvips would read
 * it after all, grey where the data is missing. */
static void collage_part(struct collage_part_job *j, size_t index)
{
	char why[300];
	int rc = j->plain ? collage_jpeg_part(j->b->data, j->b->len, j->orientation, j->w, j->h,
					      j->dst, j->stride, why, sizeof why)
			  : -1;
	if (rc == 0)
		return;
	if (rc != -2 && collage_vips_part(j->b, j->type, j->dh, j->swap, j->w, j->h, j->dst, j->stride,
			      &j->cm_failed, why, sizeof why) == 0)
		return;
	j->failed = 1;
	snprintf(j->error, sizeof j->error, "original %zu: %s", index + 1, why);
}

/* Work through the parts of one collage: each thread takes the next part
 * not yet taken. */
struct collage_pool {
	struct collage_part_job *jobs;
	size_t n, next;
	pthread_mutex_t lock;
};

/* Decode parts until none is left (this thread and collage_worker). */
static void collage_work(struct collage_pool *pool)
{
	for (;;) {
		pthread_mutex_lock(&pool->lock);
		size_t i = pool->next < pool->n ? pool->next++ : pool->n;
		pthread_mutex_unlock(&pool->lock);
		if (i >= pool->n)
			break;
		collage_part(&pool->jobs[i], i);
	}
}

/* A helper thread of collage_work: parts, then libvips' per-thread
 * buffers freed if it used libvips. */
static void *collage_worker(void *arg)
{
	collage_work(arg);
	collage_vips_thread_done();
	return NULL;
}

/* The header of original i: its type, upright size, orientation and
 * whether libjpeg can do it alone. 0, or -1 with why set. */
static int collage_header(const struct buf *b, size_t i, struct collage_part_job *j, int *w,
			  char *why, size_t whylen)
{
	char bad[200];
	/* libvips pads a truncated JPEG read from memory with grey, even
	 * with fail_on: check the bytes are a whole image first */
	if (!(j->type = image_sniff(b->data, b->len, NULL, bad, sizeof bad))) {
		snprintf(why, whylen, "original %zu: %s", i + 1, bad);
		return -1;
	}
	struct collage_jpeg_info info;
	if (strcmp(j->type, "image/jpeg") == 0 && collage_jpeg_probe(b->data, b->len, &info) == 0 &&
	    info.plain && info.width > 0 && info.height > 0) {
		j->plain = 1;
		j->orientation = info.orientation;
		j->swap = info.orientation >= 5;
		*w = j->swap ? info.height : info.width;
		j->dh = j->swap ? info.width : info.height;
		return 0;
	}
	char vwhy[300];
	if (collage_vips_header(b, w, &j->dh, &j->swap, vwhy, sizeof vwhy) != 0) {
		snprintf(why, whylen, "original %zu is not a readable image: %s", i + 1, vwhy);
		return -1;
	}
	return 0;
}

/* The collage's pixels are kept by each thread from one product to the
 * next (the block only ever grows): a fresh 3.4 MB block each time cost
 * some 800 page faults per product, each page cleared by the kernel and
 * then written again. */
static __thread unsigned char *collage_pixels;
static __thread size_t collage_pixels_size;

/* At least size bytes of this thread's pixel block, or NULL. */
static unsigned char *collage_pixels_get(size_t size)
{
	if (size > collage_pixels_size) {
		free(collage_pixels);
		collage_pixels_size = 0;
		if (!(collage_pixels = malloc(size)))
			return NULL;
		collage_pixels_size = size;
	}
	return collage_pixels;
}

/* collage_thread_done: see collage.h. */
void collage_thread_done(void)
{
	free(collage_pixels);
	collage_pixels = NULL;
	collage_pixels_size = 0;
	collage_vips_thread_done();
}

/* The collage's height before the width limit: the median of the parts'
 * upright heights (the upper one of an even count, so of two parts the
 * higher). One outlier, a 1×1 pixel or a 100×100 swatch among photos,
 * can then neither shrink the others to its size (as "the lowest" did) nor,
 * a very tall one, force them all down to fit it (as "the tallest" with
 * the width limit would). */
static int collage_common_height(const int *heights, size_t n)
{
	int sorted[COLLAGE_MAX_PHOTOS];
	memcpy(sorted, heights, n * sizeof *sorted);
	for (size_t i = 1; i < n; i++) /* n ≤ 16: insertion sort */
		for (size_t j = i; j > 0 && sorted[j - 1] > sorted[j]; j--) {
			int t = sorted[j];
			sorted[j] = sorted[j - 1];
			sorted[j - 1] = t;
		}
	return sorted[n / 2];
}

/* collage_build: see collage.h. */
int collage_build(const struct buf *bufs, size_t n, int max_width, int quality, int threads,
		  struct collage_out *out, char *why, size_t whylen)
{
	struct collage_part_job jobs[COLLAGE_MAX_PHOTOS];
	int w[COLLAGE_MAX_PHOTOS];
	memset(out, 0, sizeof *out);
	memset(jobs, 0, sizeof jobs);
	if (n == 0 || n > COLLAGE_MAX_PHOTOS) {
		snprintf(why, whylen, "%zu originals: 1 to %d make a collage", n, COLLAGE_MAX_PHOTOS);
		return -1;
	}

	/* headers only: sizes, upright */
	int heights[COLLAGE_MAX_PHOTOS];
	for (size_t i = 0; i < n; i++) {
		jobs[i].b = &bufs[i];
		if (collage_header(&bufs[i], i, &jobs[i], &w[i], why, whylen) != 0)
			return -1;
		heights[i] = jobs[i].dh;
	}
	int target_h = collage_common_height(heights, n);
	/* parts higher than that are lowered to it, lower ones keep their
	 * size (nothing is enlarged) and are centred on white; all of them
	 * are lowered together when that is too wide */
	double pw[COLLAGE_MAX_PHOTOS], ph[COLLAGE_MAX_PHOTOS], total = 0;
	for (size_t i = 0; i < n; i++) {
		ph[i] = jobs[i].dh < target_h ? jobs[i].dh : target_h;
		pw[i] = (double)w[i] * ph[i] / jobs[i].dh;
		total += pw[i];
	}
	double f = total > max_width ? max_width / total : 1;
	int full_h = (int)(target_h * f);
	if (full_h < 1)
		full_h = 1;

	/* each part's size; rounding must not push the widths' sum past
	 * max_width (a resize of the whole collage to lose two pixels costs
	 * more than all the parts' decoding). With n ≤ 16 parts and
	 * max_width ≥ 16 the sum always fits. */
	int sum = 0;
	for (size_t i = 0; i < n; i++) {
		jobs[i].w = (int)(pw[i] * f + 0.5);
		jobs[i].h = ph[i] >= target_h ? full_h : (int)(ph[i] * f + 0.5);
		if (jobs[i].w < 1)
			jobs[i].w = 1;
		if (jobs[i].h < 1)
			jobs[i].h = 1;
		if (jobs[i].h > full_h)
			jobs[i].h = full_h;
		sum += jobs[i].w;
	}
	while (sum > max_width) {
		size_t widest = 0;
		for (size_t i = 1; i < n; i++)
			if (jobs[i].w > jobs[widest].w)
				widest = i;
		if (jobs[widest].w <= 1)
			break;
		jobs[widest].w--;
		sum--;
	}

	/* the collage: every pixel of it is some part's, or the white
	 * around a lower one */
	size_t stride = (size_t)sum * 3;
	if ((size_t)full_h > SIZE_MAX / stride) {
		snprintf(why, whylen, "a %dx%d collage is too large", sum, full_h);
		return -1;
	}
	unsigned char *rgb = collage_pixels_get(stride * (size_t)full_h);
	if (!rgb) {
		snprintf(why, whylen, "out of memory for a %dx%d collage", sum, full_h);
		return -1;
	}
	size_t x = 0;
	for (size_t i = 0; i < n; i++) {
		int top = (full_h - jobs[i].h) / 2;
		if (jobs[i].h < full_h)
			for (int y = 0; y < full_h; y++)
				if (y < top || y >= top + jobs[i].h)
					memset(rgb + (size_t)y * stride + x * 3, 255, (size_t)jobs[i].w * 3);
		jobs[i].dst = rgb + (size_t)top * stride + x * 3;
		jobs[i].stride = stride;
		x += (size_t)jobs[i].w;
	}

	struct collage_pool pool = { .jobs = jobs, .n = n };
	pthread_mutex_init(&pool.lock, NULL);
	pthread_t tids[COLLAGE_MAX_PHOTOS];
	size_t nthreads = threads < 1 ? 1 : (size_t)threads < n ? (size_t)threads : n, started = 0;
	for (size_t t = 1; t < nthreads; t++)
		if (pthread_create(&tids[started], NULL, collage_worker, &pool) == 0)
			started++;
	collage_work(&pool); /* this thread takes parts too */
	for (size_t t = 0; t < started; t++)
		pthread_join(tids[t], NULL);
	pthread_mutex_destroy(&pool.lock);

	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		if (jobs[i].failed && rc == 0) {
			snprintf(why, whylen, "%s", jobs[i].error);
			rc = -1;
		}
		if (jobs[i].cm_failed)
			out->profile_ignored |= 1u << i;
	}
	if (rc == 0 && collage_jpeg_encode(rgb, sum, full_h, stride, quality, &out->jpeg, &out->len,
					   why, whylen) == 0) {
		out->width = sum;
		out->height = full_h;
	} else {
		rc = -1;
	}
	return rc;
}
