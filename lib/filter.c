/* filter.c — the shared record loop; see filter.h. */
#include "config.h"

#include <assert.h>
#include <ctype.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "filter.h"
#include "jsonl.h"
#include "log.h"
#include "options.h"
#include "util.h"

enum {
	OPT_ENV_FILE = FILTER_OPT_RESERVED,
	OPT_ONLINE,
	OPT_PENDING,
	OPT_RETRY_FAILED,
	OPT_LIMIT,
	OPT_MAX_LINE,
};

struct filter_run {
	const struct filter_def *def;
	FILE *out;
	int online;
	enum filter_source source;
	/* the current record's failure, set by filter_fail() */
	int fail_status;
	char fail_code[64];
	char fail_message[1024];
	unsigned long in, done, failed, malformed;
	int exit_status;
	int write_failed;
	long budget_ms;            /* UNDE_DEADLINE_MS, 0: none */
	int limit_given;           /* --limit was on the command line */
	enum filter_pull (*pull)(void *state, struct filter_run *run, json_t **record);
	struct deadline deadline;  /* the current record's */
};

/* Which exit status wins when records failed in different ways: the one
 * that tells an operator most about what to do next. */
static int filter_status_rank(int st)
{
	switch (st) {
	case 0: return 0;
	case EX_DATAERR: return 1;
	case EX_TEMPFAIL: return 2;
	case EX_UNAVAILABLE: return 3;
	default: return 4;
	}
}

int filter_worse_status(int a, int b)
{
	return filter_status_rank(b) > filter_status_rank(a) ? b : a;
}

static void filter_note_status(struct filter_run *run, int st)
{
	run->exit_status = filter_worse_status(run->exit_status, st);
}

int filter_fail(struct filter_run *run, int status, const char *code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(run->fail_message, sizeof run->fail_message, fmt, ap);
	va_end(ap);
	snprintf(run->fail_code, sizeof run->fail_code, "%s", code);
	run->fail_status = status ? status : EX_SOFTWARE;
	return run->fail_status;
}

int filter_online(const struct filter_run *run) { return run->online; }

void filter_set_status(struct filter_run *run, int status) { filter_note_status(run, status); }

void filter_set_pull(struct filter_run *run,
		     enum filter_pull (*pull)(void *state, struct filter_run *run, json_t **record))
{
	run->pull = pull;
}

struct deadline filter_deadline(const struct filter_run *run) { return run->deadline; }

long filter_budget_ms(const struct filter_run *run) { return run->budget_ms; }

