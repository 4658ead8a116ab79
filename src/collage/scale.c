/* unde-collage's resampler: one plane of 8-bit samples (the Y, Cb or Cr
 * of a JPEG as libjpeg decodes it, before any colour conversion),
 * arriving row by row, reduced to its cells in the collage.
 *
 * It runs on what libjpeg's DCT scaling leaves, so the reduction left is
 * small (less than 2× for the luma when the photo is larger than the
 * part; about 3× for the chroma, which the collage keeps at half
 * resolution). The filter is a triangle ("linear") as wide as each cell,
 * so every source sample counts and nothing aliases. A cell is one pixel
 * of the part, or for the chroma two by two pixels of the collage, cut
 * where the part begins or ends on an odd pixel (image.c joins the two
 * halves). Weights are 8-bit fixed point adding up to 256, so with 8-bit
 * samples every sum fits 16 bits. Vertical first, on whole source rows
 * (one weight per row), then horizontal on the shorter result, 8 cells at
 * a time (the passes themselves, plain and AVX2, in scale_kernels.c).
 * Only as many source rows as the filter spans and libjpeg gives at once
 * are kept, and libjpeg writes them in place: never the image. */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "collage.h"
#include "scale.h"

/* Free an axis' taps (not a itself). */
static void scale_axis_free(struct scale_axis *a)
{
	free(a->start);
	free(a->n);
	free(a->w);
	free(a->hw);
	free(a->win);
	free(a->win_ok);
}

/* Work out the taps that reduce (or, for a photo smaller than its part,
 * stretch) in source samples to the cells of an axis of the part len
 * pixels long: cell i covers pixels [i * step - off, (i + 1) * step -
 * off) of it, cut to [0, len). The triangle filter is centred on the
 * cell's centre, as wide as the cell and at least one source sample;
 * weights rounded to fixed point without losing their sum. 0, or -1 when
 * out of memory. */
static int scale_axis_init(struct scale_axis *a, int in, int len, int step, int off)
{
	double k = (double)in / len;
	int maxn = (int)ceil(2 * (step * k > 1 ? step * k : 1)) + 2;
	memset(a, 0, sizeof *a);
	a->cells = (off + len + step - 1) / step;
	a->start = malloc((size_t)a->cells * sizeof *a->start);
	a->n = malloc((size_t)a->cells * sizeof *a->n);
	a->w = calloc((size_t)a->cells * (size_t)maxn, sizeof *a->w);
	double *f = malloc((size_t)maxn * sizeof *f);
	if (!a->start || !a->n || !a->w || !f) {
		free(f);
		scale_axis_free(a);
		return -1;
	}
	for (int i = 0; i < a->cells; i++) {
		int p0 = i * step - off, p1 = p0 + step;
		if (p0 < 0)
			p0 = 0;
		if (p1 > len)
			p1 = len;
		double centre = (p0 + p1) * k / 2, support = (p1 - p0) * k;
		if (support < 1)
			support = 1;
		int lo = (int)floor(centre - support), hi = (int)ceil(centre + support);
		if (lo < 0)
			lo = 0;
		if (hi > in)
			hi = in;
		double sum = 0;
		int n = 0;
		for (int j = lo; j < hi && n < maxn; j++) {
			double d = fabs(j + 0.5 - centre) / support;
			f[n] = d < 1 ? 1 - d : 0;
			sum += f[n++];
		}
		/* drop zero taps at both ends */
		int first = 0;
		while (first < n - 1 && f[first] == 0)
			first++;
		while (n - 1 > first && f[n - 1] == 0)
			n--;
		if (sum <= 0) { /* cannot happen with support ≥ 1; nearest sample then */
			f[first] = 1;
			sum = 1;
		}
		a->start[i] = lo + first;
		a->n[i] = n - first;
		uint16_t *w = a->w + (size_t)i * maxn;
		int total = 0, big = 0;
		if (a->n[i] > a->taps)
			a->taps = a->n[i];
		for (int t = 0; t < a->n[i]; t++) {
			int v = (int)lrint(f[first + t] / sum * (1 << SCALE_BITS));
			w[t] = (uint16_t)v;
			total += v;
			if (v > w[big])
				big = t;
		}
		w[big] = (uint16_t)(w[big] + ((1 << SCALE_BITS) - total));
	}
	a->stride = maxn;
	free(f);
	return 0;
}

/* Horizontal weights for the vector pass: every cell gets k (4 or 8)
 * taps from its start, zero weights added (for pmaddwd: s16 ≤ 256). The source row has slack
 * after it, so the added taps may read past its end. 0, or -1 when out
 * of memory. */
