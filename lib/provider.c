/* provider.c — provider calls and fall-through chains; see provider.h. */
#include "config.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "conf.h"
#include "http.h"
#include "log.h"
#include "provider.h"
#include "status.h"
#include "util.h"

const char *provider_skip_name(enum provider_skip why)
{
	switch (why) {
	case PROVIDER_ANSWERED: return "answered";
	case PROVIDER_NO_KEY: return "no_key";
	case PROVIDER_NO_TIME: return "no_time";
	case PROVIDER_TIMEOUT: return "timeout";
	case PROVIDER_RATE_LIMITED: return "429";
	case PROVIDER_SERVER_ERROR: return "5xx";
	case PROVIDER_CLIENT_ERROR: return "4xx";
	case PROVIDER_UNREACHABLE: return "unreachable";
	case PROVIDER_MALFORMED: return "malformed";
	}
	return "unknown";
}

/* NAME_SUFFIX for provider name ("gemini", "_API_KEY" → GEMINI_API_KEY). */
static void provider_var(const struct provider *p, const char *suffix, char *out, size_t len)
{
	size_t k = 0;
	for (const char *s = p->name; *s && k + 1 < len; s++)
		out[k++] = *s == '-' ? '_' : (char)toupper((unsigned char)*s);
	snprintf(out + k, len - k, "%s", suffix);
}

/* The variable the key is read from: key_var, else <NAME>_API_KEY. */
static void provider_key_var(const struct provider *p, char *out, size_t len)
{
	if (p->key_var)
		snprintf(out, len, "%s", p->key_var);
	else
		provider_var(p, "_API_KEY", out, len);
}

static const char *provider_key(const struct provider *p)
{
	char var[96];
	provider_key_var(p, var, sizeof var);
	const char *k = conf_str(var, NULL);
	return k && *k ? k : NULL;
}

int provider_configured(const struct provider *p)
{
	return p->auth == PROVIDER_AUTH_NONE || provider_key(p) != NULL;
}

/* The common error-body shapes: {"error":{"message"}}, {"error":"…"},
 * {"message":"…"}, {"detail":"…"}. */
static void provider_default_error(const json_t *body, char *msg, size_t len)
{
	const json_t *e = json_object_get(body, "error");
	const char *m = json_string_value(json_object_get(e, "message"));
	if (!m)
		m = json_string_value(e);
	if (!m)
		m = json_string_value(json_object_get(body, "message"));
	if (!m)
		m = json_string_value(json_object_get(body, "detail"));
	snprintf(msg, len, "%s", m ? m : "");
}

struct provider_outcome {
	enum provider_skip why;
	long http_status;
	char message[384];
	json_t *answer;
};

__attribute__((format(printf, 3, 4))) static void outcome(struct provider_outcome *o,
							  enum provider_skip why, const char *fmt,
							  ...)
{
	o->why = why;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(o->message, sizeof o->message, fmt, ap);
	va_end(ap);
}

int provider_http_prepare(const struct provider *p, void *ud, const json_t *input,
			  provider_build_fn build, struct provider_http *h, enum provider_skip *why,
			  char *msg, size_t msglen)
{
	memset(h, 0, sizeof *h);
	const char *key = provider_key(p);
	char var[96];
	if (p->auth != PROVIDER_AUTH_NONE && !key) {
		provider_key_var(p, var, sizeof var);
		*why = PROVIDER_NO_KEY;
		snprintf(msg, msglen, "%s is not set", var);
		return -1;
	}
	provider_var(p, "_API_URL", var, sizeof var);
	const char *base = conf_str(var, p->default_url);
	if (!base || !*base) {
		*why = PROVIDER_NO_KEY;
		snprintf(msg, msglen, "%s is not set", var);
		return -1;
	}
	struct provider_request rq = { 0 };
	char bwhy[256] = "";
	if ((build ? build : p->build)(ud, input, &rq, bwhy, sizeof bwhy) != 0) {
		json_decref(rq.body);
		*why = PROVIDER_CLIENT_ERROR;
		snprintf(msg, msglen, "cannot build the request: %s", bwhy);
		return -1;
	}
	h->method = rq.method;
	size_t bl = strlen(base);
	while (bl && base[bl - 1] == '/')
		bl--;
	buf_printf(&h->url, "%.*s%s%s", (int)bl, base, rq.path[0] == '/' || !rq.path[0] ? "" : "/",
		   rq.path);
	if (p->auth == PROVIDER_AUTH_QUERY)
		buf_printf(&h->url, "%s%s=%s", strchr(h->url.data, '?') ? "&" : "?",
			   p->auth_name ? p->auth_name : "key", key);

	size_t nh = 0;
	if (p->auth == PROVIDER_AUTH_BEARER)
		buf_printf(&h->auth, "Authorization: Bearer %s", key);
	else if (p->auth == PROVIDER_AUTH_TOKEN)
		buf_printf(&h->auth, "Authorization: Token %s", key);
	else if (p->auth == PROVIDER_AUTH_HEADER)
		buf_printf(&h->auth, "%s: %s", p->auth_name ? p->auth_name : "x-api-key", key);
	if (h->auth.data)
		h->headers[nh++] = h->auth.data;
	for (const char *const *hd = p->headers;
	     hd && *hd && nh + 1 < sizeof h->headers / sizeof *h->headers; hd++)
		h->headers[nh++] = *hd;
	h->headers[nh] = NULL;
	h->body = rq.body ? json_dumps(rq.body, JSON_COMPACT) : NULL;
	json_decref(rq.body);
	return 0;
}

