/* fetch.c — the Apify client of unde-apify (spec §2; wire format in
 * upstreams.md §1).
 *
 * Per brand: POST /v2/acts/{actor}/runs with the actor's input, poll
 * GET /v2/actor-runs/{id}?waitForFinish=N until the run is over, then page
 * through GET /v2/datasets/{id}/items?offset&limit. Items are handed to the
 * filter runner one at a time through its pull source (apify_fetch_next),
 * so no more than one page is ever held in memory and the next page is
 * asked for only once this one is stored: a slow database slows the paging
 * down, nothing piles up. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "apify.h"
#include "filter.h"
#include "conf.h"
#include "http.h"
#include "log.h"
#include "status.h"
#include "util.h"

/* "datasaurus/{brand}" with brand → "datasaurus/zara". */
static void apify_expand(const char *tmpl, const char *brand, char *out, size_t len)
{
	size_t n = 0;
	for (const char *p = tmpl; *p && n + 1 < len;) {
		if (strncmp(p, "{brand}", 7) == 0) {
			size_t bl = strlen(brand);
			if (n + bl >= len)
				break;
			memcpy(out + n, brand, bl);
			n += bl;
			p += 7;
		} else {
			out[n++] = *p++;
		}
	}
	out[n] = '\0';
}

static int apify_actor_valid(const char *a)
{
	if (!*a)
		return 0;
	for (; *a; a++)
		if (!((*a >= 'a' && *a <= 'z') || (*a >= 'A' && *a <= 'Z') || (*a >= '0' && *a <= '9') ||
		      *a == '-' || *a == '_' || *a == '.' || *a == '~' || *a == '/'))
			return 0;
	return 1;
}

void apify_fetch_config(struct apify_fetch *f, char *const *brands, size_t nbrands, long max_items)
{
	const char *token = conf_require("APIFY_TOKEN");
	if (strpbrk(token, "\r\n") || strlen(token) > 500)
		conf_die("APIFY_TOKEN", "APIFY_TOKEN is not a usable token");
	snprintf(f->auth_header, sizeof f->auth_header, "Authorization: Bearer %s", token);
	const char *base = conf_str("APIFY_API_URL", "https://api.apify.com");
	if ((strncmp(base, "https://", 8) != 0 && strncmp(base, "http://", 7) != 0) ||
	    strlen(base) >= sizeof f->base_url)
		conf_die("APIFY_API_URL", "APIFY_API_URL must be an http(s) URL");
	snprintf(f->base_url, sizeof f->base_url, "%s", base);
	size_t bl = strlen(f->base_url);
	while (bl && f->base_url[bl - 1] == '/')
		f->base_url[--bl] = '\0';
	f->max_items = max_items;
	f->page_size = conf_long("APIFY_PAGE_SIZE", 1000, 1, 100000);
	f->run_timeout_s = conf_long("APIFY_RUN_TIMEOUT", 7200, 1, 7 * 86400);
	f->poll_wait_s = conf_long("APIFY_WAIT_FOR_FINISH", 60, 0, 60);
	f->actor_template = conf_str("APIFY_ACTOR", "datasaurus/{brand}");
	f->start_url_template = conf_str("APIFY_START_URL", "https://www.{brand}.com/kz/en/");
	f->nruns = nbrands;
	for (size_t i = 0; i < nbrands; i++) {
		struct apify_run *r = &f->runs[i];
		memset(r, 0, sizeof *r);
		snprintf(r->brand, sizeof r->brand, "%s", brands[i]);
		/* APIFY_ACTOR_ZARA=someone/zara-scraper overrides the template */
		char var[96];
		snprintf(var, sizeof var, "APIFY_ACTOR_%s", r->brand);
		for (char *c = var; *c; c++)
			*c = (char)(*c >= 'a' && *c <= 'z' ? *c - 32 : *c);
		const char *own = conf_str(var, NULL);
		apify_expand(own ? own : f->actor_template, r->brand, r->actor, sizeof r->actor);
		if (!apify_actor_valid(r->actor))
			conf_die(own ? var : "APIFY_ACTOR", "the actor id must be user/name or an id");
	}
}

/* Apify's error body {"error":{"type","message"}} as one line of text. */
static void apify_error_text(const struct http_response *r, char *out, size_t len)
{
	json_t *j = r->body.len ? json_loadb(r->body.data, r->body.len, 0, NULL) : NULL;
	json_t *e = json_object_get(j, "error");
	const char *type = json_string_value(json_object_get(e, "type"));
	const char *msg = json_string_value(json_object_get(e, "message"));
	if (r->status == 0)
		snprintf(out, len, "%s", r->error);
	else if (type || msg)
		snprintf(out, len, "HTTP %ld %s: %s", r->status, type ? type : "", msg ? msg : "");
	else
		snprintf(out, len, "HTTP %ld", r->status);
	json_decref(j);
}

/* One call to the API. Returns 0 with *out the parsed body (a new
 * reference), or an EX_* status with run->error set. */
