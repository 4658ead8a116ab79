/* rr — the LLM Reranker's two calls (spec §10).
 *
 * With GEMINI_API_KEY: Gemini 2.5 Flash vision (generateContent, images
 * inline, the answer asked as JSON); candidates are asked in parallel
 * (lib/http's multi interface) under the deadline. A candidate Gemini
 * could not judge (error, safety block, not the JSON asked for) is judged
 * locally; when none could, the answer says provider "local".
 *
 * Local provider:
 *   tag     style, occasion and brand_style need a model: null; season
 *           from the crop's colours (mean lightness and saturation of the
 *           dominant colours: light or bright → "spring-summer", dark or
 *           muted → "autumn-winter");
 *   rerank  visual = the cosine similarity of the crop's descriptor with
 *           each of the candidate's first two photos (the best one), or the
 *           gateway's score when no photo can be read.
 * Both: semantic = rr_semantic(tags, metadata); score = 0.7 × visual +
 * 0.3 × semantic, or visual alone when semantic is undefined. */
#include "config.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "conf.h"
#include "http.h"
#include "log.h"
#include "recog.h"
#include "rvips.h"

#define RR_MAX_CANDIDATES 20

static int gem_configured(void)
{
	if (!strcmp(conf_str("RERANK_PROVIDER", "auto"), "local"))
		return 0;
	const char *k = conf_str("GEMINI_API_KEY", NULL);
	return k && *k;
}

static json_t *gem_skip(const char *reason, const char *message)
{
	return json_pack("{s:s, s:s, s:s}", "provider", "gemini", "reason", reason, "message", message);
}

/* The generateContent request for a prompt and images (base64 JPEGs). */
static char *gem_body(const char *prompt, const char *const *b64, size_t n)
{
	json_t *parts = json_pack("[{s:s}]", "text", prompt);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(parts, json_pack("{s:{s:s, s:s}}", "inline_data", "mime_type", "image/jpeg", "data",
						       b64[i]));
	json_t *body = json_pack("{s:[{s:s, s:o}], s:{s:s, s:f}}", "contents", "role", "user", "parts", parts,
				 "generationConfig", "responseMimeType", "application/json", "temperature", 0.0);
	char *t = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	return t;
}

/* The JSON object Gemini answered in resp, or NULL with *skip set. Adds
 * the call's cost (token usage × GEMINI_PRICE_*) to the metric. */
static json_t *gem_parse(const struct http_response *resp, json_t **skip)
{
	char msg[200];
	if (resp->status == 0) {
		*skip = gem_skip(resp->timed_out || resp->deadline_cut ? "timeout" : "unreachable", resp->error);
		return NULL;
	}
	if (resp->status < 200 || resp->status > 299) {
		snprintf(msg, sizeof msg, "HTTP %ld", resp->status);
		*skip = gem_skip(resp->status == 429 ? "429" : resp->status >= 500 ? "5xx" : "4xx", msg);
		return NULL;
	}
	json_t *doc = json_loadb(resp->body.data, resp->body.len, 0, NULL);
	const json_t *u = json_object_get(doc, "usageMetadata");
	if (u) {
		double in = json_number_value(json_object_get(u, "promptTokenCount"));
		double out = json_number_value(json_object_get(u, "candidatesTokenCount"));
		double usd = in / 1e6 * conf_double("GEMINI_PRICE_INPUT_PER_M", 0.30, 0, 1000) +
			     out / 1e6 * conf_double("GEMINI_PRICE_OUTPUT_PER_M", 2.50, 0, 1000);
		rmetrics_add("llm_reranker_cost_microdollars", NULL, round(usd * 1e6));
	}
	const char *text = json_string_value(json_object_get(
		json_array_get(json_object_get(json_object_get(json_array_get(json_object_get(doc, "candidates"), 0), "content"),
					       "parts"),
			       0),
		"text"));
	json_t *ans = text ? json_loads(text, 0, NULL) : NULL;
	if (!json_is_object(ans)) {
		const char *block = json_string_value(json_object_get(json_object_get(doc, "promptFeedback"), "blockReason"));
		snprintf(msg, sizeof msg, "%s", block ? block : !doc ? "the answer is not JSON" : "no JSON object in the text");
		*skip = gem_skip(block ? "blocked" : "malformed", msg);
		json_decref(ans);
		ans = NULL;
	}
	json_decref(doc);
	return ans;
}

