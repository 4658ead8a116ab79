/* unde-collage's image work: n encoded originals in, one JPEG out (§5).
 *
 * The common height is worked out from the headers alone, before any pixel
 * is decoded. Then each part is decoded straight into its place in the
 * collage (a plain JPEG by libjpeg with DCT scaling, jpeg.c; anything else
 * by libvips, vips.c), which is kept as the JPEG encoder takes it: a Y
 * plane and two chroma planes at half resolution (below quality 90), so a
 * JPEG's planes go from its IDCT to the collage's FDCT with no colour
 * conversion and no chroma upsampled only to be subsampled again. The
 * planes (2048×546 + 2 × 1024×273 = 1.7 MB for five 3:4 photos) are the
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
	int x, top;        /* its top left pixel in the collage */
	struct collage_part_out out;
	int failed;
	char error[400]; /* why, when failed */
	int cm_failed;
};

/* collage_part_from_pixels: see collage.h. */
int collage_part_from_pixels(const struct collage_part_out *out, const unsigned char *const p[3],
			     size_t pixstep, size_t stride, int rgb)
{
	int w = out->w, h = out->h;
	if (!p[1]) { /* grey: Y as it is, no colour */
		for (int y = 0; y < h; y++) {
			const unsigned char *s = p[0] + (size_t)y * stride;
			unsigned char *o = out->y + (size_t)y * out->y_stride;
			for (int x = 0; x < w; x++)
				o[x] = s[(size_t)x * pixstep];
		}
		memset(out->cb, 128, (size_t)out->cw * (size_t)out->ch);
		memset(out->cr, 128, (size_t)out->cw * (size_t)out->ch);
		return 0;
	}
	struct collage_scaler *cb = collage_scaler_new(w, h, w, out->step, out->off_x, h, out->step,
						       out->off_y, 1, (size_t)w, out->cb,
						       (size_t)out->cw);
	struct collage_scaler *cr = collage_scaler_new(w, h, w, out->step, out->off_x, h, out->step,
						       out->off_y, 1, (size_t)w, out->cr,
						       (size_t)out->cw);
	if (!cb || !cr) {
		collage_scaler_free(cb);
		collage_scaler_free(cr);
		return -1;
	}
	for (int y = 0; y < h; y++) {
		const unsigned char *s0 = p[0] + (size_t)y * stride, *s1 = p[1] + (size_t)y * stride,
				    *s2 = p[2] + (size_t)y * stride;
		unsigned char *oy = out->y + (size_t)y * out->y_stride;
		unsigned char *ob = collage_scaler_slot(cb, 0), *or = collage_scaler_slot(cr, 0);
		for (int x = 0; x < w; x++) {
			size_t i = (size_t)x * pixstep;
			if (!rgb) {
				oy[x] = s0[i];
				ob[x] = s1[i];
				or[x] = s2[i];
				continue;
			}
			/* libjpeg's RGB to YCbCr (JFIF), in 16-bit fixed point */
			long r = s0[i], g = s1[i], b = s2[i];
			oy[x] = (unsigned char)((19595 * r + 38470 * g + 7471 * b + 32768) >> 16);
			ob[x] = (unsigned char)((-11059 * r - 21709 * g + 32768 * b + (128L << 16) + 32767) >> 16);
			or[x] = (unsigned char)((32768 * r - 27439 * g - 5329 * b + (128L << 16) + 32767) >> 16);
		}
		collage_scaler_fed(cb, 1);
		collage_scaler_fed(cr, 1);
	}
	collage_scaler_free(cb);
	collage_scaler_free(cr);
	return 0;
}

/* An image libvips decodes: to whole RGB pixels at the part's size, then
 * into the part. 0, or -1 with why set. */
static int collage_vips_into(struct collage_part_job *j, char *why, size_t whylen)
{
	size_t stride = (size_t)j->w * 3;
	unsigned char *rgb = malloc(stride * (size_t)j->h);
	if (!rgb) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	int rc = collage_vips_part(j->b, j->type, j->dh, j->swap, j->w, j->h, rgb, stride,
				   &j->cm_failed, why, whylen);
	if (rc == 0) {
		const unsigned char *p[3] = { rgb, rgb + 1, rgb + 2 };
		if (collage_part_from_pixels(&j->out, p, 3, stride, 1) != 0) {
			snprintf(why, whylen, "out of memory");
			rc = -1;
		}
	}
	free(rgb);
	return rc;
}

/* Decode one part into its place. A plain JPEG that libjpeg refuses
 * halfway is tried again by libvips, which then gives the error (or reads
 * it after all): the outcome for an odd file is the same as before there
 * was a libjpeg path. Not one whose data ends early: libvips would read
 * it after all, grey where the data is missing. */
