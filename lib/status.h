/* status.h — the one table between sysexits codes and HTTP statuses.
 *
 * Two directions, one place:
 *  - a command's exit status (or the "status" of its {"error":…} line) →
 *    the HTTP status unde-httpd answers with;
 *  - an upstream's or a sibling's HTTP answer → the exit status of the
 *    record that called it (the error contract of lib/filter.h).
 * Callers may be stricter for their own case (a 404 from Apify means a
 * wrong actor id, EX_CONFIG), but start from here. */
#ifndef UNDE_STATUS_H
#define UNDE_STATUS_H

/* 0 → 200; 64, 65 (or none given) → 400; 69, 75 → 503; anything else
 * (70, 78, a crash) → 500. */
int status_http_for_exit(int exit_status);

/* The exit status for an HTTP answer:
 *   2xx → 0;
 *   no answer (http 0): timed out → 75 (EX_TEMPFAIL), else → 69;
 *   400, 404, 409, 413, 415, 422, other 4xx → 65 (the record is bad);
 *   401, 403 → 78 (credentials: a configuration error);
 *   408, 425, 429, 500, 502, 503, 504 → 75 (worth retrying later);
 *   501, 505 and other 5xx → 69. */
int status_exit_for_http(long http_status, int timed_out);

/* A short machine word for an HTTP failure: "upstream_timeout",
 * "rate_limited", "upstream_unavailable", "upstream_rejected" (4xx),
 * "upstream_auth" (401/403), "upstream_error" (5xx). */
const char *status_code_for_http(long http_status, int timed_out);

#endif
