/* stream.c — the answer's LLM chain, streamed (spec §13 step 7, "streaming
 * where the provider streams"): the same providers in the same order as
 * providers.c, each asked for a streamed answer in its own wire format
 * (upstreams.md §3–4):
 *
 *   deepseek, qwen  "stream": true (+ stream_options.include_usage): SSE
 *                   data: {choices:[{delta:{content}}]} … data: [DONE]
 *   gemini          :streamGenerateContent?alt=sse: SSE data:
 *                   GenerateContentResponse chunks, the last with
 *                   finishReason (no [DONE])
 *   claude          "stream": true: named events message_start,
 *                   content_block_delta {delta:{type:text_delta, text}},
 *                   message_delta (usage), message_stop; ping; error
 *
 * The body is parsed as it arrives (lib/sse, bounded events) and the text
 * leaves as progress lines {"stage":"delta","seq","provider","text"} cut
 * at sentence ends, before the turn's final line ("stage":"done").
 *
 * Fallback: a provider that fails before its first delta line is skipped
 * as in the plain chain, and nobody saw anything of it. One that fails
 * after (cut connection, garbage or an error event, timeout, a stream
 * without its end marker) is skipped too, and a {"stage":"discard"} line
 * tells the client to drop every delta since the previous discard; the
 * next provider (or the local responder, whose text leaves as deltas too)
 * answers from the start. So the deltas after the last discard always
 * concatenate to the final line's text, which is what is saved. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "llm.h"
#include "log.h"
#include "sse.h"
#include "util.h"

enum wire { WIRE_OPENAI, WIRE_GEMINI, WIRE_CLAUDE };

/* A delta line is cut at a sentence end; text with none is cut at a space
 * past this many bytes, and at any byte past STREAM_HARD_CUT. */
#define STREAM_SOFT_CUT 240
#define STREAM_HARD_CUT 1024
#define STREAM_MAX_TEXT ((size_t)256 << 10) /* one answer's text */
#define STREAM_MAX_EVENT ((size_t)256 << 10) /* one SSE event */

/* One turn's streaming: what was said so far and where the lines go. */
struct stream_turn {
	struct turn *t;
	llm_emit_fn emit;
	void *emit_ud;
	long seq;        /* delta lines of the turn, all providers */
};

/* One provider's streamed answer. */
struct stream_call {
	struct stream_turn *st;
	const struct provider *p;
	enum wire wire;
	struct buf text;  /* everything it said */
	size_t emitted;   /* bytes of text already sent as delta lines */
	long deltas;      /* delta lines of this provider */
	int done;         /* its end marker was seen */
	int bad;          /* a garbage or error event stopped it */
	char why[256];
	json_int_t tin, tout;
	char model[128];
};

static enum wire wire_of(const char *name)
{
	if (!strcmp(name, "gemini"))
		return WIRE_GEMINI;
	if (!strcmp(name, "claude"))
		return WIRE_CLAUDE;
	return WIRE_OPENAI;
}

static void stream_model(struct stream_call *sc, const json_t *m)
{
	if (json_is_string(m))
		snprintf(sc->model, sizeof sc->model, "%s", json_string_value(m));
}

/* The plain request of providers.c, turned into its streamed form. */
static int stream_build(void *ud, const json_t *in, struct provider_request *rq, char *why, size_t wl)
{
	struct stream_call *sc = ud;
	if (sc->p->build(sc->st->t, in, rq, why, wl) != 0)
		return -1;
	/* the model asked for, until the stream names the one that answered */
	stream_model(sc, json_object_get(rq->body, "model"));
	if (sc->wire == WIRE_GEMINI) {
		const char *m0 = strstr(rq->path, "/models/"), *m1 = strchr(rq->path, ':');
		if (m0 && m1 && m1 > m0 + 8)
			snprintf(sc->model, sizeof sc->model, "%.*s", (int)(m1 - m0 - 8), m0 + 8);
		char *m = strstr(rq->path, ":generateContent");
		if (!m) {
			snprintf(why, wl, "not a generateContent path");
			return -1;
		}
		snprintf(m, sizeof rq->path - (size_t)(m - rq->path), ":streamGenerateContent?alt=sse");
		return 0;
	}
	json_object_set_new(rq->body, "stream", json_true());
	if (sc->wire == WIRE_OPENAI)
		json_object_set_new(rq->body, "stream_options", json_pack("{s:b}", "include_usage", 1));
	return 0;
}

