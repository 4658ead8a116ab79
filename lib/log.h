/* log.h — one JSON line per event on stderr.
 *
 * Every line carries ts (UTC, RFC 3339 with milliseconds), level, cmd and
 * request_id (null when none is known), then the event's own fields. The
 * request id is per-thread state set by the filter runner per record, so
 * code deep in lib/ (HTTP client, PostgreSQL) logs with the right id
 * without having it passed down, and a worker thread never reads an id the
 * main thread is rewriting: a thread that works for a record sets the id
 * itself (log_set_request_id) or logs null. Values known to be secrets
 * never reach a log line: callers pass URLs through conf_redact_url()
 * (lib/conf.h) first.
 *
 * Each line is one write(2). Lines up to PIPE_BUF (4096 bytes) from
 * several processes sharing one stderr pipe never interleave; a longer one
 * (an error line carrying a large record) may be split by the kernel and
 * interleave with other writers' lines. */
#ifndef UNDE_LOG_H
#define UNDE_LOG_H

#include <jansson.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_init(const char *cmd);
const char *log_cmd(void);
/* This thread's request id: a bounded (127 bytes), printable copy. */
void log_set_request_id(const char *request_id);
/* This thread's request id, or NULL. */
const char *log_request_id(void);
void log_set_min_level(enum log_level level);

/* Write one event: msg plus the members of fields (stolen; may be NULL). */
void log_event(enum log_level level, const char *msg, json_t *fields);

/* printf-style convenience for events without structured fields. */
void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* The error contract's line for one failed record:
 * {"level":"error","cmd":…,"record":<record>,"error":{"code":…,"message":…}}.
 * record is borrowed and may be NULL (malformed input has no record). */
void log_record_error(const json_t *record, const char *code, const char *message,
		      json_t *extra);

#endif
