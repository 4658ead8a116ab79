/* providers.c — the answer's LLM chain (spec §13 step 7):
 * LLM_PRIMARY_PROVIDER (deepseek), then LLM_FALLBACK_PROVIDERS
 * (gemini,claude,qwen), each under LLM_TIMEOUT and the turn's deadline,
 * then the local responder (responder.c). Wire formats (upstreams.md §3–4):
 *
 *   deepseek  POST {DEEPSEEK_API_URL}/chat/completions, Bearer (OpenAI)
 *   gemini    POST {GEMINI_API_URL}/v1beta/models/M:generateContent,
 *             x-goog-api-key
 *   claude    POST {CLAUDE_API_URL}/v1/messages, x-api-key,
 *             anthropic-version 2023-06-01 (Messages API)
 *   qwen      POST {QWEN_API_URL}/compatible-mode/v1/chat/completions,
 *             Bearer (DashScope's OpenAI mode)
 *
 * Every provider gets the same input: the ContextPack's text as the system
 * prompt and the user's message. An answer without text is malformed, and
 * so a failure of that provider. The price table for
 * llm_orchestrator_cost_usd is below, USD per million tokens. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "llm.h"
#include "log.h"
#include "util.h"

static const char *model_of(const char *name)
{
	if (!strcmp(name, "deepseek"))
		return conf_str("DEEPSEEK_MODEL", "deepseek-chat");
	if (!strcmp(name, "gemini"))
		return conf_str("GEMINI_MODEL", "gemini-2.0-flash");
	if (!strcmp(name, "claude"))
		return conf_str("CLAUDE_MODEL", "claude-sonnet-4-20250514");
	return conf_str("QWEN_MODEL", "qwen-plus");
}

static long max_out(void)
{
	return conf_long("LLM_MAX_OUTPUT_TOKENS", 600, 16, 8192);
}

/* OpenAI chat-completions body (DeepSeek, Qwen). */
static json_t *openai_body(const char *name, const json_t *in)
{
	return json_pack("{s:s, s:[{s:s, s:O}, {s:s, s:O}], s:b, s:I}", "model", model_of(name),
			 "messages", "role", "system", "content", json_object_get(in, "system"), "role",
			 "user", "content", json_object_get(in, "message"), "stream", 0, "max_tokens",
			 (json_int_t)max_out());
}

static int deepseek_build(void *ud, const json_t *in, struct provider_request *rq, char *why, size_t wl)
{
	(void)ud, (void)why, (void)wl;
	snprintf(rq->path, sizeof rq->path, "/chat/completions");
	rq->body = openai_body("deepseek", in);
	return 0;
}

static int qwen_build(void *ud, const json_t *in, struct provider_request *rq, char *why, size_t wl)
{
	(void)ud, (void)why, (void)wl;
	snprintf(rq->path, sizeof rq->path, "/compatible-mode/v1/chat/completions");
	rq->body = openai_body("qwen", in);
	return 0;
}

static int gemini_build(void *ud, const json_t *in, struct provider_request *rq, char *why, size_t wl)
{
	(void)ud;
	const char *m = model_of("gemini");
	if (strchr(m, '/') || strchr(m, '?')) {
		snprintf(why, wl, "GEMINI_MODEL is not a model name");
		return -1;
	}
	snprintf(rq->path, sizeof rq->path, "/v1beta/models/%s:generateContent", m);
	rq->body = json_pack("{s:{s:[{s:O}]}, s:[{s:s, s:[{s:O}]}], s:{s:I}}", "systemInstruction",
			     "parts", "text", json_object_get(in, "system"), "contents", "role", "user",
			     "parts", "text", json_object_get(in, "message"), "generationConfig",
			     "maxOutputTokens", (json_int_t)max_out());
	return 0;
}

static int claude_build(void *ud, const json_t *in, struct provider_request *rq, char *why, size_t wl)
{
	(void)ud, (void)why, (void)wl;
	snprintf(rq->path, sizeof rq->path, "/v1/messages");
	rq->body = json_pack("{s:s, s:I, s:O, s:[{s:s, s:O}], s:b}", "model", model_of("claude"),
			     "max_tokens", (json_int_t)max_out(), "system", json_object_get(in, "system"),
			     "messages", "role", "user", "content", json_object_get(in, "message"),
			     "stream", 0);
	return 0;
}

static json_t *answer(const char *text, const json_t *model, const char *fallback_model,
		      json_int_t tin, json_int_t tout, char *why, size_t wl)
{
	if (!text || !*text) {
		snprintf(why, wl, "the answer has no text");
		return NULL;
	}
	return json_pack("{s:s, s:s, s:I, s:I}", "text", text, "model",
			 json_is_string(model) ? json_string_value(model) : fallback_model, "tokens_in",
			 tin, "tokens_out", tout);
}

static json_t *openai_parse(const char *name, const json_t *b, char *why, size_t wl)
{
	const json_t *msg = json_object_get(json_array_get(json_object_get(b, "choices"), 0), "message");
	const json_t *u = json_object_get(b, "usage");
	return answer(json_string_value(json_object_get(msg, "content")), json_object_get(b, "model"),
		      model_of(name), json_integer_value(json_object_get(u, "prompt_tokens")),
		      json_integer_value(json_object_get(u, "completion_tokens")), why, wl);
}

static json_t *deepseek_parse(void *ud, const json_t *b, char *why, size_t wl)
{
	(void)ud;
	return openai_parse("deepseek", b, why, wl);
}

static json_t *qwen_parse(void *ud, const json_t *b, char *why, size_t wl)
{
	(void)ud;
	return openai_parse("qwen", b, why, wl);
}

