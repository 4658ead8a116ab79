/* unde-persona — the Persona Agent of spec §16, the dialogue's actuator:
 *
 *   unde-persona                 POST /persona: mood + context + profile → persona
 *   unde-persona feedback        POST /persona/feedback: buffer one signal
 *   unde-persona flush           POST /persona/flush: resolve and apply an exchange
 *   unde-persona profile         GET /persona/profile (or --user-id U, one line)
 *   unde-persona cleanup         daily cron: expired blocks, old deltas and keys
 *   unde-persona metrics         §19's metrics, summed over all processes
 *
 * main() only dispatches; the rules are in the modules (persona.h). */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "cache.h"
#include "conf.h"
#include "filter.h"
#include "jsonl.h"
#include "log.h"
#include "options.h"
#include "pg.h"
#include "persona.h"
#include "util.h"

struct pstate {
	const char *url; /* --url */
	int no_shard;    /* --no-shard */
	const char *sub; /* the subcommand, NULL for POST /persona */
};

static int fail_with(struct filter_run *run, const struct persona_err *e)
{
	pmetrics_add("errors", 1);
	int status = e->status                                  ? e->status
		     : !strcmp(e->code, "database_unavailable") ? EX_UNAVAILABLE
		     : !strcmp(e->code, "database_error")     ? EX_TEMPFAIL
								 : EX_DATAERR;
	return filter_fail(run, status, e->code, "%s", e->message);
}

static PGconn *shard_for(struct pstate *s, const char *user_id, int write, struct persona_err *e)
{
	return s->no_shard ? NULL : persona_shard_conn(user_id, s->url, write, e);
}

/* The spec's in-process LRU of 100 profiles. Its TTL
 * (PERSONA_PROFILE_CACHE_TTL_MS, default 5 s) bounds how long another
 * process's flush goes unseen; stage and temp blocks are never cached. */
static struct cache *profiles(void)
{
	static struct cache *c;
	if (!c)
		c = cache_new(100, conf_long("PERSONA_PROFILE_CACHE_TTL_MS", 5000, 0, 3600000));
	return c;
}

/* POST /persona. */
static int persona_record(void *sp, struct filter_run *run, json_t *rec)
{
	struct pstate *s = sp;
	double t0 = util_now_ms();
	struct persona_ctx c;
	struct persona_err e = { 0 };
	persona_ctx_init(&c, persona_now());
	json_t *out = NULL;
	if (canonicalize_request(&c, rec, &e) == 0) {
		const char *uid = json_string_value(json_object_get(rec, "user_id"));
		PGconn *db = uid ? shard_for(s, uid, 0, &e) : NULL;
		if (!db && !strcmp(e.code, "unknown_user"))
			memset(&e, 0, sizeof e); /* a new user: nothing stored yet */
		int want_profile = !json_is_object(json_object_get(rec, "persona_profile"));
		int want_stage = strcmp(c.stage_source, "request") != 0;
		json_t *cached = want_profile && db ? cache_get(profiles(), uid) : NULL, *loaded = NULL;
		if (cached) {
			struct persona_err e2 = { 0 };
			if (canonicalize_profile(cached, c.profile, c.profile_set, c.debug, &e2) == 0)
				c.profile_source = "cache";
			want_profile = 0;
			json_decref(cached);
		}
		if (e.code[0])
			; /* the shard could not be asked */
		else if (!uid || !db || store_load(db, &c, uid, want_profile, want_stage, &loaded, &e) == 0)
			out = persona_run(&c, rec, &e);
		if (loaded) {
			cache_put(profiles(), uid, loaded);
			json_decref(loaded);
		}
	}
	persona_ctx_free(&c);
	if (!out)
		return fail_with(run, &e);
	json_object_set_new(rec, "persona", out);
	pmetrics_latency(util_now_ms() - t0);
	return 0;
}

/* Copy a result object's members into the record. */
static void merge(json_t *rec, json_t *result)
{
	json_object_update(rec, result);
	json_decref(result);
}

static int need_db(struct pstate *s, struct filter_run *run, const char *uid, int write, PGconn **db)
{
	struct persona_err e = { 0 };
	*db = shard_for(s, uid, write, &e);
	if (*db)
		return 0;
	if (e.code[0])
		return fail_with(run, &e);
	pmetrics_add("errors", 1);
	return filter_fail(run, EX_DATAERR, "no_shard",
			   "%s needs the shard: set PRODUCTION_DB_URL (routing), SHARD_0_DB_URL or --url", s->sub);
}

/* A write to the user's shard: connect (for writing), run op, give the
 * shard connection back, merge op's answer into rec. feedback and flush
 * differ only in op. */
