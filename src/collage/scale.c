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
 * a time. Only as many source rows as the filter spans and libjpeg gives
 * at once are kept, and libjpeg writes them in place: never the image. */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "collage.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

#define SCALE_BITS 8 /* the weights of one cell add up to 1 << SCALE_BITS */
#define SCALE_SLACK 32 /* bytes after a row that vector loads may read (zeroes) */

typedef uint16_t u16x16 __attribute__((vector_size(32)));
typedef uint8_t u8x16 __attribute__((vector_size(16)));

/* The taps of one axis: cell i reads n[i] source samples from start[i],
 * with weights w[i * stride …] (all ≥ 0, so no sum leaves 0…255); the
 * widest filter has taps of them. */
struct scale_axis {
	int *start, *n;
	uint16_t *w;
	int stride, taps, cells;
	uint16_t *hw; /* the weights again, k8 per cell (see scale_hw_init) */
	int k8;       /* 4 or 8 taps per cell in hw; 0: no vector pass */
	/* with 4 taps, for each 8 cells whose samples lie within 16 bytes
	 * from the first one's start: where each cell's samples are in those
	 * 16 (32 bytes, for vpshufb), and 0 where they are not */
	unsigned char *win;
	unsigned char *win_ok;
	int in, len, step, off; /* what it was made for (scale_axis_get) */
	int refs;               /* scalers using it */
	int cached;             /* in this thread's scale_cache */
};

struct collage_scaler {
	int in_w, in_h; /* the samples the filter reads (halved, when halve) */
	/* A reduction of 2 or more both ways starts with the mean of each 2×2
	 * samples (the chroma of a 4:2:0 photo at a ~3× reduction): then the
	 * filter has half the taps on a quarter of the samples. The rows from
	 * libjpeg go to stage, and one row left without its pair to pending. */
	int halve;
	int src_w, src_h, src_have;
	unsigned char *stage, *pending;
	size_t stage_stride;
	int has_pending;
	void (*halver)(const unsigned char *a, const unsigned char *b, int src_w, unsigned char *out);
	struct scale_axis *h, *v; /* shared, read only */
	unsigned char *ring; /* ring_rows source rows, ring_stride apart */
	size_t ring_stride;
	int ring_rows;
	int have; /* source rows given so far */
	int next; /* the next output row */
	unsigned char *dst;
	size_t dst_stride;
	const unsigned char **rows; /* the rows of ring one output row reads */
	unsigned char *mid;         /* one row after the vertical pass (and slack) */
	void (*vertical)(const unsigned char *const *r, const uint16_t *w, int n, size_t len,
			 unsigned char *out);
	void (*horizontal)(const struct collage_scaler *s, unsigned char *out);
};

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

/* The vertical pass of one output row: n source rows weighted into out,
 * len samples (and up to 31 more, into the slack), 16 at a time. Kept
 * apart from the horizontal pass so that this loop, on whole rows, is
 * the only one that touches every source sample. */
static inline __attribute__((always_inline)) void
scale_vertical_body(const unsigned char *const *r, const uint16_t *w, int n, size_t len,
		    unsigned char *out)
{
	for (size_t x = 0; x < len; x += 16) {
		u16x16 acc = { 128, 128, 128, 128, 128, 128, 128, 128,
			       128, 128, 128, 128, 128, 128, 128, 128 };
		for (int t = 0; t < n; t++) {
			u8x16 p;
			memcpy(&p, r[t] + x, 16);
			acc += __builtin_convertvector(p, u16x16) * w[t];
		}
		u8x16 o = __builtin_convertvector(acc >> 8, u8x16);
		memcpy(out + x, &o, 16);
	}
}

/* scale_vertical_body for any x86-64 (SSE2) or other target. */
static void scale_vertical_plain(const unsigned char *const *r, const uint16_t *w, int n,
				 size_t len, unsigned char *out)
{
	scale_vertical_body(r, w, n, len, out);
}

