/* log.h — one JSON line per event on stderr.
 *
 * Every line carries ts (UTC, RFC 3339 with milliseconds), level, cmd and
 * request_id (null when none is known), then the event's own fields. The
 * request id is process-wide state set by the filter runner per record, so
 * code deep in lib/ (HTTP client, PostgreSQL) logs with the right id
 * without having it passed down. Values known to be secrets never reach a
 * log line: callers pass URLs through config_redact_url() first. */
#ifndef UNDE_LOG_H
#define UNDE_LOG_H

#include <jansson.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_init(const char *cmd);
const char *log_cmd(void);
void log_set_request_id(const char *request_id);
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
