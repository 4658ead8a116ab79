/* libtest-online — libtest's subcommands for lib/'s online-service pieces
 * (issue 10): deadlines, connection reuse, SSE, sibling calls, provider
 * chains, shared counters, the cache, the option table and the runner's
 * hooks, the number parser and the printf buffer.
 *
 *   libtest http2 [--deadline-ms N] [--sequential] [--threads N] [--alternate] [OPTS] URL…
 *                                   --alternate: one after another, the odd
 *                                   ones each on a new thread (ended before
 *                                   the next)
 *   libtest sse URL                 one line per event, as it arrives
 *   libtest svc SERVICE PATH JSON [DEADLINE_MS]
 *   libtest chain [FILTER OPTIONS]  providers alpha, beta, then local
 *   libtest counters PATH add NAME LABELS N | observe NAME LABELS MS |
 *                    get NAME LABELS | render | textfile OUT
 *   libtest cache MAX TTL_MS        commands on stdin: put K V, get K, del K,
 *                                   sleep MS, stats
 *   libtest opts [FILTER OPTIONS] [OPERAND]   the option table demo
 *   libtest pull N                  a filter whose records come from pull
 *   libtest num STRING MIN MAX
 *   libtest strbuf N                buf_printf of an N-byte string
 *   libtest status exit N | http N  the sysexits↔HTTP table
 *   libtest pgstatus SQLSTATE       pg_failure_status for a query failing so */
#include "config.h"

#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

#include "cache.h"
#include "conf.h"
#include "counters.h"
#include "deadline.h"
#include "filter.h"
#include "http.h"
#include "jsonl.h"
#include "log.h"
#include "options.h"
#include "pg.h"
#include "provider.h"
#include "sse.h"
#include "status.h"
#include "svc.h"
#include "util.h"

int libtest_online(int argc, char **argv);

/* --- http2: deadlines and connection reuse --------------------------- */

struct http2_job {
	const struct http_request *proto;
	char **urls;
	size_t n;
	struct http_response *resps;
};

/* One after another on this thread: the kept-alive pool is reused. */
static void *http2_sequential(void *ud)
{
	struct http2_job *j = ud;
	for (size_t i = 0; i < j->n; i++) {
		struct http_request rq = *j->proto;
		rq.url = j->urls[i];
		http_perform(&rq, &j->resps[i]);
	}
	return NULL;
}

/* One request on a thread of its own (that then ends). */
static void *http2_one(void *ud)
{
	struct http2_job *j = ud;
	struct http_request rq = *j->proto;
	rq.url = j->urls[0];
	http_perform(&rq, &j->resps[0]);
	return NULL;
}

static void http2_print(const char *url, const struct http_response *r)
{
	json_t *o = json_pack("{s:s, s:I, s:i, s:s, s:f, s:b, s:b, s:i, s:f}", "url", url, "status",
			      (json_int_t)r->status, "attempts", r->attempts, "error", r->error,
			      "elapsed_ms", r->elapsed_ms, "timed_out", r->timed_out, "deadline_cut",
			      r->deadline_cut, "new_connections", r->new_connections,
			      "retry_after_ms", r->retry_after_ms);
	jsonl_write(stdout, o);
	json_decref(o);
}

