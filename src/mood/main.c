/* unde-mood — the Mood Agent (spec §11): one mood_frame per message.
 *
 *   echo '{"user_id":"…","text":"…"}' | unde-mood
 *   … | unde-mood | unde-context | unde-persona | unde-llm
 *
 * Per record: the classifier chain under one deadline (MOOD_DEADLINE_MS,
 * 200 ms): MOOD_LLM_PROVIDER (deepseek) → MOOD_FALLBACK_PROVIDER (gemini)
 * → the local lexicon classifier, which always answers. A provider without
 * a key is skipped; one that fails, answers garbage or out of range, or is
 * still busy at the deadline is counted as a fallback. The frame is then
 * smoothed against previous_mood_frame (given in the input) and gets its
 * style, Rive and voice parameters (frame.c). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "classify.h"
#include "conf.h"
#include "deadline.h"
#include "filter.h"
#include "frame.h"
#include "history.h"
#include "lexicon.h"
#include "log.h"
#include "providers.h"
#include "agent_stats.h"
#include "stem.h"
#include "util.h"

#define MOOD_LOCAL_RESERVE_MS 5 /* kept for the local classifier */

struct mood_state {
	struct stemmer *stemmer;
	struct lexicon *lexicon;
	struct mood_chain chain; /* DeepSeek, Gemini, then the local classifier */
	long long deadline_ms;  /* --deadline-ms, else MOOD_DEADLINE_MS */
	long max_text;
	int local_only;
	const char *lexicon_path;
	struct mood_settings settings;
	int history;            /* look the previous frame up in the shard */
	struct shard_ctx shard;
};

/* The lexicon: --lexicon, $MOOD_LEXICON, the installed copy, or the source
 * tree's (so the built command works before make install). */
static const char *lexicon_path(const struct mood_state *s)
{
	if (s->lexicon_path)
		return s->lexicon_path;
	const char *env = conf_str("MOOD_LEXICON", NULL);
	if (env && *env)
		return env;
	if (access(UNDE_PKGDATADIR "/mood/lexicon.tsv", R_OK) == 0)
		return UNDE_PKGDATADIR "/mood/lexicon.tsv";
	return UNDE_SRCDIR "/src/mood/lexicon.tsv";
}

/* Add the provider named by name_var to the chain, unless it is "local",
 * "none" or has no key. */
static void chain_add(struct mood_state *s, const char *name_var, const char *def_name,
		      const char *model_var, const char *key_var)
{
	const char *name = conf_str(name_var, def_name);
	if (!name || !*name || strcmp(name, "local") == 0 || strcmp(name, "none") == 0)
		return;
	int added;
	if (mood_chain_add(&s->chain, name, model_var, key_var, &added) != 0)
		conf_die(name_var, "unknown provider '%s' (deepseek, gemini, local or none)", name);
	if (!added)
		log_event(LOG_INFO, "provider skipped: no key",
			  json_pack("{s:s, s:s}", "provider", name, "key_var", key_var));
}

/* The mood code of a provider the chain skipped, for the log and the
 * errors_total metric: http_<status>, timeout, unreachable, deadline, or
 * the parser's bad_answer / out_of_range. */
static void mood_skip_reason(const json_t *skip, char *code, size_t len)
{
	const char *reason = json_string_value(json_object_get(skip, "reason"));
	const char *msg = json_string_value(json_object_get(skip, "message"));
	json_int_t status = json_integer_value(json_object_get(skip, "status"));
	if (!reason)
		reason = "unknown";
	if (strcmp(reason, "malformed") == 0)
		snprintf(code, len, "%s", msg && strstr(msg, "out_of_range") ? "out_of_range"
										 : "bad_answer");
	else if (status && strcmp(reason, "timeout") && strcmp(reason, "unreachable"))
		snprintf(code, len, "http_%lld", (long long)status);
	else if (strcmp(reason, "no_time") == 0)
		snprintf(code, len, "deadline");
	else
		snprintf(code, len, "%s", reason);
}

