/* xsync — unde-ximilar-sync's parts: the product being synced, the Ximilar
 * collection client (ximilar.c) and the local descriptor collection
 * (local.c). */
#ifndef UNDE_XSYNC_H
#define UNDE_XSYNC_H

#include <jansson.h>
#include <libpq-fe.h>

#include "objstore.h"

#define XSYNC_MAX_PHOTOS 16

/* One staging product, as selected. */
struct xsync_product {
	char id[24];
	char source[64], sku[101], brand[64];
	json_t *meta;         /* sku_id, brand, name, category, price, store, floor */
	char *image_urls;     /* the column's JSON text (the claim's guard) */
	const char *urls[XSYNC_MAX_PHOTOS];
	size_t nurls;
	json_t *urls_json;    /* owns urls[] */
	long old_records;     /* raw_products.ximilar_records */
};

struct xsync_error {
	char code[48];
	char message[512];
	int status; /* EX_* */
};

/* --- ximilar.c ---------------------------------------------------------- */

struct ximilar {
	char base[512];       /* XIMILAR_API_URL + "/" + XIMILAR_SEARCH_SERVICE */
	char auth[300], collection[200];
	long timeout_ms;
	int max_attempts;
};

/* Read XIMILAR_* (token and collection required by the caller's check). */
void ximilar_init(struct ximilar *x, const char *token, const char *collection);

/* Put the product's photos in the collection as records {brand}-{sku}-{n}
 * with its metadata, at most 10 per request, after deleting the
 * old_records it held before. 0, or -1 with err set. */
int ximilar_put_product(struct ximilar *x, const struct xsync_product *p, struct xsync_error *err);

/* --- local.c --------------------------------------------------------------- */

/* Compute each photo's descriptor (lib/descriptor.h) and replace the
 * product's rows of production.product_descriptors. 0, or -1 with err. */
int local_put_product(PGconn *production, struct objstore *os, const struct xsync_product *p,
		      struct xsync_error *err);

#endif