void provider_http_free(struct provider_http *h)
{
	free(h->body);
	buf_free(&h->auth);
	buf_free(&h->url);
	h->body = NULL;
}

enum provider_skip provider_http_failure(const struct provider *p, const struct http_response *r,
					 char *msg, size_t msglen)
{
	if (r->status == 0) {
		snprintf(msg, msglen, "%s", r->error);
		return r->timed_out ? PROVIDER_TIMEOUT : PROVIDER_UNREACHABLE;
	}
	json_error_t je;
	json_t *j = r->body.data && r->body.len ? json_loadb(r->body.data, r->body.len, 0, &je) : NULL;
	char em[256] = "";
	if (j)
		(p->error_message ? p->error_message : provider_default_error)(j, em, sizeof em);
	json_decref(j);
	snprintf(msg, msglen, "HTTP %ld%s%s%s", r->status, em[0] ? ": " : "", em,
		 r->deadline_cut ? " (no time left to retry)" : "");
	return r->status == 429			       ? PROVIDER_RATE_LIMITED
	       : r->status == 408 || r->status == 504 ? PROVIDER_TIMEOUT
	       : r->status >= 500		       ? PROVIDER_SERVER_ERROR
							       : PROVIDER_CLIENT_ERROR;
}

/* One provider, one request (the HTTP client retries inside dl). */
static void provider_call(const struct provider *p, void *ud, const json_t *input,
			  struct deadline dl, struct provider_outcome *o)
{
	struct provider_http h;
	if (provider_http_prepare(p, ud, input, NULL, &h, &o->why, o->message, sizeof o->message) != 0)
		return;
	struct http_request hr = {
		.method = h.method,
		.url = h.url.data,
		.headers = h.headers,
		.body = h.body,
		.body_len = h.body ? strlen(h.body) : 0,
		.timeout_ms = p->timeout_ms,
		.max_attempts = p->max_attempts ? p->max_attempts : 2,
		.deadline = dl,
	};
	struct http_response r;
	http_perform(&hr, &r);
	provider_http_free(&h);
	o->http_status = r.status;

	if (r.status < 200 || r.status >= 300) {
		o->why = provider_http_failure(p, &r, o->message, sizeof o->message);
		http_response_free(&r);
		return;
	}
	json_error_t je;
	json_t *j = r.body.data && r.body.len ? json_loadb(r.body.data, r.body.len, 0, &je) : NULL;
	if (!j) {
		outcome(o, PROVIDER_MALFORMED, "the answer is not JSON");
	} else {
		char why[256] = "";
		o->answer = p->parse(ud, j, why, sizeof why);
		if (!json_is_object(o->answer)) {
			json_decref(o->answer);
			o->answer = NULL;
			outcome(o, PROVIDER_MALFORMED, "the answer has the wrong shape: %s",
				why[0] ? why : "no answer in it");
		} else {
			o->why = PROVIDER_ANSWERED;
		}
	}
	json_decref(j);
	http_response_free(&r);
}

