/* admin.c — the subcommands that manage shards and routes: init (migrate
 * a shard with unde-db), add (register a shard in production), list, and
 * route (where a user lives; placing new users). */
#include "config.h"

#include <errno.h>
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

static const char init_usage[] = "unde-shard init --shard N [--url URL]\n";

/* init: migrate a shard with unde-db (the one next to this binary, else
 * PATH), so the schema has one owner. */
int shard_cmd_init(int argc, char **argv)
{
	struct shard_ctx x;
	sctx_init(&x);
	struct admin_opts a = { .name = "unde-shard init", .usage = init_usage,
				.summary = "Migrate shard N's database (unde-db migrate shard).\n",
				.x = &x };
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
	const char *name = NULL, *ci = NULL;
	const struct filter_option o[] = {
		{ "name", 0, "NAME", "the shard's name", .string = &name },
		{ "conninfo", 0, "C", "how to reach it: a libpq string without a password, or\n"
				      "                       $VAR naming the variable that holds one",
		  .string = &ci },
		{ 0 } };
	struct shard_ctx x;
	sctx_init(&x);
	struct admin_opts a = { .name = "unde-shard add", .usage = add_usage,
				.summary = "Register a shard in production's shards table.\n",
				.options = o, .x = &x, .shard_only = 1 };
	int rc = admin_options(&a, argc, argv);
	if (rc >= 0)
		return rc;
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
	struct shard_ctx x;
	sctx_init(&x);
	struct admin_opts a = { .name = "unde-shard list", .usage = list_usage,
				.summary = "List the registered shards and their users.\n",
				.no_operands = 1 };
	int rc = admin_options(&a, argc, argv);
	if (rc >= 0)
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

/* route: where each user lives; a new user is placed (and the placement
 * stored) unless --no-place. */
int shard_cmd_route(int argc, char **argv)
{
	int no_place = 0;
	const struct filter_option o[] = {
		{ "no-place", 'n', NULL, "only look up: a user without a route is an error",
		  .flag = &no_place },
		{ 0 } };
	struct shard_ctx x;
	sctx_init(&x);
	struct admin_opts a = { .name = "unde-shard route", .usage = route_usage,
				.summary = "Print each user's shard; place new users.\n", .options = o };
	int rc = admin_options(&a, argc, argv);
	if (rc >= 0)
		return rc;
	int place = !no_place;
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

/* --shard and --url of an admin subcommand, into its shard context. */
static int admin_sctx_option(void *state, int id, const char *arg)
{
	return sctx_option(state, id, arg) == 1 ? 0 : -1;
}

/* --help of an admin subcommand, from the same tables the parser read. */
static void admin_help(const struct admin_opts *a, const struct options_table *t, size_t n)
{
	printf("Usage: %s%s\nOptions:\n", a->usage, a->summary ? a->summary : "");
	for (size_t i = 0; i < n; i++)
		options_help(stdout, t[i].options);
	printf("  -h, --help           show this help\n"
	       "  -V, --version        show the version\n\nSee unde-shard(1).\n");
}

/* One parser for all the admin subcommands, so that --help, --env-file,
 * --shard/--url and the usage errors behave the same in each, and --help
 * is written from the tables it parses. See shard.h. */
int admin_options(struct admin_opts *a, int argc, char **argv)
{
	struct filter_option shard[] = { SCTX_OPTIONS, { 0 } };
	if (a->shard_only)
		shard[1] = (struct filter_option){ 0 }; /* no --url */
	const struct filter_option common[] = {
		{ "env-file", 0, "FILE", "read KEY=VALUE settings (default " CONF_DEFAULT_ENV_FILE
					 " if present)",
		  .string = &a->env_file },
		{ 0 } };
	struct options_table t[3];
	size_t n = 0;
	if (a->x)
		t[n++] = (struct options_table){ shard, admin_sctx_option, a->x };
	if (a->options)
		t[n++] = (struct options_table){ a->options, a->own, a->data };
	t[n++] = (struct options_table){ common, NULL, NULL };
	a->env_file = NULL;
	switch (options_parse(a->name ? a->name : "unde-shard", t, n, OPTIONS_PERMUTE, argc, argv)) {
	case OPTIONS_HELP: admin_help(a, t, n); return 0;
	case OPTIONS_VERSION: return 0;
	case OPTIONS_USAGE: return EX_USAGE;
	case OPTIONS_OK: break;
	}
	if (!a->no_operands)
		return -1;
	if (optind != argc)
		return admin_usage_error(a->usage, "unexpected argument");
	int rc = admin_load_env(a->env_file);
	return rc ? rc : -1;
}

int admin_each_shard(struct shard_ctx *x, int (*fn)(PGconn *c, long sid, void *data), void *data)
{
	struct shard_err e;
	int worst = 0;
	if (x->url || x->shard >= 0 || !sctx_production(x, 0, &e)) {
		if (!x->url && x->shard < 0 && !x->prod_missing) {
			log_event(LOG_ERROR, e.msg, NULL);
			return e.status;
		}
		long sid = x->shard >= 0 ? x->shard : 0;
		PGconn *sc = sctx_shard(x, sid, &e);
		if (!sc) {
			log_event(LOG_ERROR, e.msg, NULL);
			return e.status;
		}
		return fn(sc, sid, data);
	}
	PGresult *ids = pg_query(x->prod, "SELECT shard_id FROM shards ORDER BY shard_id", 0, NULL);
	if (!ids)
		return EX_UNAVAILABLE;
	for (int i = 0; i < PQntuples(ids); i++) {
		long sid = shard_pg_long(ids, i, 0, 0);
		PGconn *sc = sctx_shard(x, sid, &e);
		int rc;
		if (!sc) {
			log_event(LOG_ERROR, e.msg, json_pack("{s:i}", "shard_id", (int)sid));
			worst = e.status;
		} else if ((rc = fn(sc, sid, data)) != 0) {
			worst = rc;
		}
	}
	PQclear(ids);
	return worst;
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

