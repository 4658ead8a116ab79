/* photo — the photos recognition works on: fetched from the object store
 * (the catalog's bucket or the private user-media one) or over HTTP,
 * decoded by libvips with the EXIF orientation applied, cropped to a
 * detected box, described (lib/descriptor.h) and summarised as named
 * colours. */
#include "config.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <openssl/evp.h>

#include <jpeglib.h>

#include "conf.h"
#include "http.h"
#include "image.h"
#include "jpegerr.h"
#include "objstore.h"
#include "recog.h"
#include "rvips.h"

#define PHOTO_MAX_BYTES (32u << 20)

void recog_fail(struct recog_err *e, int status, const char *code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof e->message, fmt, ap);
	va_end(ap);
	snprintf(e->code, sizeof e->code, "%s", code);
	e->status = status;
}

static int photo_have_store(void)
{
	const char *ep = conf_str("S3_ENDPOINT", NULL);
	return ep && *ep;
}

/* The two stores, opened once for every thread (the orchestrator runs
 * items in threads). */
static struct objstore *photo_images, *photo_media;
static pthread_once_t photo_once = PTHREAD_ONCE_INIT;

static void photo_open_stores(void)
{
	if (!photo_have_store())
		return;
	photo_images = objstore_open();
	photo_media = objstore_open_bucket("S3_USER_MEDIA_BUCKET", "unde-user-media");
}

struct objstore *photo_images_store(void)
{
	pthread_once(&photo_once, photo_open_stores);
	return photo_images;
}

struct objstore *photo_media_store(void)
{
	pthread_once(&photo_once, photo_open_stores);
	return photo_media;
}

/* Read key from os into out. 0, or -1 with e set. */
static int photo_get(struct objstore *os, const char *key, const char *url, struct buf *out,
		     struct recog_err *e)
{
	struct objstore_error oe;
	int st = objstore_get(os, key, out, PHOTO_MAX_BYTES, &oe);
	if (st == OBJSTORE_OK)
		return 0;
	if (st == OBJSTORE_NOT_FOUND)
		recog_fail(e, EX_DATAERR, "photo_not_found", "%s: not in bucket %s", url, objstore_bucket(os));
	else
		recog_fail(e, oe.retryable ? EX_TEMPFAIL : EX_UNAVAILABLE, "object_store_error", "%s: %s", url,
			   oe.message);
	return -1;
}

int photo_fetch(const char *url, struct deadline dl, struct buf *out, struct recog_err *e)
{
	struct objstore *stores[2] = { photo_media_store(), photo_images_store() };
	for (size_t i = 0; i < 2; i++) {
		char *key = stores[i] ? objstore_key_from_url(stores[i], url) : NULL;
		if (key) {
			int rc = photo_get(stores[i], key, url, out, e);
			free(key);
			return rc;
		}
	}
	if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
		recog_fail(e, EX_DATAERR, "invalid_url",
			   "%s: neither an object of the store (S3_ENDPOINT) nor an http(s) URL", url);
		return -1;
	}
	/* a URL from the request: not to our own network (SSRF) unless
	 * PHOTO_FETCH_ALLOW_NETS names it */
	struct netguard guard;
	char why[200];
	if (netguard_parse(conf_str("PHOTO_FETCH_ALLOW_NETS", NULL), &guard, why, sizeof why) != 0) {
		recog_fail(e, EX_CONFIG, "invalid_config", "PHOTO_FETCH_ALLOW_NETS: %s", why);
		return -1;
	}
	struct http_request req = { .url = url, .max_response = PHOTO_MAX_BYTES, .deadline = dl,
				    .max_attempts = 2, .guard = &guard };
	struct http_response resp;
	if (http_perform(&req, &resp) != 0 || resp.status != 200) {
		if (resp.refused)
			recog_fail(e, EX_DATAERR, "photo_url_refused", "%s: %s (PHOTO_FETCH_ALLOW_NETS does not name it)",
				   url, resp.error);
		else if (resp.status)
			recog_fail(e, resp.status == 404 ? EX_DATAERR : EX_TEMPFAIL, "photo_unreachable",
				   "%s: HTTP %ld", url, resp.status);
		else
			recog_fail(e, EX_TEMPFAIL, "photo_unreachable", "%s: %s", url, resp.error);
		http_response_free(&resp);
		return -1;
	}
	*out = resp.body;
	resp.body = (struct buf){ 0 };
	http_response_free(&resp);
	return 0;
}

