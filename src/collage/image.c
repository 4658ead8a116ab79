/* unde-collage's image work: n encoded originals in, one JPEG out (§5).
 *
 * Memory stays small on large photos: each original is opened with
 * shrink-on-load (JPEG DCT scaling, WebP's scaled decoder) and streamed top
 * to bottom, so a 1200×1600 photo never exists at full size when the
 * collage is only a few hundred pixels high. The common height is worked
 * out from the headers alone before any pixel is decoded; the parts are
 * decoded side by side, one thread each. */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vips/vips.h>

#include "collage.h"
#include "image.h"
#include "log.h"
#include "util.h"

/* vips' error text, one line, and clear it. */
static void collage_vips_error(char *why, size_t len, const char *what)
{
	snprintf(why, len, "%s: %s", what, vips_error_buffer());
	for (char *p = why; *p; p++)
		if (*p == '\n')
			*p = ' ';
	size_t n = strlen(why);
	while (n && why[n - 1] == ' ')
		why[--n] = '\0';
	vips_error_clear();
}

/* Make one upright sRGB, 3-band uchar image of in, alpha flattened on
 * white. Takes in; returns a new image or NULL. */
static VipsImage *collage_normalise(VipsImage *in)
{
	VipsImage *t = NULL;
	if (in->Type != VIPS_INTERPRETATION_sRGB || in->BandFmt != VIPS_FORMAT_UCHAR) {
		if (vips_colourspace(in, &t, VIPS_INTERPRETATION_sRGB, NULL)) {
			g_object_unref(in);
			return NULL;
		}
		g_object_unref(in);
		in = t;
	}
	if (vips_image_hasalpha(in) || in->Bands > 3) {
		double white[3] = { 255, 255, 255 };
		VipsArrayDouble *bg = vips_array_double_new(white, 3);
		int rc = vips_flatten(in, &t, "background", bg, NULL);
		vips_area_unref(VIPS_AREA(bg));
		g_object_unref(in);
		if (rc)
			return NULL;
		in = t;
	}
	if (in->BandFmt != VIPS_FORMAT_UCHAR) {
		if (vips_cast_uchar(in, &t, NULL)) {
			g_object_unref(in);
			return NULL;
		}
		g_object_unref(in);
		in = t;
	}
	return in;
}

/* Decode one original straight to height target_h (in its upright
 * orientation), into a small in-memory sRGB image. JPEG is shrunk by its
 * DCT while decoding (1/2, 1/4, 1/8: four to sixty-four times fewer pixels
 * to decode) and WebP scaled by its decoder; what is left is one reduce.
 * Colour management and rotation then work on the small image only. */
struct collage_part_job {
	const struct buf *b;
	const char *type;  /* image/jpeg, image/png, image/webp */
	int dw, dh;        /* upright size, from the header */
	int swap;          /* the EXIF orientation turns it by 90 degrees */
	int target_w, target_h; /* upright size wanted */
	VipsImage *out;    /* the result, or NULL */
	char error[400];   /* vips' error when out is NULL */
	int cm_failed;
};