static int run_http2(int argc, char **argv)
{
	struct http_request proto = { 0 };
	long long deadline_ms = 0, threads = 0, attempts = 0, timeout_ms = 0, backoff_ms = 0;
	int sequential = 0, alternate = 0;
	const struct filter_option opts[] = {
		{ "alternate", 0, NULL, NULL, .flag = &alternate },
		{ "deadline-ms", 0, "MS", NULL, .number = &deadline_ms, .min = 0, .max = 3600000 },
		{ "sequential", 0, NULL, NULL, .flag = &sequential },
		{ "threads", 0, "N", NULL, .number = &threads, .min = 0, .max = 3600000 },
		{ "attempts", 0, "N", NULL, .number = &attempts, .min = 0, .max = 3600000 },
		{ "timeout-ms", 0, "MS", NULL, .number = &timeout_ms, .min = 0, .max = 3600000 },
		{ "backoff-ms", 0, "MS", NULL, .number = &backoff_ms, .min = 0, .max = 3600000 },
		{ 0 },
	};
	const struct options_table table = { opts, NULL, NULL };
	if (options_parse("libtest-http2", &table, 1, OPTIONS_PERMUTE, argc, argv) != OPTIONS_OK)
		return EX_USAGE;
	proto.max_attempts = (int)attempts;
	proto.timeout_ms = (long)timeout_ms;
	proto.backoff_base_ms = (long)backoff_ms;
	if (deadline_ms > 0)
		proto.deadline = deadline_in((long)deadline_ms);
	size_t n = (size_t)(argc - optind);
	char **urls = argv + optind;
	struct http_response *resps = xcalloc(n ? n : 1, sizeof *resps);
	if (threads > 0) {
		/* each thread does all the URLs, one after another */
		size_t nt = (size_t)threads;
		pthread_t *tid = xcalloc(nt, sizeof *tid);
		struct http2_job *jobs = xcalloc(nt, sizeof *jobs);
		for (size_t t = 0; t < nt; t++) {
			jobs[t] = (struct http2_job){ &proto, urls, n, xcalloc(n ? n : 1, sizeof *resps) };
			pthread_create(&tid[t], NULL, http2_sequential, &jobs[t]);
		}
		for (size_t t = 0; t < nt; t++) {
			pthread_join(tid[t], NULL);
			for (size_t i = 0; i < n; i++) {
				http2_print(urls[i], &jobs[t].resps[i]);
				http_response_free(&jobs[t].resps[i]);
			}
			free(jobs[t].resps);
		}
		free(tid);
		free(jobs);
	} else if (alternate) {
		for (size_t i = 0; i < n; i++) {
			struct http2_job j = { &proto, urls + i, 1, resps + i };
			pthread_t tid;
			if (i % 2 == 1 && pthread_create(&tid, NULL, http2_one, &j) == 0)
				pthread_join(tid, NULL);
			else
				http2_one(&j);
		}
	} else if (sequential) {
		struct http2_job j = { &proto, urls, n, resps };
		http2_sequential(&j);
	} else {
		struct http_request *reqs = xcalloc(n ? n : 1, sizeof *reqs);
		for (size_t i = 0; i < n; i++) {
			reqs[i] = proto;
			reqs[i].url = urls[i];
		}
		http_perform_many(reqs, resps, n, 4);
		free(reqs);
	}
	if (threads <= 0)
		for (size_t i = 0; i < n; i++) {
			http2_print(urls[i], &resps[i]);
			http_response_free(&resps[i]);
		}
	free(resps);
	return 0;
}

/* --- sse ----------------------------------------------------------------- */

static int sse_print(void *ud, const char *event, const char *data, size_t len)
{
	double t0 = *(double *)ud;
	json_error_t je;
	json_t *d = json_loadb(data, len, 0, &je);
	json_t *o = json_pack("{s:s, s:o, s:f, s:f}", "event", event, "data",
			      d ? d : json_stringn(data, len), "at_ms", util_now_ms() - t0,
			      "wall", util_wall_seconds());
	jsonl_write(stdout, o);
	json_decref(o);
	return 0;
}

static int run_sse(int argc, char **argv)
{
	if (argc != 2)
		return EX_USAGE;
	double t0 = util_now_ms();
	struct sse s;
	sse_init(&s, sse_print, &t0);
	struct http_request rq = { .url = argv[1], .on_chunk = sse_chunk, .chunk_ud = &s };
	struct http_response r;
	http_perform(&rq, &r);
	int rc = r.status == 200 ? 0 : EX_UNAVAILABLE;
	log_event(LOG_INFO, "sse done",
		  json_pack("{s:I, s:I, s:I}", "status", (json_int_t)r.status, "events",
			    (json_int_t)s.events, "buffered", (json_int_t)r.body.len));
	http_response_free(&r);
	sse_free(&s);
	return rc;
}

/* --- svc --------------------------------------------------------------- */

