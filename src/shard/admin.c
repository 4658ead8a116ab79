/* admin.c — the subcommands that manage shards and routes: init (migrate
 * a shard with unde-db), add (register a shard in production), list, and
 * route (where a user lives; placing new users). */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "conf.h"
#include "jsonl.h"
#include "log.h"
#include "pg.h"
#include "shard.h"
#include "util.h"

/* ---- admin subcommands ---- */

enum { OPT_NAME = ADMIN_OPT_OWN, OPT_CONNINFO };

#define ADMIN_COMMON { "env-file", required_argument, NULL, ADMIN_OPT_ENV }, \
		     { "help", no_argument, NULL, 'h' }, SCTX_LONGOPTS

static const char init_usage[] = "unde-shard init --shard N [--url URL]\n";

/* init: migrate a shard with unde-db (the one next to this binary, else
 * PATH), so the schema has one owner. */
int shard_cmd_init(int argc, char **argv)
{
	static const struct option o[] = { ADMIN_COMMON, { 0 } };
	struct shard_ctx x;
	sctx_init(&x);
	struct admin_opts a = { .usage = init_usage,
				.summary = "Migrate shard N's database (unde-db migrate shard).\n",
				.longopts = o, .x = &x };
	int rc = admin_options(&a, argc, argv);
	if (rc >= 0)
		return rc;
	if (x.shard < 0 || optind != argc)
		return admin_usage_error(init_usage, "init needs --shard N");
	char exe[PATH_MAX], tool[PATH_MAX + 16], shard[24];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	snprintf(tool, sizeof tool, "unde-db");
	if (n > 0) {
		exe[n] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
			if (snprintf(tool, sizeof tool, "%s/unde-db", exe) >= (int)sizeof tool ||
			    access(tool, X_OK) != 0)
				snprintf(tool, sizeof tool, "unde-db");
		}
	}
	snprintf(shard, sizeof shard, "%ld", x.shard);
	char *args[12];
	int k = 0;
	args[k++] = tool;
	args[k++] = (char *)"migrate";
	args[k++] = (char *)"shard";
	args[k++] = (char *)"--shard";
	args[k++] = shard;
	if (x.url) {
		args[k++] = (char *)"--url";
		args[k++] = (char *)x.url;
	}
	if (a.env_file) { /* unde-db loads it */
		args[k++] = (char *)"--env-file";
		args[k++] = (char *)a.env_file;
	}
	args[k] = NULL;
	fflush(stdout);
	execvp(tool, args);
	log_event(LOG_ERROR, "cannot run unde-db",
		  json_pack("{s:s, s:s}", "tool", tool, "error", strerror(errno)));
	return EX_UNAVAILABLE;
}

static const char add_usage[] =
	"unde-shard add --shard N --name NAME [--conninfo URL|$VAR]\n";

struct add_args {
	const char *name, *ci;
};

/* add's own options, --name and --conninfo: kept here, checked by
 * shard_cmd_add once all are read. */
static int add_option(int opt, const char *arg, void *data)
{
	struct add_args *g = data;
	if (opt == OPT_NAME)
		g->name = arg;
	else if (opt == OPT_CONNINFO)
		g->ci = arg;
	else
		return -1;
	return 0;
}

/* Does conninfo carry a password? Parsed the way libpq parses it
 * (PQconninfoParse: key=value with any spacing and quoting, or a URI),
 * not by pattern. 1 yes, 0 no, -1 not a connection string at all. A
 * "$VAR" reference is never parsed: it names the variable that holds the
 * real string. */
static int conninfo_has_password(const char *ci)
{
	if (ci[0] == '$')
		return 0;
	char *why = NULL;
	PQconninfoOption *o = PQconninfoParse(ci, &why);
	PQfreemem(why);
	if (!o)
		return -1;
	int has = 0;
	for (PQconninfoOption *i = o; i->keyword; i++)
		if (!strcmp(i->keyword, "password") && i->val && *i->val)
			has = 1;
	PQconninfoFree(o);
	return has;
}

/* add: register a shard in production. A conninfo holding a password is
 * refused: passwords live in SHARD_<N>_DB_URL (or the variable "$VAR"
 * names), never in a table anyone with read access can dump. */
