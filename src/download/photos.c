/* unde-download's photos: a product's URLs taken from its row, fetched
 * (libcurl's multi interface, or file:// under DOWNLOAD_FILE_ROOT),
 * checked to be whole images, and uploaded to the store. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>

#include <curl/curl.h>

#include "../catalog/key.h"
#include "download.h"
#include "image.h"
#include "status.h"
#include "util.h"

/* dl_url_shown: see download.h. */
const char *dl_url_shown(const char *url, char *out, size_t len)
{
	size_t n = strcspn(url, "?#");
	snprintf(out, len, "%.*s%s", (int)(n < 400 ? n : 400), url, n > 400 ? "…" : "");
	return out;
}

/* dl_product_error: see download.h. */
void dl_product_error(struct dl_product *p, int status, int permanent, const char *code,
			     const char *fmt, ...)
{
	if (p->err_code[0])
		return; /* the first reason is the one that counts */
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->err_msg, sizeof p->err_msg, fmt, ap);
	va_end(ap);
	snprintf(p->err_code, sizeof p->err_code, "%s", code);
	p->err_status = status;
	p->err_permanent = permanent;
}

/* dl_product_from_row: see download.h. */
void dl_product_from_row(struct dl_state *s, struct dl_product *p, const char *brand,
				const char *external_id, const char *urls_json)
{
	snprintf(p->brand, sizeof p->brand, "%s", brand);
	snprintf(p->external_id, sizeof p->external_id, "%s", external_id);
	p->urls_json = urls_json ? xstrdup(urls_json) : NULL;
	if (!catalog_key_part_ok(p->brand, 0) || !catalog_key_part_ok(p->external_id, 1)) {
		dl_product_error(p, EX_DATAERR, 1, "invalid_field",
				 "brand or external_id cannot be part of an object key");
		return;
	}
	json_t *urls = p->urls_json ? json_loads(p->urls_json, 0, NULL) : NULL;
	size_t i;
	json_t *u;
	json_array_foreach(urls, i, u)
	{
		if (p->nphotos >= (size_t)s->max_photos)
			break;
		const char *us = json_string_value(u);
		if (us && (strncmp(us, "http://", 7) == 0 || strncmp(us, "https://", 8) == 0 ||
			   (s->file_root[0] && strncmp(us, "file:///", 8) == 0)))
			p->urls[p->nphotos++] = xstrdup(us);
	}
	json_decref(urls);
	if (!p->nphotos)
		dl_product_error(p, EX_DATAERR, 1, "no_images",
				 s->file_root[0] ? "the product has no http(s) or file:// photo URL"
						 : "the product has no http(s) photo URL (file:// ones need"
						   " DOWNLOAD_FILE_ROOT)");
}

void dl_product_free(struct dl_product *p)
{
	for (size_t i = 0; i < p->nphotos; i++) {
		free(p->urls[i]);
		if (p->fetched)
			http_response_free(&p->resp[i]);
	}
	free(p->urls_json);
	memset(p, 0, sizeof *p);
}

/* --- fetching ------------------------------------------------------------------- */

/* A file:// photo under DOWNLOAD_FILE_ROOT, read here and answered as an
 * HTTP server would (200 with the bytes, 404 missing, 403 outside the root
 * or not a regular file, 413 past DOWNLOAD_MAX_BYTES), so the rest of the
 * path cannot tell the difference. For local catalogues and the demo. */
static void dl_read_file_url(const struct dl_state *s, const char *url, struct http_response *r)
{
	memset(r, 0, sizeof *r);
	r->content_length = -1;
	r->retry_after_ms = -1;
	r->attempts = 1;
	char *path = curl_unescape(url + 7, 0), real[4096];
	size_t rootlen = strlen(s->file_root);
	struct stat st;
	FILE *f = NULL;
	if (!path || !realpath(path, real)) {
		r->status = path && errno == ENOENT ? 404 : 403;
	} else if (strncmp(real, s->file_root, rootlen) != 0 ||
		   (rootlen > 1 && real[rootlen] != '/') ||
		   stat(real, &st) != 0 || !S_ISREG(st.st_mode)) {
		r->status = 403;
	} else if (st.st_size > s->max_bytes) {
		r->status = 413;
	} else if (!(f = fopen(real, "rb"))) {
		r->status = 403;
	} else {
		char chunk[65536];
		size_t got;
		r->status = 200;
		buf_append(&r->body, "", 0);
		while ((got = fread(chunk, 1, sizeof chunk, f)) > 0)
			if (buf_append(&r->body, chunk, got) != 0 ||
			    r->body.len > (size_t)s->max_bytes) {
				r->status = 413;
				break;
			}
		if (ferror(f))
			r->status = 403;
		fclose(f);
		if (r->status != 200)
			buf_free(&r->body);
	}
	if (r->status != 200)
		snprintf(r->error, sizeof r->error, "HTTP %ld", r->status);
	curl_free(path);
}

