/* image.c — whole-image checks; see image.h. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "image.h"

static int image_has(const unsigned char *d, size_t n, const char *needle, size_t from)
{
	size_t k = strlen(needle);
	for (size_t i = from; i + k <= n; i++)
		if (memcmp(d + i, needle, k) == 0)
			return 1;
	return 0;
}

/* JPEG: walk the marker segments from SOI (their lengths skip APPn blocks
 * such as an EXIF thumbnail, which has an EOI of its own), then the
 * entropy-coded data after each SOS, to the EOI that closes the image.
 * The offset just past it, or 0 when the data ends first. Bytes after
 * the EOI (phones append trailers) are no concern of the image. */
static size_t image_jpeg_end(const unsigned char *d, size_t n)
{
	size_t i = 2; /* past SOI */
	while (i + 1 < n) {
		if (d[i] != 0xFF)
			return 0; /* not a marker where one must be */
		unsigned char m = d[i + 1];
		if (m == 0xFF) { /* fill byte */
			i++;
			continue;
		}
		if (m == 0xD9)
			return i + 2;
		if (m == 0x01 || (m >= 0xD0 && m <= 0xD7)) { /* TEM, RSTn: no length */
			i += 2;
			continue;
		}
		if (i + 3 >= n)
			return 0;
		size_t seg = (size_t)d[i + 2] << 8 | d[i + 3];
		if (seg < 2 || i + 2 + seg > n)
			return 0;
		i += 2 + seg;
		if (m != 0xDA)
			continue;
		/* entropy-coded data: up to the next marker that is not a
		 * stuffed FF 00 or a restart marker */
		for (;;) {
			const unsigned char *ff = memchr(d + i, 0xFF, n - i);
			if (!ff)
				return 0;
			i = (size_t)(ff - d);
			if (i + 1 >= n)
				return 0;
			unsigned char x = d[i + 1];
			if (x == 0x00 || (x >= 0xD0 && x <= 0xD7) || x == 0xFF) {
				i += x == 0xFF ? 1 : 2;
				continue;
			}
			break;
		}
	}
	return 0;
}

const char *image_sniff(const void *data, size_t n, const char *content_type, char *why,
			size_t whylen)
{
	const unsigned char *d = data;
	if (!d || n == 0) {
		snprintf(why, whylen, "empty body");
		return NULL;
	}
	if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) {
		if (image_jpeg_end(d, n))
			return "image/jpeg";
		snprintf(why, whylen, "truncated JPEG: the data ends before the end-of-image marker"
			 " (%zu bytes)", n);
		return NULL;
	}
	if (n >= 8 && memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0) {
		if (n >= 20 && image_has(d, n, "IEND", n > 64 ? n - 64 : 8))
			return "image/png";
		snprintf(why, whylen, "truncated PNG: no IEND chunk (%zu bytes)", n);
		return NULL;
	}
	if (n >= 12 && memcmp(d, "RIFF", 4) == 0 && memcmp(d + 8, "WEBP", 4) == 0) {
		size_t riff = (size_t)d[4] | (size_t)d[5] << 8 | (size_t)d[6] << 16 | (size_t)d[7] << 24;
		if (riff >= 4 && riff + 8 <= n)
			return "image/webp";
		snprintf(why, whylen, "truncated WebP: %zu of %zu bytes", n, riff + 8);
		return NULL;
	}
	size_t head = n < 1024 ? n : 1024;
	if (image_has(d, head, "<html", 0) || image_has(d, head, "<HTML", 0) ||
	    image_has(d, head, "<!DOCTYPE", 0) || image_has(d, head, "<!doctype", 0)) {
		snprintf(why, whylen, "an HTML page instead of a photo (blocked?)");
		return NULL;
	}
	snprintf(why, whylen, IMAGE_UNSUPPORTED " (Content-Type %s)",
		 content_type && *content_type ? content_type : "none");
	return NULL;
}
