/* image.h — is this buffer a whole photo?
 *
 * Brand CDNs answer 200 with a bot wall's HTML, an empty body, or a file cut
 * short by a dropped connection; and libvips, reading from memory, quietly
 * pads a truncated JPEG with grey. So the catalog commands check the bytes
 * themselves before trusting them: the format's magic number at the start
 * and its end marker at the end (JPEG's EOI, PNG's IEND chunk, WebP's RIFF
 * length). Only JPEG, PNG and WebP are photos here. */
#ifndef UNDE_IMAGE_H
#define UNDE_IMAGE_H

#include <stddef.h>

/* The MIME type of a whole JPEG, PNG or WebP image in data, or NULL with
 * why set ("truncated JPEG: …", "an HTML page instead of a photo …").
 * content_type (what the server claimed, may be NULL) only goes into why. */
const char *image_sniff(const void *data, size_t len, const char *content_type, char *why,
			size_t whylen);

#endif
