/* conf.c — typed, validated environment configuration; see conf.h. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>

#include "conf.h"
#include "log.h"
#include "util.h"

void conf_die(const char *var, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	log_event(LOG_ERROR, msg, json_pack("{s:s, s:i}", "variable", var ? var : "",
					      "exit", EX_CONFIG));
	exit(EX_CONFIG);
}

int conf_is_secret(const char *name)
{
	static const char *const marks[] = { "KEY", "SECRET", "PASSWORD", "TOKEN", "PASSWD" };
	for (size_t i = 0; i < sizeof marks / sizeof *marks; i++)
		if (strcasestr(name, marks[i]))
			return 1;
	return 0;
}

static char *conf_trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	char *e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static int conf_valid_name(const char *s)
{
	if (!*s || isdigit((unsigned char)*s))
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_')
			return 0;
	return 1;
}

int conf_load_file(const char *path, int required, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		if (!required && errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	char line[8192];
	unsigned long lineno = 0;
	int rc = 0;
	while (fgets(line, sizeof line, f)) {
		lineno++;
		if (!strchr(line, '\n') && !feof(f)) {
			snprintf(err, errlen, "%s:%lu: line too long", path, lineno);
			rc = -1;
			break;
		}
		char *s = conf_trim(line);
		if (*s == '\0' || *s == '#')
			continue;
		if (strncmp(s, "export ", 7) == 0)
			s = conf_trim(s + 7);
		char *eq = strchr(s, '=');
		if (!eq) {
			snprintf(err, errlen, "%s:%lu: expected NAME=VALUE", path, lineno);
			rc = -1;
			break;
		}
		*eq = '\0';
		char *name = conf_trim(s), *val = conf_trim(eq + 1);
		if (!conf_valid_name(name)) {
			snprintf(err, errlen, "%s:%lu: invalid variable name", path, lineno);
			rc = -1;
			break;
		}
		size_t vl = strlen(val);
		if (vl >= 2 && (val[0] == '"' || val[0] == '\'') && val[vl - 1] == val[0]) {
			val[vl - 1] = '\0';
			val++;
		} else {
			char *hash = strstr(val, " #");
			if (hash)
				*conf_trim(hash) = '\0', val = conf_trim(val);
		}
		if (setenv(name, val, 0) != 0) {
			snprintf(err, errlen, "%s:%lu: setenv failed", path, lineno);
			rc = -1;
			break;
		}
	}
	fclose(f);
	return rc;
}

const char *conf_str(const char *name, const char *def)
{
	const char *v = getenv(name);
	return (v && *v) ? v : def;
}

const char *conf_require(const char *name)
{
	const char *v = getenv(name);
	if (!v || !*v)
		conf_die(name, "%s is not set", name);
	return v;
}

/* Name the bad value only when it is not a secret. */
static void conf_bad(const char *name, const char *v, const char *expect)
{
	if (conf_is_secret(name))
		conf_die(name, "%s is invalid: expected %s", name, expect);
	conf_die(name, "%s=\"%.64s\" is invalid: expected %s", name, v, expect);
}

long conf_long(const char *name, long def, long min, long max)
{
	const char *v = getenv(name);
	if (!v || !*v)
		return def;
	char *end, expect[96];
	errno = 0;
	long n = strtol(v, &end, 10);
	snprintf(expect, sizeof expect, "an integer from %ld to %ld", min, max);
	if (errno || end == v || *conf_trim(end) != '\0' || n < min || n > max)
		conf_bad(name, v, expect);
	return n;
}

double conf_double(const char *name, double def, double min, double max)
{
	const char *v = getenv(name);
	if (!v || !*v)
		return def;
	char *end, expect[96];
	errno = 0;
	double d = strtod(v, &end);
	snprintf(expect, sizeof expect, "a number from %g to %g", min, max);
	if (errno || end == v || *conf_trim(end) != '\0' || !isfinite(d) || d < min || d > max)
		conf_bad(name, v, expect);
	return d;
}

int conf_bool(const char *name, int def)
{
	const char *v = getenv(name);
	if (!v || !*v)
		return def;
	if (!strcasecmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") ||
	    !strcasecmp(v, "on"))
		return 1;
	if (!strcasecmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no") ||
	    !strcasecmp(v, "off"))
		return 0;
	conf_bad(name, v, "true or false");
	return def;
}

int conf_load_env(const char *flag_file)
{
	const char *path = flag_file;
	int required = 1;
	if (!path)
		path = getenv("UNDE_ENV_FILE");
	if (!path || !*path) {
		path = CONF_DEFAULT_ENV_FILE;
		required = 0;
	}
	char err[512];
	if (conf_load_file(path, required, err, sizeof err) != 0) {
		log_event(LOG_ERROR, err, json_pack("{s:s, s:i}", "env_file", path, "exit", EX_CONFIG));
		return EX_CONFIG;
	}
	return 0;
}