VipsImage *photo_decode(const struct buf *data, struct recog_err *e)
{
	char why[300];
	if (!image_sniff(data->data, data->len, NULL, why, sizeof why)) {
		recog_fail(e, EX_DATAERR, "photo_unusable", "%s", why);
		return NULL;
	}
	if (photo_vips(e) != 0)
		return NULL;
	VipsImage *in = RV.vips_image_new_from_buffer(data->data, data->len, "", NULL);
	VipsImage *rot = NULL, *srgb = NULL, *flat = NULL, *out = NULL;
	if (!in || RV.vips_autorot(in, &rot, NULL) ||
	    RV.vips_colourspace(rot, &srgb, VIPS_INTERPRETATION_sRGB, NULL) ||
	    (RV.vips_image_hasalpha(srgb) ? RV.vips_flatten(srgb, &flat, NULL) : RV.vips_copy(srgb, &flat, NULL)) ||
	    RV.vips_cast_uchar(flat, &out, NULL)) {
		recog_fail(e, EX_DATAERR, "photo_unusable", "cannot decode the photo: %.200s", RV.vips_error_buffer());
		RV.vips_error_clear();
		out = NULL;
	}
	/* decode once into memory: the crops and the descriptor each read it */
	VipsImage *mem = out ? RV.vips_image_copy_memory(out) : NULL;
	if (out && !mem) {
		recog_fail(e, EX_DATAERR, "photo_unusable", "cannot decode the photo: %.200s", RV.vips_error_buffer());
		RV.vips_error_clear();
	}
	VipsImage *all[] = { in, rot, srgb, flat, out };
	for (size_t i = 0; i < sizeof all / sizeof *all; i++)
		if (all[i])
			RV.g_object_unref(all[i]);
	if (mem && RV.vips_image_get_bands(mem) != 3) {
		recog_fail(e, EX_DATAERR, "photo_unusable", "the photo has %d bands, not RGB", RV.vips_image_get_bands(mem));
		RV.g_object_unref(mem);
		mem = NULL;
	}
	return mem;
}

VipsImage *photo_load(const char *url, struct deadline dl, struct recog_err *e)
{
	struct buf b = { 0 };
	if (photo_fetch(url, dl, &b, e) != 0) {
		buf_free(&b);
		return NULL;
	}
	VipsImage *im = photo_decode(&b, e);
	buf_free(&b);
	return im;
}

/* The pixels of im (3-band uchar, in memory) as a packed buffer. */
static const unsigned char *photo_pixels(VipsImage *im, size_t *w, size_t *h)
{
	*w = (size_t)RV.vips_image_get_width(im);
	*h = (size_t)RV.vips_image_get_height(im);
	return (const unsigned char *)(im)->data;
}

int photo_describe(VipsImage *im, float out[DESCRIPTOR_DIM], struct recog_err *e)
{
	int w = RV.vips_image_get_width(im), h = RV.vips_image_get_height(im);
	int shortside = w < h ? w : h;
	VipsImage *small = NULL, *mem = NULL;
	double scale = shortside > 128 ? 128.0 / shortside : 1.0;
	if (RV.vips_resize(im, &small, scale, NULL) || !(mem = RV.vips_image_copy_memory(small))) {
		recog_fail(e, EX_SOFTWARE, "photo_unusable", "cannot shrink the photo: %.200s", RV.vips_error_buffer());
		RV.vips_error_clear();
		if (small)
			RV.g_object_unref(small);
		return -1;
	}
	RV.g_object_unref(small);
	size_t pw, ph;
	const unsigned char *px = photo_pixels(mem, &pw, &ph);
	int rc = descriptor_compute(px, pw, ph, pw * 3, out);
	RV.g_object_unref(mem);
	if (rc)
		recog_fail(e, EX_DATAERR, "photo_unusable", "the photo is empty");
	return rc;
}

