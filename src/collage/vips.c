/* unde-collage's images that are not plain JPEGs (PNG, WebP, CMYK or
 * profiled JPEGs, unreadable EXIF), through libvips.
 *
 * libvips is opened (dlopen) the first time such an image comes, not at
 * start: it maps about a hundred libraries and registers hundreds of
 * classes: 24 MiB of resident memory before any work (unde-collage
 * --version took 32.8 MiB with libvips started, 8.7 MiB without), which a
 * run of plain JPEGs (jpeg.c) never needs. The functions used are looked
 * up once into one table, V; nothing here links against libvips, so a call
 * that bypassed the table would not link. */
#include "config.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vips/vips.h>

#include "collage.h"

#define VIPS_FUNCS(X)                                                                              \
	X(vips_init) X(vips_version) X(vips_shutdown) X(vips_thread_shutdown)                      \
	X(vips_concurrency_set) X(vips_cache_set_max) X(vips_error_buffer) X(vips_error_clear)     \
	X(vips_image_new_from_buffer) X(vips_image_get_orientation_swap)                           \
	X(vips_image_get_orientation) X(vips_jpegload_buffer) X(vips_webpload_buffer)              \
	X(vips_pngload_buffer) X(vips_resize) X(vips_embed) X(vips_image_get_typeof)               \
	X(vips_icc_transform) X(vips_colourspace) X(vips_image_hasalpha) X(vips_array_double_new)  \
	X(vips_area_unref) X(vips_flatten) X(vips_cast_uchar) X(vips_image_copy_memory)            \
	X(vips_autorot) X(g_object_unref)

/* libvips' functions (and GObject's unref), with their own prototypes */
static struct {
#define X(f) __typeof__(f) *f;
	VIPS_FUNCS(X)
#undef X
} V;

static pthread_once_t vips_once = PTHREAD_ONCE_INIT;
static int vips_loaded; /* 1 ready, -1 failed (vips_why says why); atomic */
static char vips_why[300];

/* Open libvips, look up the table, start it as unde-collage wants it:
 * the parts are decoded one per thread of ours (libvips' own worker pools
 * would only hand tiles back and forth) and each image is used once (the
 * operation cache would only hold memory). Runs once. */
static void vips_load(void)
{
	char soname[64];
	/* the ABI these headers describe, as VIPS_INIT checks it */
	snprintf(soname, sizeof soname, "libvips.so.%d", VIPS_LIBRARY_CURRENT - VIPS_LIBRARY_AGE);
	void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		snprintf(vips_why, sizeof vips_why, "cannot load libvips: %s", dlerror());
		vips_loaded = -1;
		return;
	}
