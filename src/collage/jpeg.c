/* unde-collage's JPEGs through libjpeg(-turbo) itself: nearly every
 * original is a plain JPEG, and nearly all the time goes into decoding it.
 *
 * A part is decoded at the smallest DCT scale that is still at least its
 * size, and what is left (less than 2×) is reduced row by row into the
 * collage itself (scale.c): no full-size or even part-size copy of a photo
 * is ever made, and no libvips pipeline is set up for it. The collage is
 * encoded here too. Anything that is not plain (a colour profile, CMYK, an
 * unreadable or doubled EXIF block) is left to libvips (vips.c). */
#include "config.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

#include "collage.h"
#include "jpegerr.h"

/* TIFF's 16- and 32-bit numbers, little (le) or big endian. */
static unsigned exif_u16(const unsigned char *p, int le)
{
	return le ? (unsigned)p[0] | (unsigned)p[1] << 8 : (unsigned)p[0] << 8 | (unsigned)p[1];
}

static unsigned long exif_u32(const unsigned char *p, int le)
{
	return le ? (unsigned long)exif_u16(p, 1) | (unsigned long)exif_u16(p + 2, 1) << 16
		  : (unsigned long)exif_u16(p, 0) << 16 | (unsigned long)exif_u16(p + 2, 0);
}

/* The Orientation tag of IFD0 in an Exif block (TIFF data after
 * "Exif\0\0"): 1…8; 1 when there is none; 0 when the block or the tag
 * cannot be read (libvips decides then). */
static int exif_orientation(const unsigned char *p, size_t len)
{
	if (len < 8)
		return 0;
	int le;
	if (memcmp(p, "II*\0", 4) == 0)
		le = 1;
	else if (memcmp(p, "MM\0*", 4) == 0)
		le = 0;
	else
		return 0;
	unsigned long ifd = exif_u32(p + 4, le);
	if (ifd < 8 || ifd > len - 2)
		return 0;
	unsigned count = exif_u16(p + ifd, le);
	if (count > (len - ifd - 2) / 12)
		return 0;
	for (unsigned i = 0; i < count; i++) {
		const unsigned char *e = p + ifd + 2 + 12 * (size_t)i;
		if (exif_u16(e, le) != 0x0112)
			continue;
		if (exif_u16(e + 2, le) != 3 || exif_u32(e + 4, le) != 1)
			return 0; /* not one SHORT */
		unsigned v = exif_u16(e + 8, le);
		return v >= 1 && v <= 8 ? (int)v : 0;
	}
	return 1;
}

/* collage_jpeg_probe: see collage.h. */
int collage_jpeg_probe(const void *data, size_t len, struct collage_jpeg_info *info)
{
	struct jpeg_decompress_struct c;
	struct jpegerr f;
	memset(info, 0, sizeof *info);
	c.err = jpegerr_init(&f);
	jpeg_create_decompress(&c);
	if (setjmp(f.back)) {
		jpeg_destroy_decompress(&c);
		return -1;
	}
	jpeg_mem_src(&c, data, (unsigned long)len);
	jpeg_save_markers(&c, JPEG_APP0 + 1, 0xffff); /* Exif */
	jpeg_save_markers(&c, JPEG_APP0 + 2, 14);     /* ICC_PROFILE: is there one */
	jpeg_read_header(&c, TRUE);
	info->width = (int)c.image_width;
	info->height = (int)c.image_height;
	info->orientation = 1;
	int plain = (c.jpeg_color_space == JCS_YCbCr && c.num_components == 3) ||
		    (c.jpeg_color_space == JCS_RGB && c.num_components == 3) ||
		    (c.jpeg_color_space == JCS_GRAYSCALE && c.num_components == 1);
	int exif_seen = 0;
	for (jpeg_saved_marker_ptr m = c.marker_list; m; m = m->next) {
		if (m->marker == JPEG_APP0 + 2 && m->data_length >= 12 &&
		    memcmp(m->data, "ICC_PROFILE", 12) == 0)
			plain = 0;
		if (m->marker == JPEG_APP0 + 1 && m->data_length >= 6 &&
		    memcmp(m->data, "Exif\0\0", 6) == 0) {
			/* two Exif blocks: which one counts is libvips' choice */
			if (exif_seen++)
				plain = 0;
			info->orientation = exif_orientation(m->data + 6, m->data_length - 6);
			if (!info->orientation)
				plain = 0;
		}
	}
	info->plain = plain;
	jpeg_destroy_decompress(&c);
	return 0;
}

