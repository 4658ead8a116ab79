/* sse.h — a server-sent-events splitter for streamed HTTP bodies.
 *
 * Gemini, DeepSeek, Qwen and Claude stream answers as text/event-stream.
 * Feed the body's chunks as they arrive (http_request.on_chunk = sse_chunk,
 * chunk_ud = the splitter) and on_event is called once per complete event,
 * however the chunks cut it: lines end in LF, CRLF or CR; "data:" lines of
 * one event are joined with "\n"; "event:" names it (default "message");
 * comment lines (":…") and unknown fields are ignored; an event with no
 * data is not dispatched (the WHATWG rules). An event longer than max_event
 * bytes is an error, not a crash. */
#ifndef UNDE_SSE_H
#define UNDE_SSE_H

#include <stddef.h>

#include "util.h"

/* One event: its name and its data (NUL-terminated, len bytes). Return 0
 * to go on, non-zero to stop (sse_feed returns it). */
typedef int (*sse_event_fn)(void *ud, const char *event, const char *data, size_t len);

struct sse {
	sse_event_fn on_event;
	void *ud;
	size_t max_event; /* 0: 1 MiB */
	struct buf line, data;
	char event[64];
	char last_id[128];
	int after_cr;     /* the last byte was CR: a following LF ends nothing */
	int failed;       /* an event was too large, or on_event said stop */
	unsigned long events;
};

void sse_init(struct sse *s, sse_event_fn on_event, void *ud);
/* Returns 0, on_event's non-zero value, or -1 when an event is too large. */
int sse_feed(struct sse *s, const char *p, size_t n);
/* An http_chunk_fn: ud is a struct sse. */
int sse_chunk(void *ud, const char *p, size_t n);
void sse_free(struct sse *s);

#endif