static int run_svc(int argc, char **argv)
{
	if (argc < 4)
		return EX_USAGE;
	json_error_t je;
	json_t *rec = json_loads(argv[3], 0, &je);
	if (!json_is_object(rec)) {
		json_decref(rec);
		return EX_USAGE;
	}
	long long dms = 0;
	if (argc > 4 && util_parse_long(argv[4], 1, 3600000, &dms) != NUM_OK) {
		json_decref(rec);
		return EX_USAGE;
	}
	json_t *rid = json_object_get(rec, "request_id");
	if (json_is_string(rid))
		log_set_request_id(json_string_value(rid));
	struct svc_answer a;
	int st = svc_call(argv[1], argv[2], rec, dms ? deadline_in((long)dms) : DEADLINE_NONE, &a);
	json_t *o = json_pack("{s:i, s:I, s:O, s:O, s:s, s:s, s:i}", "status", a.status,
			      "http_status", (json_int_t)a.http_status, "answer",
			      a.answer ? a.answer : json_null(), "stages", a.stages, "code", a.code,
			      "message", a.message, "new_connections", a.new_connections);
	jsonl_write(stdout, o);
	json_decref(o);
	svc_answer_free(&a);
	json_decref(rec);
	return st;
}

/* --- chain: two providers on the echo fake, then a local stand-in ------ */

/* Both providers POST the record to /echo (or the record's "path"); the
 * fake echoes the request back, which is a valid answer when it has the
 * shape asked for: an object with "method" and "headers". */
static int echo_build(void *ud, const json_t *in, struct provider_request *rq, char *why,
		      size_t len)
{
	(void)ud, (void)why, (void)len;
	const char *path = json_string_value(json_object_get(in, "path"));
	snprintf(rq->path, sizeof rq->path, "%s", path ? path : "/echo");
	rq->body = json_deep_copy(in);
	return 0;
}

static json_t *echo_parse(void *ud, const json_t *body, char *why, size_t len)
{
	(void)ud;
	const json_t *h = json_object_get(body, "headers");
	if (!json_is_object(h) || !json_is_string(json_object_get(body, "method"))) {
		snprintf(why, len, "no method and headers in the answer");
		return NULL;
	}
	const char *auth = json_string_value(json_object_get(h, "authorization"));
	if (!auth)
		auth = json_string_value(json_object_get(h, "x-api-key"));
	return json_pack("{s:s, s:s?}", "echoed", json_string_value(json_object_get(body, "path")),
			 "auth", auth);
}

static json_t *echo_local(void *ud, const json_t *in, char *why, size_t len)
{
	(void)ud, (void)why, (void)len;
	return json_pack("{s:s, s:I}", "echoed", "local", "keys", (json_int_t)json_object_size(in));
}

static const struct provider alpha = { .name = "alpha", .auth = PROVIDER_AUTH_BEARER,
				       .build = echo_build, .parse = echo_parse };
static const struct provider beta = { .name = "beta", .auth = PROVIDER_AUTH_HEADER,
				      .auth_name = "x-api-key", .build = echo_build,
				      .parse = echo_parse };
static const struct provider *const chain_providers[] = { &alpha, &beta, NULL };

struct chain_state {
	int no_local;
};

static int chain_record(void *state, struct filter_run *run, json_t *rec)
{
	struct chain_state *cs = state;
	const struct chain ch = { .providers = chain_providers,
				  .local = cs->no_local ? NULL : echo_local,
				  .reserve_ms = 50 };
	double t0 = util_now_ms();
	struct chain_result res;
	if (chain_run(&ch, NULL, rec, filter_deadline(run), &res) != 0) {
		json_object_set(rec, "providers_skipped", res.skipped);
		int st = filter_fail(run, res.status, res.code, "%s", res.message);
		chain_result_free(&res);
		return st;
	}
	chain_annotate(&res, rec);
	json_object_set(rec, "answer", res.answer);
	json_object_set_new(rec, "chain_ms", json_real(util_now_ms() - t0));
	chain_result_free(&res);
	return 0;
}

