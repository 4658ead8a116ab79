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
 * --retry-failed and --limit N for free. */
#ifndef UNDE_FILTER_H
#define UNDE_FILTER_H

#include <getopt.h>
#include <jansson.h>
#include <sysexits.h>

struct filter_run;

/* getopt values from here up are the runner's own long options; a
 * command's long-only options take values below it (e.g. from 256). */
#define FILTER_OPT_RESERVED 0x7000

enum filter_source { FILTER_SOURCE_STDIN, FILTER_SOURCE_PENDING, FILTER_SOURCE_RETRY_FAILED };

struct filter_def {
	const char *name;     /* "unde-mood" */
	const char *summary;  /* one line: what the command does */
	const char *synopsis; /* "[--pending [--limit N]] [OPTIONS]" */
	const char *options_help; /* the command's own option lines for --help */
	const char *shortopts;    /* getopt letters of the command's own options */
	const struct option *longopts; /* its long options, { 0 }-terminated; may be NULL */
	/* Take one of the command's own options. Return 0, or -1 for a usage
	 * error (the runner prints usage and exits 64). */
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

/* Is this an online (1:1) run? */
int filter_online(const struct filter_run *run);

/* The source records are being read from. */
enum filter_source filter_source(const struct filter_run *run);

#endif
