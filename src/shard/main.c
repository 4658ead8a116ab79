/* unde-shard — the user data shard of spec §14: chat history, encrypted
 * user knowledge, hybrid retrieval, forget/erase, verify-and-replay, and
 * the routing of users to shards. main() only dispatches on the
 * subcommand word; each subcommand lives in its module (see shard.h). */
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
	      "  apply-deletions --shard N           re-apply the tombstone registry\n"
	      "  erase --user USER_ID                remove all of a user's data\n"
	      "  knowledge list --user U             knowledge metadata (no decryption)\n"
	      "  keys rotate [--user U]              re-wrap DEKs under MASTER_ENCRYPTION_KEY\n\n"
	      "  unde-shard SUBCOMMAND --help shows a subcommand's options. See unde-shard(1).\n",
	      f);
}

int main(int argc, char **argv)
{
	log_init("unde-shard");
	if (argc < 2) {
		usage(stderr);
		return EX_USAGE;
	}
	const char *sub = argv[1];
	int n = argc - 1;
	char **v = argv + 1;
	if (!strcmp(sub, "-h") || !strcmp(sub, "--help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(sub, "-V") || !strcmp(sub, "--version")) {
		printf("unde-shard %s\n", PACKAGE_VERSION);
		return 0;
	}
	if (!strcmp(sub, "save"))
		return shard_filter_save(n, v);
	if (!strcmp(sub, "replay"))
		return shard_filter_replay(n, v);
	if (!strcmp(sub, "search"))
		return shard_filter_search(n, v);
	if (!strcmp(sub, "forget"))
		return shard_filter_forget(n, v);
	if (!strcmp(sub, "erase"))
		return shard_filter_erase(n, v);
	if (!strcmp(sub, "knowledge"))
		return shard_cmd_knowledge(n, v);
	if (!strcmp(sub, "keys"))
		return shard_cmd_keys(n, v);
	if (!strcmp(sub, "init"))
		return shard_cmd_init(n, v);
	if (!strcmp(sub, "add"))
		return shard_cmd_add(n, v);
	if (!strcmp(sub, "list"))
		return shard_cmd_list(n, v);
	if (!strcmp(sub, "route"))
		return shard_cmd_route(n, v);
	if (!strcmp(sub, "move"))
		return shard_cmd_move(n, v);
	if (!strcmp(sub, "status"))
		return shard_cmd_status(n, v);
	if (!strcmp(sub, "apply-deletions"))
		return shard_cmd_apply_deletions(n, v);
	log_event(LOG_ERROR, "unknown subcommand", json_pack("{s:s, s:i}", "subcommand", sub, "exit", EX_USAGE));
	fputs("Try 'unde-shard --help'.\n", stderr);
	return EX_USAGE;
}
