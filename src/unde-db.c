/* unde-db — schema migrations for the staging, production and shard
 * databases.
 *
 *   unde-db migrate staging|production|shard [--url URL] [--shard N]
 *   unde-db status  [staging|production|shard …] [--url URL] [--shard N]
 *
 * Migrations are the numbered files sql/<db>/NNNN_name.sql, applied in
 * order, each in its own transaction together with its row in
 * schema_migrations (version, name, SHA-256 of the file). A
 * transaction-scoped advisory lock, taken inside each migration's own
 * transaction (and re-checking schema_migrations under it), keeps two
 * concurrent runs from applying the same file; it ends with the
 * transaction, so it survives PgBouncer's transaction pooling, where a
 * session lock would stay behind on a pooled server connection. An
 * applied file whose checksum changed is reported, never re-applied. Output
 * is one JSON line per migration. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "conf.h"
#include "jsonl.h"
#include "log.h"
#include "options.h"
#include "pg.h"
#include "util.h"

#define DB_MIGRATE_LOCK "7355608" /* any constant shared by every unde-db */

static const char *const db_names[] = { "staging", "production", "shard" };

struct migration {
	char version[16];
	char name[200];
	char path[PATH_MAX];
};

/* What the options set. */
static const char *db_url, *db_sqldir_opt, *db_env_file;
static long long db_shard;

static const struct filter_option db_options[] = {
	{ "url", 0, "URL", "database URL (default: STAGING_DB_URL, PRODUCTION_DB_URL\n"
			   "                       or SHARD_<N>_DB_URL by database)", .string = &db_url },
	{ "shard", 0, "N", "which shard's URL variable to use (default 0)", .number = &db_shard,
	  .min = 0, .max = 9999 },
	{ "sql-dir", 0, "DIR", "where sql/<db>/ lives (default: UNDE_SQL_DIR, the\n"
			       "                       installed " UNDE_SQLDIR ", or the source tree)",
	  .string = &db_sqldir_opt },
	{ "env-file", 0, "FILE", "read KEY=VALUE settings", .string = &db_env_file },
	{ 0 },
};

static void db_usage(FILE *f)
{
	fputs("Usage: unde-db migrate staging|production|shard [--url URL] [--shard N]\n"
	      "       unde-db status [staging|production|shard …] [--url URL] [--shard N]\n"
	      "Apply or list the numbered SQL migrations of UNDE's databases.\n\n"
	      "Options:\n",
	      f);
	options_help(f, db_options);
	fputs("  -h, --help           show this help\n"
	      "  -V, --version        show the version\n"
	      "Writes one JSON line per migration on stdout. See unde-db(1).\n",
	      f);
}

static int db_usage_error(const char *msg) { return options_usage_error("unde-db", msg); }

static int db_known(const char *db)
{
	for (size_t i = 0; i < sizeof db_names / sizeof *db_names; i++)
		if (strcmp(db, db_names[i]) == 0)
			return 1;
	return 0;
}

static int db_is_dir(const char *path)
{
	DIR *d = opendir(path);
	if (d)
		closedir(d);
	return d != NULL;
}

/* Is this binary the one in the build tree's src/? It then uses the
 * source tree's sql/ and the build's PostgreSQL module, so a developer
 * never migrates with stale installed files. */
static int db_in_build_tree(void)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n <= 0)
		return 0;
	exe[n] = '\0';
	char *slash = strrchr(exe, '/');
	if (!slash)
		return 0;
	*slash = '\0';
	return strcmp(exe, UNDE_BUILDDIR "/src") == 0;
}

/* An installed binary uses the installed sql/. */
static void db_sql_dir(const char *given, char *out, size_t len)
{
	if (given) {
		snprintf(out, len, "%s", given);
		return;
	}
	const char *env = getenv("UNDE_SQL_DIR");
	if (env && *env) {
		snprintf(out, len, "%s", env);
		return;
	}
	if (db_in_build_tree() && db_is_dir(UNDE_SRCDIR "/sql")) {
		snprintf(out, len, "%s", UNDE_SRCDIR "/sql");
		return;
	}
	snprintf(out, len, "%s", db_is_dir(UNDE_SQLDIR) ? UNDE_SQLDIR : UNDE_SRCDIR "/sql");
}