int shard_cmd_add(int argc, char **argv)
{
	static const struct option o[] = { ADMIN_COMMON, { "name", required_argument, NULL, OPT_NAME },
					   { "conninfo", required_argument, NULL, OPT_CONNINFO }, { 0 } };
	struct shard_ctx x;
	sctx_init(&x);
	struct add_args g = { NULL, NULL };
	struct admin_opts a = { .usage = add_usage,
				.summary = "Register a shard in production's shards table.\n",
				.longopts = o, .x = &x, .shard_only = 1, .own = add_option, .data = &g };
	int rc = admin_options(&a, argc, argv);
	if (rc >= 0)
		return rc;
	const char *name = g.name, *ci = g.ci;
	if (x.shard < 0 || !name || !*name || optind != argc)
		return admin_usage_error(add_usage, "add needs --shard N and --name NAME");
	if (ci) {
		int has = conninfo_has_password(ci);
		if (has < 0)
			return admin_usage_error(add_usage, "--conninfo is not a libpq connection string "
							    "(key=value or postgresql:// URI) or a $VAR reference");
		if (has)
			return admin_usage_error(add_usage, "--conninfo must not hold a password: put it "
							    "in SHARD_<N>_DB_URL or name a variable as $VAR");
	}
	if ((rc = admin_load_env(a.env_file)))
		return rc;
	PGconn *p = admin_production(&x, &rc);
	if (!p)
		return rc;
	char ids[24];
	snprintf(ids, sizeof ids, "%ld", x.shard);
	const char *pp[] = { ids, name, ci };
	PGresult *r = pg_query(p,
			       "INSERT INTO shards (shard_id, name, conninfo) VALUES ($1, $2, $3)"
			       " ON CONFLICT (shard_id) DO UPDATE SET name = EXCLUDED.name,"
			       " conninfo = EXCLUDED.conninfo"
			       " RETURNING (xmax = 0), (SELECT count(*) FROM shards s WHERE s.shard_id <> $1::int) + 1",
			       3, pp);
	if (!r) {
		rc = !strcmp(pg_last_sqlstate(), "23505") ? EX_DATAERR : EX_SOFTWARE;
		sctx_close(&x);
		return rc;
	}
	shard_print(json_pack("{s:i, s:s, s:s*, s:s, s:i}", "shard_id", (int)x.shard, "name", name,
			      "conninfo", ci, "status",
			      PQgetvalue(r, 0, 0)[0] == 't' ? "added" : "updated", "shards",
			      (int)shard_pg_long(r, 0, 1, 0)));
	PQclear(r);
	sctx_close(&x);
	return 0;
}

static const char list_usage[] = "unde-shard list\n";

int shard_cmd_list(int argc, char **argv)
{
	static const struct option o[] = { ADMIN_COMMON, { 0 } };
	struct shard_ctx x;
	sctx_init(&x);
	struct admin_opts a = { .usage = list_usage,
				.summary = "List the registered shards and their users.\n", .longopts = o };
	int rc = admin_options(&a, argc, argv);
	if (rc >= 0)
		return rc;
	if (optind != argc)
		return admin_usage_error(list_usage, "unexpected argument");
	if ((rc = admin_load_env(a.env_file)))
		return rc;
	PGconn *p = admin_production(&x, &rc);
	if (!p)
		return rc;
	PGresult *r = pg_query(p,
			       "SELECT s.shard_id, s.name, s.conninfo,"
			       " (SELECT count(*) FROM routing_table t WHERE t.shard_id = s.shard_id)"
			       " FROM shards s ORDER BY s.shard_id",
			       0, NULL);
	if (!r) {
		sctx_close(&x);
		return EX_SOFTWARE;
	}
	for (int i = 0; i < PQntuples(r); i++) {
		long id = shard_pg_long(r, i, 0, -1);
		char var[128], *owned = NULL;
		struct shard_err e2;
		int configured = sctx_shard_url(&x, id, &owned, var, sizeof var, &e2) != NULL;
		free(owned);
		/* a row stored before add refused passwords is never printed whole */
		const char *ci = PQgetisnull(r, i, 2) ? NULL : PQgetvalue(r, i, 2);
		if (ci && conninfo_has_password(ci) != 0)
			ci = "[redacted: holds a password; re-add with $VAR]";
		shard_print(json_pack("{s:i, s:s, s:s*, s:I, s:s, s:b}", "shard_id", (int)id, "name",
				      PQgetvalue(r, i, 1), "conninfo", ci, "users",
				      (json_int_t)shard_pg_long(r, i, 3, 0), "connection", var,
				      "configured", configured));
	}
	PQclear(r);
	sctx_close(&x);
	return 0;
}

static const char route_usage[] = "unde-shard route [--no-place] USER_ID...\n";

/* route's own option, -n/--no-place: data is its place flag. */
static int route_option(int opt, const char *arg, void *data)
{
	(void)arg;
	if (opt != 'n')
		return -1;
	*(int *)data = 0; /* --no-place */
	return 0;
}

/* route: where each user lives; a new user is placed (and the placement
 * stored) unless --no-place. */