typedef int (*shard_write_op)(PGconn *db, const json_t *rec, double now, json_t **result,
			      struct persona_err *e);

static int write_record(struct pstate *s, struct filter_run *run, json_t *rec, shard_write_op op)
{
	PGconn *db;
	struct persona_err e = { 0 };
	json_t *res;
	int st = need_db(s, run, json_string_value(json_object_get(rec, "user_id")), 1, &db);
	if (st)
		return st;
	int rc = op(db, rec, persona_now(), &res, &e);
	persona_shard_done();
	if (rc < 0)
		return fail_with(run, &e);
	merge(rec, res);
	return 0;
}

static int feedback_record(void *sp, struct filter_run *run, json_t *rec)
{
	return write_record(sp, run, rec, store_feedback);
}

/* store_flush with its arguments taken from the record. */
static int flush_op(PGconn *db, const json_t *rec, double now, json_t **result,
		    struct persona_err *e)
{
	return store_flush(db, json_string_value(json_object_get(rec, "user_id")),
			   json_string_value(json_object_get(rec, "exchange_id")), now, result, e);
}

/* A flush changes the profile: this process's cached copy goes. */
static int flush_record(void *sp, struct filter_run *run, json_t *rec)
{
	int rc = write_record(sp, run, rec, flush_op);
	const char *uid = json_string_value(json_object_get(rec, "user_id"));
	if (rc == 0 && uid)
		cache_del(profiles(), uid);
	return rc;
}

static int profile_record(void *sp, struct filter_run *run, json_t *rec)
{
	struct pstate *s = sp;
	PGconn *db;
	struct persona_err e = { 0 };
	json_t *res;
	const char *uid = json_string_value(json_object_get(rec, "user_id"));
	int st = need_db(s, run, uid, 0, &db);
	if (st)
		return st;
	if (store_profile(db, uid, persona_now(), &res, &e) < 0)
		return fail_with(run, &e);
	merge(rec, res);
	return 0;
}

static void on_finish(void *sp, struct filter_run *run)
{
	(void)sp;
	(void)run;
	pmetrics_write_textfile();
}

static int run_filter(const char *sub, const char *summary, const char *synopsis,
		      int (*rec)(void *, struct filter_run *, json_t *), int argc, char **argv)
{
	struct pstate s = { .sub = sub };
	const struct filter_option options[] = {
		{ "url", 0, "URL", "the user's shard database (default SHARD_0_DB_URL)",
		  .string = &s.url },
		{ "no-shard", 0, NULL, "never read the shard: the request alone decides",
		  .flag = &s.no_shard },
		{ 0 },
	};
	const struct filter_def def = {
		.name = "unde-persona",
		.summary = summary,
		.synopsis = synopsis,
		.options = options,
		.on_record = rec,
		.on_finish = on_finish,
	};
	return filter_main(&def, &s, argc, argv);
}

/* The one-shot subcommands (cleanup, metrics, profile --user-id): their own
 * small option loop. Returns the exit status. */