static int run_chain(int argc, char **argv)
{
	static struct chain_state cs;
	static const struct filter_option opts[] = {
		{ "no-local", 0, NULL, "no local stand-in: fail when the providers do",
		  .flag = &cs.no_local },
		{ 0 },
	};
	static const struct filter_def def = {
		.name = "libtest-chain",
		.summary = "Provider chain demo: alpha, beta, then the local stand-in.",
		.options = opts,
		.max_operands = FILTER_NO_OPERANDS,
		.on_record = chain_record,
	};
	optind = 1;
	return filter_main(&def, &cs, argc, argv);
}

/* --- counters ------------------------------------------------------------ */

static const struct counters_help libtest_help[] = {
	{ "libtest_events_total", "counter", "Events counted by libtest." },
	{ "libtest_duration_seconds", "histogram", "Durations observed by libtest." },
	{ "libtest_never_total", "counter", "A counter nobody bumps." },
	{ NULL, NULL, NULL },
};

static int run_counters(int argc, char **argv)
{
	if (argc < 3)
		return EX_USAGE;
	struct counters *k = counters_open(argv[1]);
	if (!k)
		return EX_CANTCREAT;
	const char *op = argv[2];
	int rc = 0;
	long long n;
	if (strcmp(op, "add") == 0 && argc == 6 && util_parse_long(argv[5], 0, 100000000, &n) == NUM_OK) {
		for (long long i = 0; i < n; i++)
			counters_add(k, argv[3], argv[4], 1);
	} else if (strcmp(op, "observe") == 0 && argc == 6) {
		counters_observe_ms(k, argv[3], argv[4], atof(argv[5]));
	} else if (strcmp(op, "get") == 0 && argc == 5) {
		printf("%llu\n", (unsigned long long)counters_get(k, argv[3], argv[4]));
	} else if (strcmp(op, "label") == 0 && argc == 5) {
		struct buf b = { 0 };
		counters_label(&b, "route", argv[4]);
		counters_add(k, argv[3], b.data, 1);
		buf_free(&b);
	} else if (strcmp(op, "render") == 0) {
		struct buf b = { 0 };
		counters_render(k, libtest_help, &b);
		fputs(b.data ? b.data : "", stdout);
		buf_free(&b);
	} else if (strcmp(op, "textfile") == 0 && argc == 4) {
		rc = counters_write_textfile(k, libtest_help, argv[3]) == 0 ? 0 : EX_CANTCREAT;
	} else {
		rc = EX_USAGE;
	}
	counters_close(k);
	return rc;
}

/* --- cache ------------------------------------------------------------- */

static int run_cache(int argc, char **argv)
{
	long long max, ttl;
	if (argc != 3 || util_parse_long(argv[1], 1, 1000000, &max) != NUM_OK ||
	    util_parse_long(argv[2], 0, 86400000, &ttl) != NUM_OK)
		return EX_USAGE;
	struct cache *c = cache_new((size_t)max, (long)ttl);
	char line[512];
	while (fgets(line, sizeof line, stdin)) {
		char cmd[16] = "", key[200] = "", val[200] = "";
		if (sscanf(line, "%15s %199s %199s", cmd, key, val) < 1)
			continue;
		if (strcmp(cmd, "put") == 0) {
			json_t *v = json_string(val);
			cache_put(c, key, v);
			json_decref(v);
		} else if (strcmp(cmd, "get") == 0) {
			json_t *v = cache_get(c, key);
			printf("%s %s\n", key, v ? json_string_value(v) : "(miss)");
			json_decref(v);
		} else if (strcmp(cmd, "del") == 0) {
			cache_del(c, key);
		} else if (strcmp(cmd, "sleep") == 0) {
			long ms = atol(key);
			struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
			nanosleep(&ts, NULL);
		} else if (strcmp(cmd, "stats") == 0) {
			struct cache_stats s = cache_stats(c);
			printf("hits=%lu misses=%lu expired=%lu evicted=%lu entries=%zu\n", s.hits,
			       s.misses, s.expired, s.evicted, s.entries);
		}
	}
	cache_free(c);
	return 0;
}

