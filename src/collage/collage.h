/* collage — unde-collage's image work (image.c, jpeg.c, scale.c, vips.c)
 * and its work ahead on a queue of products (ahead.c). */
#ifndef UNDE_COLLAGE_H
#define UNDE_COLLAGE_H

#include <stddef.h>

#include "util.h"

#define COLLAGE_MAX_PHOTOS 16

struct collage_out {
	unsigned char *jpeg; /* free() */
	size_t len;
	int width, height;
	unsigned profile_ignored; /* bit i: original i + 1 had a broken colour
				     profile and was read as sRGB (for the log,
				     which only the main thread writes) */
};

/* --- image.c: the collage ------------------------------------------------------ */

/* The collage of n (≤ COLLAGE_MAX_PHOTOS) encoded images: the median of
 * their heights is the collage's, higher ones lowered to it, lower ones
 * kept and centred on white, joined left to right, all lowered together
 * to at most max_width wide, a JPEG at
 * quality without metadata, the parts decoded by up to threads threads.
 * Returns 0, or -1 with why set (one line). */
int collage_build(const struct buf *bufs, size_t n, int max_width, int quality, int threads,
		  struct collage_out *out, char *why, size_t whylen);

/* A thread that called collage_build is ending (or the program is):
 * what it kept from one collage to the next is freed, and libvips' buffers
 * of the thread if it used libvips. */
void collage_thread_done(void);

/* --- jpeg.c: JPEGs through libjpeg itself -------------------------------------- */

struct collage_jpeg_info {
	int width, height; /* as stored */
	int orientation;   /* EXIF, 1…8 */
	int plain; /* RGB, YCbCr or grey, no colour profile, readable EXIF:
		      collage_jpeg_part can do it, with nothing left for libvips */
};

/* The header of a JPEG (markers read, no pixel decoded). 0, or -1 when
 * libjpeg cannot read it. */
int collage_jpeg_probe(const void *data, size_t len, struct collage_jpeg_info *info);

/* Decode a plain JPEG (see above) to w×h upright pixels, RGB, into dst
 * (rows stride bytes apart): DCT-scaled by the smallest 1/8, 1/4, 1/2 or 1 not
 * smaller than w×h, the rest by collage_scaler, the EXIF orientation
 * applied. 0, -2 when the data ends early (a scan cut short: final, no
 * other decoder should make up the rest), or -1 with why set. */
int collage_jpeg_part(const void *data, size_t len, int orientation, int w, int h,
		      unsigned char *dst, size_t stride, char *why, size_t whylen);

/* Encode w×h RGB pixels (rows stride bytes apart) as a baseline JPEG at
 * quality (chroma halved below 90, as libvips does), with a JFIF header
 * and no other metadata, into *out (malloc'd). 0, or -1 with why set. */
int collage_jpeg_encode(const unsigned char *rgb, int w, int h, size_t stride, int quality,
			unsigned char **out, size_t *len, char *why, size_t whylen);

/* --- scale.c: the reduce ---------------------------------------------------- */

struct collage_scaler;

/* A resampler from in_w×in_h to out_w×out_h RGB (see scale.c), or NULL
 * when out of memory. */
struct collage_scaler *collage_scaler_new(int in_w, int in_h, int out_w, int out_h);
void collage_scaler_free(struct collage_scaler *s);

/* Pull source rows with read_row (in_w * 3 bytes each, top to bottom, only
 * as many as the output needs) and write the out_h output rows to dst,
 * stride bytes apart. 0, or -1 when read_row failed. */
int collage_scaler_run(struct collage_scaler *s, int (*read_row)(void *ctx, unsigned char *row),
		       void *ctx, unsigned char *dst, size_t stride);

/* --- vips.c: everything else, through libvips, loaded when first needed --------- */

/* The upright size of any image libvips reads, and whether its EXIF
 * orientation turns it by 90°. 0, or -1 with why set. */
int collage_vips_header(const struct buf *b, int *w, int *h, int *swap, char *why, size_t whylen);

/* Decode one image (type image/jpeg, image/png or image/webp; dh high
 * upright, turned by 90° when swap) to w×h upright sRGB pixels, colour profile applied, alpha flattened on white,
 * into dst (rows stride bytes apart). *cm_failed is set when a broken
 * profile was ignored. 0, or -1 with why set. */
int collage_vips_part(const struct buf *b, const char *type, int dh, int swap, int w, int h,
		      unsigned char *dst, size_t stride, int *cm_failed, char *why, size_t whylen);

/* A thread that may have used libvips is ending (its per-thread buffers). */
void collage_vips_thread_done(void);

/* The end of the program: shut libvips down if it was loaded. */
void collage_vips_shutdown(void);

/* --- ahead.c: collages made ahead, for a queue of products ------------------------ */

struct collage_ahead;

/* threads workers building collages at max_width and quality, while the
 * caller does the I/O. NULL when no thread could be started. */
struct collage_ahead *collage_ahead_new(int threads, int max_width, int quality);

/* Hand over product id's originals (bufs, taken: they are emptied), read
 * from urls_json, to be built by a worker. */
void collage_ahead_submit(struct collage_ahead *a, const char *id, const char *urls_json,
			  struct buf *bufs, size_t n);

/* Products handed over and not yet taken. */
size_t collage_ahead_queued(const struct collage_ahead *a);

/* Wait for product id's collage when it was handed over with these
 * urls_json: 1 with *rc (collage_build's), *ms (the time it took), *out and
 * why set; 0 when it was not (the caller builds it itself). Results handed
 * over before id and not taken are dropped. */
int collage_ahead_take(struct collage_ahead *a, const char *id, const char *urls_json, int *rc,
		       double *ms, struct collage_out *out, char *why, size_t whylen);

/* Stop the workers and drop what was not taken. */
void collage_ahead_free(struct collage_ahead *a);

#endif