static int scale_hw_init(struct scale_axis *a, int k)
{
	if (!(a->hw = calloc((size_t)a->cells * (size_t)k + 8 * (size_t)k, sizeof *a->hw)))
		return -1;
	for (int x = 0; x < a->cells; x++)
		memcpy(a->hw + (size_t)x * k, a->w + (size_t)x * a->stride, (size_t)a->n[x] * sizeof *a->hw);
	a->k8 = k;
	if (k != 4)
		return 0;
	size_t groups = (size_t)a->cells / 8;
	if (!(a->win = malloc(groups * 32 + 1)) || !(a->win_ok = malloc(groups + 1)))
		return -1;
	for (size_t g = 0; g < groups; g++) {
		const int *st = a->start + g * 8;
		a->win_ok[g] = st[7] + 3 - st[0] <= 15;
		for (int i = 0; i < 8; i++)
			for (int t = 0; t < 4; t++)
				a->win[g * 32 + (size_t)i * 4 + (size_t)t] =
					(unsigned char)(a->win_ok[g] ? st[i] - st[0] + t : 0);
	}
	return 0;
}

/* The axes made last on this thread: the parts of one collage, and its
 * Cb and Cr, mostly have the same ones. */
#define SCALE_CACHE 8
static __thread struct scale_axis *scale_cache[SCALE_CACHE];
static __thread unsigned scale_cache_next;

/* Drop a scaler's use of a; freed when no scaler uses it and it is no
 * longer cached. */
static void scale_axis_put(struct scale_axis *a)
{
	if (a && --a->refs == 0 && !a->cached) {
		scale_axis_free(a);
		free(a);
	}
}

/* The axis for scale_axis_init's arguments, from the cache or made (and
 * cached), with its weights for the vector pass: one use more. NULL when
 * out of memory. */
static struct scale_axis *scale_axis_get(int in, int len, int step, int off)
{
	for (int i = 0; i < SCALE_CACHE; i++) {
		struct scale_axis *a = scale_cache[i];
		if (a && a->in == in && a->len == len && a->step == step && a->off == off) {
			a->refs++;
			return a;
		}
	}
	struct scale_axis *a = malloc(sizeof *a);
	if (!a)
		return NULL;
	if (scale_axis_init(a, in, len, step, off)) {
		free(a);
		return NULL;
	}
	int k = a->taps <= 4 ? 4 : a->taps <= 8 ? 8 : 0;
	if (k && scale_hw_init(a, k)) {
		scale_axis_free(a);
		free(a);
		return NULL;
	}
	a->in = in;
	a->len = len;
	a->step = step;
	a->off = off;
	a->refs = 1;
	a->cached = 1;
	unsigned slot = scale_cache_next++ % SCALE_CACHE;
	struct scale_axis *old = scale_cache[slot];
	scale_cache[slot] = a;
	if (old) {
		old->cached = 0;
		old->refs++;
		scale_axis_put(old);
	}
	return a;
}

/* collage_scaler_thread_done: see collage.h. */
void collage_scaler_thread_done(void)
{
	for (int i = 0; i < SCALE_CACHE; i++) {
		struct scale_axis *a = scale_cache[i];
		scale_cache[i] = NULL;
		if (a) {
			a->cached = 0;
			a->refs++;
			scale_axis_put(a);
		}
	}
}

/* collage_scaler_new: see collage.h. */
struct collage_scaler *collage_scaler_new(int in_w, int in_h, int len_x, int step_x, int off_x,
					  int len_y, int step_y, int off_y, int batch, size_t row_bytes,
					  unsigned char *dst, size_t dst_stride)
{
	struct collage_scaler *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->dst = dst;
	s->dst_stride = dst_stride;
	s->src_w = in_w;
	s->src_h = in_h;
	int cells_x = (off_x + len_x + step_x - 1) / step_x, cells_y = (off_y + len_y + step_y - 1) / step_y;
	s->halve = in_w >= 2 * cells_x && in_h >= 2 * cells_y && in_w >= 2 && in_h >= 2;
	if (s->halve) {
		in_w = (in_w + 1) / 2;
		in_h = (in_h + 1) / 2;
	}
	s->in_w = in_w;
	s->in_h = in_h;
	if (!(s->h = scale_axis_get(in_w, len_x, step_x, off_x)) ||
	    !(s->v = scale_axis_get(in_h, len_y, step_y, off_y))) {
		collage_scaler_free(s);
		return NULL;
	}
	if (row_bytes < (size_t)s->src_w)
		row_bytes = (size_t)s->src_w;
	if (s->halve) {
		s->stage_stride = (row_bytes + SCALE_SLACK + 32) / 32 * 32;
		s->stage = calloc(s->stage_stride * (size_t)(batch > 0 ? batch : 1) + 32, 1);
		s->pending = calloc(s->stage_stride, 1);
		if (!s->stage || !s->pending) {
			collage_scaler_free(s);
			return NULL;
		}
		row_bytes = (size_t)in_w;
	}
	/* Rows that start 1 byte past a 32-byte boundary. libjpeg-turbo
	 * writes aligned rows with non-temporal stores, which leave them in
	 * memory and not in the cache: reading them back then stalled the
	 * vertical pass for a quarter of the whole decoding. */
	s->ring_stride = (row_bytes + SCALE_SLACK + 32) / 32 * 32;
	s->ring_rows = s->v->taps + (batch > 0 ? batch : 1);
	s->ring = calloc(s->ring_stride * (size_t)s->ring_rows + 32, 1);
	s->rows = malloc((size_t)s->v->taps * sizeof *s->rows);
	s->mid = calloc((size_t)in_w + SCALE_SLACK + 16, 1);
	if (!s->ring || !s->rows || !s->mid) {
		collage_scaler_free(s);
		return NULL;
	}
	scale_kernels_pick(s);
	return s;
}