/* The requests' common parts. */
struct gem_req {
	char url[1024], key[400];
	const char *headers[3];
};

static void gem_req_init(struct gem_req *g)
{
	const char *base = conf_str("GEMINI_API_URL", "https://generativelanguage.googleapis.com");
	const char *model = conf_str("GEMINI_RERANK_MODEL", "gemini-2.5-flash");
	size_t bl = strlen(base);
	while (bl && base[bl - 1] == '/')
		bl--;
	snprintf(g->url, sizeof g->url, "%.*s/v1beta/models/%.100s:generateContent", (int)bl, base, model);
	const char *k = conf_str("GEMINI_API_KEY", "");
	snprintf(g->key, sizeof g->key, "x-goog-api-key: %.300s", strpbrk(k, "\r\n") ? "" : k);
	g->headers[0] = g->key;
	g->headers[1] = "Content-Type: application/json";
	g->headers[2] = NULL;
}

static char *rr_fetch_b64(const char *url, struct deadline dl, struct recog_err *e)
{
	struct buf b = { 0 };
	if (!url || photo_fetch(url, dl, &b, e) != 0) {
		if (!url)
			recog_fail(e, EX_DATAERR, "missing_field", "no photo URL");
		buf_free(&b);
		return NULL;
	}
	char *s = photo_base64(b.data, b.len);
	buf_free(&b);
	return s;
}

#define RR_RERANK_PROMPT                                                                           \
	"You compare fashion items. Image 1 is a garment cropped from a street photo; "            \
	"image 2 is a product photo from a shop. How visually similar are the two "                \
	"garments (cut, colour, pattern, details)? Answer only JSON: {\"visual\": a number "        \
	"from 0 (different) to 1 (the same product), \"reason\": one short sentence}"

/* One candidate's Gemini request body — its product photo fetched and
 * base64-encoded, beside the crop's — made in a thread of its own, so the
 * candidates' bodies (≈30 kB of JSON each) are built at once. */
struct fetch_job {
	const char *url, *crop64;
	struct deadline dl;
	pthread_t thread;
	int started;
	char *body; /* NULL: the photo is unreadable */
};

static void *fetch_thread(void *p)
{
	struct fetch_job *j = p;
	struct recog_err e = { 0 };
	char *b64 = rr_fetch_b64(j->url, j->dl, &e);
	if (b64) {
		const char *imgs[] = { j->crop64, b64 };
		j->body = gem_body(RR_RERANK_PROMPT, imgs, 2);
		free(b64);
	}
	http_thread_cleanup();
	return NULL;
}

/* Lower-case copy (ASCII; other bytes kept). */
static void rr_lower(const char *s, char *out, size_t len)
{
	size_t i = 0;
	for (; s[i] && i + 1 < len; i++)
		out[i] = (char)tolower((unsigned char)s[i]);
	out[i] = '\0';
}

/* --- tag ------------------------------------------------------------------------ */

/* "spring-summer" or "autumn-winter" from the colours' lightness and
 * saturation, weighted by share. */
static const char *rr_season(const json_t *colors)
{
	double light = 0, sat = 0, tot = 0;
	size_t i;
	json_t *c;
	json_array_foreach(colors, i, c)
	{
		unsigned r, g, b;
		const char *hex = json_string_value(json_object_get(c, "hex"));
		double w = json_number_value(json_object_get(c, "share"));
		if (!hex || json_is_true(json_object_get(c, "background")) || sscanf(hex, "#%2x%2x%2x", &r, &g, &b) != 3)
			continue;
		double mx = fmax(r, fmax(g, b)) / 255.0, mn = fmin(r, fmin(g, b)) / 255.0;
		light += w * (mx + mn) / 2;
		sat += w * (mx > 0 ? (mx - mn) / mx : 0);
		tot += w;
	}
	if (tot <= 0)
		return NULL;
	light /= tot;
	sat /= tot;
	return light > 0.6 || (light > 0.4 && sat > 0.55) ? "spring-summer" : "autumn-winter";
}

