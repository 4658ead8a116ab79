/* gw_int.h — the Ximilar calls gw.c (detect, tag) and gw_search.c share.
 * Internal to src/recog/. */
#ifndef UNDE_RECOG_GW_INT_H
#define UNDE_RECOG_GW_INT_H

#include <jansson.h>

#include "deadline.h"

/* Whether Ximilar is to be asked: XIMILAR_API_TOKEN set and
 * XIMILAR_PROVIDER not "local". */
int xim_configured(void);
/* A skipped-provider note for the answer. */
json_t *xim_skip(const char *reason, const char *message);
/* POST body to XIMILAR_API_URL/path under dl. Returns the parsed answer
 * (status.code 200, every record's _status 2xx), or NULL with *skip set to
 * a note saying why (and the rate-limit metric bumped on 429). */
json_t *xim_call(const char *path, json_t *body, int collection, struct deadline dl, const char *metric,
		 json_t **skip);

#endif
