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

#include <libpq-fe.h>

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

/* The pattern redaction: the userinfo password of scheme://user:pass@host
 * and every password=… keyword (libpq conninfo, URL query), in place on a
 * copy of the whole string (never cut before the '@' is found). */
static char *conf_redact_pattern(const char *url)
{
	size_t cap = strlen(url) + 4;
	char *buf = xmalloc(cap);
	memcpy(buf, url, cap - 3);
	char *scheme = strstr(buf, "://");
	if (scheme) {
		char *auth = scheme + 3;
		char *slash = auth + strcspn(auth, "/?#");
		char *at = memrchr(auth, '@', (size_t)(slash - auth));
		char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
		if (colon) {
			memmove(colon + 4, at, strlen(at) + 1);
			memcpy(colon + 1, "***", 3);
		}
	}
	for (char *p = buf; (p = strcasestr(p, "password=")) != NULL;) {
		p += 9;
		char *e = p + strcspn(p, " &");
		size_t tail = strlen(e) + 1;
		if ((size_t)(p - buf) + 3 + tail > cap) {
			/* "***" is longer than a 0..2-byte password: grow. */
			size_t at = (size_t)(p - buf), eat = (size_t)(e - buf);
			cap += 4;
			buf = xrealloc(buf, cap);
			p = buf + at;
			e = buf + eat;
		}
		memmove(p + 3, e, tail);
		memcpy(p, "***", 3);
		p += 3;
	}
	return buf;
}

/* Is text one of libpq's connection strings: a postgres[ql]:// URI, or
 * keyword=value pairs (no scheme)? */
static int conf_is_conninfo(const char *text)
{
	if (strncasecmp(text, "postgresql://", 13) == 0 || strncasecmp(text, "postgres://", 11) == 0)
		return 1;
	return !strstr(text, "://") && strchr(text, '=');
}

/* Every secret option (libpq marks them with dispchar "*": password,
 * sslpassword) is absent or exactly "***" in text as libpq parses it; with
 * had_secret set, at least one is "***". */
static int conf_conninfo_clean(const char *text, int had_secret)
{
	char *err = NULL;
	PQconninfoOption *o = PQconninfoParse(text, &err);
	PQfreemem(err);
	if (!o)
		return 0;
	int clean = 1, masked = 0;
	for (PQconninfoOption *p = o; p->keyword; p++) {
		if (!p->val || !p->dispchar || p->dispchar[0] != '*')
			continue;
		if (strcmp(p->val, "***") == 0)
			masked = 1;
		else
			clean = 0;
	}
	PQconninfoFree(o);
	return clean && (masked || !had_secret);
}

/* A conninfo rebuilt from libpq's parse of it, as keyword='value' pairs,
 * every secret option written as ***. NULL when it does not parse. */
static char *conf_conninfo_rebuild(const char *text)
{
	char *err = NULL;
	PQconninfoOption *o = PQconninfoParse(text, &err);
	PQfreemem(err);
	if (!o)
		return NULL;
	struct buf b = { 0 };
	buf_append(&b, "", 0);
	for (PQconninfoOption *p = o; p->keyword; p++) {
		if (!p->val)
			continue;
		if (b.len)
			buf_append(&b, " ", 1);
		buf_append(&b, p->keyword, strlen(p->keyword));
		if (p->dispchar && p->dispchar[0] == '*') {
			buf_append(&b, "=***", 4);
			continue;
		}
		buf_append(&b, "='", 2);
		for (const char *v = p->val; *v; v++) {
			if (*v == '\'' || *v == '\\')
				buf_append(&b, "\\", 1);
			buf_append(&b, v, 1);
		}
		buf_append(&b, "'", 1);
	}
	PQconninfoFree(o);
	return b.data;
}

/* Does libpq find a secret option in text? */
static int conf_conninfo_has_secret(const char *text)
{
	char *err = NULL;
	PQconninfoOption *o = PQconninfoParse(text, &err);
	PQfreemem(err);
	if (!o)
		return 0;
	int has = 0;
	for (PQconninfoOption *p = o; p->keyword; p++)
		if (p->val && p->dispchar && p->dispchar[0] == '*')
			has = 1;
	PQconninfoFree(o);
	return has;
}

const char *conf_redact_url(const char *url, char *buf, size_t buflen)
{
	if (!url) {
		snprintf(buf, buflen, "(unset)");
		return buf;
	}
	char *red = conf_redact_pattern(url);
	if (conf_is_conninfo(url)) {
		/* The pattern keeps the text readable in the common forms;
		 * libpq's own parse of the result decides whether it is safe
		 * (spaces around '=', quoted values, percent-encoded keys…).
		 * If not, the string is rebuilt from the parse; if it does not
		 * parse at all, nothing of it is shown. */
		if (!conf_conninfo_clean(red, conf_conninfo_has_secret(url))) {
			free(red);
			red = conf_conninfo_rebuild(url);
			if (!red)
				red = xstrdup("(connection string that libpq cannot parse)");
		}
	}
	snprintf(buf, buflen, "%s", red);
	free(red);
	return buf;
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