/* dl_fetch: see download.h. */
void dl_fetch(struct dl_state *s, struct dl_product *ps, size_t n)
{
	size_t total = 0;
	for (size_t i = 0; i < n; i++)
		if (!ps[i].err_code[0])
			total += ps[i].nphotos;
	if (!total)
		return;
	const char *headers[] = { "Accept: image/webp,image/jpeg,image/png;q=0.9,*/*;q=0.5",
				  s->user_agent ? s->ua_header : NULL, NULL };
	struct http_request *reqs = xcalloc(total, sizeof *reqs);
	struct http_response *resps = xcalloc(total, sizeof *resps);
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (ps[i].err_code[0])
			continue;
		for (size_t j = 0; j < ps[i].nphotos; j++, k++) {
			if (strncmp(ps[i].urls[j], "file://", 7) == 0)
				continue; /* reqs[k].url stays NULL: read below */
			reqs[k].url = ps[i].urls[j];
			reqs[k].headers = headers;
			reqs[k].timeout_ms = s->timeout_s * 1000;
			reqs[k].max_attempts = (int)s->max_retries + 1;
			reqs[k].max_response = (size_t)s->max_bytes;
		}
	}
	double t0 = util_now_ms();
	size_t nlocal = 0;
	for (k = 0; k < total; k++)
		nlocal += reqs[k].url == NULL;
	if (nlocal < total) {
		/* the HTTP ones, packed, then their answers put back in place */
		struct http_request *hreq = xcalloc(total - nlocal, sizeof *hreq);
		struct http_response *hresp = xcalloc(total - nlocal, sizeof *hresp);
		size_t h = 0;
		for (k = 0; k < total; k++)
			if (reqs[k].url)
				hreq[h++] = reqs[k];
		http_perform_many(hreq, hresp, h, (int)s->concurrency);
		for (k = 0, h = 0; k < total; k++)
			if (reqs[k].url)
				resps[k] = hresp[h++];
		free(hreq);
		free(hresp);
	}
	k = 0;
	for (size_t i = 0; i < n; i++) {
		if (ps[i].err_code[0])
			continue;
		for (size_t j = 0; j < ps[i].nphotos; j++, k++)
			if (!reqs[k].url)
				dl_read_file_url(s, ps[i].urls[j], &resps[k]);
	}
	s->fetch_ms += util_now_ms() - t0;
	k = 0;
	for (size_t i = 0; i < n; i++) {
		if (ps[i].err_code[0])
			continue;
		ps[i].fetched = 1;
		for (size_t j = 0; j < ps[i].nphotos; j++, k++) {
			ps[i].resp[j] = resps[k];
			s->bytes += (double)resps[k].body.len;
		}
	}
	free(reqs);
	free(resps);
}

/* dl_store: see download.h. */
void dl_store(struct dl_state *s, struct dl_product *ps, size_t n)
{
	size_t total = 0;
	for (size_t k = 0; k < n; k++) {
		struct dl_product *p = &ps[k];
		if (p->err_code[0] || !p->fetched)
			continue;
		for (size_t i = 0; i < p->nphotos; i++) {
			struct http_response *r = &p->resp[i];
			char why[200], url[420];
			s->photos++;
			dl_url_shown(p->urls[i], url, sizeof url);
			if (r->status == 0) {
				s->photos_failed++;
				dl_product_error(p, status_exit_for_http(0, r->timed_out), 0,
						 r->timed_out ? "photo_timeout" : "photo_unreachable",
						 "photo %zu (%s): %s after %d attempts", i + 1, url,
						 r->error, r->attempts);
			} else if (r->status != 200) {
				/* a 4xx (404, 403, 410 …) stays: the URL is wrong or gone;
				 * 5xx, 408 and 429 may pass */
				int temporary = http_status_retryable(r->status) || r->status >= 500 ||
						r->status == 408;
				s->photos_failed++;
				dl_product_error(p, temporary ? EX_TEMPFAIL : EX_DATAERR, !temporary,
						 r->status == 404 ? "photo_not_found" : "photo_http_error",
						 "photo %zu (%s): HTTP %ld", i + 1, url, r->status);
			} else if (!(p->types[i] = image_sniff(r->body.data, r->body.len, r->content_type, why,
							       sizeof why))) {
				/* another format stays what it is; a bot wall, an empty
				 * or cut body may be gone next time */
				s->photos_failed++;
				dl_product_error(p, EX_DATAERR,
						 strncmp(why, IMAGE_UNSUPPORTED, strlen(IMAGE_UNSUPPORTED)) == 0,
						 "not_an_image", "photo %zu (%s): %s", i + 1, url, why);
			}
		}
		if (!p->err_code[0])
			total += p->nphotos;
	}
	if (!total)
		return;
	struct objstore_put_item *items = xcalloc(total, sizeof *items);
	char (*keys)[256] = xcalloc(total, sizeof *keys);
	size_t m = 0;
	for (size_t k = 0; k < n; k++) {
		struct dl_product *p = &ps[k];
		if (p->err_code[0] || !p->fetched)
			continue;
		for (size_t i = 0; i < p->nphotos; i++, m++) {
			snprintf(keys[m], sizeof keys[m], "originals/%s/%s/%zu.jpg", p->brand, p->external_id,
				 i + 1);
			items[m] = (struct objstore_put_item){ .key = keys[m], .data = p->resp[i].body.data,
							       .len = p->resp[i].body.len,
							       .content_type = p->types[i] };
		}
	}
	objstore_put_many(s->os, items, total, (int)s->concurrency);
	m = 0;
	for (size_t k = 0; k < n; k++) {
		struct dl_product *p = &ps[k];
		if (p->err_code[0] || !p->fetched)
			continue;
		size_t first = m;
		for (size_t i = 0; i < p->nphotos; i++, m++)
			if (items[m].status != OBJSTORE_OK)
				dl_product_error(p, items[m].err.retryable ? EX_TEMPFAIL : EX_UNAVAILABLE, 0,
						 "storage_error", "upload of %s: %s", keys[m],
						 items[m].err.message);
		if (p->err_code[0]) {
			/* nothing half-uploaded stays behind */
			for (size_t j = first; j < m; j++)
				if (items[j].status == OBJSTORE_OK)
					objstore_delete(s->os, keys[j], NULL);
		} else {
			p->uploaded = 1;
		}
		for (size_t i = 0; i < p->nphotos; i++)
			buf_free(&p->resp[i].body); /* in the store now, or not wanted */
	}
	free(items);
	free(keys);
}
