/* unde-collage's resampler: one RGB image, arriving row by row, reduced
 * to a given size and written straight into its place in the collage.
 *
 * It runs on what libjpeg's DCT scaling leaves, so the reduction left is
 * small (less than 2× when the photo is larger than the part). The filter
 * is a triangle ("linear") as wide as the reduction, so every source pixel
 * counts and nothing aliases, as with the linear kernel of libvips' reduce
 * used here before. Weights are 8-bit fixed point adding up to 256, so
 * with 8-bit pixels every sum fits 16 bits and eight of them go in one
 * vector (GCC's vector extensions: SSE2 on x86-64, NEON on ARM). Vertical
 * first, on whole source rows (one weight per row), then horizontal on
 * the shorter result. Only as many source rows as the filter spans are
 * kept (a few KiB), never the image. */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "collage.h"

#define SCALE_BITS 8 /* the weights of one output pixel add up to 1 << SCALE_BITS */

typedef uint16_t u16x8 __attribute__((vector_size(16)));
typedef uint8_t u8x8 __attribute__((vector_size(8)));

/* The taps of one axis: output i reads n[i] source pixels from start[i],
 * with weights w[i * stride …] (all ≥ 0, so no sum leaves 0…255); the
 * widest filter has taps of them. */
struct scale_axis {
	int *start, *n;
	uint16_t *w;
	int stride, taps;
};

struct collage_scaler {
	int in_w, in_h, out_w, out_h;
	struct scale_axis h, v;
	unsigned char *ring; /* v.taps source rows, in_w * 3 bytes each, ring_stride apart */
	size_t ring_stride;
	const unsigned char **rows; /* the rows of ring one output row reads */
	u16x8 *vw;                  /* and their weights, one vector each */
	unsigned char *hrow;        /* one output row (and 8 bytes of slack) */
	unsigned char *mid;  /* one row after the vertical pass (and 8 bytes of slack) */
	u16x8 *hw;           /* horizontal weights of pixel pairs, for the vector loop */
};

/* Free an axis' taps (not a itself). */
static void scale_axis_free(struct scale_axis *a)
{
	free(a->start);
	free(a->n);
	free(a->w);
}

/* Work out the taps reducing (or, for a photo smaller than its part,
 * stretching) in pixels to out: the triangle filter centred on each output
 * pixel's centre, as wide as the reduction and at least one source pixel,
 * weights rounded to fixed point without losing their sum. 0, or -1 when
 * out of memory. */