#if defined(__x86_64__) && defined(__GNUC__)
/* The same with AVX2, 32 samples at a time. */
__attribute__((target("avx2"))) static void scale_vertical_avx2(const unsigned char *const *r,
								 const uint16_t *w, int n, size_t len,
								 unsigned char *out)
{
	const __m256i half = _mm256_set1_epi16(128);
	for (size_t x = 0; x < len; x += 32) {
		__m256i lo = half, hi = half;
		for (int t = 0; t < n; t++) {
			__m256i p = _mm256_loadu_si256((const __m256i *)(const void *)(r[t] + x));
			__m256i wt = _mm256_set1_epi16((short)w[t]);
			lo = _mm256_add_epi16(lo, _mm256_mullo_epi16(
							  _mm256_cvtepu8_epi16(_mm256_castsi256_si128(p)), wt));
			hi = _mm256_add_epi16(hi, _mm256_mullo_epi16(
							  _mm256_cvtepu8_epi16(_mm256_extracti128_si256(p, 1)), wt));
		}
		__m256i o = _mm256_packus_epi16(_mm256_srli_epi16(lo, 8), _mm256_srli_epi16(hi, 8));
		o = _mm256_permute4x64_epi64(o, 0xd8);
		_mm256_storeu_si256((__m256i *)(void *)(out + x), o);
	}
}
#endif

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

/* One cell of the horizontal pass, plain C. */
static inline unsigned char scale_h1(const struct collage_scaler *s, int x)
{
	const uint16_t *w = s->h->w + (size_t)x * s->h->stride;
	const unsigned char *p = s->mid + s->h->start[x];
	unsigned acc = 128;
	for (int t = 0; t < s->h->n[x]; t++)
		acc += p[t] * (unsigned)w[t];
	return (unsigned char)(acc >> 8);
}

/* The horizontal pass from mid to out, exactly h.cells bytes, plain C. */
static void scale_horizontal_plain(const struct collage_scaler *s, unsigned char *out)
{
	for (int x = 0; x < s->h->cells; x++)
		out[x] = scale_h1(s, x);
}

#if defined(__x86_64__) && defined(__GNUC__)
/* The horizontal pass with AVX2 (and its SSSE3 horizontal adds), 8 cells
 * at a time while 8 are left, the rest one by one: each cell's k8 (4 or
 * 8) samples from its start are loaded at once, multiplied by its weights
 * and summed pairwise (pmaddwd), the partial sums of neighbouring cells
 * added across (phaddd). */
__attribute__((target("avx2"))) static void scale_horizontal_avx2(const struct collage_scaler *s,
								   unsigned char *out)
{
	int x = 0, cells = s->h->cells;
	const __m128i zero = _mm_setzero_si128(), half = _mm_set1_epi32(128);
	if (s->h->k8 == 4)
		for (; x + 8 <= cells; x += 8) {
			const int *st = s->h->start + x;
			const uint16_t *wp = s->h->hw + (size_t)x * 4;
			__m128i lo, hi;
			if (s->h->win_ok[x / 8]) {
				/* one load for the 8 cells, each one's 4 samples picked out */
				__m256i p = _mm256_broadcastsi128_si256(
					_mm_loadu_si128((const __m128i *)(const void *)(s->mid + st[0])));
				p = _mm256_shuffle_epi8(
					p, _mm256_loadu_si256((const __m256i *)(const void *)(s->h->win + (size_t)x * 4)));
				/* lane 0 has cells 0-3, lane 1 cells 4-7 */
				__m256i z = _mm256_setzero_si256();
				__m256i w01 = _mm256_set_m128i(_mm_loadu_si128((const __m128i *)(const void *)(wp + 16)),
							       _mm_loadu_si128((const __m128i *)(const void *)wp));
				__m256i w23 = _mm256_set_m128i(_mm_loadu_si128((const __m128i *)(const void *)(wp + 24)),
							       _mm_loadu_si128((const __m128i *)(const void *)(wp + 8)));
				__m256i a = _mm256_madd_epi16(_mm256_unpacklo_epi8(p, z), w01);
				__m256i b = _mm256_madd_epi16(_mm256_unpackhi_epi8(p, z), w23);
				__m256i sum = _mm256_hadd_epi32(a, b);
				lo = _mm256_castsi256_si128(sum);
				hi = _mm256_extracti128_si256(sum, 1);
			} else {
				const __m128i *w = (const __m128i *)(const void *)wp;
				__m128i v[4];
				for (int i = 0; i < 4; i++) {
					uint32_t a, b;
					memcpy(&a, s->mid + st[2 * i], 4);
					memcpy(&b, s->mid + st[2 * i + 1], 4);
					__m128i p = _mm_unpacklo_epi8(_mm_cvtsi32_si128((int)a), zero);
					p = _mm_unpacklo_epi64(p, _mm_unpacklo_epi8(_mm_cvtsi32_si128((int)b), zero));
					v[i] = _mm_madd_epi16(p, _mm_loadu_si128(w + i));
				}
				lo = _mm_hadd_epi32(v[0], v[1]);
				hi = _mm_hadd_epi32(v[2], v[3]);
			}
			lo = _mm_srli_epi32(_mm_add_epi32(lo, half), 8);
			hi = _mm_srli_epi32(_mm_add_epi32(hi, half), 8);
			__m128i o = _mm_packus_epi16(_mm_packs_epi32(lo, hi), zero);
			_mm_storel_epi64((__m128i *)(void *)(out + x), o);
		}
	else if (s->h->k8 == 8)
		for (; x + 8 <= cells; x += 8) {
			const int *st = s->h->start + x;
			const __m128i *w = (const __m128i *)(const void *)(s->h->hw + (size_t)x * 8);
			__m128i v[8];
			for (int i = 0; i < 8; i++) {
				__m128i p = _mm_loadl_epi64((const __m128i *)(const void *)(s->mid + st[i]));
				v[i] = _mm_madd_epi16(_mm_unpacklo_epi8(p, zero), _mm_loadu_si128(w + i));
			}
			__m128i a = _mm_hadd_epi32(v[0], v[1]), b = _mm_hadd_epi32(v[2], v[3]);
			__m128i c = _mm_hadd_epi32(v[4], v[5]), d = _mm_hadd_epi32(v[6], v[7]);
			__m128i lo = _mm_hadd_epi32(a, b), hi = _mm_hadd_epi32(c, d);
			lo = _mm_srli_epi32(_mm_add_epi32(lo, half), 8);
			hi = _mm_srli_epi32(_mm_add_epi32(hi, half), 8);
			__m128i o = _mm_packus_epi16(_mm_packs_epi32(lo, hi), zero);
			_mm_storel_epi64((__m128i *)(void *)(out + x), o);
		}
	for (; x < cells; x++)
		out[x] = scale_h1(s, x);
}
#endif