/* Where the shard's PostgreSQL finds unde_vector.so: UNDE_PG_MODULE,
 * the build's when run from the build tree, else the installed one. The
 * path is the server's, so it must exist on the database's host. */
static const char *db_pg_module(void)
{
	const char *env = getenv("UNDE_PG_MODULE");
	if (env && *env)
		return env;
	if (db_in_build_tree() && access(UNDE_BUILDDIR "/src/shard/pg/unde_vector.so", R_OK) == 0)
		return UNDE_BUILDDIR "/src/shard/pg/unde_vector.so";
	return UNDE_PKGLIBDIR "/unde_vector.so";
}

/* After the shard's migrations: (re)create unde_vector_topk from the
 * module (migration 0050's unde_vector_install), under the migration lock
 * so two runs do not replace it at once. Logged either way; a shard
 * without it still works (search runs the branch in SQL), so this never
 * fails the migration. */
static void db_install_pg_module(PGconn *c)
{
	const char *lib = db_pg_module();
	const char *p[] = { lib };
	PGresult *r = NULL;
	if (pg_begin(c) == 0 &&
	    pg_exec(c, "SELECT pg_advisory_xact_lock(" DB_MIGRATE_LOCK ")", 0, NULL) == 0)
		r = pg_query(c, "SELECT unde_vector_install($1)", 1, p);
	if (r && pg_commit(c) == 0 && PQgetisnull(r, 0, 0))
		log_event(LOG_INFO, "native vector branch installed", json_pack("{s:s}", "module", lib));
	else
		log_event(LOG_WARN, "native vector branch not installed: search runs it in SQL",
			  json_pack("{s:s, s:s}", "module", lib, "reason",
				    r ? PQgetvalue(r, 0, 0) : pg_last_error(c)));
	if (!r)
		pg_rollback(c);
	PQclear(r);
}

static int db_cmp_migration(const void *a, const void *b)
{
	return strcmp(((const struct migration *)a)->version, ((const struct migration *)b)->version);
}

/* The migration files of one database, sorted by version. A file that looks
 * like a migration but is misnamed is an error, not silently skipped. */
static struct migration *db_list_migrations(const char *dir, size_t *count, int *bad)
{
	*count = 0;
	*bad = 0;
	DIR *d = opendir(dir);
	if (!d) {
		log_event(LOG_ERROR, "cannot open the migrations directory",
			  json_pack("{s:s, s:s}", "dir", dir, "error", strerror(errno)));
		*bad = 1;
		return NULL;
	}
	struct migration *m = NULL;
	size_t cap = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		const char *fn = de->d_name;
		size_t fl = strlen(fn);
		if (fl < 4 || strcmp(fn + fl - 4, ".sql") != 0)
			continue;
		size_t digits = strspn(fn, "0123456789");
		if (digits != 4 || fn[4] != '_' || fl < 10 || fl - 9 >= sizeof m->name) {
			log_event(LOG_ERROR, "misnamed migration file (want NNNN_name.sql)",
				  json_pack("{s:s, s:s}", "dir", dir, "file", fn));
			*bad = 1;
			continue;
		}
		if (*count == cap) {
			cap = cap ? cap * 2 : 16;
			m = xrealloc(m, cap * sizeof *m);
		}
		struct migration *x = &m[(*count)++];
		memcpy(x->version, fn, 4);
		x->version[4] = '\0';
		snprintf(x->name, sizeof x->name, "%.*s", (int)(fl - 9), fn + 5);
		if (snprintf(x->path, sizeof x->path, "%s/%s", dir, fn) >= (int)sizeof x->path) {
			(*count)--;
			*bad = 1;
		}
	}
	closedir(d);
	if (*count)
		qsort(m, *count, sizeof *m, db_cmp_migration);
	for (size_t i = 1; i < *count; i++)
		if (strcmp(m[i].version, m[i - 1].version) == 0) {
			log_event(LOG_ERROR, "two migrations share a version",
				  json_pack("{s:s, s:s}", "dir", dir, "version", m[i].version));
			*bad = 1;
		}
	return m;
}

static char *db_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	struct buf b = { 0 };
	char chunk[8192];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		buf_append(&b, chunk, n);
	int err = ferror(f);
	fclose(f);
	if (err) {
		buf_free(&b);
		return NULL;
	}
	if (!b.data)
		buf_append(&b, "", 0);
	*len = b.len;
	return b.data;
}