json_t *rr_tag(const json_t *in, struct deadline dl, struct recog_err *e)
{
	const char *url = json_string_value(json_object_get(in, "url"));
	if (!url)
		url = json_string_value(json_object_get(in, "crop_url"));
	if (!url) {
		recog_fail(e, EX_DATAERR, "missing_field", "tag needs url (the crop)");
		return NULL;
	}
	json_t *skip = NULL;
	if (gem_configured()) {
		char *b64 = rr_fetch_b64(url, dl, e);
		if (!b64)
			return NULL;
		const char *imgs[] = { b64 };
		char *body = gem_body("You are a fashion stylist. Describe the garment in the photo. Answer only JSON: "
				      "{\"style\": one of casual|business|evening|sport|street|romantic|minimal, "
				      "\"occasion\": a short phrase, \"brand_style\": the kind of brand it looks like "
				      "(e.g. mass-market, premium, luxury), \"season\": spring-summer|autumn-winter|all-season}",
				      imgs, 1);
		free(b64);
		struct gem_req g;
		gem_req_init(&g);
		double t0 = util_now_ms();
		struct http_request req = { .method = "POST", .url = g.url, .headers = g.headers, .body = body,
					    .body_len = strlen(body), .deadline = dl, .max_attempts = 2,
					    .timeout_ms = conf_long("GEMINI_TIMEOUT", 10, 1, 600) * 1000 };
		struct http_response resp;
		http_perform(&req, &resp);
		free(body);
		json_t *ans = gem_parse(&resp, &skip);
		http_response_free(&resp);
		rmetrics_observe_ms("llm_reranker_latency_seconds", "call=\"tag\"", util_now_ms() - t0);
		if (ans) {
			json_t *out = json_pack("{s:O?, s:O?, s:O?, s:O?, s:s}", "style", json_object_get(ans, "style"),
						"occasion", json_object_get(ans, "occasion"), "brand_style",
						json_object_get(ans, "brand_style"), "season", json_object_get(ans, "season"),
						"provider", "gemini");
			json_decref(ans);
			return out;
		}
		rmetrics_add("llm_reranker_errors", "call=\"tag\"", 1);
	} else {
		skip = gem_skip("no_key", "GEMINI_API_KEY is not set (or RERANK_PROVIDER=local)");
	}
	VipsImage *im = photo_load(url, dl, e);
	if (!im) {
		json_decref(skip);
		return NULL;
	}
	json_t *colors = photo_colours(im, 3);
	RV.g_object_unref(im);
	json_t *out = json_pack("{s:n, s:n, s:n, s:s?, s:s, s:[o]}", "style", "occasion", "brand_style", "season",
				rr_season(colors), "provider", "local", "providers_skipped", skip);
	json_decref(colors);
	return out;
}

/* --- semantic ---------------------------------------------------------------------- */

double rr_semantic(const json_t *tags, const json_t *metadata)
{
	static const char *const keys[] = { "type", "color", "material", "pattern", "style" };
	char text[2048] = "", low[256];
	static const char *const fields[] = { "name", "category", "colour", "color", "composition", "description" };
	for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
		const char *v = json_string_value(json_object_get(metadata, fields[i]));
		if (v) {
			size_t n = strlen(text);
			snprintf(text + n, sizeof text - n, " %s", v);
		}
	}
	rr_lower(text, text, sizeof text);
	if (!text[0])
		return -1;
	int compared = 0, matched = 0;
	for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
		const char *v = json_string_value(json_object_get(tags, keys[i]));
		if (!v || !*v)
			continue;
		compared++;
		rr_lower(v, low, sizeof low);
		/* a tag agrees when it, or one of its words of 3+ letters, is in
		 * the metadata (Clothing/Upper → "upper"; "light blue" → "blue") */
		int hit = strstr(text, low) != NULL;
		char *save = NULL;
		for (char *w = strtok_r(low, " /-,", &save); w && !hit; w = strtok_r(NULL, " /-,", &save))
			if (strlen(w) >= 3 && strstr(text, w))
				hit = 1;
		if (!hit && !strcmp(low, "grey"))
			hit = strstr(text, "gray") != NULL;
		matched += hit;
	}
	return compared ? (double)matched / compared : -1;
}

/* --- rerank ------------------------------------------------------------------------- */

static double rr_round(double v) { return round(v * 10000) / 10000; }

