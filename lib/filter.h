/* filter.h — the loop every UNDE command runs.
 *
 * A command is a struct filter_def (name, options, per-record function) and
 * a call to filter_main(). The runner owns everything else: --help,
 * --version, --env-file, reading JSON lines with line numbers, request_id
 * propagation into logs and upstream calls, writing each finished record,
 * the error contract (one JSON error line on stderr per failed record, the
 * record kept whole so `jq -c .record` re-runs it), the exit status, and a
 * closing summary line.
 *
 * Two modes share the loop:
 *   batch  (default) — failed records go to stderr only; downstream sees
 *                      only records that succeeded.
 *   online (--online or UNDE_ONLINE=1, as unde-httpd sets it) — exactly one
 *                      output line per input line: a failure becomes
 *                      {"error":{"code","message"},"request_id"} on stdout,
 *                      so a keep-alive client is never left waiting.
 * Queue commands add a select_pending callback and get --pending,
 * --retry-failed and --limit N for free.
 *
 * What the runner also does, so commands stop repeating it:
 *  - options from one table (struct filter_option) that also writes
 *    --help, with bounded numbers parsed by the runner;
 *  - a limit on positional operands (max_operands);
 *  - a table-driven record validator (fields) run before on_record;
 *  - an after_record hook (release a lock whatever happened), an on_batch
 *    hook for queue commands, a pull source for commands that produce
 *    records themselves;
 *  - the record's budget: unde-httpd passes a route's timeout= as
 *    UNDE_DEADLINE_MS, and filter_deadline() is that many ms from the
 *    moment the record was read (no deadline when unset);
 *  - the request_id of the record, per thread (lib/log.h).
 *
 *   static long long top_k = 10;
 *   static const struct filter_option opts[] = {
 *           { "top-k", 'k', "N", "results to keep (1-100, default 10)",
 *             .number = &top_k, .min = 1, .max = 100 },
 *           { 0 } };
 *   static const struct filter_field fields[] = {
 *           { "user_id", FILTER_UUID, .required = 1 },
 *           { "text", FILTER_STRING, .required = 1, .max = 4000 },
 *           { 0 } };
 *   static const struct filter_def def = { .name = "unde-x", .summary = "…",
 *           .options = opts, .fields = fields,
 *           .max_operands = FILTER_NO_OPERANDS, .on_record = x_record }; */
#ifndef UNDE_FILTER_H
#define UNDE_FILTER_H

#include <jansson.h>
#include <sysexits.h>

#include "deadline.h"
#include "options.h"

struct filter_run;

/* Ids from here up are the runner's own options. Entries of a command's
 * filter_option table (lib/options.h) without id or letter get
 * FILTER_OPT_TABLE + their index as on_option's id. */
#define FILTER_OPT_RESERVED 0x7000
#define FILTER_OPT_TABLE OPTIONS_ID_BASE

/* max_operands: 0 leaves operands to on_start (the old way). */
#define FILTER_NO_OPERANDS (-1)

/* Types of the record validator. */
enum filter_type {
	FILTER_ANY = 0, FILTER_STRING, FILTER_BOOL, FILTER_NUMBER, FILTER_INTEGER, FILTER_UUID,
	FILTER_OBJECT, FILTER_ARRAY
};

/* One key of a record: its type and whether it must be present (null
 * counts as absent). For FILTER_INTEGER and FILTER_NUMBER min/max bound
 * the value when max > min; for FILTER_STRING and FILTER_ARRAY max > 0
 * bounds the length (bytes / elements). */
struct filter_field {
	const char *key;
	enum filter_type type;
	int required;
	long long min, max;
};

/* Check obj against fields ({ NULL }-terminated). Returns 0, or -1 with
 * err set ("<where>.key must be a UUID"); where may be NULL. *missing is
 * set when the failure is a missing required key (may be NULL). Usable for
 * nested objects (messages[i]) as well as whole records. */
int filter_validate(const json_t *obj, const struct filter_field *fields, const char *where,
		    char *err, size_t errlen, int *missing);

