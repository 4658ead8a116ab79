/* pg.c — libpq wrapper; see pg.h. */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "conf.h"
#include "log.h"
#include "pg.h"

static char pg_sqlstate[6];
static char pg_errbuf[1024];

/* libpq's messages span lines; logs want one. */
static const char *pg_one_line(const char *msg)
{
	snprintf(pg_errbuf, sizeof pg_errbuf, "%s", msg ? msg : "");
	for (char *p = pg_errbuf; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	size_t n = strlen(pg_errbuf);
	while (n && pg_errbuf[n - 1] == ' ')
		pg_errbuf[--n] = '\0';
	return pg_errbuf;
}

/* Server notices ("relation already exists, skipping") would otherwise be
 * printed raw on stderr by libpq, breaking the JSON-lines log. */
static void pg_on_notice(void *arg, const char *message)
{
	(void)arg;
	log_event(LOG_DEBUG, "server notice", json_pack("{s:s}", "notice", pg_one_line(message)));
}

PGconn *pg_connect(const char *url, const char *what)
{
	char red[512];
	conf_redact_url(url, red, sizeof red);
	const char *keys[] = { "dbname", "connect_timeout", "application_name", NULL };
	const char *vals[] = { url, "10", log_cmd(), NULL };
	PGconn *c = PQconnectdbParams(keys, vals, 1);
	if (!c || PQstatus(c) != CONNECTION_OK) {
		log_event(LOG_ERROR, "cannot connect to PostgreSQL",
			  json_pack("{s:s, s:s, s:s}", "variable", what ? what : "", "url", red,
				    "error", pg_one_line(c ? PQerrorMessage(c) : "out of memory")));
		PQfinish(c);
		return NULL;
	}
	PQsetNoticeProcessor(c, pg_on_notice, NULL);
	/* Our timestamps are UTC everywhere. */
	PGresult *r = PQexec(c, "SET TIME ZONE 'UTC'");
	PQclear(r);
	return c;
}

PGresult *pg_query(PGconn *c, const char *sql, int nparams, const char *const *params)
{
	pg_sqlstate[0] = '\0';
	PGresult *r = PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0);
	ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
		return r;
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	snprintf(pg_sqlstate, sizeof pg_sqlstate, "%s", state ? state : "");
	log_event(LOG_ERROR, "query failed",
		  json_pack("{s:s, s:s}", "sqlstate", pg_sqlstate,
			    "error", pg_one_line(PQerrorMessage(c))));
	PQclear(r);
	return NULL;
}

int pg_exec(PGconn *c, const char *sql, int nparams, const char *const *params)
{
	PGresult *r = pg_query(c, sql, nparams, params);
	if (!r)
		return -1;
	PQclear(r);
	return 0;
}

int pg_begin(PGconn *c) { return pg_exec(c, "BEGIN", 0, NULL); }
int pg_commit(PGconn *c) { return pg_exec(c, "COMMIT", 0, NULL); }

void pg_rollback(PGconn *c)
{
	PGresult *r = PQexec(c, "ROLLBACK");
	PQclear(r);
}

const char *pg_last_error(PGconn *c) { return pg_one_line(PQerrorMessage(c)); }

int pg_connection_lost(PGconn *c) { return !c || PQstatus(c) != CONNECTION_OK; }

const char *pg_last_sqlstate(void) { return pg_sqlstate; }

int pg_failure_status(PGconn *c)
{
	if (!c || pg_connection_lost(c))
		return EX_UNAVAILABLE;
	const char *st = pg_last_sqlstate();
	static const struct {
		const char *prefix;
		int status;
	} map[] = {
		{ "08", EX_UNAVAILABLE },  { "57P01", EX_UNAVAILABLE }, { "57P02", EX_UNAVAILABLE },
		{ "57P03", EX_UNAVAILABLE }, { "40001", EX_TEMPFAIL },  { "40P01", EX_TEMPFAIL },
		{ "55P03", EX_TEMPFAIL },  { "57014", EX_TEMPFAIL },    { "53", EX_TEMPFAIL },
		{ "22", EX_DATAERR },	   { "23", EX_DATAERR },
	};
	for (size_t i = 0; st && *st && i < sizeof map / sizeof *map; i++)
		if (strncmp(st, map[i].prefix, strlen(map[i].prefix)) == 0)
			return map[i].status;
	return EX_SOFTWARE;
}