/* Where the pending text p[0..n) may be cut for a delta line (0: not yet):
 * after the whitespace that follows a sentence's end (. ! ? …) or a line
 * break; a long run without one at its last space, or whole. Only ASCII
 * bytes are cut after, so a line is whole UTF-8. */
static size_t stream_cut(const char *p, size_t n)
{
	size_t cut = 0, space = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		int end = c == '.' || c == '!' || c == '?' ||
			  (c == 0xA6 && i >= 2 && (unsigned char)p[i - 2] == 0xE2 &&
			   (unsigned char)p[i - 1] == 0x80); /* … U+2026 */
		if (c == '\n') {
			cut = i + 1;
		} else if (end && i + 1 < n && (p[i + 1] == ' ' || p[i + 1] == '\n')) {
			size_t j = i + 1;
			while (j < n && (p[j] == ' ' || p[j] == '\n'))
				j++;
			if (j < n) /* the whitespace run is complete */
				cut = j;
		}
		if (c == ' ')
			space = i + 1;
	}
	if (cut)
		return cut;
	if (n >= STREAM_SOFT_CUT && space)
		return space;
	return n >= STREAM_HARD_CUT ? n : 0;
}

/* Send what can go as delta lines now (all: everything left). */
static void stream_flush(struct stream_call *sc, const char *provider, int all)
{
	for (;;) {
		const char *p = sc->text.data ? sc->text.data + sc->emitted : "";
		size_t n = sc->text.len - sc->emitted;
		size_t cut = all ? n : stream_cut(p, n);
		if (!cut)
			return;
		json_t *line = json_pack("{s:s, s:I, s:s, s:s%}", "stage", "delta", "seq",
					 (json_int_t)sc->st->seq, "provider", provider, "text", p, cut);
		if (sc->st->t->request_id)
			json_object_set_new(line, "request_id", json_string(sc->st->t->request_id));
		sc->st->emit(sc->st->emit_ud, line);
		sc->st->seq++;
		sc->deltas++;
		sc->emitted += cut;
	}
}

/* The stream is not an answer (garbage, an error event): stop it. */
static int stream_fail(struct stream_call *sc, const char *what, const char *detail)
{
	sc->bad = 1;
	snprintf(sc->why, sizeof sc->why, "%s%s", what, detail ? detail : "");
	return -1;
}

/* Text the provider added: kept (bounded) and sent on at sentence ends. */
static int stream_text(struct stream_call *sc, const char *s)
{
	if (!s || !*s)
		return 0;
	sc->text.limit = STREAM_MAX_TEXT;
	if (buf_append(&sc->text, s, strlen(s)) != 0)
		return stream_fail(sc, "the answer is longer than 256 KiB", NULL);
	stream_flush(sc, sc->p->name, 0);
	return 0;
}

/* An error object inside a stream: the provider failed mid-answer. */
static int stream_error_event(struct stream_call *sc, const json_t *err)
{
	const char *m = json_string_value(json_object_get(err, "message"));
	return stream_fail(sc, "an error event in the stream: ", m ? m : "(no message)");
}

static int openai_event(struct stream_call *sc, const json_t *j)
{
	const json_t *err = json_object_get(j, "error");
	if (err && !json_is_null(err))
		return stream_error_event(sc, err);
	stream_model(sc, json_object_get(j, "model"));
	const json_t *u = json_object_get(j, "usage");
	if (json_is_object(u)) {
		sc->tin = json_integer_value(json_object_get(u, "prompt_tokens"));
		sc->tout = json_integer_value(json_object_get(u, "completion_tokens"));
	}
	const json_t *ch = json_object_get(j, "choices");
	if (!json_is_array(ch))
		return stream_fail(sc, "a chunk without choices", NULL);
	const json_t *d = json_object_get(json_array_get(ch, 0), "delta");
	return stream_text(sc, json_string_value(json_object_get(d, "content")));
}

