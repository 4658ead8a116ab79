/* unde-httpd — serve one HTTP/1.1 client connection on stdin/stdout, as a
 * superserver (systemd Accept=yes, inetd nowait, tcpserver) starts it, by
 * handing each request to the command its route names. See unde-httpd(1). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "conf.h"
#include "httpd.h"
#include "log.h"
#include "options.h"
#include "util.h"

#define MIB (1024L * 1024L)
#define HTTPD_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* Each timeout option: its variable, default and upper bound (seconds). */
enum { SECS_READ, SECS_KEEPALIVE, SECS_WS_IDLE, SECS_TIMEOUT, NSECS };
static const struct {
	const char *var;
	double def, max;
} secs_setting[NSECS] = {
	[SECS_READ] = { "UNDE_HTTPD_READ_TIMEOUT", 10, 3600 },
	[SECS_KEEPALIVE] = { "UNDE_HTTPD_KEEPALIVE_TIMEOUT", 5, 3600 },
	[SECS_WS_IDLE] = { "UNDE_HTTPD_WS_IDLE_TIMEOUT", 60, 86400 },
	[SECS_TIMEOUT] = { "UNDE_HTTPD_TIMEOUT", 30, 3600 },
};

/* Option values; the variables apply to what was not given. */
struct args {
	const char *routes, *metrics, *env_file;
	long long max_body, max_header, max_response;
	int max_body_given, max_header_given, max_response_given;
	double secs[NSECS];
	int secs_given[NSECS];
	int check;
};

static struct args args;

/* A timeout option (id OPT_SECS + which): seconds from 0.001 to its bound. */
#define OPT_SECS 100
static int on_option(void *state, int id, const char *arg)
{
	struct args *a = state;
	int k = id - OPT_SECS;
	if (k < 0 || k >= NSECS)
		return 0;
	char *end;
	errno = 0;
	double v = strtod(arg, &end);
	if (errno || end == arg || *end || !(v >= 0.001) || v > secs_setting[k].max)
		return -1;
	a->secs[k] = v;
	a->secs_given[k] = 1;
	return 0;
}

static const struct filter_option options[] = {
	{ "routes", 0, "FILE", "METHOD PATH [timeout=SECONDS] COMMAND [ARG...] lines",
	  .string = &args.routes },
	{ "check", 0, NULL, "only check the routes file, then exit (0 or 78)", .flag = &args.check },
	{ "max-body", 0, "BYTES", "largest request body, else 413 (default 1048576)",
	  .number = &args.max_body, .min = 0, .max = 1024 * MIB, .flag = &args.max_body_given },
	{ "max-header", 0, "BYTES", "largest request head, else 431 (default 16384)",
	  .number = &args.max_header, .min = 256, .max = 1024 * 1024,
	  .flag = &args.max_header_given },
	{ "read-timeout", 0, "SECONDS", "total time for a request head, and for a body,\n"
					"                       else 408 (default 10)",
	  .id = OPT_SECS + SECS_READ },
	{ "keepalive-timeout", 0, "SECONDS", "idle time allowed between requests (default 5)",
	  .id = OPT_SECS + SECS_KEEPALIVE },
	{ "ws-idle-timeout", 0, "SECONDS", "a WebSocket with no frame this long is closed\n"
					   "                       with 1001 (default 60)",
	  .id = OPT_SECS + SECS_WS_IDLE },
	{ "timeout", 0, "SECONDS", "a route's default time to answer, else 504 (default 30)",
	  .id = OPT_SECS + SECS_TIMEOUT },
	{ "max-response", 0, "BYTES", "longest answer line of a command (default 8388608)",
	  .number = &args.max_response, .min = 1024, .max = 1024 * MIB,
	  .flag = &args.max_response_given },
	{ "metrics-file", 0, "FILE", "shared counter block for /metrics (default\n"
				     "                       $RUNTIME_DIRECTORY or /run/unde, httpd-NAME.metrics)",
	  .string = &args.metrics },
	{ "env-file", 0, "FILE", "read KEY=VALUE settings (default " CONF_DEFAULT_ENV_FILE
				 " if present)",
	  .string = &args.env_file },
	{ 0 },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: unde-httpd --routes FILE [OPTIONS]\n"
		   "       unde-httpd --routes FILE --check\n"
		   "Serve one HTTP/1.1 connection on stdin/stdout (started per connection by a\n"
		   "superserver), answering each request with the command its route names.\n\n"
		   "Options:\n");
	options_help(f, options);
	fprintf(f, "  -h, --help           show this help\n"
		   "  -V, --version        show the version\n\n"
		   "Each option can also be set by its variable: UNDE_HTTPD_MAX_BODY,\n"
		   "UNDE_HTTPD_MAX_HEADER, UNDE_HTTPD_READ_TIMEOUT, UNDE_HTTPD_KEEPALIVE_TIMEOUT,\n"
		   "UNDE_HTTPD_WS_IDLE_TIMEOUT, UNDE_HTTPD_TIMEOUT, UNDE_HTTPD_MAX_RESPONSE, UNDE_HTTPD_METRICS_FILE;\n"
		   "an option wins over its variable. See unde-httpd(1).\n");
}

