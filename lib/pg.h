/* pg.h — PostgreSQL through libpq, parameterised only.
 *
 * There is deliberately no call that takes SQL with data spliced in: every
 * query goes through PQexecParams with text parameters. Connection errors
 * name the URL with its password redacted and the variable it came from, so
 * "which database?" is answered in the log without leaking a secret. */
#ifndef UNDE_PG_H
#define UNDE_PG_H

#include <libpq-fe.h>

/* Connect to url (what names its source, e.g. "STAGING_DB_URL"). On failure
 * logs an error and returns NULL. connect_timeout defaults to 10 s unless
 * the URL sets one. */
PGconn *pg_connect(const char *url, const char *what);

/* Run a parameterised statement. Returns the result when it succeeded
 * (PGRES_TUPLES_OK or PGRES_COMMAND_OK), else logs the server's message and
 * returns NULL. The caller PQclear()s a non-NULL result. */
PGresult *pg_query(PGconn *c, const char *sql, int nparams, const char *const *params);

/* pg_query for statements whose result is not needed: 0 or -1. */
int pg_exec(PGconn *c, const char *sql, int nparams, const char *const *params);

int pg_begin(PGconn *c);
int pg_commit(PGconn *c);
/* Roll back, ignoring errors: used on every failure path. */
void pg_rollback(PGconn *c);

/* The last error from the server or libpq, one line. */
const char *pg_last_error(PGconn *c);
/* Is the connection gone (server down, network)? Maps to exit 69/75. */
int pg_connection_lost(PGconn *c);
/* SQLSTATE of a failed query, or "" (for unique violations etc.). */
const char *pg_last_sqlstate(void);

/* The exit status for a failed statement or connection: the one mapping
 * every command uses instead of inlining it.
 *   connection gone, SQLSTATE 08…, 57P01-57P03 (shutdown)  → 69 EX_UNAVAILABLE
 *   40001, 40P01 (serialization, deadlock), 55P03 (lock not
 *   available), 57014 (statement timeout), 53… (resources)  → 75 EX_TEMPFAIL
 *   22… (bad data), 23… (constraint violated)              → 65 EX_DATAERR
 *   anything else (a bug of ours: 42… and the rest)         → 70 EX_SOFTWARE
 * c may be NULL (could not connect: 69). Reads pg_last_sqlstate(). */
int pg_failure_status(PGconn *c);

#endif
