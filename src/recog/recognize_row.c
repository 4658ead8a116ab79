/* unde-recognize's log row (§8's recognition_requests), written after the
 * request's done line. */
#include "config.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "log.h"
#include "pg.h"
#include "recog.h"
#include "recognize.h"

/* Log the request (§8's table); a failure is logged, not the user's. */
static void save_request(const char *id, const char *rid, const json_t *rec, json_t *detected, json_t *tags, json_t *search,
			 json_t *final, const double ms[5], int nitems, int nmatched)
{
	struct recog_err e = { 0 };
	if (!conf_str("PRODUCTION_DB_URL", NULL))
		return;
	PGconn *db = gw_production_db(&e);
	if (!db)
		return;
	char *d = json_dumps(detected, JSON_COMPACT), *t = json_dumps(tags, JSON_COMPACT),
	     *s = json_dumps(search, JSON_COMPACT), *f = json_dumps(final, JSON_COMPACT);
	char n[5][24], ni[24], nm[24];
	/* the caller's own id, when it is not the row's */
	const char *caller = rid && strcmp(rid, id) ? rid : NULL;
	for (int i = 0; i < 5; i++)
		snprintf(n[i], sizeof n[i], "%ld", lround(ms[i]));
	snprintf(ni, sizeof ni, "%d", nitems);
	snprintf(nm, sizeof nm, "%d", nmatched);
	const char *params[] = { id, json_string_value(json_object_get(rec, "user_id")),
				 json_string_value(json_object_get(rec, "photo_url")), d, n[0], t, n[1], s, n[2], f, n[3],
				 n[4], ni, nm, caller };
	if (pg_exec(db,
		    "INSERT INTO recognition_requests (id, user_id, photo_url, detected_items, detection_time_ms,"
		    " tags, tagging_time_ms, search_results, search_time_ms, final_matches, rerank_time_ms,"
		    " total_time_ms, items_detected, items_matched, request_id)"
		    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
		    15, params))
		log_event(LOG_ERROR, "recognition_requests not written",
			  json_pack("{s:s, s:s}", "request_id", id, "error", pg_last_error(db)));
	free(d);
	free(t);
	free(s);
	free(f);
}

/* The request's log row, kept from its last step until its done line is
 * out (filter_def.after_record): the INSERT (≈5 ms) is then off the path
 * to the done line. One request at a time, so one slot. */
static struct {
	int set;
	char id[37];
	char *rid;
	json_t *rec, *detected, *tags, *search, *final;
	double ms[5];
	int nitems, nmatched;
} row;

/* recognize_row_keep: see recognize.h. */
void recognize_row_keep(const char *id, const char *rid, const json_t *rec, json_t *detected, json_t *tags,
		      json_t *search, json_t *final, const double ms[5], int nitems, int nmatched)
{
	assert(!row.set);
	row.set = 1;
	snprintf(row.id, sizeof row.id, "%s", id);
	row.rid = xstrdup(rid);
	row.rec = json_pack("{s:O?, s:O?}", "user_id", json_object_get(rec, "user_id"), "photo_url",
			    json_object_get(rec, "photo_url"));
	row.detected = json_incref(detected);
	row.tags = tags;
	row.search = search;
	row.final = final;
	memcpy(row.ms, ms, sizeof row.ms);
	row.nitems = nitems;
	row.nmatched = nmatched;
}

/* recognize_row_save: see recognize.h. */
void recognize_row_save(void *sp, struct filter_run *run, json_t *rec, int status)
{
	(void)sp;
	(void)run;
	(void)rec;
	(void)status;
	if (!row.set)
		return;
	save_request(row.id, row.rid, row.rec, row.detected, row.tags, row.search, row.final, row.ms, row.nitems,
		     row.nmatched);
	free(row.rid);
	json_decref(row.rec);
	json_decref(row.detected);
	json_decref(row.tags);
	json_decref(row.search);
	json_decref(row.final);
	memset(&row, 0, sizeof row);
}
