/* recognize.h — unde-recognize's own parts, beside recognize_main.c: the
 * §8 decision (recognize_decide.c) and the request's log row
 * (recognize_row.c). */
#ifndef UNDE_RECOGNIZE_H
#define UNDE_RECOGNIZE_H

#include <jansson.h>

#include "filter.h"
#include "recog.h"

/* The §8 decision over ranked (best first, each with its "score"): the top
 * above CONFIDENCE_HIGH is one exact match, from CONFIDENCE_MEDIUM five
 * similar ones; below, production's products of the tags' type and colour,
 * in stock in the user's stores first ("style"). *type is set to which;
 * NULL with e set when the fallback's database fails. */
json_t *recognize_decide(const json_t *ranked, const json_t *tags, const char *category, const char **type,
			 struct recog_err *e);

/* Keep the request's recognition_requests row until its done line is out
 * (rec and detected borrowed, tags, search and final taken): the INSERT
 * (≈5 ms) is then off the path to the done line. One request at a time. */
void recognize_row_keep(const char *id, const char *rid, const json_t *rec, json_t *detected, json_t *tags,
			json_t *search, json_t *final, const double ms[5], int nitems, int nmatched);

/* filter_def.after_record: write the kept row, whatever became of the
 * record; a failure is logged, not the user's. */
void recognize_row_save(void *sp, struct filter_run *run, json_t *rec, int status);

#endif