/* w x h RGB pixels (rows stride bytes apart) as a baseline JPEG of
 * quality q, appended to out. Done by libjpeg in the calling thread: the
 * same save through libvips hands a crop of a few hundred kB to its
 * thread pool and measured 10-13 ms, most of it the workers' hand-offs,
 * on the path to the detected line. 0, or -1 with msg set. */
static int photo_jpeg_rgb(const unsigned char *px, size_t stride, int w, int h, int q,
			  struct buf *out, char *msg, size_t msglen)
{
	struct jpeg_compress_struct c = { 0 };
	struct jpegerr je;
	unsigned char *volatile mem = NULL;
	unsigned long len = 0;
	c.err = jpegerr_init(&je);
	if (setjmp(je.back)) {
		snprintf(msg, msglen, "%s", je.msg);
		jpeg_destroy_compress(&c);
		free(mem);
		return -1;
	}
	jpeg_create_compress(&c);
	jpegerr_encode_to_memory(&c, (unsigned char **)&mem, &len, w, h, JCS_RGB, q);
	jpeg_start_compress(&c, TRUE);
	while (c.next_scanline < c.image_height) {
		JSAMPROW row = (JSAMPROW)(px + (size_t)c.next_scanline * stride);
		jpeg_write_scanlines(&c, &row, 1);
	}
	jpeg_finish_compress(&c);
	jpeg_destroy_compress(&c);
	int rc = buf_append(out, mem, len);
	free(mem);
	if (rc)
		snprintf(msg, msglen, "the crop's JPEG is over its buffer's limit");
	return rc ? -1 : 0;
}

int photo_crop_jpeg(VipsImage *im, const int box[4], struct buf *jpeg, struct recog_err *e)
{
	int w = RV.vips_image_get_width(im), h = RV.vips_image_get_height(im);
	int x0 = box[0] < 0 ? 0 : box[0], y0 = box[1] < 0 ? 0 : box[1];
	int x1 = box[2] > w ? w : box[2], y1 = box[3] > h ? h : box[3];
	if (x1 - x0 < 2 || y1 - y0 < 2) {
		recog_fail(e, EX_DATAERR, "invalid_box", "box [%d,%d,%d,%d] is outside the %dx%d photo", box[0],
			   box[1], box[2], box[3], w, h);
		return -1;
	}
	/* photo_decode's image: 8-bit sRGB, 3 bands, in memory */
	assert(RV.vips_image_get_bands(im) == 3);
	const unsigned char *px = RV.vips_image_get_data(im);
	char why[JMSG_LENGTH_MAX + 1] = "no pixels";
	size_t stride = (size_t)w * 3;
	if (!px || photo_jpeg_rgb(px + (size_t)y0 * stride + (size_t)x0 * 3, stride, x1 - x0, y1 - y0, 90, jpeg,
				  why, sizeof why) != 0) {
		recog_fail(e, EX_SOFTWARE, "crop_failed", "cannot crop: %.200s",
			   px ? why : RV.vips_error_buffer());
		RV.vips_error_clear();
		return -1;
	}
	return 0;
}

/* The palette colours are named from: common fashion colour words. */
static const struct {
	const char *name;
	unsigned char r, g, b;
} PALETTE[] = {
	{ "black", 20, 20, 20 },     { "white", 245, 245, 245 }, { "grey", 128, 128, 128 },
	{ "light grey", 196, 196, 196 }, { "beige", 222, 200, 160 }, { "brown", 120, 75, 40 },
	{ "red", 200, 30, 35 },       { "burgundy", 110, 20, 40 }, { "pink", 240, 150, 180 },
	{ "orange", 240, 130, 30 },   { "yellow", 240, 210, 40 },  { "olive", 110, 110, 40 },
	{ "green", 40, 140, 60 },     { "light blue", 140, 190, 230 }, { "blue", 40, 80, 200 },
	{ "navy", 25, 35, 80 },       { "purple", 110, 50, 140 },  { "khaki", 180, 165, 110 },
};
#define NPALETTE (sizeof PALETTE / sizeof PALETTE[0])

