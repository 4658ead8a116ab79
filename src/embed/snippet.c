/* snippet.c — memory_snippet, the episode card of a user message (spec
 * §13 ASYNC, §14's column): by default the rule of lib/shardc_rules.c
 * (shard_memory_snippet); with SNIPPET_PROVIDERS set, an LLM provider
 * chain through lib/provider.h first, under SNIPPET_TIMEOUT per message,
 * falling back to the rule whenever no provider gives a usable card.
 *
 *   gemini    POST {GEMINI_API_URL}/v1beta/models/M:generateContent,
 *             x-goog-api-key $GEMINI_API_KEY   (upstreams.md §3)
 *   deepseek  POST {DEEPSEEK_API_URL}/chat/completions,
 *             Bearer $DEEPSEEK_API_KEY          (upstreams.md §4a)
 *
 * A usable card is one line of 1..SNIPPET_MAX_CHARS characters (quotes
 * and surrounding blanks trimmed): anything else — empty, several lines,
 * longer — is a malformed answer, so a failure of that provider. After
 * SNIPPET_MAX_OUTAGE messages in a row on which every configured provider
 * failed, the run stops calling them and uses the rule: a provider that
 * is down costs a few timeouts, not one per queued message. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "embed.h"
#include "log.h"
#include "shardc.h"
#include "util.h"

#define SNIPPET_MAX_OUTAGE 3

static const char system_prompt[] =
	"You write memory cards for a fashion shopping assistant. Compress the user's chat "
	"message into one episode card of at most 80 characters, in the message's own language: "
	"keep the concrete facts (what, where, when, why) and, when the message implies one, the "
	"consequence after an arrow, as in \"В IMAX было холодно от кондиционера → брать тёплый "
	"слой\". Drop fillers and politeness. Answer with the card only: one line, no quotes, no "
	"comments.";

/* Characters (UTF-8 code points) of s[0..n). */
static size_t u8_chars(const char *s, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		k += ((unsigned char)s[i] & 0xC0) != 0x80;
	return k;
}

/* The card in a model's text, as the chain's answer {"snippet"}, or NULL
 * with why set: trimmed of blanks and one pair of quotes, one line,
 * 1..SNIPPET_MAX_CHARS characters. */
static json_t *card_from(const char *name, const char *text, char *why, size_t whylen)
{
	if (!text) {
		snprintf(why, whylen, "%s answered without a message text", name);
		return NULL;
	}
	const char *s = text, *e = text + strlen(text);
	while (s < e && strchr(" \t\r\n", *s))
		s++;
	while (e > s && strchr(" \t\r\n", e[-1]))
		e--;
	if (e - s >= 2 && ((*s == '"' && e[-1] == '"') || (*s == '\'' && e[-1] == '\''))) {
		s++;
		e--;
	}
	size_t n = (size_t)(e - s), chars = u8_chars(s, n);
	if (n == 0) {
		snprintf(why, whylen, "%s answered an empty card", name);
		return NULL;
	}
	if (memchr(s, '\n', n) || memchr(s, '\r', n)) {
		snprintf(why, whylen, "%s answered more than one line", name);
		return NULL;
	}
	if (chars > SNIPPET_MAX_CHARS) {
		snprintf(why, whylen, "%s answered %zu characters, more than %d", name, chars,
			 SNIPPET_MAX_CHARS);
		return NULL;
	}
	return json_pack("{s:s%}", "snippet", s, n);
}

static json_t *deepseek_parse(void *ud, const json_t *b, char *why, size_t whylen)
{
	(void)ud;
	return card_from("deepseek", provider_openai_text(b), why, whylen);
}

static json_t *gemini_parse(void *ud, const json_t *b, char *why, size_t whylen)
{
	(void)ud;
	char *t = provider_gemini_text(b);
	json_t *a = card_from("gemini", t, why, whylen);
	free(t);
	return a;
}

static int deepseek_build(void *ud, const json_t *in, struct provider_request *rq, char *why,
			  size_t whylen)
{
	const struct snippet_chain *sc = ud;
	(void)why, (void)whylen;
	snprintf(rq->path, sizeof rq->path, "/chat/completions");
	rq->body = json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:O}], s:b, s:f, s:i}", "model",
			     sc->deepseek_model, "messages", "role", "system", "content", system_prompt,
			     "role", "user", "content", json_object_get(in, "content"), "stream", 0,
			     "temperature", 0.2, "max_tokens", 80);
	return rq->body ? 0 : -1;
}

static int gemini_build(void *ud, const json_t *in, struct provider_request *rq, char *why,
			size_t whylen)
{
	const struct snippet_chain *sc = ud;
	if (strchr(sc->gemini_model, '/') || strchr(sc->gemini_model, '?')) {
		snprintf(why, whylen, "SNIPPET_GEMINI_MODEL is not a model name");
		return -1;
	}
	snprintf(rq->path, sizeof rq->path, "/v1beta/models/%s:generateContent", sc->gemini_model);
	rq->body = json_pack("{s:{s:[{s:s}]}, s:[{s:s, s:[{s:O}]}], s:{s:f, s:i}}",
			     "systemInstruction", "parts", "text", system_prompt, "contents", "role",
			     "user", "parts", "text", json_object_get(in, "content"),
			     "generationConfig", "temperature", 0.2, "maxOutputTokens", 80);
	return rq->body ? 0 : -1;
}