static int mood_on_start(void *state, struct filter_run *run, int argc, char **argv)
{
	struct mood_state *s = state;
	(void)run;
	(void)argv;
	if (!s->deadline_ms)
		s->deadline_ms = conf_long("MOOD_DEADLINE_MS", 200, 1, 60000);
	s->max_text = conf_long("MOOD_MAX_TEXT", 16384, 1, 1 << 20);
	s->settings.smoothing = conf_double("MOOD_SMOOTHING_FACTOR", 0.3, 0, 1);
	s->settings.spike_threshold = conf_double("MOOD_SPIKE_THRESHOLD", 0.5, 0, 1);
	s->stemmer = stemmer_new();
	if (!s->stemmer) {
		log_msg(LOG_ERROR, "libstemmer has no Russian or English stemmer");
		return EX_SOFTWARE;
	}
	char err[512];
	const char *path = lexicon_path(s);
	s->lexicon = lexicon_load(path, s->stemmer, err, sizeof err);
	if (!s->lexicon) {
		log_event(LOG_ERROR, "cannot load the mood lexicon",
			  json_pack("{s:s, s:s}", "variable", "MOOD_LEXICON", "error", err));
		return EX_CONFIG;
	}
	mood_chain_init(&s->chain, s->lexicon, s->stemmer);
	s->chain.chain.reserve_ms = MOOD_LOCAL_RESERVE_MS;
	s->chain.chain.min_call_ms = 5;
	if (!s->local_only) {
		chain_add(s, "MOOD_LLM_PROVIDER", "deepseek", "MOOD_LLM_MODEL", "MOOD_LLM_API_KEY");
		chain_add(s, "MOOD_FALLBACK_PROVIDER", "gemini", "MOOD_FALLBACK_MODEL",
			  "MOOD_FALLBACK_API_KEY");
	}
	s->history = mood_history_enabled();
	sctx_init(&s->shard);
	agent_stats_init("unde-mood", "mood_agent");
	log_event(LOG_DEBUG, "ready",
		  json_pack("{s:s, s:I, s:i, s:I}", "lexicon", path, "terms",
			    (json_int_t)lexicon_size(s->lexicon), "providers", s->chain.n,
			    "deadline_ms", (json_int_t)s->deadline_ms));
	return 0;
}

/* Fail a record and count it. */
#define MOOD_FAIL(run, status, code, ...)                                      \
	(agent_stats_count("errors_total", "provider=\"input\"", 1), agent_stats_flush(), \
	 filter_fail(run, status, code, __VA_ARGS__))