static int scale_axis_init(struct scale_axis *a, int in, int out)
{
	double scale = (double)in / out, support = scale > 1 ? scale : 1;
	int maxn = (int)ceil(2 * support) + 2;
	memset(a, 0, sizeof *a);
	a->start = malloc((size_t)out * sizeof *a->start);
	a->n = malloc((size_t)out * sizeof *a->n);
	a->w = calloc((size_t)out * (size_t)maxn, sizeof *a->w);
	double *f = malloc((size_t)maxn * sizeof *f);
	if (!a->start || !a->n || !a->w || !f) {
		free(f);
		scale_axis_free(a);
		return -1;
	}
	for (int i = 0; i < out; i++) {
		double centre = (i + 0.5) * scale;
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
		if (sum <= 0) { /* cannot happen with support ≥ 1; nearest pixel then */
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

/* For the vector loop of the horizontal pass: every pixel gets k taps
 * (zero weights added, and the start moved left near the right edge), and
 * each pair of output pixels one vector of weights per tap, {a a a a b b b
 * b}. Needs in_w ≥ k. 0, or -1 when out of memory. */
static int scale_pairs_init(struct collage_scaler *s, int k)
{
	struct scale_axis *a = &s->h;
	size_t pairs = ((size_t)s->out_w + 1) / 2;
	if (!(s->hw = calloc(pairs * (size_t)k, sizeof *s->hw)))
		return -1;
	for (int x = 0; x < s->out_w; x++) {
		uint16_t *w = a->w + (size_t)x * a->stride;
		int shift = a->start[x] + k > s->in_w ? a->start[x] + k - s->in_w : 0;
		for (int t = 0; t < k; t++) {
			int src = t - shift; /* the tap of the filter at this slot */
			uint16_t v = src >= 0 && src < a->n[x] ? w[src] : 0;
			u16x8 *pv = &s->hw[(size_t)(x / 2) * k + t];
			for (int l = 0; l < 4; l++)
				(*pv)[(x % 2) * 4 + l] = v;
		}
		a->start[x] -= shift;
		a->n[x] = k;
	}
	return 0;
}

/* collage_scaler_new: see collage.h. */
struct collage_scaler *collage_scaler_new(int in_w, int in_h, int out_w, int out_h)
{
	struct collage_scaler *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->in_w = in_w;
	s->in_h = in_h;
	s->out_w = out_w;
	s->out_h = out_h;
	if (scale_axis_init(&s->h, in_w, out_w) || scale_axis_init(&s->v, in_h, out_h)) {
		collage_scaler_free(s);
		return NULL;
	}
	if (s->h.taps <= in_w && scale_pairs_init(s, s->h.taps)) {
		collage_scaler_free(s);
		return NULL;
	}
	size_t row = (size_t)in_w * 3;
	/* Rows that start 1 byte past a 32-byte boundary. libjpeg-turbo's
	 * colour conversion writes an aligned row with non-temporal stores,
	 * which leave it in memory and not in the cache: reading it back then
	 * stalled the vertical pass for a quarter of the whole decoding. */
	s->ring_stride = (row + 63) / 32 * 32;
	s->ring = malloc(s->ring_stride * (size_t)s->v.taps + 32);
	s->rows = malloc((size_t)s->v.taps * sizeof *s->rows);
	s->vw = malloc((size_t)s->v.taps * sizeof *s->vw);
	s->mid = malloc(row + 8);
	s->hrow = malloc((size_t)out_w * 3 + 8);
	if (!s->ring || !s->rows || !s->vw || !s->mid || !s->hrow) {
		collage_scaler_free(s);
		return NULL;
	}
	memset(s->mid + row, 0, 8);
	return s;
}

/* collage_scaler_free: see collage.h. */
void collage_scaler_free(struct collage_scaler *s)
{
	if (!s)
		return;
	scale_axis_free(&s->h);
	scale_axis_free(&s->v);
	free(s->ring);
	free(s->rows);
	free(s->vw);
	free(s->mid);
	free(s->hrow);
	free(s->hw);
	free(s);
}

/* Where source row y is kept (see collage_scaler_new). */
static unsigned char *scale_ring_row(const struct collage_scaler *s, int y)
{
	uintptr_t base = ((uintptr_t)s->ring + 31) & ~(uintptr_t)31;
	return (unsigned char *)base + 1 + (size_t)(y % s->v.taps) * s->ring_stride;
}

/* The vertical pass of one output row: n source rows weighted into mid,
 * 16 bytes at a time. */
static void scale_vertical(struct collage_scaler *s, int y)
{
	size_t row = (size_t)s->in_w * 3;
	int n = s->v.n[y], start = s->v.start[y];
	const uint16_t *w = s->v.w + (size_t)y * s->v.stride;
	const unsigned char **r = s->rows;
	for (int t = 0; t < n; t++)
		r[t] = scale_ring_row(s, start + t);
	if (n == 1) {
		memcpy(s->mid, r[0], row);
		return;
	}
	u16x8 *wv = s->vw;
	for (int t = 0; t < n; t++)
		wv[t] = (u16x8){ 0 } + w[t];
	size_t x = 0;
	for (; x + 16 <= row; x += 16) {
		u16x8 lo = { 128, 128, 128, 128, 128, 128, 128, 128 }, hi = lo;
		for (int t = 0; t < n; t++) {
			u8x8 p, q;
			memcpy(&p, r[t] + x, 8);
			memcpy(&q, r[t] + x + 8, 8);
			lo += __builtin_convertvector(p, u16x8) * wv[t];
			hi += __builtin_convertvector(q, u16x8) * wv[t];
		}
		u8x8 o = __builtin_convertvector(lo >> 8, u8x8), o2 = __builtin_convertvector(hi >> 8, u8x8);
		memcpy(s->mid + x, &o, 8);
		memcpy(s->mid + x + 8, &o2, 8);
	}
	for (; x < row; x++) {
		unsigned acc = 128;
		for (int t = 0; t < n; t++)
			acc += r[t][x] * (unsigned)w[t];
		s->mid[x] = (unsigned char)(acc >> 8);
	}
}

/* The horizontal pass by pairs of output pixels, k taps each: one vector
 * {r g b · r g b ·} per pair, summed over the taps, written as two 4-byte
 * stores whose 4th byte the next store overwrites: into the scratch row
 * hrow (with slack at its end), then copied to out whole. */
static inline __attribute__((always_inline)) void scale_pairs(struct collage_scaler *s,
							      unsigned char *out, int k)
{
	unsigned char *q = s->hrow;
	for (int x = 0; x < s->out_w; x += 2, q += 6) {
		const unsigned char *p0 = s->mid + (size_t)s->h.start[x] * 3;
		/* an odd pixel out at the end: its pair is itself */
		const unsigned char *p1 = x + 1 < s->out_w ? s->mid + (size_t)s->h.start[x + 1] * 3 : p0;
		const u16x8 *w = s->hw + (size_t)(x / 2) * k;
		u16x8 acc = { 128, 128, 128, 128, 128, 128, 128, 128 };
		for (int t = 0; t < k; t++, p0 += 3, p1 += 3) {
			unsigned char b[8];
			memcpy(b, p0, 4); /* the 4th byte is the next pixel's: weight 0 */
			memcpy(b + 4, p1, 4);
			u8x8 v;
			memcpy(&v, b, 8);
			acc += __builtin_convertvector(v, u16x8) * w[t];
		}
		u8x8 o = __builtin_convertvector(acc >> 8, u8x8);
		unsigned char b[8];
		memcpy(b, &o, 8);
		memcpy(q, b, 4);
		memcpy(q + 3, b + 4, 4);
	}
	memcpy(out, s->hrow, (size_t)s->out_w * 3);
}

/* The horizontal pass from mid to out: by pairs (scale_pairs) when their
 * weights are ready; else pixel by pixel. */
static void scale_horizontal(struct collage_scaler *s, unsigned char *out)
{
	if (!s->hw) {
		for (int x = 0; x < s->out_w; x++) {
			const uint16_t *hw = s->h.w + (size_t)x * s->h.stride;
			const unsigned char *p = s->mid + (size_t)s->h.start[x] * 3;
			unsigned r = 128, g = 128, b = 128;
			for (int t = 0; t < s->h.n[x]; t++, p += 3) {
				r += p[0] * (unsigned)hw[t];
				g += p[1] * (unsigned)hw[t];
				b += p[2] * (unsigned)hw[t];
			}
			out[x * 3] = (unsigned char)(r >> 8);
			out[x * 3 + 1] = (unsigned char)(g >> 8);
			out[x * 3 + 2] = (unsigned char)(b >> 8);
		}
		return;
	}
	switch (s->h.n[0]) { /* the usual filters, unrolled */
	case 2: scale_pairs(s, out, 2); break;
	case 3: scale_pairs(s, out, 3); break;
	case 4: scale_pairs(s, out, 4); break;
	default: scale_pairs(s, out, s->h.n[0]); break;
	}
}

/* collage_scaler_run: see collage.h. */
int collage_scaler_run(struct collage_scaler *s, int (*read_row)(void *ctx, unsigned char *row),
		       void *ctx, unsigned char *dst, size_t stride)
{
	int have = 0; /* source rows read so far */
	for (int y = 0; y < s->out_h; y++) {
		int need = s->v.start[y] + s->v.n[y];
		while (have < need) {
			if (read_row(ctx, scale_ring_row(s, have)) != 0)
				return -1;
			have++;
		}
		scale_vertical(s, y);
		scale_horizontal(s, dst + (size_t)y * stride);
	}
	return 0;
}
