/* svc.h — calling a sibling UNDE service (one behind unde-httpd).
 *
 *   struct svc_answer a;
 *   if (svc_call("mood", "/mood", rec, filter_deadline(run), &a) != 0)
 *           return svc_fail(run, &a);        // the sibling's error, lifted
 *   json_object_set(rec, "mood", json_object_get(a.answer, "mood"));
 *   svc_answer_free(&a);
 *
 * The record is POSTed as JSON to $<SERVICE>_URL + path (service "mood" →
 * MOOD_URL; '-' becomes '_'), with the current request_id in the body (when
 * the record has none) and in X-Request-Id. The answer is one JSON line, or
 * several: lines before the last with a "stage" key are progress (kept in
 * stages), the last is the answer. Failures map to the caller's error
 * contract through lib/status.h: 400→65, 429→75, 503→75 (or the status the
 * sibling's error line gives, 69 or 75), 504 and timeouts→75, refused→69;
 * a sibling's {"error":{"code","message","status"}} becomes the caller's
 * code and message. Connections are kept alive (lib/http.h). */
#ifndef UNDE_SVC_H
#define UNDE_SVC_H

#include <jansson.h>

#include "deadline.h"

struct filter_run;

struct svc_answer {
	int status;       /* 0, or the EX_* status for the caller's record */
	long http_status; /* 0 when no HTTP answer was had */
	json_t *answer;   /* the last line (owned), NULL on failure */
	json_t *stages;   /* the progress lines before it (owned array) */
	char code[64];    /* on failure: the sibling's code, or ours */
	char message[512];
	double elapsed_ms;
	int new_connections; /* 0 when a kept-alive connection served it */
};

/* Returns a.status. a is always filled; free it with svc_answer_free. */
int svc_call(const char *service, const char *path, const json_t *record, struct deadline dl,
	     struct svc_answer *a);

/* filter_fail() with the answer's status, code and message. */
int svc_fail(struct filter_run *run, const struct svc_answer *a);

void svc_answer_free(struct svc_answer *a);

#endif
