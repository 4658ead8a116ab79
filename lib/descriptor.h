/* descriptor.h — the image descriptor of the local visual search.
 *
 * Without Ximilar, the catalog's photos (unde-ximilar-sync) and the
 * street-photo crops of recognition are compared by this descriptor in
 * pgvector (production.product_descriptors, cosine distance). Both sides
 * must compute exactly the same numbers, so it lives here.
 *
 * Version 1, DESCRIPTOR_DIM = 112 floats, from an RGB image of any size:
 *   [0, 64)   colour: a joint RGB histogram, 4 levels per channel
 *             (bin = (r>>6)*16 + (g>>6)*4 + (b>>6)), each pixel weighted by
 *             w = 1 - 0.5 * max(|x-cx|/cx, |y-cy|/cy) so the garment in the
 *             middle counts twice as much as the background at the edges;
 *             then the square root of each bin (Hellinger), L2-normalised.
 *   [64, 112) layout: the image cut into a 4x4 grid, each cell's mean R, G,
 *             B in [0, 1], minus that channel's mean over the 16 cells (the
 *             arrangement of light and colour, not the overall colour), scaled to
 *             length 1/sqrt(2) — or, when those deviations are shorter
 *             than 0.1 (a nearly uniform photo, where they are mostly JPEG
 *             noise), to 1/sqrt(2) * length / 0.1.
 *   The colour part is scaled to length 1/sqrt(2) too, so colour and layout
 *   weigh alike in a cosine distance; the vector's length is between
 *   1/sqrt(2) (a uniform image) and 1. Cost: one pass over the pixels. */
#ifndef UNDE_DESCRIPTOR_H
#define UNDE_DESCRIPTOR_H

#include <stddef.h>

#define DESCRIPTOR_DIM 112
#define DESCRIPTOR_VERSION 1

/* Compute the descriptor of a width x height image of packed 8-bit RGB
 * rows (stride bytes apart, stride >= 3 * width). Returns 0, or -1 when
 * the image is empty. */
int descriptor_compute(const unsigned char *rgb, size_t width, size_t height, size_t stride,
		       float out[DESCRIPTOR_DIM]);

/* pgvector's text form "[v1,v2,…]" into buf (at least DESCRIPTOR_TEXT_MAX
 * bytes). */
#define DESCRIPTOR_TEXT_MAX (DESCRIPTOR_DIM * 16 + 3)
void descriptor_to_text(const float d[DESCRIPTOR_DIM], char *buf, size_t len);

#endif
