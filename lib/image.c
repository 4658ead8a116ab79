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

const char *image_sniff(const void *data, size_t n, const char *content_type, char *why,
			size_t whylen)
{
	const unsigned char *d = data;
	if (!d || n == 0) {
		snprintf(why, whylen, "empty body");
		return NULL;
	}
	if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) {
		/* an EOI marker (FF D9) closes the file; only padding may follow,
		 * so look for it in the last 4 KiB */
		size_t stop = n > 4096 ? n - 4096 : 3;
		for (size_t i = n - 1; i >= stop; i--)
			if (d[i - 1] == 0xFF && d[i] == 0xD9)
				return "image/jpeg";
		snprintf(why, whylen, "truncated JPEG: no end-of-image marker (%zu bytes)", n);
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
	snprintf(why, whylen, "not a JPEG, PNG or WebP image (Content-Type %s)",
		 content_type && *content_type ? content_type : "none");
	return NULL;
}
