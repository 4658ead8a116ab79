/* inditex — the brands' store-stock API: the one module that knows its
 * wire format (reverse-engineered: ../shared/upstreams.md §8, spec §17.2).
 *
 * Request (spec §17.2 "GET /itxrest/.../physicalstore/{id}/product"):
 *   GET {BRAND_API_URL}/itxrest/1/physicalstore/{storeId}/product?ajax=true
 *   User-Agent: {the brand app's, ZARA_USER_AGENT}
 *   Accept: application/json
 * Answer 200, the stock of every product the store has, in the shape of the
 * LOMO stock service (upstreams §8a: stocks[].physicalStoreId and
 * sizeStocks[].size|quantity are the known fields), one entry per product:
 *   {"stocks": [{"physicalStoreId": 6643, "productId": "ZAR000001",
 *                "sizeStocks": [{"sizeId": 3, "size": "M", "quantity": 2}]}]}
 * The answer is sparse: a product the store does not carry is absent.
 * Akamai's bot wall answers 403 with an HTML "Access Denied" page; that,
 * any other non-200, or a body of another shape is a failed poll. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "availability.h"
#include "http.h"
#include "util.h"

json_t *inditex_sizes_in_stock(const json_t *sizes)
{
	json_t *out = json_array();
	size_t i;
	const char *k;
	json_t *v;
	if (json_is_array(sizes)) {
		json_array_foreach(sizes, i, v)
		{
			if (json_is_string(v)) {
				json_array_append(out, v);
				continue;
			}
			const json_t *size = json_object_get(v, "size");
			const json_t *q = json_object_get(v, "quantity");
			if (!json_is_string(size) || !json_is_integer(q))
				goto bad;
			if (json_integer_value(q) > 0)
				json_array_append(out, (json_t *)size);
		}
		return out;
	}
	if (json_is_object(sizes)) {
		json_object_foreach((json_t *)sizes, k, v)
		{
			if (!json_is_integer(v))
				goto bad;
			if (json_integer_value(v) > 0)
				json_array_append_new(out, json_string(k));
		}
		return out;
	}
bad:
	json_decref(out);
	return NULL;
}

void inditex_store_stock(const char *base_url, const char *user_agent, long store_id,
			 long timeout_ms, struct stock_answer *out)
{
	memset(out, 0, sizeof *out);
	char url[1024], ua[300];
	size_t bl = strlen(base_url);
	while (bl && base_url[bl - 1] == '/')
		bl--;
	snprintf(url, sizeof url, "%.*s/itxrest/1/physicalstore/%ld/product?ajax=true", (int)bl, base_url,
		 store_id);
	snprintf(ua, sizeof ua, "User-Agent: %s", user_agent);
	const char *headers[] = { "Accept: application/json", ua, NULL };
	/* one attempt: every request spends the hourly budget */
	struct http_request req = { .url = url, .headers = headers, .timeout_ms = timeout_ms,
				    .max_attempts = 1, .max_response = 256u << 20 };
	struct http_response resp;
	if (http_perform(&req, &resp) != 0) {
		snprintf(out->error, sizeof out->error, "store %ld: %s", store_id, resp.error);
		out->retryable = 1;
		http_response_free(&resp);
		return;
	}
	if (resp.status != 200) {
		int html = strstr(resp.content_type, "html") != NULL;
		snprintf(out->error, sizeof out->error, "store %ld: HTTP %ld%s", store_id, resp.status,
			 resp.status == 403 && html ? " (bot protection: Access Denied page)" : "");
		out->retryable = http_status_retryable(resp.status) || resp.status == 403;
		http_response_free(&resp);
		return;
	}
	json_error_t jerr;
	json_t *doc = json_loadb(resp.body.data, resp.body.len, 0, &jerr);
	const json_t *stocks = json_object_get(doc, "stocks");
	if (!json_is_array(stocks)) {
		snprintf(out->error, sizeof out->error, "store %ld: the answer is not {\"stocks\": […]}%s%s",
			 store_id, doc ? "" : ": ", doc ? "" : jerr.text);
		json_decref(doc);
		http_response_free(&resp);
		return;
	}
	json_t *products = json_object();
	size_t i;
	json_t *e;
	json_array_foreach(stocks, i, e)
	{
		const json_t *pid = json_object_get(e, "productId");
		const json_t *sid = json_object_get(e, "physicalStoreId");
		char idbuf[32];
		const char *id = json_is_string(pid) ? json_string_value(pid) : NULL;
		if (json_is_integer(pid)) {
			snprintf(idbuf, sizeof idbuf, "%lld", (long long)json_integer_value(pid));
			id = idbuf;
		}
		json_t *sizes = inditex_sizes_in_stock(json_object_get(e, "sizeStocks"));
		if (!id || !*id || strlen(id) > 100 || !sizes ||
		    (sid && (!json_is_integer(sid) || json_integer_value(sid) != store_id))) {
			snprintf(out->error, sizeof out->error,
				 "store %ld: stocks[%zu] is not {productId, physicalStoreId of this store,"
				 " sizeStocks[{size, quantity}]}",
				 store_id, i);
			json_decref(sizes);
			json_decref(products);
			json_decref(doc);
			http_response_free(&resp);
			return;
		}
		json_object_set_new(products, id, sizes);
	}
	json_decref(doc);
	http_response_free(&resp);
	out->products = products;
}