int shard_cmd_route(int argc, char **argv)
{
	static const struct option o[] = { ADMIN_COMMON, { "no-place", no_argument, NULL, 'n' },
					   { 0 } };
	struct shard_ctx x;
	sctx_init(&x);
	int place = 1;
	struct admin_opts a = { .usage = route_usage,
				.summary = "Print each user's shard; place new users.\n", .shortopts = "hn",
				.longopts = o, .own = route_option, .data = &place };
	int rc = admin_options(&a, argc, argv);
	if (rc >= 0)
		return rc;
	if (optind >= argc)
		return admin_usage_error(route_usage, "route needs USER_ID");
	for (int i = optind; i < argc; i++)
		if (!shard_uuid_valid(argv[i]))
			return admin_usage_error(route_usage, "USER_ID must be a UUID");
	if ((rc = admin_load_env(a.env_file)))
		return rc;
	PGconn *p = admin_production(&x, &rc);
	if (!p)
		return rc;
	int worst = 0;
	for (int i = optind; i < argc; i++) {
		long id = -1;
		int placed = 0;
		if (place) {
			/* an erased user is never placed again (save refuses them too) */
			const char *pu[] = { argv[i] };
			PGresult *er = pg_query(p, "SELECT 1 FROM deleted_users_registry WHERE user_id = $1", 1, pu);
			int erased = er && PQntuples(er) > 0;
			PQclear(er);
			if (!er || erased) {
				log_record_error(NULL, er ? "user_erased" : "routing_failed",
						 er ? "the user was erased (deleted_users_registry): not placed"
						    : "cannot read the deleted users registry",
						 json_pack("{s:s}", "user_id", argv[i]));
				worst = er ? EX_DATAERR : EX_SOFTWARE;
				continue;
			}
		}
		int lr = route_lookup(p, argv[i], place, 0, &id, &placed);
		if (lr != 0) {
			log_event(LOG_ERROR, lr > 0 ? "user has no route" : "routing failed",
				  json_pack("{s:s}", "user_id", argv[i]));
			worst = lr > 0 ? EX_DATAERR : EX_SOFTWARE;
			continue;
		}
		const char *pp[] = { argv[i] };
		char ids[24];
		snprintf(ids, sizeof ids, "%ld", id);
		pp[0] = ids;
		PGresult *r = pg_query(p, "SELECT name FROM shards WHERE shard_id = $1", 1, pp);
		char var[128], *owned = NULL;
		struct shard_err e2;
		sctx_shard_url(&x, id, &owned, var, sizeof var, &e2);
		free(owned);
		shard_print(json_pack("{s:s, s:i, s:s, s:s, s:s}", "user_id", argv[i], "shard_id",
				      (int)id, "name", r && PQntuples(r) ? PQgetvalue(r, 0, 0) : "",
				      "connection", var, "route", placed ? "placed" : "stored"));
		PQclear(r);
	}
	sctx_close(&x);
	return worst;
}

void shard_print(json_t *line)
{
	jsonl_write(stdout, line);
	json_decref(line);
}

int admin_usage_error(const char *usage, const char *msg)
{
	log_event(LOG_ERROR, msg, json_pack("{s:i}", "exit", EX_USAGE));
	fprintf(stderr, "Usage: %sTry 'unde-shard --help'.\n", usage);
	return EX_USAGE;
}

int admin_load_env(const char *env_file) { return conf_load_env(env_file); }

/* One getopt_long loop for all the admin subcommands, so that --help,
 * --env-file, --shard/--url and the "invalid option" usage error behave
 * the same in each; the subcommand keeps its own option table (getopt's
 * messages follow it) and its own options (own). See shard.h. */
int admin_options(struct admin_opts *a, int argc, char **argv)
{
	const char *shortopts = a->shortopts ? a->shortopts : "h";
	int c;
	a->env_file = NULL;
	optind = 1;
	while ((c = getopt_long(argc, argv, shortopts, a->longopts, NULL)) != -1) {
		int rc;
		if (c == 'h') {
			printf("Usage: %s%s", a->usage, a->summary ? a->summary : "");
			return 0;
		}
		if (c == ADMIN_OPT_ENV) {
			a->env_file = optarg;
			continue;
		}
		if (a->x && (c == SCTX_OPT_SHARD || (c == SCTX_OPT_URL && !a->shard_only)))
			rc = sctx_option(a->x, c, optarg) == 1 ? 0 : -1;
		else
			rc = a->own ? a->own(c, optarg, a->data) : -1;
		if (rc < 0)
			return admin_usage_error(a->usage, "invalid option");
		if (rc > 0)
			return rc;
	}
	return -1;
}

/* The admin commands' one way to fail on production (add, list, route,
 * erase --user): the reason logged, its exit class returned. */
PGconn *admin_production(struct shard_ctx *x, int *status)
{
	struct shard_err e;
	PGconn *p = sctx_production(x, 1, &e);
	if (!p) {
		log_event(LOG_ERROR, e.msg, NULL);
		*status = e.status;
	}
	return p;
}

