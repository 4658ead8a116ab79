/* svc.c — sibling service calls; see svc.h. */
#include "config.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "conf.h"
#include "filter.h"
#include "http.h"
#include "log.h"
#include "status.h"
#include "svc.h"

__attribute__((format(printf, 4, 5))) static int svc_set(struct svc_answer *a, int status,
							  const char *code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(a->message, sizeof a->message, fmt, ap);
	va_end(ap);
	snprintf(a->code, sizeof a->code, "%s", code);
	a->status = status;
	return status;
}

/* A sibling's {"error":{…}} line, lifted: its code and message, and its
 * status when it is one a record can carry. */
static void svc_lift_error(struct svc_answer *a, const json_t *err, int fallback)
{
	const char *code = json_string_value(json_object_get(err, "code"));
	const char *msg = json_string_value(json_object_get(err, "message"));
	json_int_t st = json_integer_value(json_object_get(err, "status"));
	int status = fallback;
	if (st == EX_DATAERR || st == EX_UNAVAILABLE || st == EX_TEMPFAIL || st == EX_CONFIG ||
	    st == EX_SOFTWARE)
		status = (int)st;
	svc_set(a, status, code ? code : "sibling_failed", "%s", msg ? msg : "the sibling failed");
}

/* Split the body into lines; the last non-blank is the answer. */
static int svc_parse_lines(struct svc_answer *a, const char *body, const char *service)
{
	json_t *last = NULL;
	const char *p = body;
	size_t lineno = 0;
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		lineno++;
		while (n && (p[n - 1] == '\r' || isspace((unsigned char)p[n - 1])))
			n--;
		if (n) {
			json_error_t je;
			json_t *j = json_loadb(p, n, 0, &je);
			if (!json_is_object(j)) {
				json_decref(j);
				json_decref(last);
				return svc_set(a, EX_PROTOCOL, "sibling_malformed",
					       "%s answered line %zu that is not a JSON object", service,
					       lineno);
			}
			if (last)
				json_array_append_new(a->stages, last);
			last = j;
		}
		p += n;
		while (*p == '\r' || *p == '\n' || isspace((unsigned char)*p))
			p++;
	}
	if (!last)
		return svc_set(a, EX_PROTOCOL, "sibling_malformed", "%s answered nothing", service);
	a->answer = last;
	return 0;
}

int svc_call(const char *service, const char *path, const json_t *record, struct deadline dl,
	     struct svc_answer *a)
{
	memset(a, 0, sizeof *a);
	a->stages = json_array();
	char var[96];
	size_t k = 0;
	for (const char *s = service; *s && k + 5 < sizeof var; s++)
		var[k++] = *s == '-' ? '_' : (char)toupper((unsigned char)*s);
	memcpy(var + k, "_URL", 5);
	const char *base = conf_str(var, NULL);
	if (!base || !*base)
		return svc_set(a, EX_CONFIG, "sibling_not_configured", "%s is not set", var);
	size_t bl = strlen(base);
	while (bl && base[bl - 1] == '/')
		bl--;
	char *url = xmalloc(bl + strlen(path) + 2);
	snprintf(url, bl + strlen(path) + 2, "%.*s%s%s", (int)bl, base, *path == '/' ? "" : "/", path);

	json_t *body = json_deep_copy(record);
	const char *rid = log_request_id();
	if (rid && !json_object_get(body, "request_id"))
		json_object_set_new(body, "request_id", json_string(rid));
	char *text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	static const char *const hdrs[] = { "Accept: application/x-ndjson, application/json",
					    NULL };
	struct http_request rq = {
		.method = "POST",
		.url = url,
		.headers = hdrs,
		.body = text,
		.body_len = strlen(text),
		.deadline = dl,
		.max_attempts = (int)conf_long("SVC_MAX_ATTEMPTS", 1, 1, 10),
	};
	struct http_response r;
	http_perform(&rq, &r);
	free(text);
	a->http_status = r.status;
	a->elapsed_ms = r.elapsed_ms;
	a->new_connections = r.new_connections;
	char red[512];
	conf_redact_url(url, red, sizeof red);
	free(url);

	if (r.status == 0) {
		svc_set(a, status_exit_for_http(0, r.timed_out), r.timed_out ? "sibling_timeout" : "sibling_unavailable",
			"%s (%s): %s", service, red, r.error);
	} else if (svc_parse_lines(a, r.body.data ? r.body.data : "", service) != 0) {
		/* a non-JSON answer: a 5xx page from a proxy, say */
		if (r.status >= 400)
			svc_set(a, status_exit_for_http(r.status, 0), status_code_for_http(r.status, 0),
				"%s answered HTTP %ld", service, r.status);
	} else {
		json_t *err = json_object_get(a->answer, "error");
		int mapped = status_exit_for_http(r.status, 0);
		if (json_is_object(err)) {
			svc_lift_error(a, err, mapped ? mapped : EX_SOFTWARE);
		} else if (mapped) {
			svc_set(a, mapped, status_code_for_http(r.status, 0), "%s answered HTTP %ld",
				service, r.status);
		}
		if (a->status) {
			json_decref(a->answer);
			a->answer = NULL;
		}
	}
	if (a->status)
		log_event(LOG_WARN, "sibling call failed",
			  json_pack("{s:s, s:s, s:I, s:s, s:i}", "service", service, "path", path,
				    "http_status", (json_int_t)r.status, "code", a->code, "exit",
				    a->status));
	http_response_free(&r);
	return a->status;
}

int svc_fail(struct filter_run *run, const struct svc_answer *a)
{
	return filter_fail(run, a->status ? a->status : EX_SOFTWARE, a->code[0] ? a->code : "sibling_failed",
			   "%s", a->message);
}

void svc_answer_free(struct svc_answer *a)
{
	json_decref(a->answer);
	json_decref(a->stages);
	a->answer = a->stages = NULL;
}