json_t *photo_colours(VipsImage *im, size_t max)
{
	VipsImage *small = NULL, *mem = NULL;
	int w = RV.vips_image_get_width(im), h = RV.vips_image_get_height(im);
	int longside = w > h ? w : h;
	if (RV.vips_resize(im, &small, longside > 96 ? 96.0 / longside : 1.0, NULL) ||
	    !(mem = RV.vips_image_copy_memory(small))) {
		RV.vips_error_clear();
		if (small)
			RV.g_object_unref(small);
		return json_array();
	}
	RV.g_object_unref(small);
	size_t pw, ph;
	const unsigned char *px = photo_pixels(mem, &pw, &ph);
	double weight[NPALETTE] = { 0 }, sum[NPALETTE][3] = { { 0 } }, total = 0, edge[NPALETTE] = { 0 }, edges = 0;
	double cx = pw / 2.0, cy = ph / 2.0;
	for (size_t y = 0; y < ph; y++)
		for (size_t x = 0; x < pw; x++) {
			const unsigned char *p = px + (y * pw + x) * 3;
			double dx = fabs(x + 0.5 - cx) / cx, dy = fabs(y + 0.5 - cy) / cy;
			/* as the descriptor: the middle (the garment) counts most */
			double wgt = 1.0 - 0.75 * (dx > dy ? dx : dy);
			size_t best = 0;
			double bd = 1e18;
			for (size_t k = 0; k < NPALETTE; k++) {
				double dr = p[0] - PALETTE[k].r, dg = p[1] - PALETTE[k].g, db = p[2] - PALETTE[k].b;
				/* the eye's weights for the channels (a "redmean"-style metric) */
				double d = 2 * dr * dr + 4 * dg * dg + 3 * db * db;
				if (d < bd) {
					bd = d;
					best = k;
				}
			}
			if (dx > 0.84 || dy > 0.84) {
				edge[best] += 1;
				edges += 1;
			}
			weight[best] += wgt;
			for (int c = 0; c < 3; c++)
				sum[best][c] += wgt * p[c];
			total += wgt;
		}
	RV.g_object_unref(mem);
	/* the background: the colour of most of the frame (the outer 8 %);
	 * it is named last, so the garment's colour comes first */
	size_t bg = NPALETTE;
	for (size_t k = 0; k < NPALETTE; k++)
		if (edges > 0 && edge[k] / edges > 0.5)
			bg = k;
	json_t *out = json_array();
	int used[NPALETTE] = { 0 };
	for (size_t n = 0; n < max && total > 0; n++) {
		size_t best = NPALETTE;
		for (size_t k = 0; k < NPALETTE; k++)
			if (!used[k] && weight[k] / total >= 0.05 &&
			    (best == NPALETTE || (best == bg) > (k == bg) ||
			     ((best == bg) == (k == bg) && weight[k] > weight[best])))
				best = k;
		if (best == NPALETTE)
			break;
		used[best] = 1;
		char hex[8];
		/* the hex is the mean of the pixels named so, not the palette's */
		snprintf(hex, sizeof hex, "#%02X%02X%02X", (unsigned)(sum[best][0] / weight[best] + 0.5),
			 (unsigned)(sum[best][1] / weight[best] + 0.5), (unsigned)(sum[best][2] / weight[best] + 0.5));
		json_t *c = json_pack("{s:s, s:s, s:f}", "name", PALETTE[best].name, "hex", hex, "share",
				      round(weight[best] / total * 1000) / 1000);
		if (best == bg)
			json_object_set_new(c, "background", json_true());
		json_array_append_new(out, c);
	}
	return out;
}

double photo_similarity(const float a[DESCRIPTOR_DIM], const float b[DESCRIPTOR_DIM])
{
	double ab = 0, aa = 0, bb = 0;
	for (size_t i = 0; i < DESCRIPTOR_DIM; i++) {
		ab += (double)a[i] * b[i];
		aa += (double)a[i] * a[i];
		bb += (double)b[i] * b[i];
	}
	return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0;
}

char *photo_base64(const void *data, size_t len)
{
	size_t n = 4 * ((len + 2) / 3) + 1;
	char *out = xmalloc(n);
	int k = EVP_EncodeBlock((unsigned char *)out, data, (int)len);
	assert(k >= 0 && (size_t)k < n);
	out[k] = '\0';
	return out;
}