#define X(f)                                                                                      \
	if (!(*(void **)&V.f = dlsym(h, #f))) {                                                    \
		snprintf(vips_why, sizeof vips_why, "libvips has no %s", #f);                     \
		vips_loaded = -1;                                                                  \
		return;                                                                            \
	}
	VIPS_FUNCS(X)
#undef X
	if (V.vips_version(3) - V.vips_version(5) != VIPS_LIBRARY_CURRENT - VIPS_LIBRARY_AGE ||
	    V.vips_init("unde-collage") != 0) {
		snprintf(vips_why, sizeof vips_why, "cannot start libvips");
		vips_loaded = -1;
		return;
	}
	if (!getenv("VIPS_CONCURRENCY"))
		V.vips_concurrency_set(1);
	V.vips_cache_set_max(0);
	__atomic_store_n(&vips_loaded, 1, __ATOMIC_RELEASE);
}

/* libvips ready, or -1 with why set. */
static int vips_ready(char *why, size_t whylen)
{
	pthread_once(&vips_once, vips_load);
	if (vips_loaded == 1)
		return 0;
	snprintf(why, whylen, "%s", vips_why);
	return -1;
}

/* vips' error text after what, one line, and clear it. */
static void vips_why_set(char *why, size_t len, const char *what)
{
	snprintf(why, len, "%s: %s", what, V.vips_error_buffer());
	for (char *p = why; *p; p++)
		if (*p == '\n')
			*p = ' ';
	size_t n = strlen(why);
	while (n && why[n - 1] == ' ')
		why[--n] = '\0';
	V.vips_error_clear();
}

/* in replaced by *out (the step's result, read after the step ran), or
 * NULL when the step failed. */
static VipsImage *vips_step(VipsImage *in, int rc, VipsImage **out)
{
	V.g_object_unref(in);
	return rc ? NULL : *out;
}

/* Make one sRGB, 3-band uchar image of in, alpha flattened on white.
 * Takes in; returns a new image or NULL. */
static VipsImage *vips_normalise(VipsImage *in)
{
	VipsImage *t = NULL;
	if (in->Type != VIPS_INTERPRETATION_sRGB || in->BandFmt != VIPS_FORMAT_UCHAR)
		if (!(in = vips_step(in, V.vips_colourspace(in, &t, VIPS_INTERPRETATION_sRGB, NULL), &t)))
			return NULL;
	if (V.vips_image_hasalpha(in) || in->Bands > 3) {
		double white[3] = { 255, 255, 255 };
		VipsArrayDouble *bg = V.vips_array_double_new(white, 3);
		int rc = V.vips_flatten(in, &t, "background", bg, NULL);
		V.vips_area_unref(VIPS_AREA(bg));
		if (!(in = vips_step(in, rc, &t)))
			return NULL;
	}
	if (in->BandFmt != VIPS_FORMAT_UCHAR)
		if (!(in = vips_step(in, V.vips_cast_uchar(in, &t, NULL), &t)))
			return NULL;
	return in;
}

/* collage_vips_header: see collage.h. */
int collage_vips_header(const struct buf *b, int *w, int *h, int *swap, char *why, size_t whylen)
{
	if (vips_ready(why, whylen))
		return -1;
	VipsImage *hdr = V.vips_image_new_from_buffer(b->data, b->len, "", NULL);
	if (!hdr) {
		vips_why_set(why, whylen, "not a readable image");
		return -1;
	}
	*w = hdr->Xsize;
	*h = hdr->Ysize;
	if ((*swap = V.vips_image_get_orientation_swap(hdr))) {
		*w = hdr->Ysize;
		*h = hdr->Xsize;
	}
	V.g_object_unref(hdr);
	return 0;
}

/* The part as a small in-memory image: JPEG shrunk by its DCT (1/2, 1/4,
 * 1/8) and WebP by its decoder while decoding, the rest one reduce, then
 * colour management, normalising and the EXIF turn on the small image
 * only. NULL on failure (vips' error buffer says why). */
static VipsImage *vips_part_image(const struct buf *b, const char *type, int dh, int swap, int w,
				  int h, int *cm_failed)
{
	double scale = (double)h / dh;
	/* the size wanted, as stored (before the EXIF turn) */
	int ow = swap ? h : w, oh = swap ? w : h;
	VipsImage *img = NULL, *t = NULL;
	if (strcmp(type, "image/jpeg") == 0) {
		int shrink = 1;
		for (int k = 8; k > 1; k /= 2)
			if (1.0 / scale >= k) {
				shrink = k;
				break;
			}
		if (V.vips_jpegload_buffer(b->data, b->len, &img, "shrink", shrink, "access",
					   VIPS_ACCESS_SEQUENTIAL, "fail_on", VIPS_FAIL_ON_TRUNCATED, NULL))
			return NULL;
	} else if (strcmp(type, "image/webp") == 0) {
		if (V.vips_webpload_buffer(b->data, b->len, &img, "scale", scale, "access",
					   VIPS_ACCESS_SEQUENTIAL, "fail_on", VIPS_FAIL_ON_TRUNCATED, NULL))
			return NULL;
	} else if (V.vips_pngload_buffer(b->data, b->len, &img, "access", VIPS_ACCESS_SEQUENTIAL,
					 "fail_on", VIPS_FAIL_ON_TRUNCATED, NULL)) {
		return NULL;
	}
	if (img->Xsize != ow || img->Ysize != oh) {
		/* after a DCT shrink less than 2x is left, where a linear
		 * kernel is sharp enough and half the work of lanczos3 */
		double hs = (double)ow / img->Xsize, vs = (double)oh / img->Ysize;
		VipsKernel k = hs > 0.5 && vs > 0.5 ? VIPS_KERNEL_LINEAR : VIPS_KERNEL_LANCZOS3;
		if (!(img = vips_step(img, V.vips_resize(img, &t, hs, "vscale", vs, "kernel", k, NULL), &t)))
			return NULL;
		/* the reduce rounds; one pixel too many or too few is cut or copied */
		if ((img->Xsize != ow || img->Ysize != oh) &&
		    !(img = vips_step(img, V.vips_embed(img, &t, 0, 0, ow, oh, "extend", VIPS_EXTEND_COPY, NULL), &t)))
			return NULL;
	}
	/* an embedded profile (CMYK photos, Adobe RGB) to sRGB; CMYK without
	 * one through libvips' own CMYK profile */
	int has_icc = V.vips_image_get_typeof(img, VIPS_META_ICC_NAME) != 0;
	int cmyk = img->Type == VIPS_INTERPRETATION_CMYK;
	if (has_icc || cmyk) {
		int rc = has_icc ? V.vips_icc_transform(img, &t, "srgb", "embedded", TRUE, "input_profile",
							cmyk ? "cmyk" : "srgb", NULL)
				 : V.vips_icc_transform(img, &t, "srgb", "input_profile", "cmyk", NULL);
		if (rc && cmyk) {
			V.g_object_unref(img);
			return NULL;
		} else if (rc) {
			/* a broken profile on an RGB photo: use it as sRGB */
			V.vips_error_clear();
			*cm_failed = 1;
		} else {
			V.g_object_unref(img);
			img = t;
		}
	}
	if (!(img = vips_normalise(img)))
		return NULL;
	/* run the decode now, into a small image */
	VipsImage *mem = V.vips_image_copy_memory(img);
	V.g_object_unref(img);
	if (!mem)
		return NULL;
	if ((swap || V.vips_image_get_orientation(mem) != 1) &&
	    !(mem = vips_step(mem, V.vips_autorot(mem, &t, NULL), &t)))
		return NULL;
	return mem;
}

/* collage_vips_part: see collage.h. */
int collage_vips_part(const struct buf *b, const char *type, int dh, int swap, int w, int h,
		      unsigned char *dst, size_t stride, int *cm_failed, char *why, size_t whylen)
{
	if (vips_ready(why, whylen))
		return -1;
	VipsImage *img = vips_part_image(b, type, dh, swap, w, h, cm_failed);
	if (!img) {
		vips_why_set(why, whylen, "decoding");
		return -1;
	}
	if (img->Xsize != w || img->Ysize != h || img->Bands != 3 || img->BandFmt != VIPS_FORMAT_UCHAR ||
	    !img->data) {
		snprintf(why, whylen, "libvips gave %dx%d, %d bands, not %dx%d RGB", img->Xsize,
			 img->Ysize, img->Bands, w, h);
		V.g_object_unref(img);
		return -1;
	}
	for (int y = 0; y < h; y++)
		memcpy(dst + (size_t)y * stride, (unsigned char *)img->data + (size_t)y * (size_t)w * 3,
		       (size_t)w * 3);
	V.g_object_unref(img);
	return 0;
}

/* collage_vips_thread_done: see collage.h. */
void collage_vips_thread_done(void)
{
	/* not loaded by this thread nor by any other: nothing to do */
	if (__atomic_load_n(&vips_loaded, __ATOMIC_ACQUIRE) == 1)
		V.vips_thread_shutdown();
}

/* collage_vips_shutdown: see collage.h. */
void collage_vips_shutdown(void)
{
	if (__atomic_load_n(&vips_loaded, __ATOMIC_ACQUIRE) == 1)
		V.vips_shutdown();
}
