/* availability — unde-availability's parts: the Inditex stock wire format
 * (inditex.c, the only file that knows it) and the run (main.c). */
#ifndef UNDE_AVAILABILITY_H
#define UNDE_AVAILABILITY_H

#include <jansson.h>

/* What one store said: product id → sizes in stock, as a JSON object
 * {"ZAR000001": ["S","M"], …} (products whose sizes are all at 0 have []). */
struct stock_answer {
	json_t *products; /* new reference, or NULL on failure */
	char error[320];
	int retryable;    /* 429/5xx/transport: a later run may succeed */
};

/* The stock of one physical store of a brand: one GET, see inditex.c.
 * base_url is the brand's API (ZARA_API_URL), user_agent its app's. */
void inditex_store_stock(const char *base_url, const char *user_agent, long store_id,
			 long timeout_ms, struct stock_answer *out);

/* The sizes in stock of one product entry of either shape the local stock
 * file and the API use: [{"size":"M","quantity":2},…] or ["M",…] or
 * {"M":2,…}. A new JSON array, or NULL when the shape is not one of those. */
json_t *inditex_sizes_in_stock(const json_t *sizes);

#endif