static int filter_is_uuid(const char *s)
{
	static const char shape[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
	for (size_t i = 0; i < sizeof shape - 1; i++) {
		if (!s[i])
			return 0;
		if (shape[i] == '-' ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
			return 0;
	}
	return s[sizeof shape - 1] == '\0';
}

static const char *filter_type_text(enum filter_type t)
{
	switch (t) {
	case FILTER_ANY: return "present";
	case FILTER_STRING: return "a string";
	case FILTER_BOOL: return "true or false";
	case FILTER_NUMBER: return "a number";
	case FILTER_INTEGER: return "an integer";
	case FILTER_UUID: return "a UUID";
	case FILTER_OBJECT: return "an object";
	case FILTER_ARRAY: return "an array";
	}
	return "valid";
}

static int filter_type_ok(const json_t *v, enum filter_type t)
{
	switch (t) {
	case FILTER_ANY: return 1;
	case FILTER_STRING: return json_is_string(v);
	case FILTER_BOOL: return json_is_boolean(v);
	case FILTER_NUMBER: return json_is_number(v);
	case FILTER_INTEGER: return json_is_integer(v);
	case FILTER_UUID: return json_is_string(v) && filter_is_uuid(json_string_value(v));
	case FILTER_OBJECT: return json_is_object(v);
	case FILTER_ARRAY: return json_is_array(v);
	}
	return 0;
}

int filter_validate(const json_t *obj, const struct filter_field *fields, const char *where,
		    char *err, size_t errlen, int *missing)
{
	const char *w = where ? where : "", *dot = where ? "." : "";
	if (missing)
		*missing = 0;
	for (const struct filter_field *f = fields; f && f->key; f++) {
		const json_t *v = json_object_get(obj, f->key);
		if (!v || json_is_null(v)) {
			if (!f->required)
				continue;
			snprintf(err, errlen, "%s%s%s is required", w, dot, f->key);
			if (missing)
				*missing = 1;
			return -1;
		}
		if (!filter_type_ok(v, f->type)) {
			snprintf(err, errlen, "%s%s%s must be %s", w, dot, f->key, filter_type_text(f->type));
			return -1;
		}
		if ((f->type == FILTER_INTEGER || f->type == FILTER_NUMBER) && f->max > f->min) {
			double d = json_number_value(v);
			if (d < (double)f->min || d > (double)f->max) {
				snprintf(err, errlen, "%s%s%s must be from %lld to %lld", w, dot, f->key,
					 f->min, f->max);
				return -1;
			}
		}
		if (f->max > 0 && ((f->type == FILTER_STRING && json_string_length(v) > (size_t)f->max) ||
				   (f->type == FILTER_ARRAY && json_array_size(v) > (size_t)f->max))) {
			snprintf(err, errlen, "%s%s%s is longer than %lld %s", w, dot, f->key, f->max,
				 f->type == FILTER_STRING ? "bytes" : "elements");
			return -1;
		}
	}
	return 0;
}

enum filter_source filter_source(const struct filter_run *run) { return run->source; }

int filter_limit_given(const struct filter_run *run) { return run->limit_given; }

static void filter_write(struct filter_run *run, const json_t *line)
{
	if (run->write_failed)
		return;
	if (jsonl_write(run->out, line) != 0) {
		run->write_failed = 1;
		log_msg(LOG_ERROR, "cannot write output (reader gone?)");
	}
}

void filter_emit(struct filter_run *run, json_t *line)
{
	filter_write(run, line);
	json_decref(line);
}

/* In online mode a failure still answers, as an error object. */
static void filter_answer_error(struct filter_run *run, const char *code, const char *message,
				int status)
{
	if (!run->online)
		return;
	const char *rid = log_request_id();
	json_t *e = json_pack("{s:{s:s, s:s, s:i}, s:o}", "error", "code", code, "message",
			      message, "status", status, "request_id",
			      rid ? json_string(rid) : json_null());
	filter_emit(run, e);
}

static void filter_do_record(struct filter_run *run, void *state, json_t *rec)
{
	run->in++;
	json_t *rid = json_object_get(rec, "request_id");
	log_set_request_id(json_is_string(rid) ? json_string_value(rid) : NULL);
	run->fail_status = 0;
	run->deadline = run->budget_ms > 0 ? deadline_in(run->budget_ms) : DEADLINE_NONE;
	int rc;
	char verr[512];
	int missing = 0;
	if (run->def->fields &&
	    filter_validate(rec, run->def->fields, NULL, verr, sizeof verr, &missing) != 0)
		rc = filter_fail(run, EX_DATAERR, missing ? "missing_field" : "invalid_field", "%s",
				 verr);
	else
		rc = run->def->on_record(state, run, rec);
	if (rc == 0 && run->fail_status == 0) {
		run->done++;
		filter_write(run, rec);
	} else {
		if (!run->fail_status)
			filter_fail(run, rc, "failed", "record failed");
		run->failed++;
		filter_note_status(run, run->fail_status);
		log_record_error(rec, run->fail_code, run->fail_message, NULL);
		filter_answer_error(run, run->fail_code, run->fail_message, run->fail_status);
	}
	if (run->def->after_record)
		run->def->after_record(state, run, rec, run->fail_status);
	log_set_request_id(NULL);
}

static void filter_read_stdin(struct filter_run *run, void *state, size_t max_line)
{
	jsonl_reader *r = jsonl_reader_new(stdin, max_line);
	if (!r) {
		run->exit_status = EX_OSERR;
		return;
	}
	char err[512];
	json_t *rec;
	enum jsonl_status st;
	while (!run->write_failed && (st = jsonl_read(r, &rec, err, sizeof err)) != JSONL_EOF) {
		if (st == JSONL_IO_ERROR) {
			log_msg(LOG_ERROR, "%s", err);
			filter_note_status(run, EX_IOERR);
			break;
		}
		if (st == JSONL_MALFORMED) {
			run->malformed++;
			filter_note_status(run, EX_DATAERR);
			log_record_error(NULL, "malformed_input", err,
					 json_pack("{s:I}", "line", (json_int_t)jsonl_line_number(r)));
			filter_answer_error(run, "malformed_input", err, EX_DATAERR);
			continue;
		}
		filter_do_record(run, state, rec);
		json_decref(rec);
	}
	jsonl_reader_free(r);
}

static void filter_read_pending(struct filter_run *run, void *state, long limit)
{
	json_t *recs = run->def->select_pending(state, run, run->source, limit);
	if (!recs) {
		filter_note_status(run, EX_UNAVAILABLE);
		return;
	}
	if (run->def->on_batch) {
		int rc = run->def->on_batch(state, run, recs);
		if (rc) {
			filter_note_status(run, rc);
			json_decref(recs);
			return;
		}
	}
	size_t i;
	json_t *rec;
	json_array_foreach(recs, i, rec)
	{
		if (run->write_failed)
			break;
		if (json_is_object(rec))
			filter_do_record(run, state, rec);
	}
	json_decref(recs);
}

/* Records from the command's own pull source, one at a time. */
static void filter_read_pull(struct filter_run *run, void *state)
{
	while (!run->write_failed) {
		json_t *rec = NULL;
		enum filter_pull st = run->pull(state, run, &rec);
		if (st != FILTER_PULL_RECORD) {
			json_decref(rec);
			if (st == FILTER_PULL_FAILED && run->exit_status == 0)
				filter_note_status(run, EX_SOFTWARE);
			return;
		}
		assert(rec);
		if (json_is_object(rec))
			filter_do_record(run, state, rec);
		json_decref(rec);
	}
}

/* Tell unde-job how many records this run did, when it asked. */
static void filter_report_stats(const struct filter_run *run)
{
	const char *path = getenv("UNDE_JOB_STATS");
	if (!path || !*path)
		return;
	FILE *f = fopen(path, "a");
	if (!f)
		return;
	fprintf(f, "{\"cmd\":\"%s\",\"records_done\":%lu,\"records_failed\":%lu}\n", log_cmd(),
		run->done, run->failed + run->malformed);
	fclose(f);
}

static void filter_usage(const struct filter_def *def, FILE *f)
{
	char synopsis[256];
	if (def->synopsis)
		snprintf(synopsis, sizeof synopsis, "%s", def->synopsis);
	else
		snprintf(synopsis, sizeof synopsis, "[OPTIONS]%s%s",
			 def->operands_help ? " " : "", def->operands_help ? def->operands_help : "");
	fprintf(f, "Usage: %s %s\n%s\n\n", def->name, synopsis, def->summary);
	if (def->options && def->options[0].name) {
		fprintf(f, "Options:\n");
		options_help(f, def->options);
		fputc('\n', f);
	}
	fprintf(f, "Common options:\n");
	if (def->select_pending)
		fprintf(f, "  --pending            take pending records from the database, not stdin\n"
			   "  --retry-failed       take records whose last attempt failed\n"
			   "  --limit N            at most N records with --pending/--retry-failed (default %ld)\n",
			def->default_limit ? def->default_limit : 200);
	fprintf(f, "  --online             one output line per input line; failures answer as\n"
		   "                       {\"error\":…} (set by unde-httpd via UNDE_ONLINE=1)\n"
		   "  --max-line BYTES     longest accepted input line (default %u)\n"
		   "  --env-file FILE      read KEY=VALUE settings (default " CONF_DEFAULT_ENV_FILE
		   " if present)\n"
		   "  -h, --help           show this help\n"
		   "  -V, --version        show the version\n\n"
		   "Reads one JSON object per line on stdin, writes one per line on stdout.\n"
		   "Errors: one JSON line per failed record on stderr. See %s(1).\n",
		JSONL_DEFAULT_MAX_LINE, def->name);
}

static int filter_usage_error(const struct filter_def *def, const char *msg)
{
	return options_usage_error(def->name, msg);
}

/* What the runner's own options set. */
struct filter_common {
	struct filter_run *run;
	const struct filter_def *def;
	void *state;
	const char *env_file;
	long long limit, max_line;
	int limit_given;
};

static int filter_common_option(void *sp, int id, const char *arg)
{
	struct filter_common *c = sp;
	(void)arg;
	switch (id) {
	case OPT_ONLINE: c->run->online = 1; break;
	case OPT_PENDING: c->run->source = FILTER_SOURCE_PENDING; break;
	case OPT_RETRY_FAILED: c->run->source = FILTER_SOURCE_RETRY_FAILED; break;
	default: break;
	}
	return 0;
}

/* The runner's options and the command's table, both through
 * options_parse. 0 to go on, -1 after --help/--version (exit 0),
 * or EX_USAGE. */
static int filter_parse_options(struct filter_common *c, int argc, char **argv)
{
	const struct filter_option common[] = {
		{ "env-file", 0, "FILE", NULL, .string = &c->env_file },
		{ "online", 0, NULL, NULL, .id = OPT_ONLINE },
		{ "pending", 0, NULL, NULL, .id = OPT_PENDING },
		{ "retry-failed", 0, NULL, NULL, .id = OPT_RETRY_FAILED },
		{ "limit", 0, "N", NULL, .number = &c->limit, .min = 1, .max = 1000000,
		  .flag = &c->limit_given, .id = OPT_LIMIT },
		{ "max-line", 0, "BYTES", NULL, .number = &c->max_line, .min = 64,
		  .max = 1LL << 30, .id = OPT_MAX_LINE },
		{ 0 },
	};
	const struct options_table tables[] = {
		{ common, filter_common_option, c },
		{ c->def->options, c->def->on_option, c->state },
	};
	enum options_result r = options_parse(c->def->name, tables, 2, OPTIONS_IN_ORDER, argc, argv);
	switch (r) {
	case OPTIONS_HELP: filter_usage(c->def, stdout); return -1;
	case OPTIONS_VERSION: return -1;
	case OPTIONS_USAGE: return EX_USAGE;
	case OPTIONS_OK: break;
	}
	return 0;
}

int filter_main(const struct filter_def *def, void *state, int argc, char **argv)
{
	log_init(def->name);
	signal(SIGPIPE, SIG_IGN);

	struct filter_run run = { .def = def, .out = stdout, .source = FILTER_SOURCE_STDIN,
				  .pull = def->pull };
	run.online = conf_bool("UNDE_ONLINE", 0);
	struct filter_common c = { .run = &run, .def = def, .state = state,
				   .limit = def->default_limit ? def->default_limit : 200,
				   .max_line = JSONL_DEFAULT_MAX_LINE };
	int rc = filter_parse_options(&c, argc, argv);
	if (rc)
		return rc < 0 ? 0 : rc;
	const char *env_file = c.env_file;
	long limit = (long)c.limit, max_line = (long)c.max_line;
	int limit_given = run.limit_given = c.limit_given;
	int noperands = argc - optind;
	if (def->max_operands == FILTER_NO_OPERANDS && noperands > 0)
		return filter_usage_error(def, "this command takes no arguments");
	if (def->max_operands > 0 && noperands > def->max_operands)
		return filter_usage_error(def, "too many arguments");
	if (run.source != FILTER_SOURCE_STDIN && !def->select_pending)
		return filter_usage_error(def, "this command takes records from stdin only");
	if (limit_given && run.source == FILTER_SOURCE_STDIN)
		return filter_usage_error(def, "--limit goes with --pending or --retry-failed");
	if ((rc = conf_load_env(env_file)) != 0)
		return rc;
	/* The env file may set UNDE_ONLINE too. */
	if (!run.online)
		run.online = conf_bool("UNDE_ONLINE", 0);

	run.budget_ms = conf_long(DEADLINE_ENV, 0, 0, 86400000L);
	double t0 = util_now_ms();
	if (def->on_start && (rc = def->on_start(state, &run, argc - optind, argv + optind)) != 0)
		return rc;
	if (run.source == FILTER_SOURCE_STDIN && run.pull)
		filter_read_pull(&run, state);
	else if (run.source == FILTER_SOURCE_STDIN)
		filter_read_stdin(&run, state, (size_t)max_line);
	else
		filter_read_pending(&run, state, limit);
	if (def->on_finish)
		def->on_finish(state, &run);
	if (run.write_failed)
		filter_note_status(&run, EX_IOERR);

	log_event(run.exit_status ? LOG_WARN : LOG_INFO, "done",
		  json_pack("{s:I, s:I, s:I, s:I, s:f, s:i}", "records_in", (json_int_t)run.in,
			    "records_done", (json_int_t)run.done, "records_failed",
			    (json_int_t)run.failed, "malformed", (json_int_t)run.malformed,
			    "duration_ms", util_now_ms() - t0, "exit", run.exit_status));
	filter_report_stats(&run);
	return run.exit_status;
}