/* --- opts: the option table, operands, validator, hooks, deadline ------ */

struct opts_state {
	long long top_k;
	int verbose;
	const char *name;
	const char *operand;
	unsigned long after, batches;
};

static int opts_start(void *state, struct filter_run *run, int argc, char **argv)
{
	(void)run;
	struct opts_state *s = state;
	s->operand = argc > 0 ? argv[0] : NULL;
	return 0;
}

static int opts_record(void *state, struct filter_run *run, json_t *rec)
{
	struct opts_state *s = state;
	if (json_is_true(json_object_get(rec, "fail")))
		return filter_fail(run, EX_DATAERR, "asked_to_fail", "the record asks to fail");
	long left = ms_left(filter_deadline(run));
	json_object_set_new(rec, "top_k", json_integer(s->top_k));
	json_object_set_new(rec, "verbose", json_boolean(s->verbose));
	json_object_set_new(rec, "name", s->name ? json_string(s->name) : json_null());
	json_object_set_new(rec, "operand", s->operand ? json_string(s->operand) : json_null());
	json_object_set_new(rec, "budget_ms", json_integer(filter_budget_ms(run)));
	json_object_set_new(rec, "ms_left",
			    left == DEADLINE_FOREVER_MS ? json_null() : json_integer(left));
	json_object_set_new(rec, "batches", json_integer((json_int_t)s->batches));
	return 0;
}

static void opts_after(void *state, struct filter_run *run, json_t *rec, int status)
{
	(void)run;
	struct opts_state *s = state;
	s->after++;
	log_event(LOG_INFO, "after record",
		  json_pack("{s:I, s:i, s:O?}", "after", (json_int_t)s->after, "status", status, "n",
			    json_object_get(rec, "n")));
}

static json_t *opts_pending(void *state, struct filter_run *run, enum filter_source src,
			    long limit)
{
	(void)state, (void)run, (void)src;
	json_t *a = json_array();
	for (long i = 0; i < limit && i < 4; i++)
		json_array_append_new(a, json_pack("{s:I, s:s}", "n", (json_int_t)i + 1, "user_id",
						   "6f1c2a9e-1b7d-4c3e-9a51-0d2b8e4f7a10"));
	return a;
}

static int opts_batch(void *state, struct filter_run *run, json_t *records)
{
	(void)run;
	struct opts_state *s = state;
	s->batches++;
	log_event(LOG_INFO, "batch", json_pack("{s:I}", "size", (json_int_t)json_array_size(records)));
	return 0;
}

static int run_opts(int argc, char **argv)
{
	static struct opts_state s = { .top_k = 10 };
	static const struct filter_option opts[] = {
		{ "top-k", 'k', "N", "results to keep (1-100, default 10)", .number = &s.top_k,
		  .min = 1, .max = 100 },
		{ "name", 0, "NAME", "a name to echo", .string = &s.name },
		{ "verbose", 'v', NULL, "say more", .flag = &s.verbose },
		{ 0 },
	};
	static const struct filter_field fields[] = {
		{ "user_id", FILTER_UUID, .required = 1 },
		{ "n", FILTER_INTEGER, .min = 0, .max = 1000 },
		{ "text", FILTER_STRING, .max = 10 },
		{ "tags", FILTER_ARRAY, .max = 3 },
		{ NULL, 0, 0, 0, 0 },
	};
	static const struct filter_def def = {
		.name = "libtest-opts",
		.summary = "Option-table demo of the shared runner.",
		.options = opts,
		.max_operands = 1,
		.operands_help = "[WORD]",
		.fields = fields,
		.on_start = opts_start,
		.on_record = opts_record,
		.after_record = opts_after,
		.select_pending = opts_pending,
		.on_batch = opts_batch,
	};
	optind = 1;
	return filter_main(&def, &s, argc, argv);
}

/* --- pull: records produced by the command itself ---------------------- */

struct pull_state {
	long long n, next;
};

