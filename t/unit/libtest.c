/* libtest — drives libunde's modules from the shell, so t/libunde.bats can
 * test each promise of lib/ with real inputs (and valgrind can watch).
 *
 *   libtest filter [FILTER OPTIONS]     a demo filter on the shared runner
 *   libtest http [OPTS] URL…            requests in parallel, one JSON line each
 *   libtest conf long|double|bool NAME DEFAULT MIN MAX
 *   libtest conf redact URL
 *   libtest conf file PATH NAME
 *   libtest metrics PATH NAME=VALUE…
 *   libtest pg URL SQL [PARAM…]         one parameterised query, rows as JSON
 *   libtest uuid */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "conf.h"
#include "filter.h"
#include "http.h"
#include "jpegerr.h"
#include "jsonl.h"
#include "log.h"
#include "options.h"
#include "metrics.h"
#include "pg.h"
#include "util.h"

/* The demo filter: adds "seen":true; {"fail":"data"|"unavailable"|"temp"}
 * fails that way; {"stages":N} writes N progress lines first. */
static int demo_record(void *state, struct filter_run *run, json_t *rec)
{
	(void)state;
	const char *fail = json_string_value(json_object_get(rec, "fail"));
	if (fail && strcmp(fail, "data") == 0)
		return filter_fail(run, EX_DATAERR, "invalid_field", "field fail asks to fail");
	if (fail && strcmp(fail, "unavailable") == 0)
		return filter_fail(run, EX_UNAVAILABLE, "upstream_unavailable", "demo upstream down");
	if (fail && strcmp(fail, "temp") == 0)
		return filter_fail(run, EX_TEMPFAIL, "upstream_timeout", "demo upstream slow");
	json_int_t stages = json_integer_value(json_object_get(rec, "stages"));
	for (json_int_t i = 0; i < stages && i < 100; i++)
		filter_emit(run, json_pack("{s:s, s:I}", "stage", "progress", "n", i + 1));
	if (stages > 0)
		json_object_set_new(rec, "stage", json_string("done"));
	json_object_set_new(rec, "seen", json_true());
	return 0;
}

static json_t *demo_pending(void *state, struct filter_run *run, enum filter_source src,
			    long limit)
{
	(void)state;
	(void)run;
	json_t *a = json_array();
	for (long i = 0; i < limit && i < 3; i++)
		json_array_append_new(a, json_pack("{s:I, s:s}", "id", (json_int_t)i + 1, "source",
						   src == FILTER_SOURCE_PENDING ? "pending" : "retry"));
	return a;
}

static int demo_filter(int argc, char **argv)
{
	static const struct filter_def def = {
		.name = "libtest-filter",
		.summary = "Demo filter of the shared runner: marks records seen.",
		.on_record = demo_record,
		.select_pending = demo_pending,
	};
	return filter_main(&def, NULL, argc, argv);
}

/* run_http's options that are not plain numbers or strings. */
struct http_opts {
	struct http_request *proto;
	const char *headers[9];
	int nh;
};

static int http_option(void *state, int id, const char *arg)
{
	struct http_opts *o = state;
	switch (id) {
	case 'd': o->proto->body = arg; o->proto->body_len = strlen(arg); break;
	case 'i': log_set_request_id(arg); break;
	case 'H':
		if (o->nh < 8)
			o->headers[o->nh++] = arg;
		break;
	}
	return 0;
}