/* Turn a w×h plane as stored into its upright orientation (EXIF 2…8) in
 * dst (uw bytes apart): the mirrors and quarter turns libvips' autorot
 * makes. */
static void jpeg_orient(const unsigned char *src, int w, int h, int orientation, unsigned char *dst)
{
	int swap = orientation >= 5;
	int uw = swap ? h : w, uh = swap ? w : h;
	for (int y = 0; y < uh; y++) {
		unsigned char *o = dst + (size_t)y * (size_t)uw;
		for (int x = 0; x < uw; x++) {
			int sx, sy;
			switch (orientation) {
			case 2: sx = w - 1 - x; sy = y; break;
			case 3: sx = w - 1 - x; sy = h - 1 - y; break;
			case 4: sx = x; sy = h - 1 - y; break;
			case 5: sx = y; sy = x; break;
			case 6: sx = y; sy = h - 1 - x; break;
			case 7: sx = w - 1 - y; sy = h - 1 - x; break;
			case 8: sx = w - 1 - y; sy = x; break;
			default: sx = x; sy = y; break;
			}
			o[x] = src[(size_t)sy * (size_t)w + (size_t)sx];
		}
	}
}

/* One part's decoding; kept in memory, not in registers, across libjpeg's
 * longjmp. */
struct jpeg_part {
	struct jpeg_decompress_struct c;
	struct jpegerr f;
	struct collage_scaler *sc[3];
	unsigned char *stored[3]; /* the planes at the part's size before their EXIF turn */
	int sw, sh;               /* the part's size as stored */
	int direct; /* straight into the collage (see jpeg_part_scalers) */
	char *why;
	size_t whylen;
};

/* The plane scalers of x: straight into the part's Y plane and chroma
 * cells when the JPEG is YCbCr (or grey) and upright (direct), else to
 * whole planes at the part's stored size (x->stored). 0, or -1. */
static int jpeg_part_scalers(struct jpeg_part *x, const struct collage_part_out *out, int direct)
{
	for (int ci = 0; ci < x->c.num_components; ci++) {
		jpeg_component_info *comp = &x->c.comp_info[ci];
		int in_w = (int)comp->downsampled_width, in_h = (int)comp->downsampled_height;
		int batch = comp->v_samp_factor * comp->DCT_scaled_size;
		size_t row = (size_t)comp->width_in_blocks * (size_t)comp->DCT_scaled_size;
		if (!direct) {
			x->stored[ci] = malloc((size_t)x->sw * (size_t)x->sh);
			x->sc[ci] = x->stored[ci] ? collage_scaler_new(in_w, in_h, x->sw, 1, 0, x->sh, 1, 0,
								       batch, row, x->stored[ci],
								       (size_t)x->sw)
						  : NULL;
		} else if (ci == 0) {
			x->sc[ci] = collage_scaler_new(in_w, in_h, out->w, 1, 0, out->h, 1, 0, batch, row,
						       out->y, out->y_stride);
		} else {
			x->sc[ci] = collage_scaler_new(in_w, in_h, out->w, out->step, out->off_x, out->h,
						       out->step, out->off_y, batch, row,
						       ci == 1 ? out->cb : out->cr, (size_t)out->cw);
		}
		if (!x->sc[ci])
			return -1;
	}
	return 0;
}

/* Decode x's JPEG, DCT-scaled, its planes as they come from libjpeg's
 * IDCT reduced into the part (or x->stored). 0, or -1 with x->why set;
 * x->sc and x->stored are the caller's to free. */