static int apify_call(struct apify_fetch *f, struct apify_run *run, const char *method,
		      const char *url, const char *body, long timeout_ms, json_t **out)
{
	*out = NULL;
	const char *headers[] = { f->auth_header, "Accept: application/json", NULL };
	struct http_request rq = { .method = method, .url = url, .headers = headers,
				   .body = body, .body_len = body ? strlen(body) : 0,
				   .timeout_ms = timeout_ms };
	struct http_response r;
	http_perform(&rq, &r);
	run->http_status = r.status;
	int st = 0;
	char why[400];
	if (r.status >= 200 && r.status < 300) {
		json_error_t je;
		*out = json_loadb(r.body.data ? r.body.data : "", r.body.len, 0, &je);
		if (!*out) {
			snprintf(run->error, sizeof run->error, "%s %s: answer is not JSON: %s", method,
				 strstr(url, "/v2/"), je.text);
			st = EX_PROTOCOL;
		}
	} else {
		apify_error_text(&r, why, sizeof why);
		snprintf(run->error, sizeof run->error, "%s %s: %s", method, strstr(url, "/v2/"), why);
		/* lib/status.h's table (401/403: the token is wrong → 78), but
		 * a 404 means no such actor (APIFY_ACTOR… is wrong: 78 too), and
		 * a refused call is Apify's business, not a bad record */
		st = r.status == 404 ? EX_CONFIG : status_exit_for_http(r.status, r.timed_out);
		if (st == EX_DATAERR || st == EX_PROTOCOL)
			st = EX_UNAVAILABLE;
	}
	http_response_free(&r);
	return st;
}

static const char *apify_data_str(const json_t *j, const char *key)
{
	return json_string_value(json_object_get(json_object_get(j, "data"), key));
}

static int apify_terminal(const char *status)
{
	return strcmp(status, "SUCCEEDED") == 0 || strcmp(status, "FAILED") == 0 ||
	       strcmp(status, "TIMED-OUT") == 0 || strcmp(status, "ABORTED") == 0;
}

static void apify_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Start the actor and wait until its run is over. Returns 0 when it
 * SUCCEEDED (run_id and dataset_id set), else an EX_* status. */
static int apify_run_actor(struct apify_fetch *f, struct apify_run *run)
{
	char actor_path[200], url[1024], start[512];
	snprintf(actor_path, sizeof actor_path, "%s", run->actor);
	for (char *c = actor_path; *c; c++)
		if (*c == '/')
			*c = '~'; /* user/name is user~name in paths */
	apify_expand(f->start_url_template, run->brand, start, sizeof start);
	json_t *input = json_pack("{s:[s], s:I}", "startUrls", start, "maxItems",
				  (json_int_t)f->max_items);
	char *body = json_dumps(input, JSON_COMPACT);
	json_decref(input);
	snprintf(url, sizeof url, "%s/v2/acts/%s/runs?waitForFinish=%ld", f->base_url, actor_path,
		 f->poll_wait_s);
	json_t *j;
	int st = apify_call(f, run, "POST", url, body, (f->poll_wait_s + 30) * 1000, &j);
	free(body);
	if (st)
		return st;
	const char *id = apify_data_str(j, "id"), *ds = apify_data_str(j, "defaultDatasetId");
	const char *status = apify_data_str(j, "status");
	if (!id || !ds || !status || strlen(id) >= sizeof run->run_id ||
	    strlen(ds) >= sizeof run->dataset_id || strpbrk(id, "/?#%") || strpbrk(ds, "/?#%")) {
		snprintf(run->error, sizeof run->error, "the run Apify started has no usable id/defaultDatasetId");
		json_decref(j);
		return EX_PROTOCOL;
	}
	snprintf(run->run_id, sizeof run->run_id, "%s", id);
	snprintf(run->dataset_id, sizeof run->dataset_id, "%s", ds);
	snprintf(run->status, sizeof run->status, "%s", status);
	json_decref(j);
	log_event(LOG_INFO, "actor run started",
		  json_pack("{s:s, s:s, s:s}", "brand", run->brand, "actor", run->actor, "run_id",
			    run->run_id));

	long poll_ms = conf_long("APIFY_POLL_INTERVAL_MS", 5000, 1, 600000);
	double deadline = util_now_ms() + (double)f->run_timeout_s * 1000.0;
	while (!apify_terminal(run->status)) {
		if (util_now_ms() > deadline) {
			snprintf(url, sizeof url, "%s/v2/actor-runs/%s/abort", f->base_url, run->run_id);
			char saved[sizeof run->error];
			if (apify_call(f, run, "POST", url, "{}", 30000, &j) == 0)
				json_decref(j);
			snprintf(saved, sizeof saved, "actor run %s still %s after %ld s: aborted",
				 run->run_id, run->status, f->run_timeout_s);
			memcpy(run->error, saved, sizeof saved);
			return EX_TEMPFAIL;
		}
		double t = util_now_ms();
		snprintf(url, sizeof url, "%s/v2/actor-runs/%s?waitForFinish=%ld", f->base_url,
			 run->run_id, f->poll_wait_s);
		if ((st = apify_call(f, run, "GET", url, NULL, (f->poll_wait_s + 30) * 1000, &j)) != 0)
			return st;
		status = apify_data_str(j, "status");
		snprintf(run->status, sizeof run->status, "%s", status ? status : "");
		json_decref(j);
		if (!status) {
			snprintf(run->error, sizeof run->error, "run %s: answer has no status", run->run_id);
			return EX_PROTOCOL;
		}
		/* the server waits up to waitForFinish itself; when it answered
		 * early with the run still going, do not hammer it */
		double spent = util_now_ms() - t;
		if (!apify_terminal(run->status) && spent < (double)poll_ms)
			apify_sleep_ms(poll_ms - (long)spent);
	}
	if (strcmp(run->status, "SUCCEEDED") != 0) {
		snprintf(run->error, sizeof run->error, "actor run %s ended %s", run->run_id, run->status);
		return EX_UNAVAILABLE;
	}
	return 0;
}

