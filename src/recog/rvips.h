/* rvips.h — libvips for recognition, opened on first use (vips.c).
 *
 * Nothing of src/recog links against libvips: linking it maps ~100
 * libraries at every start (25 ms of each process's start on this
 * machine, 64 M instructions of the dynamic loader), which the
 * orchestrator over HTTP, the reranker with Gemini and the gateway's
 * search with Ximilar never use. The functions used are looked up once
 * into RV; a call that bypassed it would not link. Call them only on an
 * image photo_decode made (photo_vips() succeeded). */
#ifndef UNDE_RECOG_RVIPS_H
#define UNDE_RECOG_RVIPS_H

#include <vips/vips.h>

#define RVIPS_FUNCS(X)                                                                             \
	X(vips_init) X(vips_version) X(vips_shutdown) X(vips_error_buffer) X(vips_error_clear)                      \
	X(vips_image_new_from_buffer) X(vips_autorot) X(vips_colourspace) X(vips_image_hasalpha)   \
	X(vips_flatten) X(vips_copy) X(vips_cast_uchar) X(vips_image_copy_memory)                  \
	X(vips_image_get_bands) X(vips_image_get_width) X(vips_image_get_height) X(vips_resize)    \
	X(vips_image_get_data) X(g_object_unref)

/* libvips' functions (and GObject's unref), their own prototypes */
struct rvips {
#define X(f) __typeof__(f) *f;
	RVIPS_FUNCS(X)
#undef X
};
extern struct rvips RV;

#endif
