/* shard.h — what the modules of unde-shard share.
 *
 * unde-shard is the data layer of spec §14: one command, one subcommand per
 * job. The filters (save, replay, search, forget, erase, knowledge put/get)
 * run on lib/filter.h's record loop; the admin subcommands (init, add, list,
 * route, move, status, apply-deletions, keys rotate, knowledge list) print
 * JSON lines themselves. All of them reach a user's shard the same way:
 *
 *   --url URL     this shard database, no routing (tests, one-off repairs)
 *   --shard N     shard N: SHARD_<N>_DB_URL, else shards.conninfo
 *   otherwise     the routing table in PRODUCTION_DB_URL; without it, the
 *                 spec's MVP of one shard: SHARD_0_DB_URL.
 *
 * struct shard_ctx caches the production connection and one connection per
 * shard for the life of the process (an online filter behind unde-httpd
 * serves many records on them). */
#ifndef UNDE_SHARD_H
#define UNDE_SHARD_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdint.h>

#include "filter.h"

#define SHARD_MAX_CONNS 64

struct shard_conn {
	long id;
	PGconn *c;
	unsigned prepared; /* bit per statement a module prepared on c */
};

struct shard_ctx {
	const char *url;    /* --url: one shard, no routing */
	long shard;         /* --shard N, or -1 */
	PGconn *prod;       /* production, connected on first use */
	PGconn *hold;       /* production again: the route lock of sctx_for_user_write */
	int holding;        /* hold is inside that lock's transaction */
	int prod_missing;   /* PRODUCTION_DB_URL unset: single-shard mode */
	struct shard_conn conns[SHARD_MAX_CONNS];
	size_t nconns;
};

/* Why a lookup failed, as the error contract's exit class and code. */
struct shard_err {
	int status;       /* EX_DATAERR, EX_UNAVAILABLE, EX_CONFIG, EX_SOFTWARE */
	const char *code; /* "unknown_user", "shard_unavailable", … */
	char msg[256];
};