/* Two source rows of src_w samples into one of ceil(src_w / 2): the mean
 * of each 2×2 (the last column's pair alone when src_w is odd). */
static void scale_halve_plain(const unsigned char *a, const unsigned char *b, int src_w,
			      unsigned char *out)
{
	int x = 0;
	for (; x + 1 < src_w; x += 2)
		out[x / 2] = (unsigned char)((a[x] + a[x + 1] + b[x] + b[x + 1] + 2) >> 2);
	if (x < src_w)
		out[x / 2] = (unsigned char)((a[x] + b[x] + 1) >> 1);
}

#if defined(__x86_64__) && defined(__GNUC__)
/* The same with AVX2, 32 source samples at a time (pmaddubsw adds each
 * pair); may read 31 bytes past src_w and write 15 past the output. */
__attribute__((target("avx2"))) static void scale_halve_avx2(const unsigned char *a,
							      const unsigned char *b, int src_w,
							      unsigned char *out)
{
	const __m256i ones = _mm256_set1_epi8(1), two = _mm256_set1_epi16(2);
	int x = 0;
	for (; x + 1 < src_w; x += 32) {
		__m256i pa = _mm256_maddubs_epi16(_mm256_loadu_si256((const __m256i *)(const void *)(a + x)), ones);
		__m256i pb = _mm256_maddubs_epi16(_mm256_loadu_si256((const __m256i *)(const void *)(b + x)), ones);
		__m256i m = _mm256_srli_epi16(_mm256_add_epi16(_mm256_add_epi16(pa, pb), two), 2);
		m = _mm256_permute4x64_epi64(_mm256_packus_epi16(m, m), 0xd8);
		_mm_storeu_si128((__m128i *)(void *)(out + x / 2), _mm256_castsi256_si128(m));
	}
	if (src_w % 2) /* the last column alone, over what the loop made of it */
		out[src_w / 2] = (unsigned char)((a[src_w - 1] + b[src_w - 1] + 1) >> 1);
}
#endif

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
	s->vertical = scale_vertical_plain;
	s->horizontal = scale_horizontal_plain;
	s->halver = scale_halve_plain;
#if defined(__x86_64__) && defined(__GNUC__)
	if (__builtin_cpu_supports("avx2")) {
		s->vertical = scale_vertical_avx2;
		s->horizontal = scale_horizontal_avx2;
		s->halver = scale_halve_avx2;
	}
#endif
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