static int jpeg_part_decode(struct jpeg_part *x, const void *data, size_t len,
			    const struct collage_part_out *out, int orientation)
{
	if (setjmp(x->f.back)) {
		snprintf(x->why, x->whylen, "%s", x->f.msg[0] ? x->f.msg : "libjpeg failed");
		return -1;
	}
	jpeg_mem_src(&x->c, data, (unsigned long)len);
	jpeg_read_header(&x->c, TRUE);
	x->c.raw_data_out = TRUE;
	/* straight into the collage when nothing is left to do after the
	 * reduce: no turn, and YCbCr or grey as the collage is */
	x->direct = orientation == 1 && (x->c.jpeg_color_space == JCS_YCbCr ||
					 x->c.jpeg_color_space == JCS_GRAYSCALE);
	/* the smallest of 1/8, 1/4, 1/2, 1/1 not smaller than the part. libjpeg
	 * offers every M/8, but libjpeg-turbo has SIMD code only for these
	 * (3/8 of a 1200×1600 photo decoded slower than 4/8, its 3×3 and 6×6
	 * IDCTs being plain C) */
	x->c.scale_denom = 8;
	for (x->c.scale_num = 1; x->c.scale_num < 8; x->c.scale_num *= 2) {
		jpeg_calc_output_dimensions(&x->c);
		if ((int)x->c.output_width >= x->sw && (int)x->c.output_height >= x->sh)
			break;
	}
	jpeg_start_decompress(&x->c);
	int nc = x->c.num_components;
	if (nc != 1 && nc != 3) {
		snprintf(x->why, x->whylen, "libjpeg gave %d components", nc);
		return -1;
	}
	if (jpeg_part_scalers(x, out, x->direct) != 0) {
		snprintf(x->why, x->whylen, "out of memory");
		return -1;
	}
	JSAMPROW rows[3][32];
	JSAMPARRAY planes[3] = { rows[0], rows[1], rows[2] };
	int lines = x->c.max_v_samp_factor * x->c.min_DCT_scaled_size;
	for (int ci = 0; ci < nc; ci++)
		if (x->c.comp_info[ci].v_samp_factor * x->c.comp_info[ci].DCT_scaled_size > 32) {
			snprintf(x->why, x->whylen, "unusual JPEG sampling");
			return -1;
		}
	for (;;) {
		int done = 1;
		for (int ci = 0; ci < nc; ci++)
			done &= collage_scaler_done(x->sc[ci]);
		if (done)
			break;
		if (x->c.output_scanline >= x->c.output_height) {
			snprintf(x->why, x->whylen, "the JPEG ended early");
			return -1;
		}
		for (int ci = 0; ci < nc; ci++) {
			int n = x->c.comp_info[ci].v_samp_factor * x->c.comp_info[ci].DCT_scaled_size;
			for (int r = 0; r < n; r++)
				rows[ci][r] = collage_scaler_slot(x->sc[ci], r);
		}
		if (jpeg_read_raw_data(&x->c, planes, (JDIMENSION)lines) == 0) {
			snprintf(x->why, x->whylen, "the JPEG ended early");
			return -1;
		}
		for (int ci = 0; ci < nc; ci++)
			collage_scaler_fed(x->sc[ci],
					   x->c.comp_info[ci].v_samp_factor * x->c.comp_info[ci].DCT_scaled_size);
	}
	/* the rows below the last one the part needed are not decoded */
	jpeg_abort_decompress(&x->c);
	return 0;
}

/* The part from x's whole planes at its stored size: turned upright,
 * then converted and reduced to cells by collage_part_from_pixels. 0, or
 * -1 when out of memory. */
static int jpeg_part_finish(struct jpeg_part *x, int orientation, const struct collage_part_out *out)
{
	int nc = x->c.num_components, rc = 0;
	unsigned char *up[3] = { NULL, NULL, NULL };
	const unsigned char *p[3] = { NULL, NULL, NULL };
	for (int ci = 0; ci < nc; ci++) {
		if (orientation == 1) {
			p[ci] = x->stored[ci];
			continue;
		}
		if (!(up[ci] = malloc((size_t)out->w * (size_t)out->h))) {
			rc = -1;
			break;
		}
		jpeg_orient(x->stored[ci], x->sw, x->sh, orientation, up[ci]);
		p[ci] = up[ci];
	}
	if (rc == 0)
		rc = collage_part_from_pixels(out, p, 1, (size_t)out->w,
					      x->c.jpeg_color_space == JCS_RGB);
	for (int ci = 0; ci < 3; ci++)
		free(up[ci]);
	return rc;
}