/* $RUNTIME_DIRECTORY (or /run/unde)/httpd-NAME.metrics, NAME being the
 * routes file's name without ".routes". */
static const char *default_metrics_file(const char *routes, char *buf, size_t len)
{
	const char *dir = getenv("RUNTIME_DIRECTORY");
	if (!dir || !*dir)
		dir = "/run/unde";
	const char *base = strrchr(routes, '/');
	base = base ? base + 1 : routes;
	size_t n = strlen(base);
	if (n > 7 && strcmp(base + n - 7, ".routes") == 0)
		n -= 7;
	snprintf(buf, len, "%.*s/httpd-%.*s.metrics", 2048, dir, (int)(n < 200 ? n : 200), base);
	return buf;
}

static void on_fatal_signal(int sig)
{
	child_kill_all_from_signal();
	_exit(128 + sig);
}

/* Descriptors we did not open (a superserver's leftovers) must not reach
 * the commands. */
static void close_inherited_fds(void)
{
#ifdef CLOSE_RANGE_CLOEXEC
	close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
#endif
}

/* A closed stderr gets /dev/null, so that no descriptor opened later (a
 * pipe to a command) is taken for it and filled with log lines. */
static void ensure_stderr(void)
{
	if (fcntl(2, F_GETFD) >= 0)
		return;
	int fd = open("/dev/null", O_WRONLY);
	if (fd >= 0 && fd != 2) {
		dup2(fd, 2);
		close(fd);
	}
}

/* The client must be on 0 and 1, as a superserver leaves it. */
static int check_client_fds(void)
{
	if (fcntl(0, F_GETFD) >= 0 && fcntl(1, F_GETFD) >= 0)
		return 0;
	log_event(LOG_ERROR, "no client connection on stdin and stdout",
		  json_pack("{s:i}", "exit", EX_USAGE));
	return EX_USAGE;
}

/* The options, from the one table that also writes --help. 0 to go on,
 * -1 after --help/--version (exit 0), else the exit status. */
static int parse_args(int argc, char **argv, struct args *a)
{
	const struct options_table t[] = { { options, on_option, a } };
	int rc = options_main("unde-httpd", t, 1, OPTIONS_PERMUTE, argc, argv, usage);
	if (rc >= 0)
		return rc ? rc : -1;
	if (optind < argc)
		return options_usage_error("unde-httpd", "unexpected argument");
	if (!a->routes)
		return options_usage_error("unde-httpd", "--routes FILE is required");
	return 0;
}

/* A timeout in ms: its option when given, else its variable (bad → 78). */
static long setting_ms(const struct args *a, int k)
{
	double s = a->secs_given[k] ? a->secs[k]
				    : conf_double(secs_setting[k].var, secs_setting[k].def, 0.001,
						  secs_setting[k].max);
	return (long)(s * 1000.0 + 0.5);
}