/* collage_scaler_free: see collage.h. */
void collage_scaler_free(struct collage_scaler *s)
{
	if (!s)
		return;
	scale_axis_put(s->h);
	scale_axis_put(s->v);
	free(s->ring);
	free(s->rows);
	free(s->mid);
	free(s->stage);
	free(s->pending);
	free(s);
}

/* Where source row y is kept. */
static unsigned char *scale_ring_row(const struct collage_scaler *s, int y)
{
	uintptr_t base = ((uintptr_t)s->ring + 31) & ~(uintptr_t)31;
	return (unsigned char *)base + 1 + (size_t)(y % s->ring_rows) * s->ring_stride;
}

/* collage_scaler_slot: see collage.h. */
unsigned char *collage_scaler_slot(const struct collage_scaler *s, int i)
{
	if (s->halve) /* off alignment as the ring's rows, for the same reason */
		return (unsigned char *)(((uintptr_t)s->stage + 31) & ~(uintptr_t)31) + 1 +
		       (size_t)i * s->stage_stride;
	return scale_ring_row(s, s->have + i);
}

/* The staged source rows, halved into the ring: pairs, the first with
 * the row left over from the previous batch, the last alone when the
 * source ends on an odd row. */
static void scale_halve_rows(struct collage_scaler *s, int rows)
{
	if (rows > s->src_h - s->src_have)
		rows = s->src_h - s->src_have;
	int i = 0;
	if (s->has_pending && rows > 0) {
		s->halver(s->pending, collage_scaler_slot(s, 0), s->src_w, scale_ring_row(s, s->have++));
		s->has_pending = 0;
		i = 1;
	}
	for (; i + 1 < rows; i += 2)
		s->halver(collage_scaler_slot(s, i), collage_scaler_slot(s, i + 1), s->src_w,
			  scale_ring_row(s, s->have++));
	if (i < rows) {
		memcpy(s->pending, collage_scaler_slot(s, i), (size_t)s->src_w);
		s->has_pending = 1;
	}
	s->src_have += rows;
	if (s->src_have >= s->src_h && s->has_pending) {
		s->halver(s->pending, s->pending, s->src_w, scale_ring_row(s, s->have++));
		s->has_pending = 0;
	}
}

/* One output row y from the source rows kept. */
static void scale_row(struct collage_scaler *s, int y)
{
	int n = s->v->n[y], start = s->v->start[y];
	const uint16_t *w = s->v->w + (size_t)y * s->v->stride;
	for (int t = 0; t < n; t++)
		s->rows[t] = scale_ring_row(s, start + t);
	if (n == 1)
		memcpy(s->mid, s->rows[0], (size_t)s->in_w);
	else
		s->vertical(s->rows, w, n, (size_t)s->in_w, s->mid);
	s->horizontal(s, s->dst + (size_t)y * s->dst_stride);
}

/* collage_scaler_fed: see collage.h. */
int collage_scaler_fed(struct collage_scaler *s, int rows)
{
	if (s->halve) {
		scale_halve_rows(s, rows);
	} else {
		s->have += rows;
		if (s->have > s->in_h)
			s->have = s->in_h;
	}
	while (s->next < s->v->cells && s->v->start[s->next] + s->v->n[s->next] <= s->have)
		scale_row(s, s->next++);
	return s->next >= s->v->cells;
}

/* collage_scaler_done: see collage.h. */
int collage_scaler_done(const struct collage_scaler *s)
{
	return s->next >= s->v->cells;
}

/* collage_scaler_cells: see collage.h. */
void collage_scaler_cells(const struct collage_scaler *s, int *w, int *h)
{
	*w = s->h->cells;
	*h = s->v->cells;
}