static VipsImage *collage_part(const struct buf *b, const char *type, int dw, int dh, int swap,
			       int target_w, int target_h, int *cm_failed)
{
	(void)dw;
	double scale = (double)target_h / dh;
	/* the size wanted, as stored (before the EXIF rotation) */
	int ow = swap ? target_h : target_w, oh = swap ? target_w : target_h;

	VipsImage *img = NULL, *t;
	if (strcmp(type, "image/jpeg") == 0) {
		int shrink = 1;
		for (int k = 8; k > 1; k /= 2)
			if (1.0 / scale >= k) {
				shrink = k;
				break;
			}
		if (vips_jpegload_buffer(b->data, b->len, &img, "shrink", shrink, "access",
					 VIPS_ACCESS_SEQUENTIAL, NULL))
			return NULL;
	} else if (strcmp(type, "image/webp") == 0) {
		if (vips_webpload_buffer(b->data, b->len, &img, "scale", scale, "access",
					 VIPS_ACCESS_SEQUENTIAL, NULL))
			return NULL;
	} else if (vips_pngload_buffer(b->data, b->len, &img, "access", VIPS_ACCESS_SEQUENTIAL, NULL)) {
		return NULL;
	}
	if (img->Xsize != ow || img->Ysize != oh) {
		/* after a JPEG's DCT shrink less than 2x is left, where a linear
		 * kernel is sharp enough and half the work of lanczos3 */
		double hs = (double)ow / img->Xsize, vs = (double)oh / img->Ysize;
		VipsKernel k = hs > 0.5 && vs > 0.5 ? VIPS_KERNEL_LINEAR : VIPS_KERNEL_LANCZOS3;
		if (vips_resize(img, &t, hs, "vscale", vs, "kernel", k, NULL)) {
			g_object_unref(img);
			return NULL;
		}
		g_object_unref(img);
		img = t;
		/* the reduce rounds; one pixel too many or too few is cut or copied */
		if (img->Xsize != ow || img->Ysize != oh) {
			if (vips_embed(img, &t, 0, 0, ow, oh, "extend", VIPS_EXTEND_COPY, NULL)) {
				g_object_unref(img);
				return NULL;
			}
			g_object_unref(img);
			img = t;
		}
	}
	/* an embedded profile (CMYK photos, Adobe RGB) to sRGB; CMYK without
	 * one through libvips' own CMYK profile */
	int has_icc = vips_image_get_typeof(img, VIPS_META_ICC_NAME) != 0;
	if (has_icc || img->Type == VIPS_INTERPRETATION_CMYK) {
		int rc = has_icc ? vips_icc_transform(img, &t, "srgb", "embedded", TRUE, "input_profile",
						      img->Type == VIPS_INTERPRETATION_CMYK ? "cmyk" : "srgb", NULL)
				 : vips_icc_transform(img, &t, "srgb", "input_profile", "cmyk", NULL);
		if (rc) {
			if (img->Type == VIPS_INTERPRETATION_CMYK) {
				g_object_unref(img);
				return NULL;
			}
			/* a broken profile on an RGB photo: use it as sRGB */
			vips_error_clear();
			*cm_failed = 1;
		} else {
			g_object_unref(img);
			img = t;
		}
	}
	if (!(img = collage_normalise(img)))
		return NULL;
	/* run the decode now, into a small image (a few hundred KiB) */
	VipsImage *mem = vips_image_copy_memory(img);
	g_object_unref(img);
	if (!mem)
		return NULL;
	if (swap || vips_image_get_orientation(mem) != 1) {
		if (vips_autorot(mem, &t, NULL)) {
			g_object_unref(mem);
			return NULL;
		}
		g_object_unref(mem);
		mem = t;
	}
	return mem;
}

/* Work through the parts of one collage: each thread takes the next part
 * not yet taken. libvips' own threads are not used for parts this small
 * (VIPS_CONCURRENCY 1): several parts decoding at once keep every core busy
 * with less hand-over between threads. */
struct collage_pool {
	struct collage_part_job *jobs;
	size_t n, next;
	pthread_mutex_t lock;
};

static void collage_work(struct collage_pool *pool)
{
	for (;;) {
		pthread_mutex_lock(&pool->lock);
		size_t i = pool->next < pool->n ? pool->next++ : pool->n;
		pthread_mutex_unlock(&pool->lock);
		if (i >= pool->n)
			break;
		struct collage_part_job *j = &pool->jobs[i];
		j->out = collage_part(j->b, j->type, j->dw, j->dh, j->swap, j->target_w, j->target_h,
				      &j->cm_failed);
		if (!j->out) {
			char what[64];
			snprintf(what, sizeof what, "original %zu", i + 1);
			collage_vips_error(j->error, sizeof j->error, what);
		}
	}
}

static void *collage_worker(void *arg)
{
	collage_work(arg);
	vips_thread_shutdown(); /* libvips' per-thread buffers */
	return NULL;
}

/* collage_build: see collage.h. */
int collage_build(struct buf *bufs, size_t n, int max_width, int quality, int threads,
		  struct collage_out *out, char *why, size_t whylen)
{
	int w[COLLAGE_MAX_PHOTOS], h[COLLAGE_MAX_PHOTOS], swap[COLLAGE_MAX_PHOTOS];
	const char *types[COLLAGE_MAX_PHOTOS];
	VipsImage *parts[COLLAGE_MAX_PHOTOS] = { 0 };
	int rc = -1;
	memset(out, 0, sizeof *out);

