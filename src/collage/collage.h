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

/* Where one part's pixels go. The collage is kept as libjpeg encodes it:
 * a Y plane of its full size and Cb, Cr planes of cells of step×step
 * pixels (2 below quality 90, else 1). A part writes its Y straight into
 * the plane; its chroma goes to cells of its own (cb, cr), which image.c
 * joins into the planes once every part is done: a part that begins or
 * ends on an odd pixel shares a cell with its neighbour (or with the
 * white around it). */
struct collage_part_out {
	int w, h;         /* the part's upright size */
	unsigned char *y; /* its top left pixel in the Y plane */
	size_t y_stride;
	int step;         /* chroma cells are step×step pixels of the collage */
	int off_x, off_y; /* the part begins this far into its first cell */
	unsigned char *cb, *cr; /* its cells, cw × ch, cw bytes apart */
	int cw, ch;
};

/* Decode a plain JPEG (see above) into its part: DCT-scaled by the smallest
 * 1/8, 1/4, 1/2 or 1 not smaller than the part, its planes as libjpeg
 * decodes them (no colour conversion) reduced by collage_scaler, the EXIF
 * orientation applied. 0, -2 when the data ends early (a scan cut short:
 * final, no other decoder should make up the rest), or -1 with why set. */
int collage_jpeg_part(const void *data, size_t len, int orientation,
		      const struct collage_part_out *out, char *why, size_t whylen);

/* Encode the collage's planes (w×h pixels; Y, Cb, Cr; chroma cells
 * step×step; each plane padded to whole 8×8 blocks of cells, which this
 * fills by repeating the edge) as a baseline JPEG at quality, with a
 * JFIF header and no other metadata, into *out (malloc'd). 0, or -1 with
 * why set. */
int collage_jpeg_encode(unsigned char *const planes[3], const size_t strides[3], int w, int h,
			int step, int quality, unsigned char **out, size_t *len, char *why,
			size_t whylen);

/* --- image.c: parts from whole pixels ----------------------------------------- */

/* A part from its w×h upright pixels: sample (x, y) of component c at
 * p[c] + y * stride + x * pixstep; RGB when rgb (converted as libjpeg
 * does), else Y, Cb, Cr; only Y when p[1] is NULL (grey). 0, or -1 when
 * out of memory. */
int collage_part_from_pixels(const struct collage_part_out *out, const unsigned char *const p[3],
			     size_t pixstep, size_t stride, int rgb);

/* --- scale.c: the reduce ---------------------------------------------------- */

struct collage_scaler;

/* A resampler of one plane of in_w×in_h samples to the cells of a part
 * len_x×len_y pixels large (cells step pixels wide, the first begun off
 * pixels before the part: see scale.c), written to dst, dst_stride bytes
 * apart. Source rows are written by the caller into collage_scaler_slot,
 * up to batch of them at once, each row_bytes long at most. NULL when out
 * of memory. */
struct collage_scaler *collage_scaler_new(int in_w, int in_h, int len_x, int step_x, int off_x,
					  int len_y, int step_y, int off_y, int batch, size_t row_bytes,
					  unsigned char *dst, size_t dst_stride);
void collage_scaler_free(struct collage_scaler *s);

/* Where to write the source row i rows after those given so far (i < batch). */
unsigned char *collage_scaler_slot(const struct collage_scaler *s, int i);

/* rows more source rows were written to the slots: every output row they
 * complete is written. 1 when the last output row is written, else 0. */
int collage_scaler_fed(struct collage_scaler *s, int rows);

/* Whether every output row is written. */
int collage_scaler_done(const struct collage_scaler *s);

/* The number of cells across and down. */
void collage_scaler_cells(const struct collage_scaler *s, int *w, int *h);

/* A thread that made scalers is ending: the filters it kept are freed. */
void collage_scaler_thread_done(void);

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
