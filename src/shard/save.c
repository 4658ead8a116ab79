/* save.c — the `save` and `replay` filters over lib/shardc.h's
 * shard_save_turn and shard_replay (validation, the SQL and the route lock
 * live there). */
#include "config.h"

#include "filter.h"
#include "shard.h"

struct save_state {
	struct shard_ctx x;
	int replay;
};

static int save_option(void *state, int opt, const char *arg)
{
	struct save_state *s = state;
	return sctx_option(&s->x, opt, arg) == 1 ? 0 : -1;
}

static void save_finish(void *state, struct filter_run *run)
{
	(void)run;
	sctx_close(&((struct save_state *)state)->x);
}

static const struct option save_longopts[] = { SCTX_LONGOPTS, { 0 } };

/* One record: shard_save_turn, which takes and ends the route lock. */
static int save_record(void *state, struct filter_run *run, json_t *rec)
{
	struct shard_err e;
	return shard_save_turn(&((struct save_state *)state)->x, rec, &e) ? sctx_fail(run, &e) : 0;
}

/* One record: shard_replay, which takes and ends the route lock. */
static int replay_record(void *state, struct filter_run *run, json_t *rec)
{
	struct shard_err e;
	return shard_replay(&((struct save_state *)state)->x, rec, &e) ? sctx_fail(run, &e) : 0;
}

int shard_filter_save(int argc, char **argv)
{
	static const struct filter_def def = {
		.name = "unde-shard",
		.summary = "save: store each turn {user_id, conversation_id?, messages:[{id, role, content, …}]};\n"
			   "a message already stored (same id) is kept, not duplicated.",
		.synopsis = "save [--shard N | --url URL]",
		.options_help = SCTX_HELP,
		.shortopts = "",
		.longopts = save_longopts,
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
		.synopsis = "replay [--shard N | --url URL]",
		.options_help = SCTX_HELP,
		.shortopts = "",
		.longopts = save_longopts,
		.on_option = save_option,
		.on_record = replay_record,
		.on_finish = save_finish,
	};
	struct save_state s = { .replay = 1 };
	sctx_init(&s.x);
	return filter_main(&def, &s, argc, argv);
}
