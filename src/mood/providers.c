/* providers.c — DeepSeek and Gemini as mood classifiers (see providers.h). */
#include "config.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "conf.h"
#include "providers.h"
#include "util.h"

/* The system prompt: the model answers with these keys only. */
static const char system_prompt[] =
    "You are the mood sensor of a shopping assistant's chat. Read the user's message "
    "(Russian or English, maybe partial speech recognition) and answer with one JSON object "
    "only, no prose: {\"valence\":0..1 (0.5 neutral),\"arousal\":0..1,\"dominance\":0..1,"
    "\"frustration\":0..1,\"urgency\":0..1,\"confidence\":0..1,\"fatigue\":0..1,"
    "\"topic_shift\":true|false,\"thread_break\":true|false}. Sarcasm counts as negative.";

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

/* The model's text inside a Gemini generateContent answer. */
static const char *gemini_text(const json_t *body)
{
	const json_t *cand = json_array_get(json_object_get(body, "candidates"), 0);
	return json_string_value(json_object_get(
		json_array_get(json_object_get(json_object_get(cand, "content"), "parts"), 0),
		"text"));
}

/* The seven numbers as the chain's answer object. */
static json_t *reading_json(const struct mood_reading *r)
{
	return json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:b, s:b}", "valence", r->valence,
			 "arousal", r->arousal, "dominance", r->dominance, "frustration",
			 r->frustration, "urgency", r->urgency, "confidence", r->confidence,
			 "fatigue", r->fatigue, "topic_shift", r->topic_shift, "thread_break",
			 r->thread_break);
}

/* Validate the model's text and keep the reading in the chain. why starts
 * with the mood code ("bad_answer", "out_of_range") the metrics count. */
static json_t *answer_from(struct mood_chain *c, const char *name, const char *text, char *why,
			   size_t whylen)
{
	char code[32] = "";
	if (!text) {
		snprintf(why, whylen, "bad_answer: %s answered without the expected message text",
			 name);
		return NULL;
	}
	if (mood_parse_answer(text, &c->reading, code, sizeof code) != 0) {
		snprintf(why, whylen, "%s: %s answered %s", code, name,
			 strcmp(code, "out_of_range") == 0 ? "a number outside [0,1]"
							  : "no mood JSON with the seven numbers");
		return NULL;
	}
	return reading_json(&c->reading);
}

static json_t *deepseek_parse(void *ud, const json_t *body, char *why, size_t whylen)
{
	return answer_from(ud, "deepseek", provider_openai_text(body), why, whylen);
}

static json_t *gemini_parse(void *ud, const json_t *body, char *why, size_t whylen)
{
	return answer_from(ud, "gemini", gemini_text(body), why, whylen);
}

/* The request for role k: the system prompt and the user's text. */
static int build_role(struct mood_chain *c, int k, const json_t *input,
		      struct provider_request *rq)
{
	const struct mood_provider *mp = &c->role[k];
	const char *text = json_string_value(json_object_get(input, "text"));
	if (!text)
		return -1;
	if (mp->p.parse == gemini_parse) {
		snprintf(rq->path, sizeof rq->path, "/v1beta/models/%s:generateContent", mp->model);
		rq->body = json_pack("{s:{s:[{s:s}]}, s:[{s:s, s:[{s:s}]}], s:{s:f, s:s}}",
				     "systemInstruction", "parts", "text", system_prompt,
				     "contents", "role", "user", "parts", "text", text,
				     "generationConfig", "temperature", 0.0, "responseMimeType",
				     "application/json");
	} else {
		snprintf(rq->path, sizeof rq->path, "/chat/completions");
		rq->body = json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:s}], s:b, s:f, s:i, s:{s:s}}",
				     "model", mp->model, "messages", "role", "system", "content",
				     system_prompt, "role", "user", "content", text, "stream", 0,
				     "temperature", 0.0, "max_tokens", 200, "response_format",
				     "type", "json_object");
	}
	return rq->body ? 0 : -1;
}

/* A builder per role, so each knows its model. */
static int build_role0(void *ud, const json_t *input, struct provider_request *rq, char *why,
		       size_t whylen)
{
	snprintf(why, whylen, "no text");
	return build_role(ud, 0, input, rq);
}

static int build_role1(void *ud, const json_t *input, struct provider_request *rq, char *why,
		       size_t whylen)
{
	snprintf(why, whylen, "no text");
	return build_role(ud, 1, input, rq);
}

/* The chain's stand-in: the lexicon classifier, here. */
static json_t *mood_local(void *ud, const json_t *input, char *why, size_t whylen)
{
	struct mood_chain *c = ud;
	const json_t *t = json_object_get(input, "text");
	size_t bad = 0;
	if (mood_classify(c->lexicon, c->stemmer, json_string_value(t), json_string_length(t),
			  &c->reading, &bad) != 0) {
		snprintf(c->local_why, sizeof c->local_why, "field text: invalid UTF-8 at byte %zu",
			 bad);
		snprintf(why, whylen, "%s", c->local_why);
		return NULL;
	}
	return reading_json(&c->reading);
}

void mood_chain_init(struct mood_chain *c, const struct lexicon *lx, struct stemmer *st)
{
	memset(c, 0, sizeof *c);
	c->lexicon = lx;
	c->stemmer = st;
	c->chain = (struct chain){ .providers = c->list, .local = mood_local };
}

int mood_chain_add(struct mood_chain *c, const char *name, const char *model_var,
		   const char *key_var, int *added)
{
	assert(c->n < MOOD_MAX_PROVIDERS);
	static const char *const json_headers[] = { "Content-Type: application/json", NULL };
	struct mood_provider *mp = &c->role[c->n];
	const char *default_model;
	memset(mp, 0, sizeof *mp);
	*added = 0;
	if (strcmp(name, "deepseek") == 0) {
		mp->p = (struct provider){ .name = "deepseek",
					   .default_url = "https://api.deepseek.com",
					   .auth = PROVIDER_AUTH_BEARER, .parse = deepseek_parse };
		default_model = "deepseek-chat";
	} else if (strcmp(name, "gemini") == 0) {
		mp->p = (struct provider){ .name = "gemini",
					   .default_url = "https://generativelanguage.googleapis.com",
					   .auth = PROVIDER_AUTH_HEADER, .auth_name = "x-goog-api-key",
					   .parse = gemini_parse };
		default_model = "gemini-2.0-flash-lite";
	} else {
		return -1;
	}
	mp->p.headers = json_headers;
	mp->p.key_var = key_var;
	mp->p.max_attempts = 1; /* the deadline leaves no room for a retry */
	mp->p.build = c->n == 0 ? build_role0 : build_role1;
	mp->model = conf_str(model_var, default_model);
	if (!provider_configured(&mp->p))
		return 0;
	c->list[c->n++] = &mp->p;
	c->list[c->n] = NULL;
	*added = 1;
	return 0;
}
