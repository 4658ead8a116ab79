/* unde-shard — the user data shard of spec §14: chat history, encrypted
 * user knowledge, hybrid retrieval, forget/erase, verify-and-replay, and
 * the routing of users to shards. main() only looks the subcommand's
 * words up in one table; each subcommand lives in its module (see
 * shard.h). */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "log.h"
#include "shard.h"

static void usage(FILE *f)
{
	fputs("Usage: unde-shard SUBCOMMAND [OPTIONS] [ARGS]\n"
	      "The user data shard (spec §14): chat history, user knowledge, retrieval.\n\n"
	      "Filters (JSON lines on stdin → stdout):\n"
	      "  save             store a turn's messages (idempotent by message id)\n"
	      "  replay           verify-and-replay unconfirmed pairs after a failover\n"
	      "  search           hybrid search (vector + FTS) → episodes\n"
	      "  forget           soft forget messages (spec \"Забудь это\")\n"
	      "  erase            hard delete messages (GDPR), tombstoned in production\n"
	      "  knowledge put|get  encrypt / decrypt user knowledge\n\n"
	      "Administration (JSON lines on stdout):\n"
	      "  init --shard N [--url URL]          migrate a shard's database\n"
	      "  add --shard N --name NAME [--conninfo C]  register a shard\n"
	      "  list                                the shards and their users\n"
	      "  route USER_ID...                    a user's shard (placing new users)\n"
	      "  move USER_ID --to N                 copy a user to shard N, then switch\n"
	      "  status [--shard N]                  sizes, lag, the new-shard trigger\n"
	      "  apply-deletions --shard N           re-apply the tombstone and forget registries\n"
	      "  compact [--shard N]                 rewrite relations that held erased rows\n"
	      "  erase --user USER_ID                remove all of a user's data\n"
	      "  knowledge list --user U             knowledge metadata (no decryption)\n"
	      "  keys rotate [--user U]              re-wrap DEKs under MASTER_ENCRYPTION_KEY\n\n"
	      "  unde-shard SUBCOMMAND --help shows a subcommand's options. See unde-shard(1).\n",
	      f);
}

/* One row per subcommand: its word, a second word for the groups
 * (knowledge put|get|list, keys rotate), the entry point (called with
 * argv[0] at the last word) and, for `knowledge get`, the admin form that
 * --user selects instead of the filter. */
struct subcommand {
	const char *word, *word2;
	int (*run)(int argc, char **argv);
	int (*with_user)(int argc, char **argv);
};

static const struct subcommand subcommands[] = {
	{ "save", NULL, shard_filter_save, NULL },
	{ "replay", NULL, shard_filter_replay, NULL },
	{ "search", NULL, shard_filter_search, NULL },
	{ "forget", NULL, shard_filter_forget, NULL },
	{ "erase", NULL, shard_filter_erase, NULL },
	{ "knowledge", "put", shard_filter_knowledge_put, NULL },
	{ "knowledge", "get", shard_filter_knowledge_get, shard_cmd_knowledge_get_user },
	{ "knowledge", "list", shard_cmd_knowledge_list, NULL },
	{ "keys", "rotate", shard_cmd_keys_rotate, NULL },
	{ "init", NULL, shard_cmd_init, NULL },
	{ "add", NULL, shard_cmd_add, NULL },
	{ "list", NULL, shard_cmd_list, NULL },
	{ "route", NULL, shard_cmd_route, NULL },
	{ "move", NULL, shard_cmd_move, NULL },
	{ "status", NULL, shard_cmd_status, NULL },
	{ "apply-deletions", NULL, shard_cmd_apply_deletions, NULL },
	{ "compact", NULL, shard_cmd_compact, NULL },
};

/* Does argv (after the subcommand words) carry --user? */
static int has_user_option(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--user") || !strncmp(argv[i], "--user=", 7))
			return 1;
	return 0;
}

/* A group word without (or with a wrong) second word: the group's usage.
 * --help is an answer (0), anything else a usage error. */
static int group_usage(const char *word, const char *next)
{
	char words[128] = "";
	for (size_t i = 0; i < sizeof subcommands / sizeof *subcommands; i++)
		if (!strcmp(subcommands[i].word, word) && subcommands[i].word2) {
			size_t l = strlen(words);
			snprintf(words + l, sizeof words - l, "%s%s", l ? "|" : "", subcommands[i].word2);
		}
	int help = next && (!strcmp(next, "-h") || !strcmp(next, "--help"));
	fprintf(help ? stdout : stderr, "Usage: unde-shard %s %s [OPTIONS]\n"
		"  unde-shard %s %s --help shows its options. See unde-shard(1).\n", word, words, word,
		strchr(words, '|') ? "WORD" : words);
	if (help)
		return 0;
	log_event(LOG_ERROR, "unknown subcommand",
		  json_pack("{s:s, s:s?, s:i}", "subcommand", word, "word", next, "exit", EX_USAGE));
	return EX_USAGE;
}

int main(int argc, char **argv)
{
	log_init("unde-shard");
	if (argc < 2) {
		usage(stderr);
		return EX_USAGE;
	}
	const char *sub = argv[1];
	if (!strcmp(sub, "-h") || !strcmp(sub, "--help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(sub, "-V") || !strcmp(sub, "--version")) {
		printf("unde-shard %s\n", PACKAGE_VERSION);
		return 0;
	}
	int group = 0;
	for (size_t i = 0; i < sizeof subcommands / sizeof *subcommands; i++) {
		const struct subcommand *c = &subcommands[i];
		if (strcmp(c->word, sub) != 0)
			continue;
		if (!c->word2)
			return c->run(argc - 1, argv + 1);
		group = 1;
		if (argc < 3 || strcmp(c->word2, argv[2]) != 0)
			continue;
		if (c->with_user && has_user_option(argc - 2, argv + 2))
			return c->with_user(argc - 2, argv + 2);
		return c->run(argc - 2, argv + 2);
	}
	if (group)
		return group_usage(sub, argc > 2 ? argv[2] : NULL);
	log_event(LOG_ERROR, "unknown subcommand", json_pack("{s:s, s:i}", "subcommand", sub, "exit", EX_USAGE));
	fputs("Try 'unde-shard --help'.\n", stderr);
	return EX_USAGE;
}