static json_t *gemini_parse(void *ud, const json_t *b, char *why, size_t wl)
{
	(void)ud;
	char *text = provider_gemini_text(b);
	const json_t *u = json_object_get(b, "usageMetadata");
	json_t *a = answer(text, json_object_get(b, "modelVersion"), model_of("gemini"),
			   json_integer_value(json_object_get(u, "promptTokenCount")),
			   json_integer_value(json_object_get(u, "candidatesTokenCount")), why, wl);
	free(text);
	return a;
}

static json_t *claude_parse(void *ud, const json_t *b, char *why, size_t wl)
{
	(void)ud;
	struct buf t = { 0 };
	size_t i;
	const json_t *p;
	json_array_foreach(json_object_get(b, "content"), i, p)
		if (json_is_string(json_object_get(p, "type")) &&
		    !strcmp(json_string_value(json_object_get(p, "type")), "text") &&
		    json_is_string(json_object_get(p, "text")))
			buf_printf(&t, "%s", json_string_value(json_object_get(p, "text")));
	const json_t *u = json_object_get(b, "usage");
	json_t *a = answer(t.data, json_object_get(b, "model"), model_of("claude"),
			   json_integer_value(json_object_get(u, "input_tokens")),
			   json_integer_value(json_object_get(u, "output_tokens")), why, wl);
	buf_free(&t);
	return a;
}

static const char *const claude_headers[] = { "anthropic-version: 2023-06-01", NULL };

/* The four, as templates; llm_chain_init copies them with LLM_TIMEOUT. */
static const struct provider known[] = {
	{ .name = "deepseek", .default_url = "https://api.deepseek.com", .build = deepseek_build,
	  .parse = deepseek_parse },
	{ .name = "gemini", .default_url = "https://generativelanguage.googleapis.com",
	  .auth = PROVIDER_AUTH_HEADER, .auth_name = "x-goog-api-key", .build = gemini_build,
	  .parse = gemini_parse },
	{ .name = "claude", .default_url = "https://api.anthropic.com", .auth = PROVIDER_AUTH_HEADER,
	  .auth_name = "x-api-key", .headers = claude_headers, .build = claude_build,
	  .parse = claude_parse },
	{ .name = "qwen", .default_url = "https://dashscope-intl.aliyuncs.com", .build = qwen_build,
	  .parse = qwen_parse },
};
#define NKNOWN (sizeof known / sizeof *known)

static struct provider chosen[NKNOWN];
static const struct provider *order[NKNOWN + 1];

/* The price table (USD per 1M tokens, input / output), list prices of
 * each provider's default model as published in 2025: deepseek-chat
 * 0.27/1.10, gemini-2.0-flash 0.10/0.40, claude-sonnet-4 3.00/15.00,
 * qwen-plus (intl) 0.40/1.20; local 0. */
static const struct {
	const char *name;
	double in, out;
} prices[] = {
	{ "deepseek", 0.27, 1.10 }, { "gemini", 0.10, 0.40 }, { "claude", 3.00, 15.00 },
	{ "qwen", 0.40, 1.20 },
};

double llm_cost_usd(const char *provider, long tin, long tout)
{
	for (size_t i = 0; i < sizeof prices / sizeof *prices; i++)
		if (!strcmp(prices[i].name, provider))
			return (prices[i].in * (double)tin + prices[i].out * (double)tout) / 1e6;
	return 0;
}

static int add_provider(const char *name, size_t *n, long timeout_ms, char *why, size_t wl)
{
	for (size_t i = 0; i < *n; i++)
		if (!strcmp(chosen[i].name, name))
			return 0; /* named twice: once is enough */
	for (size_t i = 0; i < NKNOWN; i++) {
		if (strcmp(known[i].name, name))
			continue;
		chosen[*n] = known[i];
		chosen[*n].timeout_ms = timeout_ms;
		chosen[*n].max_attempts = 1;
		order[*n] = &chosen[*n];
		(*n)++;
		order[*n] = NULL;
		return 0;
	}
	snprintf(why, wl, "unknown LLM provider \"%s\" (deepseek, gemini, claude, qwen)", name);
	return -1;
}

int llm_chain_init(const struct llm_conf *cf, char *why, size_t wl)
{
	size_t n = 0;
	order[0] = NULL;
	const char *primary = conf_str("LLM_PRIMARY_PROVIDER", "deepseek");
	if (*primary && strcmp(primary, "local") && add_provider(primary, &n, cf->llm_timeout_ms, why, wl))
		return -1;
	char *list = xstrdup(conf_str("LLM_FALLBACK_PROVIDERS", "gemini,claude,qwen"));
	int rc = 0;
	for (char *save = NULL, *p = strtok_r(list, ", ", &save); p && !rc; p = strtok_r(NULL, ", ", &save))
		if (strcmp(p, "local"))
			rc = add_provider(p, &n, cf->llm_timeout_ms, why, wl);
	free(list);
	return rc;
}

const struct provider *const *llm_chain_providers(void)
{
	return order;
}

static json_t *local_fn(void *ud, const json_t *in, char *why, size_t wl)
{
	(void)in, (void)why, (void)wl;
	return responder_answer(ud);
}

int llm_ask(struct turn *t, struct deadline dl, struct chain_result *res)
{
	static const struct chain c = { .providers = order, .local = local_fn, .reserve_ms = 50 };
	json_t *in = json_pack("{s:O, s:s}", "system", json_object_get(t->pack, "text"), "message",
			       t->message);
	int rc = chain_run(&c, t, in, dl, res);
	json_decref(in);
	return rc;
}
