/* scale.h — the resampler's state, shared by its set-up (scale.c) and its
 * passes (scale_kernels.c). Internal to src/collage/; the interface is
 * collage.h's collage_scaler_*. */
#ifndef UNDE_COLLAGE_SCALE_H
#define UNDE_COLLAGE_SCALE_H

#include <stddef.h>
#include <stdint.h>

#include "collage.h"

#define SCALE_BITS 8 /* the weights of one cell add up to 1 << SCALE_BITS */
#define SCALE_SLACK 32 /* bytes after a row that vector loads may read (zeroes) */

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

/* Point s's three passes at the fastest this CPU runs: AVX2 when it has
 * it (x86-64, chosen at run time), plain C otherwise. */
void scale_kernels_pick(struct collage_scaler *s);

#endif