/* Fill e: the exit class, the code, the message. */
void shard_err_set(struct shard_err *e, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

void sctx_init(struct shard_ctx *x);
void sctx_close(struct shard_ctx *x);
/* Parse the options every shard-reaching subcommand shares (--shard, --url):
 * 1 when opt was one of them, 0 when not, -1 when its value is bad. */
int sctx_option(struct shard_ctx *x, int opt, const char *arg);
#define SCTX_OPT_URL 'u'
#define SCTX_OPT_SHARD 's'
#define SCTX_LONGOPTS { "url", required_argument, NULL, SCTX_OPT_URL }, \
		      { "shard", required_argument, NULL, SCTX_OPT_SHARD }
#define SCTX_HELP "  --shard N            use shard N (SHARD_<N>_DB_URL), not the routing table\n" \
		  "  --url URL            use this shard database directly\n"

/* The production database, or NULL: when required, a missing
 * PRODUCTION_DB_URL or a failed connection fills err. */
PGconn *sctx_production(struct shard_ctx *x, int required, struct shard_err *err);
/* The connection URL of shard id (SHARD_<id>_DB_URL wins over the shards
 * table's conninfo; "$VAR" in conninfo names another variable). Returns a
 * pointer into the environment or a malloc'd string in *owned. */
const char *sctx_shard_url(struct shard_ctx *x, long id, char **owned, char *var, size_t varlen,
			   struct shard_err *err);
PGconn *sctx_shard(struct shard_ctx *x, long id, struct shard_err *err);
/* The shard holding user_id. place: a user without a route gets one now
 * (hash(user_id) % N, stored). Without place an unknown user is
 * err->code "unknown_user". */
PGconn *sctx_for_user(struct shard_ctx *x, const char *user_id, int place, long *shard_id,
		      struct shard_err *err);
/* The same for a writer (save, replay, forget, erase, knowledge put, keys
 * rotate): the user's routing_table row stays locked FOR SHARE, on a
 * connection of its own, until sctx_write_done — so `move`, which takes
 * the row FOR UPDATE while it copies, waits for writers in flight and holds
 * new ones back until the route points at the new shard; nothing written
 * meanwhile is left behind on the old shard. With place, a user in
 * deleted_users_registry is refused (err->code "user_erased"): an erased
 * user never comes back through a late save or replay. Without routing
 * (--url, --shard, no PRODUCTION_DB_URL) it is sctx_for_user. */
PGconn *sctx_for_user_write(struct shard_ctx *x, const char *user_id, int place, long *shard_id,
			    struct shard_err *err);
/* End the writer's route lock: after the shard transaction ended, on every
 * path. Harmless when none is held. */
void sctx_write_done(struct shard_ctx *x);
/* The shard holding conversation_id (routed by user_id when given, else
 * asked of each shard). write: through sctx_for_user_write. */
PGconn *sctx_for_conversation(struct shard_ctx *x, const char *conversation_id,
			      const char *user_id, int write, long *shard_id, struct shard_err *err);
/* Map a failed query on c to the error contract: lost connection → 69. */
int sctx_query_fail(struct filter_run *run, PGconn *c, const char *what);
int sctx_fail(struct filter_run *run, const struct shard_err *err);

/* The stored route of user_id, or (place) a new one: 0, 1 (no route, not
 * placed) or -1. placed tells whether this call placed the user. lock:
 * the row is read FOR SHARE (inside the caller's transaction). */
int route_lookup(PGconn *p, const char *user_id, int place, int lock, long *shard_id, int *placed);
/* Placement: the shard index for a user among n shards. */
uint64_t shard_hash(const unsigned char uuid[16]);
int uuid_parse(const char *s, unsigned char out[16]);
int uuid_valid(const char *s);

/* JSON record helpers: the member as a string, or NULL. */
const char *jstr(const json_t *o, const char *key);
/* Print one JSON line on stdout (stolen). */
void shard_print(json_t *line);
/* The first row's first column as a long, or def. */
long pg_long(PGresult *r, int row, int col, long def);

/* Admin entry points, argv[0] being the subcommand word. */
int shard_cmd_init(int argc, char **argv);
int shard_cmd_add(int argc, char **argv);
int shard_cmd_list(int argc, char **argv);
int shard_cmd_route(int argc, char **argv);
int shard_cmd_move(int argc, char **argv);
int shard_cmd_status(int argc, char **argv);
int shard_cmd_apply_deletions(int argc, char **argv);
int shard_cmd_erase_user(const char *user_id, struct shard_ctx *x, const char *copy_file);
int shard_cmd_keys(int argc, char **argv);
int shard_cmd_knowledge(int argc, char **argv);

/* Filter entry points. */
int shard_filter_save(int argc, char **argv);
int shard_filter_replay(int argc, char **argv);
int shard_filter_search(int argc, char **argv);
int shard_filter_forget(int argc, char **argv);
int shard_filter_erase(int argc, char **argv);

/* Admin-command plumbing. admin_options owns the getopt_long loop of the
 * admin subcommands: -h/--help prints usage and summary and returns 0;
 * --env-file is only kept (env_file), for the subcommand to load with
 * admin_load_env once its operands are checked; --shard and --url go to x
 * when the subcommand takes them; any other option goes to own, which
 * returns 0 (taken), -1 (invalid: "invalid option") or an exit status it
 * has reported itself (admin_usage_error with a message of its own).
 * Returns -1 to go on, optind at the first operand, else the exit status.
 * longopts is the subcommand's whole table: "env-file" → ADMIN_OPT_ENV,
 * "help" → 'h', its own options from ADMIN_OPT_OWN on. */
enum { ADMIN_OPT_ENV = 1000, ADMIN_OPT_OWN };
struct option;
struct admin_opts {
	const char *usage;     /* "unde-shard SUB …\n": for --help and usage errors */
	const char *summary;   /* printed by --help after usage, or NULL */
	const char *shortopts; /* NULL: "h" */
	const struct option *longopts;
	struct shard_ctx *x;   /* takes --shard and --url; NULL: neither */
	int shard_only;        /* with x: --url is invalid (add) */
	int (*own)(int opt, const char *arg, void *data); /* NULL: no options of its own */
	void *data;
	const char *env_file;  /* out: --env-file, or NULL */
};
int admin_options(struct admin_opts *a, int argc, char **argv);
int admin_usage_error(const char *usage, const char *msg);
int admin_load_env(const char *env_file);
/* Production for an admin command that cannot go on without it: NULL
 * after logging why, with the exit status in *status. */
PGconn *admin_production(struct shard_ctx *x, int *status);

/* The spec's template for an assistant artifact's response_description
 * (§13: mandatory tokens SKU/item_id, brand, store). NULL when artifact is
 * not an object with items. Caller frees. */
char *shard_describe_artifact(const json_t *artifact);

/* Delete every row of a user on one shard (erase --user, apply-deletions,
 * move's clean-up). Inside the caller's transaction. 0 or -1. */
int shard_delete_user_rows(PGconn *c, const char *user_id, long *messages);

#endif
