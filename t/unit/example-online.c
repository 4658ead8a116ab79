/* example-online — the pattern of an online UNDE command, in one page.
 *
 * It greets: {"user_id","name"} → {"greeting","provider",…}. The greeting
 * comes from the "greeter" provider ($GREETER_API_URL, $GREETER_API_KEY),
 * or, when that has no key, fails or is too slow for the budget, from the
 * local stand-in; with "ask":true the record is also sent to the sibling
 * service "echo" ($ECHO_URL/reply), its answer kept as "sibling". Counts go
 * to $UNDE_COUNTERS_DIR/example-online.counters (all processes share it). */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "cache.h"
#include "counters.h"
#include "filter.h"
#include "provider.h"
#include "svc.h"

struct example {
	const char *salute;   /* --salute */
	long long reserve_ms; /* --reserve-ms */
	struct counters *k;
	struct cache *recent;
};

/* The greeter's wire format: POST /echo {"text"} → {"body":"…"} (the echo fake). */
static int greeter_build(void *ud, const json_t *in, struct provider_request *rq, char *why,
			 size_t len)
{
	const struct example *x = ud;
	(void)why, (void)len;
	snprintf(rq->path, sizeof rq->path, "/echo");
	char text[256];
	snprintf(text, sizeof text, "%s, %s!", x->salute,
		 json_string_value(json_object_get(in, "name")));
	rq->body = json_pack("{s:s}", "text", text);
	return 0;
}

/* The answer's validator: a body that is JSON holding a "text" string. */
static json_t *greeter_parse(void *ud, const json_t *body, char *why, size_t len)
{
	(void)ud;
	const char *raw = json_string_value(json_object_get(body, "body"));
	json_t *sent = raw ? json_loads(raw, 0, NULL) : NULL;
	const char *text = json_string_value(json_object_get(sent, "text"));
	json_t *answer = text ? json_pack("{s:s}", "greeting", text) : NULL;
	if (!answer)
		snprintf(why, len, "no text in the answer");
	json_decref(sent);
	return answer;
}

/* The local stand-in really computes the greeting, here. */
static json_t *greeter_local(void *ud, const json_t *in, char *why, size_t len)
{
	const struct example *x = ud;
	(void)why, (void)len;
	char text[256];
	snprintf(text, sizeof text, "%s, %s.", x->salute,
		 json_string_value(json_object_get(in, "name")));
	return json_pack("{s:s}", "greeting", text);
}

static const struct provider greeter = { .name = "greeter", .auth = PROVIDER_AUTH_BEARER,
					 .build = greeter_build, .parse = greeter_parse };
static const struct provider *const greeters[] = { &greeter, NULL };

static int example_start(void *state, struct filter_run *run, int argc, char **argv)
{
	struct example *x = state;
	(void)run, (void)argc, (void)argv;
	x->k = counters_open_service("example-online");
	x->recent = cache_new(1000, 60000);
	return 0;
}

static int example_record(void *state, struct filter_run *run, json_t *rec)
{
	struct example *x = state;
	const char *uid = json_string_value(json_object_get(rec, "user_id"));
	double t0 = util_now_ms();
	json_t *seen = cache_get(x->recent, uid);
	json_object_set_new(rec, "greeted_before", json_boolean(seen != NULL));
	json_decref(seen);

	const struct chain ch = { .providers = greeters, .local = greeter_local,
				  .reserve_ms = (long)x->reserve_ms };
	struct chain_result res;
	if (chain_run(&ch, x, rec, filter_deadline(run), &res) != 0) {
		int st = filter_fail(run, res.status, res.code, "%s", res.message);
		chain_result_free(&res);
		return st;
	}
	chain_annotate(&res, rec);
	json_object_update(rec, res.answer);
	cache_put(x->recent, uid, res.answer);
	struct buf labels = { 0 };
	counters_label(&labels, "provider", res.provider);
	counters_add(x->k, "example_greetings_total", labels.data, 1);
	buf_free(&labels);
	chain_result_free(&res);

	if (json_is_true(json_object_get(rec, "ask"))) {
		struct svc_answer a;
		if (svc_call("echo", "/reply", rec, filter_deadline(run), &a) != 0) {
			int st = svc_fail(run, &a);
			svc_answer_free(&a);
			return st;
		}
		json_object_set(rec, "sibling", a.answer);
		svc_answer_free(&a);
	}
	counters_observe_ms(x->k, "example_duration_seconds", NULL, util_now_ms() - t0);
	return 0;
}

static void example_finish(void *state, struct filter_run *run)
{
	struct example *x = state;
	(void)run;
	counters_close(x->k);
	cache_free(x->recent);
}

int main(int argc, char **argv)
{
	static struct example x = { .salute = "Hello", .reserve_ms = 50 };
	static const struct filter_option options[] = {
		{ "salute", 's', "WORD", "the word to greet with (default Hello)", .string = &x.salute },
		{ "reserve-ms", 0, "MS", "budget kept for the local stand-in (0-10000, default 50)",
		  .number = &x.reserve_ms, .min = 0, .max = 10000 },
		{ 0 },
	};
	static const struct filter_field fields[] = {
		{ "user_id", FILTER_UUID, .required = 1 },
		{ "name", FILTER_STRING, .required = 1, .max = 100 },
		{ "ask", FILTER_BOOL, .required = 0 },
		{ 0 },
	};
	static const struct filter_def def = {
		.name = "example-online", .summary = "Greet users: a provider chain, a sibling call.",
		.options = options, .fields = fields, .max_operands = FILTER_NO_OPERANDS,
		.on_start = example_start, .on_record = example_record, .on_finish = example_finish,
	};
	return filter_main(&def, &x, argc, argv);
}
