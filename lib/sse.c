/* sse.c — text/event-stream parsing; see sse.h. */
#include "config.h"

#include <string.h>

#include "sse.h"

void sse_init(struct sse *s, sse_event_fn on_event, void *ud)
{
	memset(s, 0, sizeof *s);
	s->on_event = on_event;
	s->ud = ud;
}

void sse_free(struct sse *s)
{
	buf_free(&s->line);
	buf_free(&s->data);
}

/* A blank line: hand over the event gathered so far. */
static int sse_dispatch(struct sse *s)
{
	int rc = 0;
	if (s->data.len) {
		/* the data ends in the "\n" the last data line added */
		s->data.data[--s->data.len] = '\0';
		s->events++;
		rc = s->on_event(s->ud, s->event[0] ? s->event : "message", s->data.data, s->data.len);
	}
	buf_reset(&s->data);
	s->event[0] = '\0';
	return rc;
}

/* One complete line (without its end). */
static int sse_line(struct sse *s, const char *l, size_t n)
{
	if (n == 0)
		return sse_dispatch(s);
	if (l[0] == ':')
		return 0;
	const char *colon = memchr(l, ':', n);
	size_t fn = colon ? (size_t)(colon - l) : n;
	const char *v = colon ? colon + 1 : l + n;
	size_t vn = colon ? n - fn - 1 : 0;
	if (vn && *v == ' ')
		v++, vn--;
	if (fn == 4 && memcmp(l, "data", 4) == 0) {
		if (buf_append(&s->data, v, vn) != 0 || buf_append(&s->data, "\n", 1) != 0)
			return -1;
	} else if (fn == 5 && memcmp(l, "event", 5) == 0) {
		size_t k = vn < sizeof s->event - 1 ? vn : sizeof s->event - 1;
		memcpy(s->event, v, k);
		s->event[k] = '\0';
	} else if (fn == 2 && memcmp(l, "id", 2) == 0) {
		size_t k = vn < sizeof s->last_id - 1 ? vn : sizeof s->last_id - 1;
		memcpy(s->last_id, v, k);
		s->last_id[k] = '\0';
	}
	return 0; /* "retry" and unknown fields: nothing to do for a client of ours */
}

int sse_feed(struct sse *s, const char *p, size_t n)
{
	if (s->failed)
		return -1;
	size_t max = s->max_event ? s->max_event : (size_t)1 << 20;
	s->line.limit = max;
	s->data.limit = max;
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (c == '\n' && s->after_cr) {
			s->after_cr = 0;
			continue;
		}
		s->after_cr = c == '\r';
		if (c == '\r' || c == '\n') {
			int rc = sse_line(s, s->line.data ? s->line.data : "", s->line.len);
			buf_reset(&s->line);
			if (rc) {
				s->failed = 1;
				return rc;
			}
			continue;
		}
		/* copy the run of ordinary bytes at once */
		size_t j = i;
		while (j < n && p[j] != '\r' && p[j] != '\n')
			j++;
		if (buf_append(&s->line, p + i, j - i) != 0) {
			s->failed = 1;
			return -1;
		}
		i = j - 1;
	}
	return 0;
}

int sse_chunk(void *ud, const char *p, size_t n)
{
	return sse_feed(ud, p, n);
}