static void chain_skip(struct chain_result *res, const char *name, const struct provider_outcome *o)
{
	json_t *s = json_pack("{s:s, s:s, s:s}", "provider", name, "reason",
			      provider_skip_name(o->why), "message", o->message);
	if (o->http_status)
		json_object_set_new(s, "status", json_integer(o->http_status));
	json_array_append_new(res->skipped, s);
	log_event(LOG_WARN, "provider skipped",
		  json_pack("{s:s, s:s, s:s}", "provider", name, "reason", provider_skip_name(o->why),
			    "error", o->message));
}

int chain_run(const struct chain *c, void *ud, const json_t *input, struct deadline dl,
	      struct chain_result *res)
{
	memset(res, 0, sizeof *res);
	res->skipped = json_array();
	struct deadline upstream_dl = deadline_less(dl, c->reserve_ms);
	long min_call = c->min_call_ms > 0 ? c->min_call_ms : 20;
	enum provider_skip last = PROVIDER_ANSWERED;
	for (const struct provider *const *pp = c->providers; pp && *pp; pp++) {
		const struct provider *p = *pp;
		struct provider_outcome o = { 0 };
		if (p->auth != PROVIDER_AUTH_NONE && !provider_key(p)) {
			outcome(&o, PROVIDER_NO_KEY, "no key set");
		} else if (ms_left(upstream_dl) < min_call) {
			outcome(&o, PROVIDER_NO_TIME, "%ld ms left of the deadline",
				ms_left(upstream_dl));
		} else {
			provider_call(p, ud, input, upstream_dl, &o);
		}
		if (o.why == PROVIDER_ANSWERED) {
			res->answer = o.answer;
			snprintf(res->provider, sizeof res->provider, "%s", p->name);
			return 0;
		}
		chain_skip(res, p->name, &o);
		if (o.why != PROVIDER_NO_KEY)
			last = o.why;
	}
	if (c->local) {
		char why[256] = "";
		json_t *a = c->local(ud, input, why, sizeof why);
		if (json_is_object(a)) {
			res->answer = a;
			snprintf(res->provider, sizeof res->provider, "local");
			return 0;
		}
		json_decref(a);
		snprintf(res->code, sizeof res->code, "local_failed");
		snprintf(res->message, sizeof res->message, "the local stand-in failed: %s",
			 why[0] ? why : "no answer");
		return res->status = EX_DATAERR;
	}
	/* Nobody answered: how the last tried one failed says what to do. */
	switch (last) {
	case PROVIDER_TIMEOUT:
	case PROVIDER_NO_TIME:
	case PROVIDER_RATE_LIMITED:
	case PROVIDER_SERVER_ERROR: res->status = EX_TEMPFAIL; break;
	case PROVIDER_ANSWERED:
	case PROVIDER_NO_KEY: res->status = EX_CONFIG; break;
	case PROVIDER_MALFORMED: res->status = EX_PROTOCOL; break;
	default: res->status = EX_UNAVAILABLE;
	}
	snprintf(res->code, sizeof res->code, "%s",
		 last == PROVIDER_ANSWERED ? "no_provider" : "providers_failed");
	snprintf(res->message, sizeof res->message, "no provider answered (%zu tried or skipped)",
		 json_array_size(res->skipped));
	return res->status;
}

void chain_annotate(const struct chain_result *res, json_t *rec)
{
	if (res->provider[0])
		json_object_set_new(rec, "provider", json_string(res->provider));
	if (json_array_size(res->skipped))
		json_object_set(rec, "providers_skipped", res->skipped);
}

void chain_result_free(struct chain_result *res)
{
	json_decref(res->answer);
	json_decref(res->skipped);
	res->answer = res->skipped = NULL;
}

const char *provider_openai_text(const json_t *body)
{
	return json_string_value(json_object_get(
		json_object_get(json_array_get(json_object_get(body, "choices"), 0), "message"), "content"));
}

char *provider_gemini_text(const json_t *body)
{
	const json_t *parts = json_object_get(
		json_object_get(json_array_get(json_object_get(body, "candidates"), 0), "content"), "parts");
	struct buf t = { 0 };
	size_t i;
	const json_t *p;
	json_array_foreach(parts, i, p) if (json_is_string(json_object_get(p, "text")))
		buf_printf(&t, "%s", json_string_value(json_object_get(p, "text")));
	return t.data;
}