/* Fetch the run's next dataset page into f->page. Returns 0 or an EX_*
 * status with run->error set. */
static int apify_next_page(struct apify_fetch *f, struct apify_run *run)
{
	char url[1024];
	long limit = f->page_size;
	if (limit > f->max_items - run->fetched)
		limit = f->max_items - run->fetched;
	snprintf(url, sizeof url, "%s/v2/datasets/%s/items?format=json&clean=true&offset=%ld&limit=%ld",
		 f->base_url, run->dataset_id, f->offset, limit);
	json_decref(f->page);
	f->page = NULL;
	f->page_at = 0;
	json_t *page;
	int st = apify_call(f, run, "GET", url, NULL, 120000, &page);
	if (st)
		return st;
	if (!json_is_array(page)) {
		snprintf(run->error, sizeof run->error, "dataset page at offset %ld is not an array",
			 f->offset);
		json_decref(page);
		return EX_PROTOCOL;
	}
	f->page = page;
	f->offset += (long)json_array_size(page);
	f->last_page = (long)json_array_size(page) < limit;
	return 0;
}

/* The current run is over (its items handed out, or it failed): log it,
 * fold its status in, and go on to the next. */
static void apify_end_run(struct apify_fetch *f, struct apify_run *run)
{
	run->finished_at = util_wall_seconds();
	if (run->http_status == 401 || run->http_status == 403)
		f->token_refused = 1;
	if (run->exit_status) {
		log_event(LOG_ERROR, "actor run gave no complete dataset",
			  json_pack("{s:s, s:s, s:s, s:I, s:i}", "brand", run->brand, "actor",
				    run->actor, "error", run->error, "items", (json_int_t)run->fetched,
				    "exit", run->exit_status));
	} else {
		log_event(LOG_INFO, "dataset read",
			  json_pack("{s:s, s:s, s:I}", "brand", run->brand, "run_id", run->run_id,
				    "items", (json_int_t)run->fetched));
	}
	f->exit_status = filter_worse_status(f->exit_status, run->exit_status);
	json_decref(f->page);
	f->page = NULL;
	f->run_begun = 0;
	f->current++;
}

/* Start the current run's actor and wait for it. */
static void apify_begin_run(struct apify_fetch *f, struct apify_run *run)
{
	run->started_at = util_wall_seconds();
	f->run_begun = 1;
	f->offset = 0;
	f->last_page = 0;
	f->page_at = 0;
	if (f->token_refused) {
		snprintf(run->error, sizeof run->error, "not run: APIFY_TOKEN was refused");
		run->exit_status = EX_CONFIG;
	} else {
		run->exit_status = apify_run_actor(f, run);
	}
}

json_t *apify_fetch_next(struct apify_fetch *f)
{
	while (f->current < f->nruns) {
		struct apify_run *run = &f->runs[f->current];
		if (!f->run_begun) {
			apify_begin_run(f, run);
			if (run->exit_status)
				apify_end_run(f, run);
			continue;
		}
		if (f->page && f->page_at < json_array_size(f->page)) {
			json_t *item = json_incref(json_array_get(f->page, f->page_at++));
			if (json_is_object(item))
				json_object_set_new(item, "_apify",
						    json_pack("{s:s, s:s}", "brand", run->brand, "run_id",
							      run->run_id));
			run->fetched++;
			return item;
		}
		if ((f->page && f->last_page) || run->fetched >= f->max_items) {
			apify_end_run(f, run);
			continue;
		}
		if ((run->exit_status = apify_next_page(f, run)) != 0)
			apify_end_run(f, run);
	}
	return NULL;
}

void apify_fetch_stop(struct apify_fetch *f)
{
	if (f->current < f->nruns && f->run_begun) {
		struct apify_run *run = &f->runs[f->current];
		snprintf(run->error, sizeof run->error, "the importer stopped reading");
		run->exit_status = EX_IOERR;
		apify_end_run(f, run);
	}
	for (; f->current < f->nruns; f->current++) {
		struct apify_run *run = &f->runs[f->current];
		snprintf(run->error, sizeof run->error, "not run: the importer stopped first");
		run->exit_status = EX_IOERR;
		run->started_at = run->finished_at = util_wall_seconds();
		f->exit_status = filter_worse_status(f->exit_status, EX_IOERR);
	}
}