static int run_http(int argc, char **argv)
{
	struct http_request proto = { 0 };
	struct http_opts ho = { .proto = &proto };
	long long attempts = 0, timeout_ms = 0, connect_ms = 0, backoff_ms = 0, max_response = 0,
		  conc = 4;
	const struct filter_option opts[] = {
		{ "method", 0, "M", NULL, .string = &proto.method },
		{ "data", 0, "BODY", NULL, .id = 'd' },
		{ "attempts", 0, "N", NULL, .number = &attempts, .min = 0, .max = 100 },
		{ "timeout-ms", 0, "MS", NULL, .number = &timeout_ms, .min = 0, .max = 3600000 },
		{ "connect-timeout-ms", 0, "MS", NULL, .number = &connect_ms, .min = 0, .max = 3600000 },
		{ "backoff-ms", 0, "MS", NULL, .number = &backoff_ms, .min = 0, .max = 3600000 },
		{ "max-response", 0, "BYTES", NULL, .number = &max_response, .min = 0, .max = 1LL << 31 },
		{ "concurrency", 0, "N", NULL, .number = &conc, .min = 1, .max = 1000 },
		{ "request-id", 0, "ID", NULL, .id = 'i' },
		{ "header", 0, "LINE", NULL, .id = 'H' },
		{ 0 },
	};
	const struct options_table table = { opts, http_option, &ho };
	if (options_parse("libtest-http", &table, 1, OPTIONS_PERMUTE, argc, argv) != OPTIONS_OK)
		return EX_USAGE;
	proto.max_attempts = (int)attempts;
	proto.timeout_ms = (long)timeout_ms;
	proto.connect_timeout_ms = (long)connect_ms;
	proto.backoff_base_ms = (long)backoff_ms;
	proto.max_response = (size_t)max_response;
	const char **headers = ho.headers;
	proto.headers = headers;
	size_t n = (size_t)(argc - optind);
	struct http_request *reqs = xcalloc(n, sizeof *reqs);
	struct http_response *resps = xcalloc(n, sizeof *resps);
	for (size_t i = 0; i < n; i++) {
		reqs[i] = proto;
		reqs[i].url = argv[optind + (int)i];
	}
	double t0 = util_now_ms();
	size_t failed = http_perform_many(reqs, resps, n, (int)conc);
	for (size_t i = 0; i < n; i++) {
		json_t *o = json_pack("{s:s, s:I, s:i, s:I, s:s, s:s, s:f, s:b}", "url", reqs[i].url,
				      "status", (json_int_t)resps[i].status, "attempts",
				      resps[i].attempts, "body_len", (json_int_t)resps[i].body.len,
				      "error", resps[i].error, "content_type", resps[i].content_type,
				      "elapsed_ms", resps[i].elapsed_ms, "timed_out", resps[i].timed_out);
		json_t *body = resps[i].body.data ? json_loads(resps[i].body.data, 0, NULL) : NULL;
		if (body)
			json_object_set_new(o, "body", body);
		jsonl_write(stdout, o);
		json_decref(o);
		http_response_free(&resps[i]);
	}
	log_event(LOG_INFO, "http done", json_pack("{s:f}", "total_ms", util_now_ms() - t0));
	free(reqs);
	free(resps);
	return failed ? EX_UNAVAILABLE : 0;
}

static int run_conf(int argc, char **argv)
{
	if (argc < 3)
		return EX_USAGE;
	const char *what = argv[1];
	if (strcmp(what, "redact") == 0) {
		char buf[512];
		puts(conf_redact_url(argv[2], buf, sizeof buf));
		return 0;
	}
	if (strcmp(what, "file") == 0 && argc == 4) {
		char err[512];
		if (conf_load_file(argv[2], 1, err, sizeof err) != 0) {
			fprintf(stderr, "%s\n", err);
			return EX_CONFIG;
		}
		const char *v = conf_str(argv[3], NULL);
		puts(v ? v : "(unset)");
		return 0;
	}
	if (argc != 6)
		return EX_USAGE;
	if (strcmp(what, "long") == 0)
		printf("%ld\n", conf_long(argv[2], atol(argv[3]), atol(argv[4]), atol(argv[5])));
	else if (strcmp(what, "double") == 0)
		printf("%g\n", conf_double(argv[2], atof(argv[3]), atof(argv[4]), atof(argv[5])));
	else if (strcmp(what, "bool") == 0)
		printf("%d\n", conf_bool(argv[2], atoi(argv[3])));
	else
		return EX_USAGE;
	return 0;
}

