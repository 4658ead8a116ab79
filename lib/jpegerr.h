/* jpegerr.h — libjpeg that returns its errors instead of exiting.
 *
 * libjpeg's default error manager prints and calls exit(); a command that
 * decodes or encodes photos for many products must fail one photo, not
 * the process. Every libjpeg user here (the collage, the recognition
 * crops) sets a jpegerr as its error manager and a setjmp on its back
 * before the first libjpeg call that can fail. */
#ifndef UNDE_JPEGERR_H
#define UNDE_JPEGERR_H

#include <setjmp.h>
#include <stdio.h>

#include <jpeglib.h>

struct jpegerr {
	struct jpeg_error_mgr pub;
	jmp_buf back;
	char msg[JMSG_LENGTH_MAX]; /* libjpeg's message, "" until a failure */
	int truncated;		   /* the failure is the data ending early */
};

/* Make e an error manager whose errors longjmp to e->back with e->msg set.
 * Warnings (corrupt data libjpeg decodes around) are ignored, as libvips
 * does, except the data ending early (a file, or a scan cut by a marker):
 * libjpeg would fill the rest of the image with grey, so those fail too,
 * with e->truncated set. Returns &e->pub for the struct's err field. */
struct jpeg_error_mgr *jpegerr_init(struct jpegerr *e);

/* Set an encoder, created with jpegerr_init's manager, to write a w x h
 * image of 3 components in colour space cs into memory (*mem, *len:
 * libjpeg's jpeg_mem_dest, the caller frees *mem), baseline, at quality q.
 * Call after the setjmp: libjpeg's failures here longjmp too. */
void jpegerr_encode_to_memory(struct jpeg_compress_struct *c, unsigned char **mem,
			      unsigned long *len, int w, int h, J_COLOR_SPACE cs, int q);

#endif