static int mood_on_record(void *state, struct filter_run *run, json_t *rec)
{
	struct mood_state *s = state;
	double t0 = util_now_ms();
	const json_t *jtext = json_object_get(rec, "text");
	if (!json_is_string(jtext))
		return MOOD_FAIL(run, EX_DATAERR, "invalid_field",
				 "field text: want a string (the message or partial ASR text)");
	size_t len = json_string_length(jtext);
	if ((long)len > s->max_text)
		return MOOD_FAIL(run, EX_DATAERR, "invalid_field",
				 "field text: %zu bytes, over MOOD_MAX_TEXT (%ld)", len, s->max_text);
	const json_t *uid = json_object_get(rec, "user_id");
	if (uid && !json_is_string(uid) && !json_is_null(uid))
		return MOOD_FAIL(run, EX_DATAERR, "invalid_field", "field user_id: want a string");
	struct mood_prev prev = {0};
	const char *prev_source = NULL;
	const json_t *pf = json_object_get(rec, "previous_mood_frame");
	const json_t *pid = json_object_get(rec, "previous_mood_frame_id");
	if (pid && !json_is_null(pid) && !json_is_string(pid))
		return MOOD_FAIL(run, EX_DATAERR, "invalid_field",
				 "field previous_mood_frame_id: want a string");
	if (pf && !json_is_null(pf)) {
		char why[160];
		if (mood_prev_from_json(pf, &prev, why, sizeof why) != 0)
			return MOOD_FAIL(run, EX_DATAERR, "invalid_field", "%s", why);
		prev_source = "input";
	} else if (s->history && json_is_string(uid)) {
		/* no frame given: the last one saved in the user's shard */
		const char *why = NULL;
		json_t *saved = mood_history_last(&s->shard, json_string_value(uid),
						  json_string_value(pid), &why);
		char bad[160];
		if (saved && mood_prev_from_json(saved, &prev, bad, sizeof bad) == 0)
			prev_source = "shard";
		else if (why && strcmp(why, "none") && strcmp(why, "unknown_user"))
			log_event(LOG_WARN, "previous frame not read from the shard",
				  json_pack("{s:s}", "reason", why));
		json_decref(saved);
	}

	/* the chain's budget: --deadline-ms from now, or unde-httpd's timeout= */
	struct deadline dl = deadline_min(deadline_in(s->deadline_ms - (long)(util_now_ms() - t0)),
					  filter_deadline(run));
	struct chain_result res;
	s->chain.local_why[0] = '\0';
	if (chain_run(&s->chain.chain, &s->chain, rec, dl, &res) != 0) {
		chain_result_free(&res);
		return MOOD_FAIL(run, EX_DATAERR, "invalid_field", "%s",
				 s->chain.local_why[0] ? s->chain.local_why : "the text cannot be read");
	}
	size_t i;
	const json_t *skip;
	json_array_foreach(res.skipped, i, skip)
	{
		const char *name = json_string_value(json_object_get(skip, "provider"));
		char code[32], labels[96];
		mood_skip_reason(skip, code, sizeof code);
		snprintf(labels, sizeof labels, "provider=\"%s\",reason=\"%s\"", name, code);
		agent_stats_count("errors_total", labels, 1);
		snprintf(labels, sizeof labels, "from=\"%s\"", name);
		agent_stats_count("provider_fallbacks_total", labels, 1);
		log_event(LOG_WARN, "provider failed, falling back",
			  json_pack("{s:s, s:s, s:O?}", "provider", name, "reason", code, "error",
				    json_object_get(skip, "message")));
	}
	const struct mood_reading r = s->chain.reading;
	const char *provider = res.provider;
	json_t *frame = mood_frame_build(&r, &prev, &s->settings, provider);
	json_object_set_new(frame, "previous_source",
			    prev_source ? json_string(prev_source) : json_null());
	json_object_set_new(rec, "mood_frame", frame);
	char labels[96];
	snprintf(labels, sizeof labels, "provider=\"%s\"", provider);
	agent_stats_count("requests_total", labels, 1);
	agent_stats_latency(util_now_ms() - t0);
	agent_stats_flush();
	chain_result_free(&res);
	return 0;
}

static void mood_on_finish(void *state, struct filter_run *run)
{
	struct mood_state *s = state;
	(void)run;
	agent_stats_flush();
	lexicon_free(s->lexicon);
	stemmer_free(s->stemmer);
	sctx_close(&s->shard);
	s->lexicon = NULL;
	s->stemmer = NULL;
}

int main(int argc, char **argv)
{
	static struct mood_state state;
	static const struct filter_option mood_options[] = {
		{ "local", 0, NULL, "only the local classifier, no remote provider",
		  .flag = &state.local_only },
		{ "deadline-ms", 0, "MS", "the whole chain's budget (MOOD_DEADLINE_MS, 200)",
		  .number = &state.deadline_ms, .min = 1, .max = 60000 },
		{ "lexicon", 0, "FILE", "the lexicon (MOOD_LEXICON)", .string = &state.lexicon_path },
		{ 0 },
	};
	static const struct filter_def def = {
	    .name = "unde-mood",
	    .summary = "Read the mood of each message into a mood_frame (spec §11).",
	    .synopsis = "[--local] [--deadline-ms MS] [--lexicon FILE] [OPTIONS]",
	    .options = mood_options,
	    .max_operands = FILTER_NO_OPERANDS,
	    .on_start = mood_on_start,
	    .on_record = mood_on_record,
	    .on_finish = mood_on_finish,
	};
	return filter_main(&def, &state, argc, argv);
}