static void db_sha256_hex(const char *data, size_t len, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
	for (unsigned i = 0; i < mdlen && i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	out[64] = '\0';
}

static void db_print(const char *db, const struct migration *m, const char *status,
		     const char *applied_at)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "db", db, "version", m->version, "name",
			      m->name, "status", status);
	if (applied_at)
		json_object_set_new(o, "applied_at", json_string(applied_at));
	jsonl_write(stdout, o);
	json_decref(o);
}

/* Create schema_migrations when missing, under the migration lock:
 * CREATE TABLE IF NOT EXISTS itself races between sessions. */
static int db_ensure_bookkeeping(PGconn *c)
{
	if (pg_begin(c) != 0)
		return -1;
	if (pg_exec(c, "SELECT pg_advisory_xact_lock(" DB_MIGRATE_LOCK ")", 0, NULL) != 0 ||
	    pg_exec(c,
		    "CREATE TABLE IF NOT EXISTS schema_migrations ("
		    " version text PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
		    " applied_at timestamptz NOT NULL DEFAULT now())",
		    0, NULL) != 0 ||
	    pg_commit(c) != 0) {
		pg_rollback(c);
		return -1;
	}
	return 0;
}

/* Run one migration file and record it, in one transaction that holds the
 * migration lock (released by COMMIT or ROLLBACK, never left on a pooled
 * connection). Under the lock the file's row is looked up again: a
 * concurrent run may have applied it since our first look. The file is
 * static SQL shipped with UNDE — no data is spliced in — so it is the one
 * place where the simple query protocol (several statements) is used.
 * Returns 0 applied now, 1 applied meanwhile by another run, -1 failed. */
static int db_apply(PGconn *c, const char *db, const struct migration *m, const char *sql,
		    const char *checksum)
{
	if (pg_begin(c) != 0)
		return -1;
	if (pg_exec(c, "SELECT pg_advisory_xact_lock(" DB_MIGRATE_LOCK ")", 0, NULL) != 0) {
		pg_rollback(c);
		return -1;
	}
	const char *vp[] = { m->version };
	PGresult *seen = pg_query(c, "SELECT 1 FROM schema_migrations WHERE version = $1", 1, vp);
	if (!seen) {
		pg_rollback(c);
		return -1;
	}
	int already = PQntuples(seen) > 0;
	PQclear(seen);
	if (already) {
		pg_rollback(c);
		return 1;
	}
	PGresult *r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
		const char *pos = PQresultErrorField(r, PG_DIAG_STATEMENT_POSITION);
		log_event(LOG_ERROR, "migration failed",
			  json_pack("{s:s, s:s, s:s, s:s, s:s}", "db", db, "file", m->path, "error",
				    pg_last_error(c), "position", pos ? pos : "", "sqlstate",
				    PQresultErrorField(r, PG_DIAG_SQLSTATE)
					    ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : ""));
		PQclear(r);
		pg_rollback(c);
		return -1;
	}
	PQclear(r);
	const char *p[] = { m->version, m->name, checksum };
	if (pg_exec(c, "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1,$2,$3)",
		    3, p) != 0 || pg_commit(c) != 0) {
		pg_rollback(c);
		return -1;
	}
	return 0;
}

/* Walk the files against schema_migrations; apply the missing ones when
 * apply is set, otherwise only report. */
