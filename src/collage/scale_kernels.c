/* scale_kernels.c — the resampler's three passes over one plane
 * (scale.c sets them up): vertical on whole source rows, horizontal on
 * the result, and the 2×2 mean before both for a reduction of 2 or more
 * both ways. Each in plain C and, on x86-64, with AVX2, picked at run
 * time. */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "scale.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

typedef uint16_t u16x16 __attribute__((vector_size(32)));
typedef uint8_t u8x16 __attribute__((vector_size(16)));

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

/* scale_kernels_pick: see scale.h. */
void scale_kernels_pick(struct collage_scaler *s)
{
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
}
