/* knowledge.c — the `knowledge put` and `knowledge get` filters over
 * lib/shardc.h's envelope (shard_knowledge_put, shard_knowledge_get): the
 * encryption, the DEKs and the route lock live there. The admin forms
 * (get --user, list, keys rotate) are keys.c; main.c's table chooses. */
#include "config.h"

#include <string.h>
#include <sysexits.h>

#include "filter.h"
#include "log.h"
#include "shard.h"

struct kn_filter {
	struct shard_ctx x;
	struct shard_keys k;
	const char *user, *type; /* --user, --type: for records without them */
};

static int kn_put(void *state, struct filter_run *run, json_t *rec)
{
	struct kn_filter *s = state;
	struct shard_err e;
	return shard_knowledge_put(&s->x, &s->k, rec, s->user, &e) ? sctx_fail(run, &e) : 0;
}

static int kn_get(void *state, struct filter_run *run, json_t *rec)
{
	struct kn_filter *s = state;
	const char *user = shard_jstr(rec, "user_id") ? shard_jstr(rec, "user_id") : s->user;
	const char *type = shard_jstr(rec, "knowledge_type") ? shard_jstr(rec, "knowledge_type") : s->type;
	if (!user || !shard_uuid_valid(user))
		return filter_fail(run, EX_DATAERR, "invalid_field", "user_id must be a UUID");
	struct shard_err e;
	json_t *k = shard_knowledge_get(&s->x, &s->k, user, type, &e);
	if (!k)
		return sctx_fail(run, &e);
	json_object_set_new(rec, "user_knowledge", k);
	return 0;
}

enum { OPT_USER = 2000, OPT_TYPE };

static int kn_option(void *state, int opt, const char *arg)
{
	struct kn_filter *s = state;
	if (opt == OPT_USER) {
		if (!shard_uuid_valid(arg))
			return -1;
		s->user = arg;
		return 0;
	}
	if (opt == OPT_TYPE) {
		s->type = arg;
		return 0;
	}
	return sctx_option(&s->x, opt, arg) == 1 ? 0 : -1;
}

static int kn_start(void *state, struct filter_run *run, int argc, char **argv)
{
	(void)run, (void)argc, (void)argv; /* operands: refused by max_operands */
	shard_keys_load(&((struct kn_filter *)state)->k);
	return 0;
}

static void kn_finish(void *state, struct filter_run *run)
{
	(void)run;
	struct kn_filter *s = state;
	shard_keys_metrics(&s->k);
	sctx_close(&s->x);
	shard_keys_wipe(&s->k);
}

static const struct filter_option kn_options[] = {
	{ "user", 0, "U", "the user, for records without user_id", .id = OPT_USER },
	{ "type", 0, "T", "get: only this knowledge_type", .id = OPT_TYPE },
	SCTX_OPTIONS,
	{ 0 } };

/* Run one of the two filters; argv[0] is "put" or "get". */
static int kn_filter_main(int put, int argc, char **argv)
{
	struct kn_filter s;
	memset(&s, 0, sizeof s);
	sctx_init(&s.x);
	struct filter_def def = {
		.name = "unde-shard",
		.options = kn_options,
		.max_operands = FILTER_NO_OPERANDS,
		.on_option = kn_option,
		.on_start = kn_start,
		.on_finish = kn_finish,
	};
	if (put) {
		def.summary = "knowledge put: encrypt and store each fact {user_id, knowledge_type, data,\n"
			      "id?, confidence?, extracted_from?, source_message_id?}; an existing id gets a\n"
			      "new version. \"data\" leaves as \"[encrypted]\".";
		def.synopsis = "knowledge put [--user U] [--shard N | --url URL]";
		def.on_record = kn_put;
	} else {
		def.summary = "knowledge get: add each record's decrypted active facts as \"user_knowledge\"\n"
			      "({user_id, knowledge_type?} in).";
		def.synopsis = "knowledge get [--user U] [--type T] [--shard N | --url URL]";
		def.on_record = kn_get;
	}
	return filter_main(&def, &s, argc, argv);
}

int shard_filter_knowledge_put(int argc, char **argv) { return kn_filter_main(1, argc, argv); }
int shard_filter_knowledge_get(int argc, char **argv) { return kn_filter_main(0, argc, argv); }