static int gemini_event(struct stream_call *sc, const json_t *j)
{
	const json_t *err = json_object_get(j, "error");
	if (err)
		return stream_error_event(sc, err);
	stream_model(sc, json_object_get(j, "modelVersion"));
	const json_t *u = json_object_get(j, "usageMetadata");
	if (json_is_object(u)) {
		sc->tin = json_integer_value(json_object_get(u, "promptTokenCount"));
		sc->tout = json_integer_value(json_object_get(u, "candidatesTokenCount"));
	}
	const json_t *c0 = json_array_get(json_object_get(j, "candidates"), 0);
	if (!c0) {
		const char *br = json_string_value(
			json_object_get(json_object_get(j, "promptFeedback"), "blockReason"));
		return stream_fail(sc, "a chunk without candidates", br ? " (blocked)" : "");
	}
	char *t = provider_gemini_text(j);
	int rc = stream_text(sc, t);
	free(t);
	if (json_is_string(json_object_get(c0, "finishReason")))
		sc->done = 1;
	return rc;
}

static int claude_event(struct stream_call *sc, const char *event, const json_t *j)
{
	const char *type = json_string_value(json_object_get(j, "type"));
	if (!strcmp(event, "message") && type)
		event = type; /* an event without its name line: its data says */
	if (!strcmp(event, "error"))
		return stream_error_event(sc, json_object_get(j, "error"));
	if (!strcmp(event, "message_start")) {
		const json_t *m = json_object_get(j, "message");
		stream_model(sc, json_object_get(m, "model"));
		sc->tin = json_integer_value(json_object_get(json_object_get(m, "usage"), "input_tokens"));
	} else if (!strcmp(event, "content_block_delta")) {
		const json_t *d = json_object_get(j, "delta");
		const char *dt = json_string_value(json_object_get(d, "type"));
		if (dt && !strcmp(dt, "text_delta"))
			return stream_text(sc, json_string_value(json_object_get(d, "text")));
	} else if (!strcmp(event, "message_delta")) {
		const json_t *u = json_object_get(j, "usage");
		if (json_object_get(u, "output_tokens"))
			sc->tout = json_integer_value(json_object_get(u, "output_tokens"));
	} else if (!strcmp(event, "message_stop")) {
		sc->done = 1;
	}
	return 0; /* ping, content_block_start/stop, newer events: nothing to take */
}

/* One SSE event of the provider's stream (lib/sse's callback). */
static int stream_event(void *ud, const char *event, const char *data, size_t len)
{
	struct stream_call *sc = ud;
	if (sc->done)
		return 0; /* after the end marker: nothing more is the answer */
	if (sc->wire == WIRE_OPENAI && len == 6 && !memcmp(data, "[DONE]", 6)) {
		sc->done = 1;
		return 0;
	}
	json_error_t je;
	json_t *j = json_loadb(data, len, 0, &je);
	if (!json_is_object(j)) {
		json_decref(j);
		return stream_fail(sc, "an event that is not a JSON object", NULL);
	}
	int rc = sc->wire == WIRE_OPENAI   ? openai_event(sc, j)
		 : sc->wire == WIRE_GEMINI ? gemini_event(sc, j)
					   : claude_event(sc, event, j);
	json_decref(j);
	return rc;
}

/* Ask one provider for a streamed answer. PROVIDER_ANSWERED with
 * sc->text whole, or the reason it failed with msg. */
static enum provider_skip stream_call(struct stream_call *sc, const json_t *in, struct deadline dl,
				      long *http_status, char *msg, size_t ml)
{
	struct provider_http h;
	enum provider_skip why = PROVIDER_ANSWERED;
	if (provider_http_prepare(sc->p, sc, in, stream_build, &h, &why, msg, ml) != 0)
		return why;
	struct sse sse;
	sse_init(&sse, stream_event, sc);
	sse.max_event = STREAM_MAX_EVENT;
	struct http_request hr = {
		.method = h.method,
		.url = h.url.data,
		.headers = h.headers,
		.body = h.body,
		.body_len = h.body ? strlen(h.body) : 0,
		.timeout_ms = sc->p->timeout_ms,
		.max_attempts = 1,
		.deadline = dl,
		.on_chunk = sse_chunk,
		.chunk_ud = &sse,
	};
	struct http_response r;
	http_perform(&hr, &r);
	provider_http_free(&h);
	if (!sc->bad && !sc->done && r.status >= 200 && r.status < 300)
		sse_feed(&sse, "\n\n", 2); /* a last event without its blank line */
	sse_free(&sse);
	*http_status = r.status;
	if (sc->bad) {
		snprintf(msg, ml, "%s", sc->why);
		why = PROVIDER_MALFORMED;
	} else if (r.status == 0 && r.streamed && !r.timed_out) {
		snprintf(msg, ml, "the stream broke off: %s", r.error);
		why = PROVIDER_UNREACHABLE;
	} else if (r.status == 0 && sse.failed) {
		snprintf(msg, ml, "an event longer than %zu bytes", STREAM_MAX_EVENT);
		why = PROVIDER_MALFORMED;
	} else if (r.status < 200 || r.status >= 300) {
		why = provider_http_failure(sc->p, &r, msg, ml);
	} else if (!sc->done) {
		snprintf(msg, ml, "the stream ended without its end marker");
		why = PROVIDER_MALFORMED;
	} else if (!sc->text.len) {
		snprintf(msg, ml, "the answer has no text");
		why = PROVIDER_MALFORMED;
	}
	http_response_free(&r);
	return why;
}

