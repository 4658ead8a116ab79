/* descriptor — see descriptor.h. */
#include "config.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "descriptor.h"

#define HIST_BINS 64
#define GRID 4
/* the length of the layout deviations (48 values in [-1, 1]) below which
 * an image counts as partly uniform */
#define DESCRIPTOR_MIN_CONTRAST 0.1

/* Scale v (n floats) to length target; a zero vector stays zero. */
static void descriptor_normalise(double *v, size_t n, double target)
{
	double sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += v[i] * v[i];
	if (sum <= 0)
		return;
	double k = target / sqrt(sum);
	for (size_t i = 0; i < n; i++)
		v[i] *= k;
}

int descriptor_compute(const unsigned char *rgb, size_t width, size_t height, size_t stride,
		       float out[DESCRIPTOR_DIM])
{
	if (!rgb || width == 0 || height == 0 || stride < width * 3)
		return -1;
	double hist[HIST_BINS] = { 0 };
	double cell[GRID * GRID][3] = { { 0 } };
	double cellw[GRID * GRID] = { 0 };
	double cx = (double)width / 2.0, cy = (double)height / 2.0;
	for (size_t y = 0; y < height; y++) {
		const unsigned char *row = rgb + y * stride;
		double dy = fabs(((double)y + 0.5) - cy) / cy;
		size_t gy = y * GRID / height;
		for (size_t x = 0; x < width; x++) {
			const unsigned char *p = row + 3 * x;
			double dx = fabs(((double)x + 0.5) - cx) / cx;
			double w = 1.0 - 0.5 * (dx > dy ? dx : dy);
			hist[(p[0] >> 6) * 16 + (p[1] >> 6) * 4 + (p[2] >> 6)] += w;
			size_t c = gy * GRID + x * GRID / width;
			cell[c][0] += p[0];
			cell[c][1] += p[1];
			cell[c][2] += p[2];
			cellw[c] += 1;
		}
	}
	double v[DESCRIPTOR_DIM];
	for (size_t i = 0; i < HIST_BINS; i++)
		v[i] = sqrt(hist[i]);
	descriptor_normalise(v, HIST_BINS, M_SQRT1_2);
	double mean[3] = { 0, 0, 0 };
	for (size_t c = 0; c < GRID * GRID; c++)
		for (size_t k = 0; k < 3; k++) {
			/* a grid cell of a tiny image may hold no pixel: mid-grey */
			double m = cellw[c] > 0 ? cell[c][k] / cellw[c] / 255.0 : 0.5;
			v[HIST_BINS + c * 3 + k] = m;
			mean[k] += m / (GRID * GRID);
		}
	for (size_t c = 0; c < GRID * GRID; c++)
		for (size_t k = 0; k < 3; k++) {
			double *x = &v[HIST_BINS + c * 3 + k];
			*x -= mean[k];
			if (fabs(*x) < 1e-9)
				*x = 0;
		}
	/* low contrast is mostly JPEG noise: it keeps a proportionally small
	 * weight instead of being blown up to full length */
	double contrast = 0;
	for (size_t i = HIST_BINS; i < DESCRIPTOR_DIM; i++)
		contrast += v[i] * v[i];
	contrast = sqrt(contrast);
	descriptor_normalise(v + HIST_BINS, DESCRIPTOR_DIM - HIST_BINS,
			     M_SQRT1_2 * (contrast < DESCRIPTOR_MIN_CONTRAST ? contrast / DESCRIPTOR_MIN_CONTRAST : 1));
	assert(HIST_BINS + GRID * GRID * 3 == DESCRIPTOR_DIM);
	for (size_t i = 0; i < DESCRIPTOR_DIM; i++)
		out[i] = (float)v[i];
	return 0;
}

void descriptor_to_text(const float d[DESCRIPTOR_DIM], char *buf, size_t len)
{
	assert(len >= DESCRIPTOR_TEXT_MAX);
	size_t n = 0;
	buf[n++] = '[';
	for (size_t i = 0; i < DESCRIPTOR_DIM; i++) {
		int k = snprintf(buf + n, len - n, "%s%.6g", i ? "," : "", (double)d[i]);
		assert(k > 0 && (size_t)k < len - n);
		n += (size_t)k;
	}
	assert(n + 2 <= len);
	buf[n++] = ']';
	buf[n] = '\0';
}
