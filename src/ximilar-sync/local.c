/* local — the collection without Ximilar: each photo's descriptor
 * (lib/descriptor.h) in production.product_descriptors (pgvector), for the
 * offline visual search of the recognition service.
 *
 * Photos are read from the object store when their URL is one of its own
 * (the originals unde-download stored), else fetched over HTTP, and decoded
 * with libjpeg at a DCT scale that keeps at least 64 pixels on the short
 * side: the descriptor is coarse (a 4x4 grid, 64 colour bins), so the
 * full-size decode would only cost time. Only JPEGs are decoded: the
 * originals of the catalog are. */
#include "config.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <jpeglib.h>

#include "descriptor.h"
#include "http.h"
#include "image.h"
#include "pg.h"
#include "util.h"
#include "xsync.h"

struct local_jpeg_err {
	struct jpeg_error_mgr pub;
	jmp_buf jump;
	char msg[JMSG_LENGTH_MAX];
};

static void local_jpeg_exit(j_common_ptr c)
{
	struct local_jpeg_err *e = (struct local_jpeg_err *)c->err;
	c->err->format_message(c, e->msg);
	longjmp(e->jump, 1);
}

static void local_jpeg_quiet(j_common_ptr c, int level)
{
	(void)c;
	(void)level;
}

/* Decode a JPEG small and describe it. 0, or -1 with why set. */
static int local_describe(const unsigned char *data, size_t len, float out[DESCRIPTOR_DIM], char *why,
			  size_t whylen)
{
	struct jpeg_decompress_struct d;
	struct local_jpeg_err e;
	unsigned char *volatile pix = NULL;
	memset(&d, 0, sizeof d);
	d.err = jpeg_std_error(&e.pub);
	e.pub.error_exit = local_jpeg_exit;
	e.pub.emit_message = local_jpeg_quiet;
	if (setjmp(e.jump)) {
		snprintf(why, whylen, "cannot decode the JPEG: %s", e.msg);
		jpeg_destroy_decompress(&d);
		free(pix);
		return -1;
	}
	jpeg_create_decompress(&d);
	jpeg_mem_src(&d, data, (unsigned long)len);
	jpeg_read_header(&d, TRUE);
	unsigned short_side = d.image_width < d.image_height ? d.image_width : d.image_height;
	d.scale_num = 1;
	d.scale_denom = 1;
	while (d.scale_denom < 8 && short_side / (d.scale_denom * 2) >= 64)
		d.scale_denom *= 2;
	d.out_color_space = JCS_RGB;
	jpeg_start_decompress(&d);
	size_t w = d.output_width, h = d.output_height, stride = w * 3;
	pix = xmalloc(stride * h);
	while (d.output_scanline < d.output_height) {
		JSAMPROW row = pix + (size_t)d.output_scanline * stride;
		jpeg_read_scanlines(&d, &row, 1);
	}
	jpeg_finish_decompress(&d);
	jpeg_destroy_decompress(&d);
	int rc = descriptor_compute(pix, w, h, stride, out);
	free(pix);
	if (rc)
		snprintf(why, whylen, "the image is empty");
	return rc;
}

/* The photo's bytes into body: from the store, or over HTTP. 0 or -1. */
static int local_fetch(struct objstore *os, const char *url, struct buf *body, char *why, size_t whylen)
{
	char *key = os ? objstore_key_from_url(os, url) : NULL;
	if (key) {
		struct objstore_error oe;
		int st = objstore_get(os, key, body, 64u << 20, &oe);
		free(key);
		if (st == OBJSTORE_OK)
			return 0;
		snprintf(why, whylen, "%s", st == OBJSTORE_NOT_FOUND ? "not in the object store" : oe.message);
		return -1;
	}
	if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
		snprintf(why, whylen, "neither an object of the store nor an http(s) URL");
		return -1;
	}
	struct http_request req = { .url = url, .max_response = 64u << 20 };
	struct http_response resp;
	if (http_perform(&req, &resp) != 0 || resp.status != 200) {
		if (resp.status)
			snprintf(why, whylen, "HTTP %ld", resp.status);
		else
			snprintf(why, whylen, "%s", resp.error);
		http_response_free(&resp);
		return -1;
	}
	*body = resp.body;
	resp.body = (struct buf){ 0 };
	http_response_free(&resp);
	return 0;
}

int local_put_product(PGconn *production, struct objstore *os, const struct xsync_product *p,
		      struct xsync_error *err)
{
	json_t *rows = json_array();
	for (size_t n = 0; n < p->nurls; n++) {
		struct buf body = { 0 };
		char why[400];
		float d[DESCRIPTOR_DIM];
		const char *type;
		if (local_fetch(os, p->urls[n], &body, why, sizeof why) != 0 ||
		    !(type = image_sniff(body.data, body.len, NULL, why, sizeof why)) ||
		    (strcmp(type, "image/jpeg") != 0 && snprintf(why, sizeof why, "a %s, not a JPEG", type) > 0) ||
		    local_describe((const unsigned char *)body.data, body.len, d, why, sizeof why) != 0) {
			snprintf(err->code, sizeof err->code, "photo_unusable");
			snprintf(err->message, sizeof err->message, "photo %zu (%s): %s", n + 1, p->urls[n], why);
			err->status = EX_DATAERR;
			buf_free(&body);
			json_decref(rows);
			return -1;
		}
		buf_free(&body);
		char text[DESCRIPTOR_TEXT_MAX];
		descriptor_to_text(d, text, sizeof text);
		json_array_append_new(rows, json_pack("{s:I, s:s, s:s}", "photo_no", (json_int_t)(n + 1),
						      "image_url", p->urls[n], "descriptor", text));
	}
	char *doc = json_dumps(rows, JSON_COMPACT);
	char *meta = json_dumps(p->meta, JSON_COMPACT);
	char count[24];
	snprintf(count, sizeof count, "%zu", p->nurls);
	json_decref(rows);
	const char *params[] = { p->source, p->sku, p->brand, count, doc, meta };
	/* one statement: the product's rows are replaced whole or not at all */
	int rc = pg_exec(production,
			 "WITH gone AS (DELETE FROM product_descriptors WHERE source = $1 AND sku = $2"
			 " AND photo_no > $4::int)"
			 " INSERT INTO product_descriptors AS t (source, sku, photo_no, brand, image_url,"
			 " descriptor, metadata, computed_at)"
			 " SELECT $1, $2, r.photo_no, $3, r.image_url, r.descriptor::vector, $6::jsonb, now()"
			 " FROM jsonb_to_recordset($5::jsonb) AS r(photo_no int, image_url text, descriptor text)"
			 " ON CONFLICT (source, sku, photo_no) DO UPDATE SET brand = EXCLUDED.brand,"
			 " image_url = EXCLUDED.image_url, descriptor = EXCLUDED.descriptor,"
			 " metadata = EXCLUDED.metadata, computed_at = now()",
			 6, params);
	free(doc);
	free(meta);
	if (rc) {
		snprintf(err->code, sizeof err->code, "database_unavailable");
		snprintf(err->message, sizeof err->message, "production: %s", pg_last_error(production));
		err->status = pg_connection_lost(production) ? EX_UNAVAILABLE : EX_SOFTWARE;
		return -1;
	}
	return 0;
}
