/* save.c — the `save` and `replay` filters over lib/shardc.h's
 * shard_save_turn and shard_replay (validation, the SQL and the route lock
 * live there). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <sysexits.h>

#include "conf.h"
#include "counters.h"
#include "filter.h"
#include "log.h"
#include "shard.h"

struct save_state {
	struct shard_ctx x;
	int replay;
	struct counters *k; /* replay: §19's replay_requests_total, shared by every process */
	struct shard_replay_limit limit; /* replay --rate-limit */
};

enum { OPT_RATE_LIMIT = 3000 };

static const struct counters_help replay_help[] = {
	{ "replay_requests_total", "counter", "verify-and-replay requests (a burst means a recent failover)" },
	{ "replay_pairs_total", "counter", "unconfirmed pairs sent for replay" },
	{ "replay_messages_inserted_total", "counter", "replayed messages the shard did not have (lost by a failover)" },
	{ NULL, NULL, NULL },
};

static int save_option(void *state, int opt, const char *arg)
{
	struct save_state *s = state;
	if (opt == OPT_RATE_LIMIT) {
		s->x.replay_limit = &s->limit;
		return 0;
	}
	return sctx_option(&s->x, opt, arg) == 1 ? 0 : -1;
}

static void save_finish(void *state, struct filter_run *run)
{
	(void)run;
	struct save_state *s = state;
	sctx_close(&s->x);
	const char *dir = getenv("UNDE_METRICS_DIR");
	if (s->k && dir && *dir) {
		char path[4096];
		snprintf(path, sizeof path, "%s/unde-shard-replay.prom", dir);
		counters_write_textfile(s->k, replay_help, path);
	}
	counters_close(s->k);
	s->k = NULL;
}

static const struct filter_option save_options[] = { SCTX_OPTIONS, { 0 } };
static const struct filter_option replay_options[] = {
	{ "rate-limit", 0, NULL,
	  "the HTTP route's limit: at most REPLAY_PAIRS_PER_SECOND (1) pairs per second\n"
	  "                       per user (burst REPLAY_BURST_PAIRS, 10) and REPLAY_MAX_TRIES (3)\n"
	  "                       replays of one message",
	  .id = OPT_RATE_LIMIT },
	SCTX_OPTIONS,
	{ 0 } };

/* replay's start: the limit's figures are read once, when it is asked for. */
static int replay_start(void *state, struct filter_run *run, int argc, char **argv)
{
	(void)run, (void)argc, (void)argv; /* operands: refused by max_operands */
	struct save_state *s = state;
	if (s->x.replay_limit)
		shard_replay_limit_load(&s->limit);
	return 0;
}

/* One record: shard_save_turn, which takes and ends the route lock. */
static int save_record(void *state, struct filter_run *run, json_t *rec)
{
	struct shard_err e;
	return shard_save_turn(&((struct save_state *)state)->x, rec, &e) ? sctx_fail(run, &e) : 0;
}

/* One record: shard_replay, which takes and ends the route lock; counted
 * (requests, pairs, what was missing) whatever the outcome. */
static int replay_record(void *state, struct filter_run *run, json_t *rec)
{
	struct save_state *s = state;
	struct shard_err e;
	const json_t *pairs = json_object_get(rec, "unconfirmed");
	counters_add(s->k, "replay_requests_total", NULL, 1);
	counters_add(s->k, "replay_pairs_total", NULL, json_is_array(pairs) ? json_array_size(pairs) : 0);
	if (shard_replay(&s->x, rec, &e))
		return sctx_fail(run, &e);
	const json_t *ins = json_object_get(json_object_get(rec, "replay"), "inserted");
	counters_add(s->k, "replay_messages_inserted_total", NULL, json_array_size(ins));
	return 0;
}

int shard_filter_save(int argc, char **argv)
{
	static const struct filter_def def = {
		.name = "unde-shard",
		.summary = "save: store each turn {user_id, conversation_id?, messages:[{id, role, content, …}]};\n"
			   "a message already stored (same id) is kept, not duplicated.",
		.synopsis = "save [--shard N | --url URL]",
		.options = save_options,
		.max_operands = FILTER_NO_OPERANDS,
		.on_option = save_option,
		.on_record = save_record,
		.on_finish = save_finish,
	};
	struct save_state s = { .replay = 0 };
	sctx_init(&s.x);
	return filter_main(&def, &s, argc, argv);
}

int shard_filter_replay(int argc, char **argv)
{
	static const struct filter_def def = {
		.name = "unde-shard",
		.summary = "replay: verify-and-replay {conversation_id, user_id?, unconfirmed:[pairs],\n"
			   "recent_confirmed_ids:[…]}: store what is missing, report what was there,\n"
			   "mark replayed rows for enrichment backfill.",
		.synopsis = "replay [--rate-limit] [--shard N | --url URL]",
		.options = replay_options,
		.max_operands = FILTER_NO_OPERANDS,
		.on_option = save_option,
		.on_start = replay_start,
		.on_record = replay_record,
		.on_finish = save_finish,
	};
	struct save_state s = { .replay = 1 };
	sctx_init(&s.x);
	s.k = counters_open_service("unde-shard");
	return filter_main(&def, &s, argc, argv);
}