static enum filter_pull pull_next(void *state, struct filter_run *run, json_t **rec)
{
	(void)run;
	struct pull_state *p = state;
	if (p->next >= p->n)
		return FILTER_PULL_END;
	p->next++;
	*rec = json_pack("{s:I}", "item", (json_int_t)p->next);
	return FILTER_PULL_RECORD;
}

static int pull_record(void *state, struct filter_run *run, json_t *rec)
{
	(void)state;
	if (json_integer_value(json_object_get(rec, "item")) == 2)
		return filter_fail(run, EX_DATAERR, "item_two", "item 2 is refused");
	json_object_set_new(rec, "pulled", json_true());
	return 0;
}

static int run_pull(int argc, char **argv)
{
	static struct pull_state p;
	if (argc < 2 || util_parse_long(argv[1], 0, 1000000, &p.n) != NUM_OK)
		return EX_USAGE;
	static const struct filter_def def = {
		.name = "libtest-pull",
		.summary = "Pull-source demo: makes N records.",
		.pull = pull_next,
		.on_record = pull_record,
	};
	optind = 1;
	return filter_main(&def, &p, argc - 1, argv + 1);
}

/* --- svcbench: the cost of a sibling call, kept-alive or fresh ------------ */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* svcbench SERVICE PATH N kept|fresh: N calls, p50/p99/mean in ms; "fresh"
 * drops the kept-alive connection before each call. */
static int run_svcbench(int argc, char **argv)
{
	long long n;
	if (argc != 5 || util_parse_long(argv[3], 1, 1000000, &n) != NUM_OK)
		return EX_USAGE;
	int fresh = strcmp(argv[4], "fresh") == 0;
	double *ms = xcalloc((size_t)n, sizeof *ms), sum = 0;
	json_t *rec = json_pack("{s:s}", "q", "bench");
	int failed = 0, conns = 0;
	for (long long i = 0; i < n; i++) {
		if (fresh)
			http_close_idle();
		struct svc_answer a;
		double t0 = util_now_ms();
		failed += svc_call(argv[1], argv[2], rec, DEADLINE_NONE, &a) != 0;
		ms[i] = util_now_ms() - t0;
		sum += ms[i];
		conns += a.new_connections;
		svc_answer_free(&a);
	}
	qsort(ms, (size_t)n, sizeof *ms, cmp_double);
	printf("{\"mode\":\"%s\",\"calls\":%lld,\"failed\":%d,\"connections\":%d,"
	       "\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"mean_ms\":%.3f}\n",
	       argv[4], n, failed, conns, ms[(size_t)(n / 2)], ms[(size_t)((double)n * 0.99)],
	       sum / (double)n);
	json_decref(rec);
	free(ms);
	return failed ? EX_UNAVAILABLE : 0;
}

/* --- small things -------------------------------------------------------- */

static int run_num(int argc, char **argv)
{
	long long min, max, v;
	if (argc != 4 || util_parse_long(argv[2], -(1LL << 62), 1LL << 62, &min) != NUM_OK ||
	    util_parse_long(argv[3], -(1LL << 62), 1LL << 62, &max) != NUM_OK || min > max)
		return EX_USAGE;
	enum num_status st = util_parse_long(argv[1], min, max, &v);
	if (st != NUM_OK) {
		printf("error: %s\n", util_num_status_text(st));
		return EX_DATAERR;
	}
	printf("%lld\n", v);
	return 0;
}

static int run_strbuf(int argc, char **argv)
{
	long long n;
	if (argc != 2 || util_parse_long(argv[1], 0, 10000000, &n) != NUM_OK)
		return EX_USAGE;
	char *s = xmalloc((size_t)n + 1);
	memset(s, 'x', (size_t)n);
	s[n] = '\0';
	struct buf b = { 0 };
	buf_printf(&b, "<%s|%d>", s, 42);
	buf_printf(&b, "%s", "");
	printf("%zu %.1s %s\n", b.len, b.data, b.data + b.len - 4);
	struct buf lim = { .limit = 8 };
	int over = buf_printf(&lim, "%s", "123456789");
	printf("limited %d %zu\n", over, lim.len);
	buf_free(&lim);
	char *t = buf_take(&b);
	free(t);
	free(s);
	return 0;
}