/* The local visual score of one candidate: the best descriptor similarity
 * of its first two photos, or the gateway's score. */
static double rr_visual_local(const float *crop, const json_t *cand, struct deadline dl, const char **reason)
{
	double best = -1;
	for (size_t i = 0; i < 2; i++) {
		const char *u = json_string_value(json_array_get(json_object_get(cand, "image_urls"), i));
		struct recog_err e2 = { 0 };
		VipsImage *im = u ? photo_load(u, dl, &e2) : NULL;
		float d[DESCRIPTOR_DIM];
		if (im && photo_describe(im, d, &e2) == 0) {
			double s = photo_similarity(crop, d);
			if (s > best)
				best = s;
		}
		if (im)
			RV.g_object_unref(im);
	}
	if (best >= 0) {
		*reason = "descriptor similarity of the crop and the product's photo";
		return best < 0 ? 0 : best;
	}
	*reason = "the product's photos could not be read: the gateway's score";
	return json_number_value(json_object_get(cand, "score"));
}

static int rr_by_score(const void *a, const void *b)
{
	double x = json_number_value(json_object_get(*(json_t *const *)a, "score"));
	double y = json_number_value(json_object_get(*(json_t *const *)b, "score"));
	return x < y ? 1 : x > y ? -1 : 0;
}