	/* headers only: sizes, upright */
	int target_h = 0;
	for (size_t i = 0; i < n; i++) {
		/* libvips pads a truncated JPEG read from memory with grey, even
		 * with fail_on: check the bytes are a whole image first */
		char bad[200];
		if (!(types[i] = image_sniff(bufs[i].data, bufs[i].len, NULL, bad, sizeof bad))) {
			snprintf(why, whylen, "original %zu: %s", i + 1, bad);
			return -1;
		}
		VipsImage *hdr = vips_image_new_from_buffer(bufs[i].data, bufs[i].len, "", NULL);
		if (!hdr) {
			char what[64];
			snprintf(what, sizeof what, "original %zu is not a readable image", i + 1);
			collage_vips_error(why, whylen, what);
			return -1;
		}
		w[i] = hdr->Xsize;
		h[i] = hdr->Ysize;
		if ((swap[i] = vips_image_get_orientation_swap(hdr))) {
			int tmp = w[i];
			w[i] = h[i];
			h[i] = tmp;
		}
		g_object_unref(hdr);
		if (!target_h || h[i] < target_h)
			target_h = h[i]; /* the lowest: nothing is enlarged */
	}
	/* all at target_h side by side; lower them all if that is too wide */
	double total = 0;
	for (size_t i = 0; i < n; i++)
		total += (double)w[i] * target_h / h[i];
	if (total > max_width)
		target_h = (int)((double)target_h * max_width / total);
	if (target_h < 1)
		target_h = 1;

	/* each part's width; rounding must not push the sum past max_width
	 * (a resize of the whole collage to lose two pixels costs more than
	 * all the parts' decoding) */
	int tw[COLLAGE_MAX_PHOTOS], sum = 0;
	for (size_t i = 0; i < n; i++) {
		tw[i] = (int)((double)w[i] * target_h / h[i] + 0.5);
		if (tw[i] < 1)
			tw[i] = 1;
		sum += tw[i];
	}
	while (sum > max_width) {
		size_t widest = 0;
		for (size_t i = 1; i < n; i++)
			if (tw[i] > tw[widest])
				widest = i;
		if (tw[widest] <= 1)
			break;
		tw[widest]--;
		sum--;
	}
	struct collage_part_job jobs[COLLAGE_MAX_PHOTOS];
	for (size_t i = 0; i < n; i++)
		jobs[i] = (struct collage_part_job){ .b = &bufs[i], .type = types[i], .dw = w[i], .dh = h[i],
						     .swap = swap[i], .target_w = tw[i], .target_h = target_h };
	struct collage_pool pool = { .jobs = jobs, .n = n };
	pthread_mutex_init(&pool.lock, NULL);
	pthread_t tids[COLLAGE_MAX_PHOTOS];
	size_t nthreads = (size_t)threads < n ? (size_t)threads : n, started = 0;
	for (size_t t = 1; t < nthreads; t++)
		if (pthread_create(&tids[started], NULL, collage_worker, &pool) == 0)
			started++;
	collage_work(&pool); /* this thread takes parts too */
	for (size_t t = 0; t < started; t++)
		pthread_join(tids[t], NULL);
	pthread_mutex_destroy(&pool.lock);
	int failed = 0;
	for (size_t i = 0; i < n; i++) {
		parts[i] = jobs[i].out;
		if (!parts[i] && !failed) {
			snprintf(why, whylen, "%s", jobs[i].error);
			failed = 1;
		}
		if (jobs[i].cm_failed)
			log_event(LOG_WARN, "unusable colour profile, read as sRGB",
				  json_pack("{s:I}", "original", (json_int_t)(i + 1)));
	}
	if (failed)
		goto out;
	/* left to right; all are target_h high, so nothing needs padding
	 * (vips_arrayjoin would give every part the widest one's cell) */
	VipsImage *joined = parts[0], *final;
	g_object_ref(joined);
	for (size_t i = 1; i < n; i++) {
		VipsImage *t;
		if (vips_join(joined, parts[i], &t, VIPS_DIRECTION_HORIZONTAL, NULL)) {
			g_object_unref(joined);
			collage_vips_error(why, whylen, "join");
			goto out;
		}
		g_object_unref(joined);
		joined = t;
	}
	if (joined->Xsize > max_width) {
		/* rounding of the parts' widths: a few pixels over at most */
		if (vips_resize(joined, &final, (double)max_width / joined->Xsize, NULL)) {
			g_object_unref(joined);
			collage_vips_error(why, whylen, "resize");
			goto out;
		}
		g_object_unref(joined);
	} else {
		final = joined;
	}
	if (vips_jpegsave_buffer(final, &out->jpeg, &out->len, "Q", quality, "strip", TRUE, NULL)) {
		g_object_unref(final);
		collage_vips_error(why, whylen, "JPEG encoding");
		goto out;
	}
	out->width = final->Xsize;
	out->height = final->Ysize;
	g_object_unref(final);
	rc = 0;
out:
	for (size_t i = 0; i < n; i++)
		if (parts[i])
			g_object_unref(parts[i]);
	return rc;
}

