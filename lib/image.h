/* image.h — is this buffer a whole photo?
 *
 * Brand CDNs answer 200 with a bot wall's HTML, an empty body, or a file cut
 * short by a dropped connection; and libvips, reading from memory, quietly
 * pads a truncated JPEG with grey. So the catalog commands check the bytes
 * themselves before trusting them: the format's magic number at the start
 * and its end: a JPEG's markers are walked from SOI to the EOI that closes
 * the image (an EXIF thumbnail's own EOI does not count; data after the
 * EOI, as phones append, is allowed), PNG's IEND chunk, WebP's RIFF
 * length. Only JPEG, PNG and WebP are photos here. */
#ifndef UNDE_IMAGE_H
#define UNDE_IMAGE_H

#include <stddef.h>

/* The MIME type of a whole JPEG, PNG or WebP image in data, or NULL with
 * why set ("truncated JPEG: …", "an HTML page instead of a photo …").
 * content_type (what the server claimed, may be NULL) only goes into why. */
const char *image_sniff(const void *data, size_t len, const char *content_type, char *why,
			size_t whylen);

/* How why begins when the data is none of the three formats (rather than
 * one cut short, empty, or an HTML page): trying again will not change it. */
#define IMAGE_UNSUPPORTED "not a JPEG, PNG or WebP image"

#endif