json_t *rr_rerank(const json_t *in, struct deadline dl, struct recog_err *e)
{
	double t0 = util_now_ms();
	const char *crop_url = json_string_value(json_object_get(in, "crop_url"));
	const json_t *cands = json_object_get(in, "candidates"), *tags = json_object_get(in, "tags");
	if (!crop_url || !json_is_array(cands)) {
		recog_fail(e, EX_DATAERR, crop_url ? "invalid_field" : "missing_field",
			   crop_url ? "candidates must be an array" : "rerank needs crop_url");
		return NULL;
	}
	size_t n = json_array_size(cands);
	if (n > RR_MAX_CANDIDATES)
		n = RR_MAX_CANDIDATES;
	for (size_t i = 0; i < n; i++)
		if (!json_string_value(json_object_get(json_array_get(cands, i), "sku_id"))) {
			recog_fail(e, EX_DATAERR, "invalid_field", "candidates[%zu].sku_id must be a string", i);
			return NULL;
		}
	double visual[RR_MAX_CANDIDATES];
	const char *reason[RR_MAX_CANDIDATES];
	char *greason[RR_MAX_CANDIDATES] = { 0 };
	int judged[RR_MAX_CANDIDATES] = { 0 }, by_gemini = 0;
	json_t *skip = json_array();
	if (gem_configured() && n > 0) {
		char *crop64 = rr_fetch_b64(crop_url, dl, e);
		if (!crop64) {
			json_decref(skip);
			return NULL;
		}
		struct gem_req g;
		gem_req_init(&g);
		struct http_request reqs[RR_MAX_CANDIDATES];
		struct http_response resps[RR_MAX_CANDIDATES];
		char *bodies[RR_MAX_CANDIDATES] = { 0 };
		size_t idx[RR_MAX_CANDIDATES], m = 0;
		/* every product photo fetched at once, then the calls made at once */
		struct fetch_job fj[RR_MAX_CANDIDATES];
		for (size_t i = 0; i < n; i++) {
			fj[i] = (struct fetch_job){ .url = json_string_value(json_array_get(
							    json_object_get(json_array_get(cands, i), "image_urls"), 0)),
						    .crop64 = crop64, .dl = dl };
			fj[i].started = pthread_create(&fj[i].thread, NULL, fetch_thread, &fj[i]) == 0;
			if (!fj[i].started)
				fetch_thread(&fj[i]);
		}
		for (size_t i = 0; i < n; i++)
			if (fj[i].started)
				pthread_join(fj[i].thread, NULL);
		for (size_t i = 0; i < n; i++) {
			if (!fj[i].body)
				continue;
			bodies[m] = fj[i].body;
			reqs[m] = (struct http_request){ .method = "POST", .url = g.url, .headers = g.headers,
							 .body = bodies[m], .body_len = strlen(bodies[m]), .deadline = dl,
							 .max_attempts = 1,
							 .timeout_ms = conf_long("GEMINI_TIMEOUT", 10, 1, 600) * 1000 };
			idx[m++] = i;
		}
		free(crop64);
		double tg = util_now_ms();
		if (m)
			http_perform_many(reqs, resps, m, (int)m);
		for (size_t k = 0; k < m; k++) {
			json_t *sk = NULL;
			json_t *ans = gem_parse(&resps[k], &sk);
			const json_t *v = json_object_get(ans, "visual");
			if (ans && json_is_number(v) && json_number_value(v) >= 0 && json_number_value(v) <= 1) {
				size_t i = idx[k];
				visual[i] = json_number_value(v);
				const char *r = json_string_value(json_object_get(ans, "reason"));
				greason[i] = xstrdup(r ? r : "Gemini's visual judgement");
				reason[i] = greason[i];
				judged[i] = 1;
				by_gemini++;
			} else {
				if (!sk)
					sk = gem_skip("malformed", "visual is not a number in [0, 1]");
				json_object_set_new(sk, "sku_id", json_incref(json_object_get(json_array_get(cands, idx[k]), "sku_id")));
				json_array_append_new(skip, sk);
				rmetrics_add("llm_reranker_errors", "call=\"rerank\"", 1);
			}
			json_decref(ans);
			http_response_free(&resps[k]);
			free(bodies[k]);
		}
		rmetrics_observe_ms("llm_reranker_latency_seconds", "call=\"rerank\"", util_now_ms() - tg);
	} else if (!gem_configured()) {
		json_array_append_new(skip, gem_skip("no_key", "GEMINI_API_KEY is not set (or RERANK_PROVIDER=local)"));
	}
	/* the candidates Gemini did not judge: locally */
	float crop[DESCRIPTOR_DIM];
	int have_crop = -1;
	for (size_t i = 0; i < n; i++) {
		if (judged[i])
			continue;
		if (have_crop < 0) {
			struct recog_err e2 = { 0 };
			VipsImage *im = photo_load(crop_url, dl, &e2);
			have_crop = im && photo_describe(im, crop, &e2) == 0;
			if (im)
				RV.g_object_unref(im);
		}
		const json_t *c = json_array_get(cands, i);
		if (have_crop) {
			visual[i] = rr_visual_local(crop, c, dl, &reason[i]);
		} else {
			visual[i] = json_number_value(json_object_get(c, "score"));
			reason[i] = "the crop could not be read: the gateway's score";
		}
	}
	json_t *ranked = json_array();
	for (size_t i = 0; i < n; i++) {
		const json_t *c = json_array_get(cands, i);
		double sem = rr_semantic(tags, json_object_get(c, "metadata"));
		double v = visual[i] < 0 ? 0 : visual[i] > 1 ? 1 : visual[i];
		double score = sem >= 0 ? 0.7 * v + 0.3 * sem : v;
		json_t *r = json_pack("{s:O, s:f, s:f, s:s, s:s}", "sku_id", json_object_get(c, "sku_id"), "score",
				      rr_round(score), "visual", rr_round(v), "reason", reason[i], "judged_by",
				      judged[i] ? "gemini" : "local");
		json_object_set_new(r, "semantic", sem >= 0 ? json_real(rr_round(sem)) : json_null());
		json_object_set(r, "image_urls", json_object_get(c, "image_urls"));
		json_object_set(r, "metadata", json_object_get(c, "metadata"));
		json_array_append_new(ranked, r);
		free(greason[i]);
	}
	/* sort by score, best first */
	size_t m = json_array_size(ranked);
	json_t **v = xcalloc(m ? m : 1, sizeof *v);
	for (size_t i = 0; i < m; i++)
		v[i] = json_incref(json_array_get(ranked, i));
	qsort(v, m, sizeof *v, rr_by_score);
	json_array_clear(ranked);
	for (size_t i = 0; i < m; i++)
		json_array_append_new(ranked, v[i]);
	free(v);
	json_t *out = json_pack("{s:o, s:s}", "ranked", ranked, "provider", by_gemini ? "gemini" : "local");
	if (json_array_size(skip))
		json_object_set_new(out, "providers_skipped", skip);
	else
		json_decref(skip);
	rmetrics_observe_ms("llm_reranker_rerank_seconds", NULL, util_now_ms() - t0);
	return out;
}
