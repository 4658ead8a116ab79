/* jsonl.c — bounded JSON lines reader and flushing writer; see jsonl.h. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "jsonl.h"

struct jsonl_reader {
	FILE *in;
	size_t max_line;
	char *buf;
	size_t len, cap;
	unsigned long lineno;
};

jsonl_reader *jsonl_reader_new(FILE *in, size_t max_line)
{
	jsonl_reader *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->in = in;
	r->max_line = max_line ? max_line : JSONL_DEFAULT_MAX_LINE;
	r->cap = 4096;
	r->buf = malloc(r->cap);
	if (!r->buf) {
		free(r);
		return NULL;
	}
	return r;
}

void jsonl_reader_free(jsonl_reader *r)
{
	if (!r)
		return;
	free(r->buf);
	free(r);
}

unsigned long jsonl_line_number(const jsonl_reader *r) { return r->lineno; }

const char *jsonl_last_line(const jsonl_reader *r, size_t *len)
{
	*len = r->len;
	return r->buf;
}

/* Read one physical line into r->buf (without the newline). Returns 1 for a
 * line, 0 at EOF, -1 on I/O or allocation error, 2 when the line was longer
 * than max_line (the rest of it has been consumed). */
static int jsonl_read_line(jsonl_reader *r)
{
	int c, too_long = 0, any = 0;
	r->len = 0;
	while ((c = getc_unlocked(r->in)) != EOF) {
		any = 1;
		if (c == '\n')
			break;
		if (too_long)
			continue;
		if (r->len >= r->max_line) {
			too_long = 1;
			continue;
		}
		if (r->len + 1 >= r->cap) {
			size_t ncap = r->cap * 2;
			if (ncap > r->max_line + 1)
				ncap = r->max_line + 1;
			char *nb = realloc(r->buf, ncap);
			if (!nb)
				return -1;
			r->buf = nb;
			r->cap = ncap;
		}
		r->buf[r->len++] = (char)c;
	}
	if (ferror(r->in))
		return -1;
	if (!any)
		return 0;
	r->lineno++;
	if (too_long)
		return 2;
	if (r->len && r->buf[r->len - 1] == '\r')
		r->len--;
	r->buf[r->len] = '\0';
	return 1;
}

static int jsonl_blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t')
			return 0;
	return 1;
}

enum jsonl_status jsonl_read(jsonl_reader *r, json_t **out, char *err, size_t errlen)
{
	*out = NULL;
	for (;;) {
		int rc = jsonl_read_line(r);
		if (rc == 0)
			return JSONL_EOF;
		if (rc < 0) {
			snprintf(err, errlen, "line %lu: read error: %s", r->lineno + 1,
				 strerror(errno ? errno : EIO));
			return JSONL_IO_ERROR;
		}
		if (rc == 2) {
			r->len = 0;
			r->buf[0] = '\0';
			snprintf(err, errlen, "line %lu: longer than the limit of %zu bytes",
				 r->lineno, r->max_line);
			return JSONL_MALFORMED;
		}
		if (jsonl_blank(r->buf, r->len))
			continue;
		if (memchr(r->buf, '\0', r->len)) {
			snprintf(err, errlen, "line %lu: contains a NUL byte", r->lineno);
			return JSONL_MALFORMED;
		}
		json_error_t je;
		json_t *v = json_loadb(r->buf, r->len, JSON_REJECT_DUPLICATES, &je);
		if (!v) {
			/* jansson quotes the offending bytes ("near '…'"): drop them, a
			 * malformed line may carry a secret or a user's words */
			char *near = strstr(je.text, " near '");
			if (near)
				*near = '\0';
			snprintf(err, errlen, "line %lu: not valid JSON: %s (column %d)",
				 r->lineno, je.text, je.column);
			return JSONL_MALFORMED;
		}
		if (!json_is_object(v)) {
			json_decref(v);
			snprintf(err, errlen, "line %lu: not a JSON object", r->lineno);
			return JSONL_MALFORMED;
		}
		*out = v;
		return JSONL_OK;
	}
}

int jsonl_write(FILE *out, const json_t *obj)
{
	if (json_dumpf(obj, out, JSON_COMPACT) != 0)
		return -1;
	if (putc('\n', out) == EOF)
		return -1;
	return fflush(out) == 0 ? 0 : -1;
}
