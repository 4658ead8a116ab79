/* providers.c — DeepSeek and Gemini as mood classifiers (see providers.h). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "conf.h"
#include "http.h"
#include "providers.h"
#include "util.h"

/* The system prompt: the model answers with these keys only. */
static const char system_prompt[] =
    "You are the mood sensor of a shopping assistant's chat. Read the user's message "
    "(Russian or English, maybe partial speech recognition) and answer with one JSON object "
    "only, no prose: {\"valence\":0..1 (0.5 neutral),\"arousal\":0..1,\"dominance\":0..1,"
    "\"frustration\":0..1,\"urgency\":0..1,\"confidence\":0..1,\"fatigue\":0..1,"
    "\"topic_shift\":true|false,\"thread_break\":true|false}. Sarcasm counts as negative.";

int mood_provider_config(struct mood_provider *p, const char *name, const char *model_var,
			 const char *default_model, const char *key_var)
{
	memset(p, 0, sizeof *p);
	if (strcmp(name, "deepseek") == 0) {
		p->name = "deepseek";
		p->base_url = conf_str("DEEPSEEK_API_URL", "https://api.deepseek.com");
		default_model = default_model ? default_model : "deepseek-chat";
	} else if (strcmp(name, "gemini") == 0) {
		p->name = "gemini";
		p->base_url = conf_str("GEMINI_API_URL", "https://generativelanguage.googleapis.com");
		default_model = default_model ? default_model : "gemini-2.0-flash-lite";
	} else {
		return -1;
	}
	p->model = conf_str(model_var, default_model);
	const char *key = conf_str(key_var, "");
	p->api_key = key && *key ? key : NULL;
	return 0;
}

static int take(const json_t *o, const char *k, double *out, char *code, size_t codelen)
{
	const json_t *v = json_object_get(o, k);
	if (!json_is_number(v)) {
		snprintf(code, codelen, "bad_answer");
		return -1;
	}
	double d = json_number_value(v);
	if (!(d >= 0 && d <= 1)) {
		snprintf(code, codelen, "out_of_range");
		return -1;
	}
	*out = d;
	return 0;
}

int mood_parse_answer(const char *text, struct mood_reading *out, char *code, size_t codelen)
{
	memset(out, 0, sizeof *out);
	/* models sometimes fence JSON in ```json … ``` */
	const char *s = strchr(text, '{'), *e = strrchr(text, '}');
	if (!s || !e || e < s) {
		snprintf(code, codelen, "bad_answer");
		return -1;
	}
	json_error_t jerr;
	json_t *o = json_loadb(s, (size_t)(e - s + 1), JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(o)) {
		json_decref(o);
		snprintf(code, codelen, "bad_answer");
		return -1;
	}
	int rc = take(o, "valence", &out->valence, code, codelen) ||
		 take(o, "arousal", &out->arousal, code, codelen) ||
		 take(o, "dominance", &out->dominance, code, codelen) ||
		 take(o, "frustration", &out->frustration, code, codelen) ||
		 take(o, "urgency", &out->urgency, code, codelen) ||
		 take(o, "confidence", &out->confidence, code, codelen) ||
		 take(o, "fatigue", &out->fatigue, code, codelen);
	if (!rc) {
		out->topic_shift = json_is_true(json_object_get(o, "topic_shift"));
		out->thread_break = json_is_true(json_object_get(o, "thread_break"));
		out->compound = 2 * out->valence - 1;
	}
	json_decref(o);
	return rc ? -1 : 0;
}

int mood_provider_ask(const struct mood_provider *p, const char *text, long timeout_ms,
		      struct mood_reading *out, char *code, size_t codelen, char *msg, size_t msglen)
{
	char url[1024], auth[600];
	json_t *body;
	const char *headers[4] = {"Content-Type: application/json", auth, NULL, NULL};
	int gemini = strcmp(p->name, "gemini") == 0;
	if (gemini) {
		snprintf(url, sizeof url, "%s/v1beta/models/%s:generateContent", p->base_url,
			 p->model);
		snprintf(auth, sizeof auth, "x-goog-api-key: %s", p->api_key);
		body = json_pack("{s:{s:[{s:s}]}, s:[{s:s, s:[{s:s}]}], s:{s:f, s:s}}",
				 "systemInstruction", "parts", "text", system_prompt, "contents",
				 "role", "user", "parts", "text", text, "generationConfig",
				 "temperature", 0.0, "responseMimeType", "application/json");
	} else {
		snprintf(url, sizeof url, "%s/chat/completions", p->base_url);
		snprintf(auth, sizeof auth, "Authorization: Bearer %s", p->api_key);
		body = json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:s}], s:b, s:f, s:i, s:{s:s}}",
				 "model", p->model, "messages", "role", "system", "content",
				 system_prompt, "role", "user", "content", text, "stream", 0,
				 "temperature", 0.0, "max_tokens", 200, "response_format", "type",
				 "json_object");
	}
	char *payload = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	struct http_request req = {
	    .method = "POST",
	    .url = url,
	    .headers = headers,
	    .body = payload,
	    .body_len = strlen(payload),
	    .connect_timeout_ms = timeout_ms,
	    .timeout_ms = timeout_ms,
	    .max_attempts = 1, /* the deadline leaves no room for a retry */
	    .max_response = 1 << 20,
	};
	struct http_response resp;
	int rc = http_perform(&req, &resp);
	free(payload);
	int result = -1;
	if (rc != 0) {
		snprintf(code, codelen, "%s", resp.timed_out ? "timeout" : "unreachable");
		snprintf(msg, msglen, "%s: %s", p->name, resp.error);
		goto done;
	}
	if (resp.status != 200) {
		snprintf(code, codelen, "http_%ld", resp.status);
		snprintf(msg, msglen, "%s answered HTTP %ld", p->name, resp.status);
		goto done;
	}
	json_error_t jerr;
	json_t *o = json_loads(resp.body.data ? resp.body.data : "", 0, &jerr);
	const char *content = NULL;
	if (gemini) {
		content = json_string_value(json_object_get(
		    json_array_get(json_object_get(
				       json_object_get(json_array_get(json_object_get(o, "candidates"), 0),
						       "content"),
				       "parts"),
				   0),
		    "text"));
	} else {
		content = json_string_value(json_object_get(
		    json_object_get(json_array_get(json_object_get(o, "choices"), 0), "message"),
		    "content"));
	}
	if (!content) {
		snprintf(code, codelen, "bad_answer");
		snprintf(msg, msglen, "%s answered without the expected message text", p->name);
	} else if (mood_parse_answer(content, out, code, codelen) != 0) {
		snprintf(msg, msglen, "%s answered %s", p->name,
			 strcmp(code, "out_of_range") == 0 ? "a number outside [0,1]"
							  : "no mood JSON with the seven numbers");
	} else {
		result = 0;
	}
	json_decref(o);
done:
	http_response_free(&resp);
	return result;
}
