/* collage — unde-collage's image work (image.c). */
#ifndef UNDE_COLLAGE_H
#define UNDE_COLLAGE_H

#include <stddef.h>

#include "util.h"

#define COLLAGE_MAX_PHOTOS 16

struct collage_out {
	void *jpeg; /* g_free() */
	size_t len;
	int width, height;
};

/* The collage of n (≤ COLLAGE_MAX_PHOTOS) encoded images: all brought to
 * one height, joined left to right on white, at most max_width wide, a
 * JPEG at quality without metadata, decoded by up to threads threads.
 * Returns 0, or -1 with why set (vips' error, one line). */
int collage_build(struct buf *bufs, size_t n, int max_width, int quality, int threads,
		  struct collage_out *out, char *why, size_t whylen);

#endif