/* collage_jpeg_part: see collage.h. */
int collage_jpeg_part(const void *data, size_t len, int orientation,
		      const struct collage_part_out *out, char *why, size_t whylen)
{
	struct jpeg_part x = { .sw = orientation >= 5 ? out->h : out->w,
			       .sh = orientation >= 5 ? out->w : out->h,
			       .why = why, .whylen = whylen };
	x.c.err = jpegerr_init(&x.f);
	jpeg_create_decompress(&x.c);
	int rc = jpeg_part_decode(&x, data, len, out, orientation);
	if (rc && x.f.truncated) {
		snprintf(why, whylen, "truncated JPEG: %s", x.f.msg);
		rc = -2;
	}
	if (rc == 0 && x.direct && x.c.num_components == 1) { /* grey: no colour */
		memset(out->cb, 128, (size_t)out->cw * (size_t)out->ch);
		memset(out->cr, 128, (size_t)out->cw * (size_t)out->ch);
	}
	if (rc == 0 && !x.direct && jpeg_part_finish(&x, orientation, out) != 0) {
		snprintf(why, whylen, "out of memory");
		rc = -1;
	}
	jpeg_destroy_decompress(&x.c);
	for (int ci = 0; ci < 3; ci++) {
		collage_scaler_free(x.sc[ci]);
		free(x.stored[ci]);
	}
	return rc;
}

/* Repeat the last sample of each row of a w×h plane up to padw, and its
 * last row down to padh: libjpeg encodes whole blocks, and raw data are
 * not padded by it. */
static void jpeg_pad_plane(unsigned char *p, size_t stride, int w, int h, int padw, int padh)
{
	for (int y = 0; y < h; y++)
		memset(p + (size_t)y * stride + w, p[(size_t)y * stride + w - 1], (size_t)(padw - w));
	for (int y = h; y < padh; y++)
		memcpy(p + (size_t)y * stride, p + (size_t)(h - 1) * stride, (size_t)padw);
}

/* collage_jpeg_encode: see collage.h. */
int collage_jpeg_encode(unsigned char *const planes[3], const size_t strides[3], int w, int h,
			int step, int quality, unsigned char **out, size_t *len, char *why,
			size_t whylen)
{
	struct jpeg_compress_struct c;
	struct jpegerr f;
	unsigned char *volatile mem = NULL;
	unsigned long mlen = 0;
	*out = NULL;
	*len = 0;
	int cw = (w + step - 1) / step, ch = (h + step - 1) / step;
	jpeg_pad_plane(planes[0], strides[0], w, h, (w + 8 * step - 1) / (8 * step) * 8 * step,
		       (h + 8 * step - 1) / (8 * step) * 8 * step);
	for (int i = 1; i < 3; i++)
		jpeg_pad_plane(planes[i], strides[i], cw, ch, (cw + 7) / 8 * 8, (ch + 7) / 8 * 8);
	c.err = jpegerr_init(&f);
	jpeg_create_compress(&c);
	if (setjmp(f.back)) {
		snprintf(why, whylen, "JPEG encoding: %s", f.msg);
		jpeg_destroy_compress(&c);
		free(mem);
		return -1;
	}
	jpegerr_encode_to_memory(&c, (unsigned char **)&mem, &mlen, w, h, JCS_YCbCr, quality);
	/* libvips' jpegsave, which made these before: chroma at full
	 * resolution from quality 90, halved both ways below (image.c makes
	 * the planes so) */
	c.comp_info[0].h_samp_factor = step;
	c.comp_info[0].v_samp_factor = step;
	for (int i = 1; i < c.num_components; i++)
		c.comp_info[i].h_samp_factor = c.comp_info[i].v_samp_factor = 1;
	c.raw_data_in = TRUE;
	jpeg_start_compress(&c, TRUE);
	int lines = 8 * step;
	JSAMPROW rows[3][16];
	JSAMPARRAY arr[3] = { rows[0], rows[1], rows[2] };
	for (int y = 0; y < h; y += lines) {
		for (int r = 0; r < lines; r++)
			rows[0][r] = planes[0] + (size_t)(y + r) * strides[0];
		for (int i = 1; i < 3; i++)
			for (int r = 0; r < 8; r++)
				rows[i][r] = planes[i] + (size_t)(y / step + r) * strides[i];
		jpeg_write_raw_data(&c, arr, (JDIMENSION)lines);
	}
	jpeg_finish_compress(&c);
	jpeg_destroy_compress(&c);
	*out = mem;
	*len = mlen;
	return 0;
}