static const char *const json_headers[] = { "Content-Type: application/json", NULL };

/* The chain's stand-in: the rule. */
static json_t *rule_local(void *ud, const json_t *in, char *why, size_t whylen)
{
	(void)ud;
	char *s = shard_memory_snippet(json_string_value(json_object_get(in, "content")),
				       SNIPPET_MAX_CHARS);
	if (!s) {
		snprintf(why, whylen, "no content word to keep");
		return NULL;
	}
	json_t *a = json_pack("{s:s}", "snippet", s);
	free(s);
	return a;
}

void snippet_init(struct snippet_chain *sc)
{
	memset(sc, 0, sizeof *sc);
	sc->gemini_model = conf_str("SNIPPET_GEMINI_MODEL", "gemini-2.0-flash-lite");
	sc->deepseek_model = conf_str("SNIPPET_DEEPSEEK_MODEL", "deepseek-chat");
	sc->timeout_ms = (long)(conf_double("SNIPPET_TIMEOUT", 3, 0.05, 600) * 1000);
	const char *list = conf_str("SNIPPET_PROVIDERS", "");
	char buf[256];
	if (strlen(list) >= sizeof buf)
		conf_die("SNIPPET_PROVIDERS", "SNIPPET_PROVIDERS is too long");
	snprintf(buf, sizeof buf, "%s", list);
	char *save = NULL;
	for (char *name = strtok_r(buf, ", ", &save); name; name = strtok_r(NULL, ", ", &save)) {
		if (!strcmp(name, "local") || !strcmp(name, "rule") || !strcmp(name, "none"))
			continue;
		if (sc->n == SNIPPET_MAX_PROVIDERS)
			conf_die("SNIPPET_PROVIDERS", "SNIPPET_PROVIDERS names more than %d providers",
				 SNIPPET_MAX_PROVIDERS);
		struct provider *p = &sc->list[sc->n];
		if (!strcmp(name, "gemini"))
			*p = (struct provider){ .name = "gemini",
						.default_url = "https://generativelanguage.googleapis.com",
						.auth = PROVIDER_AUTH_HEADER, .auth_name = "x-goog-api-key",
						.build = gemini_build, .parse = gemini_parse };
		else if (!strcmp(name, "deepseek"))
			*p = (struct provider){ .name = "deepseek", .default_url = "https://api.deepseek.com",
						.build = deepseek_build, .parse = deepseek_parse };
		else
			conf_die("SNIPPET_PROVIDERS",
				 "SNIPPET_PROVIDERS: unknown provider '%s' (gemini, deepseek or local)", name);
		for (size_t k = 0; k < sc->n; k++)
			if (!strcmp(sc->list[k].name, p->name))
				conf_die("SNIPPET_PROVIDERS", "SNIPPET_PROVIDERS names %s twice", p->name);
		p->headers = json_headers;
		p->max_attempts = 1; /* the next provider, or the rule, is the retry */
		if (provider_configured(p))
			sc->order[sc->live++] = p;
		else
			log_event(LOG_INFO, "snippet provider skipped: no key",
				  json_pack("{s:s}", "provider", p->name));
		sc->n++;
	}
	sc->order[sc->live] = NULL;
	sc->chain = (struct chain){ .providers = sc->order, .local = rule_local, .reserve_ms = 5 };
}

char *snippet_make(struct snippet_chain *sc, const char *content, char *provider, size_t plen)
{
	snprintf(provider, plen, "local");
	if (!sc->live || sc->outage >= SNIPPET_MAX_OUTAGE) {
		sc->fallbacks += sc->live > 0;
		char *s = shard_memory_snippet(content, SNIPPET_MAX_CHARS);
		if (s)
			sc->by_rule++;
		return s;
	}
	json_t *in = json_pack("{s:s}", "content", content);
	struct chain_result res;
	chain_run(&sc->chain, sc, in, deadline_in(sc->timeout_ms), &res);
	json_decref(in);
	char *out = res.answer ? strdup(json_string_value(json_object_get(res.answer, "snippet")))
			       : NULL;
	if (res.answer && !out)
		log_event(LOG_ERROR, "out of memory for a snippet", NULL);
	int by_llm = res.answer && strcmp(res.provider, "local") != 0;
	if (out) {
		snprintf(provider, plen, "%s", res.provider);
		if (by_llm)
			sc->by_llm++;
		else
			sc->by_rule++;
	}
	if (by_llm) {
		sc->outage = 0;
	} else {
		sc->fallbacks++;
		if (++sc->outage == SNIPPET_MAX_OUTAGE)
			log_event(LOG_WARN, "snippet providers failed on every recent message: the rule only for the rest of the run",
				  json_pack("{s:i}", "messages", SNIPPET_MAX_OUTAGE));
	}
	chain_result_free(&res);
	return out;
}