static void collage_part(struct collage_part_job *j, size_t index)
{
	char why[300];
	int rc = j->plain ? collage_jpeg_part(j->b->data, j->b->len, j->orientation, &j->out, why,
					      sizeof why)
			  : -1;
	if (rc == 0)
		return;
	if (rc != -2 && collage_vips_into(j, why, sizeof why) == 0)
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

/* A helper thread of collage_work: parts, then its filters and libvips' per-thread
 * buffers freed if it used libvips. */
static void *collage_worker(void *arg)
{
	collage_work(arg);
	collage_scaler_thread_done();
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
	collage_scaler_thread_done();
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

/* Join part j's chroma cells (one plane of them) into the collage's plane
 * (cs bytes apart, ch rows), the parts taken left to right. A cell the part
 * shares with the white above or below it is their mean; one it shares
 * with the part on its left is the mean of the two parts' halves (that
 * part's half, or its white, is in the plane already). A cell cut by the
 * collage's own edge is the part's alone, as libjpeg's padding makes it. */
static void collage_place_cells(const struct collage_part_job *j, const unsigned char *cells,
				unsigned char *plane, size_t cs, int height, int ch)
{
	const struct collage_part_out *o = &j->out;
	int cx0 = j->x / o->step, cy0 = j->top / o->step;
	int half_top = o->off_y != 0;
	int half_bottom = (o->off_y + o->h) % o->step != 0 && j->top + j->h < height;
	int shared_left = o->off_x != 0;
	for (int r = 0; r < ch; r++) {
		unsigned char *row = plane + (size_t)r * cs + cx0;
		int jr = r - cy0;
		if (jr < 0 || jr >= o->ch) { /* white in the part's column */
			if (shared_left)
				row[0] = (unsigned char)((row[0] + 128 + 1) >> 1);
			continue;
		}
		const unsigned char *src = cells + (size_t)jr * (size_t)o->cw;
		int left = row[0];
		if ((jr == 0 && half_top) || (jr == o->ch - 1 && half_bottom))
			for (int i = 0; i < o->cw; i++)
				row[i] = (unsigned char)((src[i] + 128 + 1) >> 1);
		else
			memcpy(row, src, (size_t)o->cw);
		if (shared_left)
			row[0] = (unsigned char)((left + row[0] + 1) >> 1);
	}
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
	 * around a lower one. Its planes are padded to whole blocks of the
	 * encoder's (16 pixels, or 8 at full chroma), the parts' own chroma
	 * cells come after them. */
	int step = quality >= 90 ? 1 : 2, mcu = 8 * step;
	int cw = (sum + step - 1) / step, ch = (full_h + step - 1) / step;
	size_t ys = (size_t)(sum + mcu - 1) / (size_t)mcu * (size_t)mcu + 32;
	size_t yrows = (size_t)(full_h + mcu - 1) / (size_t)mcu * (size_t)mcu;
	size_t cs = (size_t)(cw + 7) / 8 * 8 + 32, crows = (size_t)(ch + 7) / 8 * 8;
	if (yrows > SIZE_MAX / 8 / ys) {
		snprintf(why, whylen, "a %dx%d collage is too large", sum, full_h);
		return -1;
	}
	size_t size = ys * yrows + 2 * cs * crows, cells_at = size;
	for (size_t i = 0; i < n; i++) {
		int x0 = 0;
		for (size_t k = 0; k < i; k++)
			x0 += jobs[k].w;
		jobs[i].x = x0;
		jobs[i].top = (full_h - jobs[i].h) / 2;
		struct collage_part_out *o = &jobs[i].out;
		o->w = jobs[i].w;
		o->h = jobs[i].h;
		o->step = step;
		o->off_x = x0 % step;
		o->off_y = jobs[i].top % step;
		o->cw = (o->off_x + o->w + step - 1) / step;
		o->ch = (o->off_y + o->h + step - 1) / step;
		o->y_stride = ys;
		size += 2 * (size_t)o->cw * (size_t)o->ch;
	}
	unsigned char *mem = collage_pixels_get(size);
	if (!mem) {
		snprintf(why, whylen, "out of memory for a %dx%d collage", sum, full_h);
		return -1;
	}
	unsigned char *planes[3] = { mem, mem + ys * yrows, mem + ys * yrows + cs * crows };
	size_t strides[3] = { ys, cs, cs };
	memset(planes[1], 128, 2 * cs * crows); /* white's chroma */
	unsigned char *cells = mem + cells_at;
	for (size_t i = 0; i < n; i++) {
		struct collage_part_job *j = &jobs[i];
		if (j->h < full_h)
			for (int y = 0; y < full_h; y++)
				if (y < j->top || y >= j->top + j->h)
					memset(planes[0] + (size_t)y * ys + j->x, 255, (size_t)j->w);
		j->out.y = planes[0] + (size_t)j->top * ys + j->x;
		j->out.cb = cells;
		j->out.cr = cells + (size_t)j->out.cw * (size_t)j->out.ch;
		cells += 2 * (size_t)j->out.cw * (size_t)j->out.ch;
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
	if (rc != 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		for (int c = 1; c < 3; c++)
			collage_place_cells(&jobs[i], c == 1 ? jobs[i].out.cb : jobs[i].out.cr, planes[c],
					    cs, full_h, ch);
	if (collage_jpeg_encode(planes, strides, sum, full_h, step, quality, &out->jpeg, &out->len, why,
				whylen) != 0)
		return -1;
	out->width = sum;
	out->height = full_h;
	return 0;
}