static int run_status(int argc, char **argv)
{
	long long v;
	if (argc != 3 || util_parse_long(argv[2], 0, 999, &v) != NUM_OK)
		return EX_USAGE;
	if (strcmp(argv[1], "exit") == 0)
		printf("%d\n", status_http_for_exit((int)v));
	else if (strcmp(argv[1], "http") == 0)
		printf("%d %s\n", status_exit_for_http((long)v, 0), status_code_for_http((long)v, 0));
	else
		return EX_USAGE;
	return 0;
}

/* pg_failure_status for a statement that raises SQLSTATE argv[2]. */
static int run_pgstatus(int argc, char **argv)
{
	if (argc != 3)
		return EX_USAGE;
	PGconn *c = pg_connect(argv[1], "argv");
	if (!c) {
		printf("%d\n", pg_failure_status(NULL));
		return 0;
	}
	const char *pp[] = { argv[2] };
	PGresult *r = pg_query(c, "SELECT set_config('unde.test_state', $1, false)", 1, pp);
	PQclear(r);
	r = pg_query(c,
		     "DO $$ BEGIN RAISE EXCEPTION 'test' USING ERRCODE = "
		     "current_setting('unde.test_state'); END $$",
		     0, NULL);
	if (!r)
		printf("%d %s\n", pg_failure_status(c), pg_last_sqlstate());
	PQclear(r);
	PQfinish(c);
	return 0;
}

/* A command that is not a filter parsing argv with the same table type
 * (options_parse): two tables, one with a callback, options after operands. */
static int argv_on_option(void *state, int id, const char *arg)
{
	json_t *seen = state;
	json_array_append_new(seen, json_pack("{s:i, s:s?}", "id", id, "arg", arg));
	return arg && !strcmp(arg, "bad") ? -1 : 0;
}

static int run_argv(int argc, char **argv)
{
	static long long count = 1;
	static const char *name;
	static int dry;
	static const struct filter_option own[] = {
		{ "count", 'c', "N", "how many (1-9)", .number = &count, .min = 1, .max = 9 },
		{ "name", 0, "NAME", "a name", .string = &name },
		{ 0 },
	};
	static const struct filter_option more[] = {
		{ "dry-run", 'n', NULL, "count, change nothing", .flag = &dry },
		{ "tag", 0, "T", NULL, .id = 42 },
		{ 0 },
	};
	json_t *seen = json_array();
	const struct options_table t[] = { { own, NULL, NULL }, { more, argv_on_option, seen } };
	enum options_result r = options_parse("libtest-argv", t, 2, OPTIONS_PERMUTE, argc, argv);
	if (r == OPTIONS_HELP) {
		options_help(stdout, own);
		options_help(stdout, more);
	}
	if (r != OPTIONS_OK) {
		json_decref(seen);
		return r == OPTIONS_USAGE ? EX_USAGE : 0;
	}
	json_t *ops = json_array();
	for (int i = optind; i < argc; i++)
		json_array_append_new(ops, json_string(argv[i]));
	json_t *o = json_pack("{s:I, s:s?, s:b, s:o, s:o}", "count", (json_int_t)count, "name", name,
			      "dry", dry, "callbacks", seen, "operands", ops);
	jsonl_write(stdout, o);
	json_decref(o);
	return 0;
}

int libtest_online(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} subs[] = {
		{ "http2", run_http2 },	      { "sse", run_sse },	{ "svc", run_svc },
		{ "chain", run_chain },	      { "counters", run_counters }, { "cache", run_cache },
		{ "opts", run_opts },	      { "pull", run_pull },	{ "num", run_num },
		{ "strbuf", run_strbuf },     { "status", run_status }, { "pgstatus", run_pgstatus }, { "svcbench", run_svcbench },
		{ "argv", run_argv },
	};
	for (size_t i = 0; i < sizeof subs / sizeof *subs; i++)
		if (strcmp(argv[0], subs[i].name) == 0) {
			int rc = subs[i].fn(argc, argv);
			http_thread_cleanup();
			return rc;
		}
	return -1;
}