static int db_run(const char *db, const char *url, const char *urlvar, const char *sqlroot,
		  int apply)
{
	char dir[PATH_MAX];
	if (snprintf(dir, sizeof dir, "%s/%s", sqlroot, db) >= (int)sizeof dir)
		return EX_CONFIG;
	size_t n;
	int bad;
	struct migration *ms = db_list_migrations(dir, &n, &bad);
	if (bad) {
		free(ms);
		return EX_CONFIG;
	}
	PGconn *c = pg_connect(url, urlvar);
	if (!c) {
		free(ms);
		return pg_failure_status(NULL);
	}
	int rc = 0;
	if (apply && db_ensure_bookkeeping(c) != 0) {
		rc = pg_failure_status(c);
		goto out;
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		size_t len;
		char *sql = db_read_file(ms[i].path, &len);
		if (!sql) {
			log_event(LOG_ERROR, "cannot read migration",
				  json_pack("{s:s, s:s}", "file", ms[i].path, "error", strerror(errno)));
			rc = EX_NOINPUT;
			break;
		}
		char sum[65];
		db_sha256_hex(sql, len, sum);
		const char *p[] = { ms[i].version };
		PGresult *r = pg_query(c,
				       "SELECT checksum, to_char(applied_at, 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
				       " FROM schema_migrations WHERE version = $1"
				       " AND to_regclass('schema_migrations') IS NOT NULL",
				       1, p);
		if (!r) {
			/* no bookkeeping table yet: nothing applied */
			if (strcmp(pg_last_sqlstate(), "42P01") != 0) {
				free(sql);
				rc = pg_failure_status(c);
				break;
			}
		}
		if (r && PQntuples(r) == 1) {
			if (strcmp(PQgetvalue(r, 0, 0), sum) != 0) {
				log_event(LOG_ERROR, "applied migration changed since it was applied",
					  json_pack("{s:s, s:s}", "db", db, "file", ms[i].path));
				db_print(db, &ms[i], "changed", PQgetvalue(r, 0, 1));
				rc = EX_DATAERR;
			} else {
				db_print(db, &ms[i], apply ? "already applied" : "applied",
					 PQgetvalue(r, 0, 1));
			}
		} else if (!apply) {
			db_print(db, &ms[i], "pending", NULL);
		} else {
			int a = db_apply(c, db, &ms[i], sql, sum);
			if (a == 0) {
				db_print(db, &ms[i], "applied now", NULL);
				log_event(LOG_INFO, "migration applied",
					  json_pack("{s:s, s:s, s:s}", "db", db, "version",
						    ms[i].version, "name", ms[i].name));
			} else if (a == 1) {
				db_print(db, &ms[i], "already applied", NULL);
			} else {
				rc = EX_DATAERR;
			}
		}
		PQclear(r);
		free(sql);
	}
	if (rc == 0 && apply && strcmp(db, "shard") == 0)
		db_install_pg_module(c);
out:
	PQfinish(c);
	free(ms);
	return rc;
}

static const char *db_url_var(const char *db, long shard, char *buf, size_t len)
{
	if (strcmp(db, "staging") == 0)
		return "STAGING_DB_URL";
	if (strcmp(db, "production") == 0)
		return "PRODUCTION_DB_URL";
	snprintf(buf, len, "SHARD_%ld_DB_URL", shard);
	return buf;
}

int main(int argc, char **argv)
{
	log_init("unde-db");
	const struct options_table table = { db_options, NULL, NULL };
	int prc = options_main("unde-db", &table, 1, OPTIONS_PERMUTE, argc, argv, db_usage);
	if (prc >= 0)
		return prc;
	const char *url = db_url, *sqldir_opt = db_sqldir_opt, *env_file = db_env_file;
	long long shard = db_shard;
	if (optind >= argc)
		return db_usage_error("missing subcommand: migrate or status");
	const char *sub = argv[optind++];
	int apply;
	if (strcmp(sub, "migrate") == 0)
		apply = 1;
	else if (strcmp(sub, "status") == 0)
		apply = 0;
	else
		return db_usage_error("unknown subcommand (want migrate or status)");
	int ndb = argc - optind;
	if (apply && ndb != 1)
		return db_usage_error("migrate takes exactly one database: staging, production or shard");
	if (url && ndb != 1)
		return db_usage_error("--url goes with exactly one database");
	for (int i = optind; i < argc; i++)
		if (!db_known(argv[i]))
			return db_usage_error("unknown database (want staging, production or shard)");
	int rc = conf_load_env(env_file);
	if (rc)
		return rc;

	char sqlroot[PATH_MAX];
	db_sql_dir(sqldir_opt, sqlroot, sizeof sqlroot);
	const char *const *dbs = (const char *const *)argv + optind;
	if (ndb == 0) {
		dbs = db_names;
		ndb = 3;
	}
	int worst = 0;
	for (int i = 0; i < ndb; i++) {
		char varbuf[64];
		const char *var = db_url_var(dbs[i], (long)shard, varbuf, sizeof varbuf);
		const char *u = url ? url : conf_require(var);
		int r = db_run(dbs[i], u, url ? "--url" : var, sqlroot, apply);
		if (r && !worst)
			worst = r;
	}
	return worst;
}