static void settle_conf(const struct args *a, struct httpd_conf *cf, char *metrics, size_t mlen)
{
	cf->routes_file = a->routes;
	cf->max_body = a->max_body_given ? (size_t)a->max_body
					 : (size_t)conf_long("UNDE_HTTPD_MAX_BODY", MIB, 0, 1024 * MIB);
	cf->max_head = a->max_header_given
			       ? (size_t)a->max_header
			       : (size_t)conf_long("UNDE_HTTPD_MAX_HEADER", 16384, 256, 1024 * 1024);
	cf->max_request_line = cf->max_head < HTTPD_MAX_REQUEST_LINE ? cf->max_head
								     : HTTPD_MAX_REQUEST_LINE;
	cf->max_response = a->max_response_given
				   ? (size_t)a->max_response
				   : (size_t)conf_long("UNDE_HTTPD_MAX_RESPONSE", 8 * MIB, 1024, 1024 * MIB);
	cf->read_timeout_ms = setting_ms(a, SECS_READ);
	cf->idle_timeout_ms = setting_ms(a, SECS_KEEPALIVE);
	cf->ws_idle_timeout_ms = setting_ms(a, SECS_WS_IDLE);
	cf->route_timeout_ms = setting_ms(a, SECS_TIMEOUT);
	cf->write_timeout_ms = cf->read_timeout_ms;
	cf->metrics_file = a->metrics ? a->metrics : conf_str("UNDE_HTTPD_METRICS_FILE", NULL);
	if (!cf->metrics_file || !*cf->metrics_file)
		cf->metrics_file = default_metrics_file(a->routes, metrics, mlen);
}

/* Serve requests until the client leaves, asks to close, or breaks the
 * protocol; then close the client first and stop the commands after. */
static void serve_connection(struct conn *c)
{
	for (;;) {
		struct conn_error e;
		enum conn_read rd = conn_read_head(c, &e);
		if (rd == CONN_QUIET_CLOSE)
			break;
		if (rd == CONN_ERROR) {
			serve_reject(c, &e);
			break;
		}
		serve_request(c);
		if (c->broken || !c->keep_alive)
			break;
	}
	conn_close_client(c);
	for (size_t i = 0; i < c->routes->n; i++)
		child_stop(&c->kids[i], 2000);
	log_event(LOG_DEBUG, "connection closed",
		  json_pack("{s:I, s:f}", "requests", (json_int_t)c->served, "duration_ms",
			    util_now_ms() - c->opened_ms));
}

int main(int argc, char **argv)
{
	/* Each log line leaves in one write(2), not one per piece: lines of
	 * concurrent connections sharing the journal's stream stay whole. */
	ensure_stderr();
	setvbuf(stderr, NULL, _IOLBF, 0);
	log_init("unde-httpd");
	int rc = parse_args(argc, argv, &args);
	if (rc)
		return rc < 0 ? 0 : rc;
	if ((rc = conf_load_env(args.env_file)) != 0)
		return rc;
	struct httpd_conf cf;
	char metrics[4096];
	memset(&cf, 0, sizeof cf);
	settle_conf(&args, &cf, metrics, sizeof metrics);

	struct routes routes;
	char err[1024];
	if (routes_load(cf.routes_file, cf.route_timeout_ms, &routes, err, sizeof err) != 0) {
		log_event(LOG_ERROR, err, json_pack("{s:i}", "exit", EX_CONFIG));
		return EX_CONFIG;
	}
	if (args.check) {
		printf("%s: %zu routes\n", cf.routes_file, routes.n);
		routes_free(&routes);
		return 0;
	}

	/* Whatever the superserver left us: children must be waitable (not
	 * SIGCHLD ignored), and no signal blocked. */
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGCHLD, SIG_DFL);
	signal(SIGPIPE, SIG_IGN);
	if ((rc = check_client_fds()) != 0) {
		routes_free(&routes);
		return rc;
	}
	signal(SIGTERM, on_fatal_signal);
	signal(SIGINT, on_fatal_signal);
	signal(SIGHUP, on_fatal_signal);
	close_inherited_fds();
	/* Commands answer one line per line and stay up (filter.h); they
	 * must not see the superserver's socket-activation variables. */
	setenv("UNDE_ONLINE", "1", 1);
	/* inetd launders PATH away: give commands systemd's default one. */
	if (!getenv("PATH") || !*getenv("PATH"))
		setenv("PATH", HTTPD_DEFAULT_PATH, 1);
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDNAMES");

	struct conn c;
	conn_init(&c, &cf);
	c.routes = &routes;
	c.kids = xcalloc(routes.n, sizeof *c.kids);
	c.stats = stats_open(cf.metrics_file);
	stats_count(c.stats, STATS_CONNECTIONS);
	serve_connection(&c);
	stats_close(c.stats);
	free(c.kids);
	conn_free(&c);
	routes_free(&routes);
	return 0;
}
