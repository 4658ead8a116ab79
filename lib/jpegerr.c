/* libjpeg's error manager for commands that must outlive a bad photo
 * (jpegerr.h). */
#include "config.h"

#include <jerror.h>

#include "jpegerr.h"

/* error_exit: the message kept, back to the setjmp. */
static void jpegerr_exit(j_common_ptr c)
{
	struct jpegerr *e = (struct jpegerr *)c->err;
	e->pub.format_message(c, e->msg);
	longjmp(e->back, 1);
}

/* emit_message: warnings pass, except "Premature end of JPEG file" and
 * "premature end of data segment" (see jpegerr_init). */
static void jpegerr_message(j_common_ptr c, int level)
{
	if (level < 0 && (c->err->msg_code == JWRN_JPEG_EOF || c->err->msg_code == JWRN_HIT_MARKER)) {
		((struct jpegerr *)c->err)->truncated = 1;
		jpegerr_exit(c);
	}
}

struct jpeg_error_mgr *jpegerr_init(struct jpegerr *e)
{
	jpeg_std_error(&e->pub);
	e->pub.error_exit = jpegerr_exit;
	e->pub.emit_message = jpegerr_message;
	e->msg[0] = '\0';
	e->truncated = 0;
	return &e->pub;
}

void jpegerr_encode_to_memory(struct jpeg_compress_struct *c, unsigned char **mem,
			      unsigned long *len, int w, int h, J_COLOR_SPACE cs, int q)
{
	jpeg_mem_dest(c, mem, len);
	c->image_width = (JDIMENSION)w;
	c->image_height = (JDIMENSION)h;
	c->input_components = 3;
	c->in_color_space = cs;
	jpeg_set_defaults(c);
	jpeg_set_quality(c, q, TRUE);
}