static int run_metrics(int argc, char **argv)
{
	if (argc < 2)
		return EX_USAGE;
	struct metrics *m = metrics_new();
	for (int i = 2; i < argc; i++) {
		char name[128];
		const char *eq = strchr(argv[i], '=');
		if (!eq || (size_t)(eq - argv[i]) >= sizeof name)
			continue;
		snprintf(name, sizeof name, "%.*s", (int)(eq - argv[i]), argv[i]);
		metrics_add(m, name, "gauge", "libtest sample", "job=\"libtest\"", atof(eq + 1));
	}
	int rc = metrics_write_textfile(m, argv[1]) == 0 ? 0 : EX_CANTCREAT;
	metrics_free(m);
	return rc;
}

static int run_pg(int argc, char **argv)
{
	if (argc < 3)
		return EX_USAGE;
	PGconn *c = pg_connect(argv[1], "argv");
	if (!c)
		return EX_UNAVAILABLE;
	PGresult *r = pg_query(c, argv[2], argc - 3, (const char *const *)argv + 3);
	int rc = r ? 0 : EX_DATAERR;
	for (int i = 0; r && i < PQntuples(r); i++) {
		json_t *row = json_array();
		for (int j = 0; j < PQnfields(r); j++)
			json_array_append_new(row, PQgetisnull(r, i, j) ? json_null()
									 : json_string(PQgetvalue(r, i, j)));
		jsonl_write(stdout, row);
		json_decref(row);
	}
	PQclear(r);
	PQfinish(c);
	return rc;
}

/* libtest jpeg: decode the JPEG on stdin through jpegerr (lib/jpegerr.h)
 * and print its size, or the error libjpeg gave and whether it was the
 * data ending early; exit 65 then. */
static int run_jpeg(void)
{
	struct buf in = { 0 };
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0)
		buf_append(&in, chunk, n);
	struct jpeg_decompress_struct c = { 0 };
	struct jpegerr e;
	JSAMPLE *volatile row = NULL;
	c.err = jpegerr_init(&e);
	if (setjmp(e.back)) {
		printf("{\"error\":\"%s\",\"truncated\":%s}\n", e.msg, e.truncated ? "true" : "false");
		free(row);
		jpeg_destroy_decompress(&c);
		free(in.data);
		return EX_DATAERR;
	}
	jpeg_create_decompress(&c);
	jpeg_mem_src(&c, (const unsigned char *)in.data, (unsigned long)in.len);
	jpeg_read_header(&c, TRUE);
	jpeg_start_decompress(&c);
	row = xmalloc((size_t)c.output_width * (size_t)c.output_components);
	while (c.output_scanline < c.output_height) {
		JSAMPROW r = row;
		jpeg_read_scanlines(&c, &r, 1);
	}
	jpeg_finish_decompress(&c);
	printf("{\"width\":%u,\"height\":%u}\n", c.output_width, c.output_height);
	free(row);
	jpeg_destroy_decompress(&c);
	free(in.data);
	return 0;
}

int main(int argc, char **argv)
{
	log_init("libtest");
	if (argc < 2) {
		fputs("usage: libtest filter|http|conf|metrics|pg|jpeg|uuid …\n", stderr);
		return EX_USAGE;
	}
	const char *sub = argv[1];
	int rc = EX_USAGE;
	/* issue 10's pieces: t/unit/libtest-online.c */
	int libtest_online(int argc, char **argv);
	if ((rc = libtest_online(argc - 1, argv + 1)) >= 0)
		return rc;
	rc = EX_USAGE;
	if (strcmp(sub, "filter") == 0)
		return demo_filter(argc - 1, argv + 1);
	if (strcmp(sub, "http") == 0)
		rc = run_http(argc - 1, argv + 1);
	else if (strcmp(sub, "conf") == 0)
		rc = run_conf(argc - 1, argv + 1);
	else if (strcmp(sub, "metrics") == 0)
		rc = run_metrics(argc - 1, argv + 1);
	else if (strcmp(sub, "pg") == 0)
		rc = run_pg(argc - 1, argv + 1);
	else if (strcmp(sub, "jpeg") == 0)
		rc = run_jpeg();
	else if (strcmp(sub, "uuid") == 0) {
		char u[37];
		util_uuid4(u);
		puts(u);
		rc = 0;
	}
	return rc;
}
