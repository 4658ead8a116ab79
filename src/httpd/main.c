/* unde-httpd — serve one HTTP/1.1 client connection on stdin/stdout, as a
 * superserver (systemd Accept=yes, inetd nowait, tcpserver) starts it, by
 * handing each request to the command its route names. See unde-httpd(1). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "conf.h"
#include "httpd.h"
#include "log.h"
#include "util.h"

#define MIB (1024L * 1024L)
#define HTTPD_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: unde-httpd --routes FILE [OPTIONS]\n"
		"       unde-httpd --routes FILE --check\n"
		"Serve one HTTP/1.1 connection on stdin/stdout (started per connection by a\n"
		"superserver), answering each request with the command its route names.\n\n"
		"Options:\n"
		"  --routes FILE            METHOD PATH [timeout=SECONDS] COMMAND [ARG...] lines\n"
		"  --check                  only check the routes file, then exit (0 or 78)\n"
		"  --max-body BYTES         largest request body, else 413 (default 1048576)\n"
		"  --max-header BYTES       largest request head, else 431 (default 16384)\n"
		"  --read-timeout SECONDS   total time for a request head, and for a body,\n"
		"                           else 408 (default 10)\n"
		"  --keepalive-timeout SECONDS  idle time allowed between requests (default 5)\n"
		"  --ws-idle-timeout SECONDS  a WebSocket with no frame this long is closed\n"
		"                           with 1001 (default 60)\n"
		"  --timeout SECONDS        a route's default time to answer, else 504 (default 30)\n"
		"  --max-response BYTES     longest answer line of a command (default 8388608)\n"
		"  --metrics-file FILE      shared counter block for /metrics (default\n"
		"                           $RUNTIME_DIRECTORY or /run/unde, httpd-NAME.metrics)\n"
		"  --env-file FILE          read KEY=VALUE settings (default %s if present)\n"
		"  -h, --help               show this help\n"
		"  -V, --version            show the version\n\n"
		"Each option can also be set by its variable: UNDE_HTTPD_MAX_BODY,\n"
		"UNDE_HTTPD_MAX_HEADER, UNDE_HTTPD_READ_TIMEOUT, UNDE_HTTPD_KEEPALIVE_TIMEOUT,\n"
		"UNDE_HTTPD_WS_IDLE_TIMEOUT, UNDE_HTTPD_TIMEOUT, UNDE_HTTPD_MAX_RESPONSE, UNDE_HTTPD_METRICS_FILE.\n"
		"See unde-httpd(1).\n",
		CONF_DEFAULT_ENV_FILE);
}

enum {
	OPT_ROUTES = 1000,
	OPT_CHECK,
	OPT_MAX_BODY,
	OPT_MAX_HEADER,
	OPT_READ_TIMEOUT,
	OPT_KEEPALIVE_TIMEOUT,
	OPT_WS_IDLE_TIMEOUT,
	OPT_TIMEOUT,
	OPT_MAX_RESPONSE,
	OPT_METRICS_FILE,
	OPT_ENV_FILE,
};

static const struct option options[] = {
	{ "routes", required_argument, NULL, OPT_ROUTES },
	{ "check", no_argument, NULL, OPT_CHECK },
	{ "max-body", required_argument, NULL, OPT_MAX_BODY },
	{ "max-header", required_argument, NULL, OPT_MAX_HEADER },
	{ "read-timeout", required_argument, NULL, OPT_READ_TIMEOUT },
	{ "keepalive-timeout", required_argument, NULL, OPT_KEEPALIVE_TIMEOUT },
	{ "ws-idle-timeout", required_argument, NULL, OPT_WS_IDLE_TIMEOUT },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "max-response", required_argument, NULL, OPT_MAX_RESPONSE },
	{ "metrics-file", required_argument, NULL, OPT_METRICS_FILE },
	{ "env-file", required_argument, NULL, OPT_ENV_FILE },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

/* Option values as given (NULL: not given), applied after the env file. */
struct args {
	const char *routes, *metrics, *env_file;
	const char *max_body, *max_header, *read_timeout, *idle_timeout, *ws_idle_timeout, *timeout, *max_response;
	int check;
};

static int usage_error(const char *msg)
{
	log_event(LOG_ERROR, msg, json_pack("{s:i}", "exit", EX_USAGE));
	fprintf(stderr, "Try 'unde-httpd --help'.\n");
	return EX_USAGE;
}