/* What a pull source hands the runner. */
enum filter_pull { FILTER_PULL_RECORD, FILTER_PULL_END, FILTER_PULL_FAILED };

enum filter_source { FILTER_SOURCE_STDIN, FILTER_SOURCE_PENDING, FILTER_SOURCE_RETRY_FAILED };

struct filter_def {
	const char *name;     /* "unde-mood" */
	const char *summary;  /* one line: what the command does */
	const char *synopsis; /* "[--pending [--limit N]] [OPTIONS]" */
	/* Take one of the command's own options (an entry of options, after
	 * the table stored its value), by the entry's id. Return 0, or -1 for
	 * a bad value (the runner names the option and exits 64). */
	int (*on_option)(void *state, int opt, const char *arg);
	/* After options and the env file: read config, connect. Return 0 or an
	 * EX_* exit status to stop before reading input. argv holds the
	 * positional arguments. */
	int (*on_start)(void *state, struct filter_run *run, int argc, char **argv);
	/* Do one record: add the command's own keys to record (borrowed) and
	 * return 0, or return filter_fail(...). */
	int (*on_record)(void *state, struct filter_run *run, json_t *record);
	/* Optional queue source for --pending / --retry-failed: return a new
	 * JSON array of records (at most limit), or NULL after logging why. */
	json_t *(*select_pending)(void *state, struct filter_run *run,
				  enum filter_source source, long limit);
	/* Optional: release what on_start took. */
	void (*on_finish)(void *state, struct filter_run *run);
	long default_limit; /* for --limit; 0 means 200 */

	const struct filter_option *options; /* { NULL }-terminated; also --help */
	int max_operands;                    /* FILTER_NO_OPERANDS, N > 0, or 0 */
	const char *operands_help;           /* "FILE…" for the usage line */
	const struct filter_field *fields;   /* checked before on_record */
	/* After each record, whatever became of it (status 0 or its EX_*):
	 * release what on_record took. */
	void (*after_record)(void *state, struct filter_run *run, json_t *record, int status);
	/* Queue commands: each batch select_pending returned, before its
	 * records run (prefetch, claim). 0, or an EX_* status to skip it. */
	int (*on_batch)(void *state, struct filter_run *run, json_t *records);
	/* Commands that produce records: the next one (*record owned by the
	 * runner), END, or FAILED after filter_set_status(). Replaces stdin. */
	enum filter_pull (*pull)(void *state, struct filter_run *run, json_t **record);
};

int filter_main(const struct filter_def *def, void *state, int argc, char **argv);

/* Record that this record failed and return its exit class. status is
 * EX_DATAERR (bad record), EX_UNAVAILABLE (a service down), EX_TEMPFAIL
 * (worth retrying) or EX_SOFTWARE. code is a short machine word
 * ("invalid_field", "upstream_timeout"); the message is for people. */
int filter_fail(struct filter_run *run, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Write an extra line now (progress with a "stage" key) before the record
 * itself; stolen. */
void filter_emit(struct filter_run *run, json_t *line);

/* Of two exit statuses, the one that tells an operator more (an internal
 * error over an unreachable service over a temporary failure over bad
 * data over 0): for commands that combine a run's status with their own. */
int filter_worse_status(int a, int b);

/* Choose the pull source in on_start (a command that reads stdin in one
 * mode and makes its records in another); NULL: read stdin. */
void filter_set_pull(struct filter_run *run,
		     enum filter_pull (*pull)(void *state, struct filter_run *run, json_t **record));

/* Fold an exit status into the run's (the worse one wins). */
void filter_set_status(struct filter_run *run, int status);

/* The current record's deadline: UNDE_DEADLINE_MS from when it was read,
 * or none. */
struct deadline filter_deadline(const struct filter_run *run);
/* The budget in ms (0: none). */
long filter_budget_ms(const struct filter_run *run);

/* Is this an online (1:1) run? */
int filter_online(const struct filter_run *run);

/* Was --limit given? (A queue command's BATCH_SIZE default applies only
 * when not.) */
int filter_limit_given(const struct filter_run *run);

/* The source records are being read from. */
enum filter_source filter_source(const struct filter_run *run);

#endif