/* The skipped provider's entry (as chain_run's) and the discard line when
 * the client had seen some of its text. */
static void stream_skipped(struct chain_result *res, struct stream_call *sc, enum provider_skip why,
			   long status, const char *msg)
{
	json_t *s = json_pack("{s:s, s:s, s:s}", "provider", sc->p->name, "reason",
			      provider_skip_name(why), "message", msg);
	if (status)
		json_object_set_new(s, "status", json_integer(status));
	if (sc->deltas) {
		json_object_set_new(s, "deltas_discarded", json_integer(sc->deltas));
		json_t *line = json_pack("{s:s, s:s, s:s, s:I}", "stage", "discard", "provider",
					 sc->p->name, "reason", provider_skip_name(why), "seq",
					 (json_int_t)sc->st->seq);
		if (sc->st->t->request_id)
			json_object_set_new(line, "request_id", json_string(sc->st->t->request_id));
		sc->st->emit(sc->st->emit_ud, line);
		sc->st->seq++;
	}
	json_array_append_new(res->skipped, s);
	log_event(LOG_WARN, "provider skipped",
		  json_pack("{s:s, s:s, s:s, s:I}", "provider", sc->p->name, "reason",
			    provider_skip_name(why), "error", msg, "deltas_discarded",
			    (json_int_t)sc->deltas));
}

int llm_ask_stream(struct turn *t, struct deadline dl, struct chain_result *res, llm_emit_fn emit,
		   void *emit_ud)
{
	memset(res, 0, sizeof *res);
	res->skipped = json_array();
	struct stream_turn st = { .t = t, .emit = emit, .emit_ud = emit_ud };
	json_t *in = json_pack("{s:O, s:s}", "system", json_object_get(t->pack, "text"), "message",
			       t->message);
	struct deadline up = deadline_less(dl, 50); /* the local responder's reserve */
	for (const struct provider *const *pp = llm_chain_providers(); pp && *pp; pp++) {
		struct stream_call sc = { .st = &st, .p = *pp, .wire = wire_of((*pp)->name) };
		char msg[384] = "";
		long status = 0;
		enum provider_skip why;
		if (!provider_configured(sc.p)) {
			why = PROVIDER_NO_KEY;
			snprintf(msg, sizeof msg, "no key set");
		} else if (ms_left(up) < 20) {
			why = PROVIDER_NO_TIME;
			snprintf(msg, sizeof msg, "%ld ms left of the deadline", ms_left(up));
		} else {
			why = stream_call(&sc, in, up, &status, msg, sizeof msg);
		}
		if (why == PROVIDER_ANSWERED) {
			stream_flush(&sc, sc.p->name, 1);
			res->answer = json_pack("{s:s, s:s, s:I, s:I}", "text", sc.text.data, "model",
						sc.model[0] ? sc.model : sc.p->name, "tokens_in", sc.tin,
						"tokens_out", sc.tout);
			snprintf(res->provider, sizeof res->provider, "%s", sc.p->name);
			buf_free(&sc.text);
			json_decref(in);
			return 0;
		}
		stream_skipped(res, &sc, why, status, msg);
		buf_free(&sc.text);
	}
	json_decref(in);
	/* the local responder always answers; its text leaves as deltas too */
	res->answer = responder_answer(t);
	snprintf(res->provider, sizeof res->provider, "local");
	struct stream_call sc = { .st = &st };
	const char *text = json_string_value(json_object_get(res->answer, "text"));
	if (text && buf_append(&sc.text, text, strlen(text)) == 0) {
		stream_flush(&sc, "local", 0); /* by sentence, as a provider's */
		stream_flush(&sc, "local", 1);
	}
	buf_free(&sc.text);
	return 0;
}