/* A setting from its option, else its variable, else def; bad → exit 78. */
static long setting_long(const char *opt, const char *var, long def, long min, long max)
{
	if (!opt)
		return conf_long(var, def, min, max);
	char *end;
	errno = 0;
	long v = strtol(opt, &end, 10);
	if (errno || end == opt || *end || v < min || v > max)
		conf_die(var, "must be a whole number from %ld to %ld", min, max);
	return v;
}

static long setting_ms(const char *opt, const char *var, double def_s, double max_s)
{
	double s;
	if (!opt) {
		s = conf_double(var, def_s, 0.001, max_s);
	} else {
		char *end;
		errno = 0;
		s = strtod(opt, &end);
		if (errno || end == opt || *end || !(s >= 0.001) || s > max_s)
			conf_die(var, "must be seconds from 0.001 to %.0f", max_s);
	}
	return (long)(s * 1000.0 + 0.5);
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

static int parse_args(int argc, char **argv, struct args *a)
{
	int c;
	while ((c = getopt_long(argc, argv, "hV", options, NULL)) != -1) {
		switch (c) {
		case OPT_ROUTES: a->routes = optarg; break;
		case OPT_CHECK: a->check = 1; break;
		case OPT_MAX_BODY: a->max_body = optarg; break;
		case OPT_MAX_HEADER: a->max_header = optarg; break;
		case OPT_READ_TIMEOUT: a->read_timeout = optarg; break;
		case OPT_KEEPALIVE_TIMEOUT: a->idle_timeout = optarg; break;
		case OPT_WS_IDLE_TIMEOUT: a->ws_idle_timeout = optarg; break;
		case OPT_TIMEOUT: a->timeout = optarg; break;
		case OPT_MAX_RESPONSE: a->max_response = optarg; break;
		case OPT_METRICS_FILE: a->metrics = optarg; break;
		case OPT_ENV_FILE: a->env_file = optarg; break;
		case 'h': usage(stdout); exit(0);
		case 'V': printf("unde-httpd %s\n", PACKAGE_VERSION); exit(0);
		default: return usage_error("unknown option or missing argument");
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument");
	if (!a->routes)
		return usage_error("--routes FILE is required");
	return 0;
}

static void settle_conf(const struct args *a, struct httpd_conf *cf, char *metrics, size_t mlen)
{
	cf->routes_file = a->routes;
	cf->max_body = (size_t)setting_long(a->max_body, "UNDE_HTTPD_MAX_BODY", MIB, 0, 1024 * MIB);
	cf->max_head = (size_t)setting_long(a->max_header, "UNDE_HTTPD_MAX_HEADER", 16384, 256,
					    1024 * 1024);
	cf->max_request_line = cf->max_head < HTTPD_MAX_REQUEST_LINE ? cf->max_head
								     : HTTPD_MAX_REQUEST_LINE;
	cf->max_response = (size_t)setting_long(a->max_response, "UNDE_HTTPD_MAX_RESPONSE", 8 * MIB,
						1024, 1024 * MIB);
	cf->read_timeout_ms = setting_ms(a->read_timeout, "UNDE_HTTPD_READ_TIMEOUT", 10, 3600);
	cf->idle_timeout_ms = setting_ms(a->idle_timeout, "UNDE_HTTPD_KEEPALIVE_TIMEOUT", 5, 3600);
	cf->ws_idle_timeout_ms = setting_ms(a->ws_idle_timeout, "UNDE_HTTPD_WS_IDLE_TIMEOUT", 60, 86400);
	cf->route_timeout_ms = setting_ms(a->timeout, "UNDE_HTTPD_TIMEOUT", 30, 3600);
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
	struct args a;
	memset(&a, 0, sizeof a);
	int rc = parse_args(argc, argv, &a);
	if (rc)
		return rc;
	if ((rc = conf_load_env(a.env_file)) != 0)
		return rc;
	struct httpd_conf cf;
	char metrics[4096];
	memset(&cf, 0, sizeof cf);
	settle_conf(&a, &cf, metrics, sizeof metrics);

	struct routes routes;
	char err[1024];
	if (routes_load(cf.routes_file, cf.route_timeout_ms, &routes, err, sizeof err) != 0) {
		log_event(LOG_ERROR, err, json_pack("{s:i}", "exit", EX_CONFIG));
		return EX_CONFIG;
	}
	if (a.check) {
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
