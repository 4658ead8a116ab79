/* shard.h — what the modules of unde-shard share.
 *
 * unde-shard is the data layer of spec §14: one command, one subcommand per
 * job. The filters (save, replay, search, forget, erase, knowledge put/get)
 * run on lib/filter.h's record loop over lib/shardc.h, the shard client
 * every command shares (routing, the route lock, saving, search, the
 * knowledge envelope); the admin subcommands (init, add, list, route, move,
 * status, apply-deletions, keys rotate, knowledge get --user|list) print
 * JSON lines themselves. main.c's one command table maps the subcommand
 * words to the entry points below. */
#ifndef UNDE_SHARD_H
#define UNDE_SHARD_H

#include <jansson.h>
#include <libpq-fe.h>

#include "filter.h"
#include "shardc.h"

/* Print one JSON line on stdout (stolen). */
void shard_print(json_t *line);

/* Admin entry points, argv[0] being the subcommand word. */
int shard_cmd_init(int argc, char **argv);
int shard_cmd_add(int argc, char **argv);
int shard_cmd_list(int argc, char **argv);
int shard_cmd_route(int argc, char **argv);
int shard_cmd_move(int argc, char **argv);
int shard_cmd_status(int argc, char **argv);
int shard_cmd_apply_deletions(int argc, char **argv);
int shard_cmd_compact(int argc, char **argv);
struct tomb_copy;
int shard_cmd_erase_user(const char *user_id, struct shard_ctx *x, struct tomb_copy *copy);

/* ---- the registries' copy (tombcopy.c) ---- */
struct objstore;
struct tomb_copy {
	const char *file;       /* a local file (--copy-file, TOMBSTONE_COPY_FILE), or */
	struct objstore *store; /* object storage: TOMBSTONE_COPY_BUCKET (unde-backups) */
	const char *prefix;     /* TOMBSTONE_COPY_PREFIX (tombstones) */
	char where[512];        /* the file, or s3://bucket/prefix; "" when no copy */
};
/* Choose the copy: file (or TOMBSTONE_COPY_FILE) when set, else object
 * storage when required or S3_ENDPOINT is set, else none. 0, or an exit
 * status (78: a bad setting, logged). */
int tomb_copy_open(struct tomb_copy *t, const char *file, int required);
void tomb_copy_close(struct tomb_copy *t);
/* Copy table's not-yet-exported rows and mark them exported: 0, -1 (the
 * database failed), -2 (the copy could not be written; nothing marked). */
int tomb_copy_pending(struct tomb_copy *t, PGconn *p, const char *table);
int shard_cmd_keys_rotate(int argc, char **argv);
int shard_cmd_knowledge_get_user(int argc, char **argv);
int shard_cmd_knowledge_list(int argc, char **argv);

/* Filter entry points. */
int shard_filter_save(int argc, char **argv);
int shard_filter_replay(int argc, char **argv);
int shard_filter_search(int argc, char **argv);
int shard_filter_forget(int argc, char **argv);
int shard_filter_erase(int argc, char **argv);
int shard_filter_knowledge_put(int argc, char **argv);
int shard_filter_knowledge_get(int argc, char **argv);

/* Admin-command plumbing. admin_options parses an admin subcommand's
 * argv with lib/options: one table of the options every admin subcommand
 * shares (--env-file, only kept in env_file for the subcommand to load
 * with admin_load_env once its operands are checked; --shard and --url
 * into x when the subcommand takes them) and the subcommand's own table
 * (options, stored by the table, then given to own when not NULL: 0
 * taken, -1 a bad value, which the parser reports naming the option).
 * --help is written from the tables ("Usage: " usage, summary, then the
 * options); an unknown option or a bad value exits 64 naming it.
 * Returns -1 to go on, optind at the first operand, else the exit status. */
struct admin_opts {
	const char *name;      /* "unde-shard init": for "Try '… --help'." */
	const char *usage;     /* "unde-shard SUB …\n": for --help and usage errors */
	const char *summary;   /* printed by --help after usage, or NULL */
	const struct filter_option *options; /* its own, { NULL }-terminated, or NULL */
	int (*own)(void *data, int id, const char *arg); /* NULL: the table stores all */
	void *data;
	struct shard_ctx *x;   /* takes --shard and --url; NULL: neither */
	int shard_only;        /* with x: --shard only, no --url (add) */
	int no_operands;       /* operands are refused, and the env file is
				  loaded here: nothing is left to check */
	const char *env_file;  /* out: --env-file, or NULL */
};
int admin_options(struct admin_opts *a, int argc, char **argv);
int admin_usage_error(const char *usage, const char *msg);
int admin_load_env(const char *env_file);
/* Production for an admin command that cannot go on without it: NULL
 * after logging why, with the exit status in *status. */
PGconn *admin_production(struct shard_ctx *x, int *status);

/* Run fn on the shard --shard/--url named, else on every shard of
 * production's shards table (shard 0 alone when PRODUCTION_DB_URL is not
 * set): what status and compact do. fn returns 0 or an exit status; a
 * shard that cannot be reached is logged and counted. Returns the last
 * failure's exit status, or 0. */
int admin_each_shard(struct shard_ctx *x, int (*fn)(PGconn *c, long sid, void *data), void *data);

/* Delete every row of a user on one shard (erase --user, apply-deletions,
 * move's clean-up). Inside the caller's transaction. 0 or -1. */
int shard_delete_user_rows(PGconn *c, const char *user_id, long *messages);

#endif