static int one_shot(const char *sub, int argc, char **argv)
{
	const char *url = NULL, *user = NULL, *env_file = NULL;
	const struct filter_option options[] = {
		{ "url", 0, "URL", NULL, .string = &url },
		{ "user-id", 0, "UUID", NULL, .string = &user },
		{ "env-file", 0, "FILE", NULL, .string = &env_file },
		{ 0 },
	};
	const struct options_table table = { options, NULL, NULL };
	switch (options_parse("unde-persona", &table, 1, OPTIONS_PERMUTE, argc, argv)) {
	case OPTIONS_HELP:
		printf("Usage: unde-persona %s [--url URL] [--env-file FILE]%s\n", sub,
		       !strcmp(sub, "profile") ? " --user-id UUID" : "");
		printf("%s\nSee unde-persona(1).\n",
		       !strcmp(sub, "cleanup") ? "Daily cleanup: expired temp blocks, deltas older than 7 days, idempotency keys\n"
						 "older than 72 h, one step of stage downgrade for idle users."
		       : !strcmp(sub, "metrics") ? "Print §19's metrics, summed over all unde-persona processes."
						 : "Print {persona_profile, relationship_stage, temp_blocks} of one user.");
		return 0;
	case OPTIONS_VERSION: return 0;
	case OPTIONS_USAGE: return EX_USAGE;
	case OPTIONS_OK: break;
	}
	if (optind < argc) {
		log_event(LOG_ERROR, "unexpected operand", json_pack("{s:s}", "operand", argv[optind]));
		return EX_USAGE;
	}
	int rc = conf_load_env(env_file);
	if (rc)
		return rc;
	if (!strcmp(sub, "metrics"))
		return pmetrics_render(stdout) ? EX_IOERR : 0;
	json_t *res = NULL;
	struct persona_err e = { 0 };
	PGconn *db;
	if (!strcmp(sub, "cleanup")) {
		/* one shard's housekeeping: --url, else SHARD_0_DB_URL */
		const char *u = url ? url : conf_str("SHARD_0_DB_URL", NULL);
		if (!u || !*u)
			conf_die("SHARD_0_DB_URL", "cleanup needs the shard database (or --url)");
		db = pg_connect(u, url ? "--url" : "SHARD_0_DB_URL");
		if (!db)
			return EX_UNAVAILABLE;
	} else {
		if (!url && !conf_str("PRODUCTION_DB_URL", NULL) && !conf_str("SHARD_0_DB_URL", NULL))
			conf_die("SHARD_0_DB_URL", "profile needs the shard (PRODUCTION_DB_URL, SHARD_0_DB_URL or --url)");
		db = persona_shard_conn(user, url, 0, &e);
		if (!db) {
			log_event(LOG_ERROR, e.message, json_pack("{s:s}", "code", e.code));
			return e.status ? e.status : EX_DATAERR;
		}
	}
	if (!strcmp(sub, "cleanup")) {
		rc = store_cleanup(db, persona_now(), &res, &e);
		PQfinish(db); /* ours; the shard client keeps its own */
	} else {
		rc = store_profile(db, user, persona_now(), &res, &e);
	}
	if (rc < 0) {
		pmetrics_add("errors", 1);
		log_event(LOG_ERROR, e.message, json_pack("{s:s}", "code", e.code));
		return !strcmp(e.code, "database_unavailable") ? EX_UNAVAILABLE
		       : !strcmp(e.code, "database_error")     ? EX_TEMPFAIL
								   : EX_DATAERR;
	}
	if (!strcmp(sub, "cleanup"))
		log_event(LOG_INFO, "cleanup done", json_deep_copy(res));
	rc = jsonl_write(stdout, res) < 0 ? EX_IOERR : 0;
	json_decref(res);
	pmetrics_write_textfile();
	return rc;
}

static int has_flag(int argc, char **argv, const char *flag)
{
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], flag) || !strncmp(argv[i], "--user-id=", 10))
			return 1;
	return 0;
}

int main(int argc, char **argv)
{
	log_init("unde-persona");
	const char *sub = argc > 1 ? argv[1] : "";
	if (!strcmp(sub, "feedback"))
		return run_filter("feedback",
				  "feedback: buffer {user_id, signal_id, exchange_id, signal_type, signal_data} → {buffered:true};\n"
				  "a signal_id seen in the last 72 h answers {buffered:true, duplicate:true}.",
				  "feedback [--url URL]", feedback_record, argc - 1, argv + 1);
	if (!strcmp(sub, "flush"))
		return run_filter("flush",
				  "flush: {user_id, exchange_id} → {resolved, discarded, applied, stale_flushed,\n"
				  "relationship_stage}: resolve the exchange's signals and apply them within momentum caps.",
				  "flush [--url URL]", flush_record, argc - 1, argv + 1);
	if (!strcmp(sub, "profile") && !has_flag(argc - 1, argv + 1, "--user-id"))
		return run_filter("profile",
				  "profile: {user_id} → {persona_profile, relationship_stage, temp_blocks}.",
				  "profile [--url URL] | profile --user-id UUID", profile_record, argc - 1, argv + 1);
	if (!strcmp(sub, "profile") || !strcmp(sub, "cleanup") || !strcmp(sub, "metrics"))
		return one_shot(sub, argc - 1, argv + 1);
	if (sub[0] && sub[0] != '-') {
		log_event(LOG_ERROR, "unknown subcommand", json_pack("{s:s}", "subcommand", sub));
		fputs("Try 'unde-persona --help'.\n", stderr);
		return EX_USAGE;
	}
	return run_filter(NULL,
			  "The Persona Agent (spec §16): {user_id, mood_frame, context_frame, user_intent,\n"
			  "persona_profile, relationship_stage, user_knowledge_compact, last_n_response_meta}\n"
			  "→ the record plus persona {persona_directive, voice_params, avatar_state, render_hints,\n"
			  "debug}. Subcommands: feedback, flush, profile, cleanup, metrics (see unde-persona(1)).",
			  "[feedback|flush|profile|cleanup|metrics] [--url URL] [--no-shard]", persona_record, argc, argv);
}
