/* ximilar — the Ximilar visual-search collection, as unde-ximilar-sync
 * uses it (../shared/upstreams.md §2b):
 *
 *   POST {XIMILAR_API_URL}/{XIMILAR_SEARCH_SERVICE}/delete|insert
 *   Authorization: Token {XIMILAR_API_TOKEN}
 *   collection-id: {XIMILAR_COLLECTION_ID}
 *   {"records": [{"_id": "zara-ZAR1-1", "_url": "https://…/originals/zara/ZAR1/1.jpg",
 *                 "sku_id": "ZAR1", "brand": "zara", "name": …, "category": …,
 *                 "price": "100.00", "store": …, "floor": …}]}
 *
 * At most 10 records per request. A request has succeeded when the HTTP
 * status is 2xx, status.code (when present) is 200, and every
 * records[i]._status.code (when present) is 2xx — except that deleting a
 * record the collection no longer has (404) is fine. 429 and 5xx are
 * retried by lib/http (Retry-After honoured). */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "conf.h"
#include "http.h"
#include "xsync.h"

#define XIMILAR_BATCH 10

void ximilar_init(struct ximilar *x, const char *token, const char *collection)
{
	const char *base = conf_str("XIMILAR_API_URL", "https://api.ximilar.com");
	const char *service = conf_str("XIMILAR_SEARCH_SERVICE", "similarity/products/v2");
	size_t bl = strlen(base);
	while (bl && base[bl - 1] == '/')
		bl--;
	while (*service == '/')
		service++;
	if (strpbrk(token, "\r\n") || strpbrk(collection, "\r\n") || strlen(token) > 250 ||
	    strlen(collection) > 150)
		conf_die("XIMILAR_API_TOKEN", "the token and XIMILAR_COLLECTION_ID must be one short line each");
	snprintf(x->base, sizeof x->base, "%.*s/%s", (int)bl, base, service);
	snprintf(x->auth, sizeof x->auth, "Authorization: %s %s", strlen(token) >= 70 ? "JWT" : "Token", token);
	snprintf(x->collection, sizeof x->collection, "collection-id: %s", collection);
	x->timeout_ms = conf_long("XIMILAR_TIMEOUT", 60, 1, 3600) * 1000;
	x->max_attempts = (int)conf_long("MAX_RETRIES", 3, 0, 20) + 1;
}

static void ximilar_err(struct xsync_error *err, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void ximilar_err(struct xsync_error *err, int status, const char *code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof err->message, fmt, ap);
	va_end(ap);
	snprintf(err->code, sizeof err->code, "%s", code);
	err->status = status;
}

/* POST {"records": records} to method. 0, or -1 with err set. */
static int ximilar_call(struct ximilar *x, const char *method, json_t *records, int missing_ok,
			struct xsync_error *err)
{
	char url[600];
	snprintf(url, sizeof url, "%s/%s", x->base, method);
	json_t *body = json_pack("{s:O}", "records", records);
	char *text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	const char *headers[] = { x->auth, x->collection, "Content-Type: application/json", NULL };
	struct http_request req = { .method = "POST", .url = url, .headers = headers, .body = text,
				    .body_len = strlen(text), .timeout_ms = x->timeout_ms,
				    .max_attempts = x->max_attempts, .max_response = 16u << 20 };
	struct http_response resp;
	int rc = -1;
	if (http_perform(&req, &resp) != 0) {
		ximilar_err(err, resp.timed_out ? EX_TEMPFAIL : EX_UNAVAILABLE, "ximilar_unreachable",
			    "Ximilar %s: %s after %d attempts", method, resp.error, resp.attempts);
		goto out;
	}
	json_t *doc = json_loadb(resp.body.data, resp.body.len, 0, NULL);
	if (resp.status < 200 || resp.status > 299) {
		const char *detail = json_string_value(json_object_get(doc, "detail"));
		ximilar_err(err, http_status_retryable(resp.status) ? EX_TEMPFAIL : EX_UNAVAILABLE,
			    "ximilar_http_error", "Ximilar %s: HTTP %ld%s%s", method, resp.status,
			    detail ? ": " : "", detail ? detail : "");
		json_decref(doc);
		goto out;
	}
	const json_t *st = json_object_get(doc, "status");
	const json_t *recs = json_object_get(doc, "records");
	if (!json_is_object(doc) || (st && json_integer_value(json_object_get(st, "code")) != 200) ||
	    (recs && !json_is_array(recs))) {
		ximilar_err(err, EX_UNAVAILABLE, "ximilar_bad_answer", "Ximilar %s: %s", method,
			    !doc ? "the answer is not JSON"
			    : st ? (json_string_value(json_object_get(st, "text")) ? json_string_value(json_object_get(st, "text")) : "status.code is not 200")
				 : "records is not an array");
		json_decref(doc);
		goto out;
	}
	size_t i;
	json_t *r;
	json_array_foreach(recs, i, r)
	{
		const json_t *rs = json_object_get(r, "_status");
		json_int_t code = rs ? json_integer_value(json_object_get(rs, "code")) : 200;
		if ((code < 200 || code > 299) && !(missing_ok && code == 404)) {
			const char *t = json_string_value(json_object_get(rs, "text"));
			ximilar_err(err, code == 429 || code >= 500 ? EX_TEMPFAIL : EX_DATAERR, "ximilar_record_error",
				    "Ximilar %s: record %zu (%s): %lld %s", method, i + 1,
				    json_string_value(json_object_get(json_array_get(records, i), "_id"))
				    ? json_string_value(json_object_get(json_array_get(records, i), "_id")) : "?",
				    (long long)code, t ? t : "");
			json_decref(doc);
			goto out;
		}
	}
	json_decref(doc);
	rc = 0;
out:
	http_response_free(&resp);
	free(text);
	return rc;
}

/* Send records in requests of at most XIMILAR_BATCH. */
static int ximilar_batches(struct ximilar *x, const char *method, json_t *all, int missing_ok,
			   struct xsync_error *err)
{
	for (size_t i = 0; i < json_array_size(all); i += XIMILAR_BATCH) {
		json_t *part = json_array();
		for (size_t k = i; k < json_array_size(all) && k < i + XIMILAR_BATCH; k++)
			json_array_append(part, json_array_get(all, k));
		int rc = ximilar_call(x, method, part, missing_ok, err);
		json_decref(part);
		if (rc)
			return rc;
	}
	return 0;
}

int ximilar_put_product(struct ximilar *x, const struct xsync_product *p, struct xsync_error *err)
{
	char rid[200];
	if (p->old_records > 0) {
		json_t *del = json_array();
		for (long n = 1; n <= p->old_records && n <= 100; n++) {
			snprintf(rid, sizeof rid, "%s-%s-%ld", p->brand, p->sku, n);
			json_array_append_new(del, json_pack("{s:s}", "_id", rid));
		}
		int rc = ximilar_batches(x, "delete", del, 1, err);
		json_decref(del);
		if (rc)
			return rc;
	}
	json_t *ins = json_array();
	for (size_t n = 0; n < p->nurls; n++) {
		snprintf(rid, sizeof rid, "%s-%s-%zu", p->brand, p->sku, n + 1);
		json_t *r = json_deep_copy(p->meta);
		json_object_set_new(r, "_id", json_string(rid));
		json_object_set_new(r, "_url", json_string(p->urls[n]));
		json_array_append_new(ins, r);
	}
	int rc = ximilar_batches(x, "insert", ins, 0, err);
	json_decref(ins);
	return rc;
}
