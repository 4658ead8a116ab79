/* redact.c — conf_redact_url (see conf.h): secrets out of URLs and libpq
 * connection strings before they reach a log line or an answer.
 *
 * Apart from conf.c because it needs libpq's own parser: a command that
 * never names a database (unde-httpd) then links without libpq and the
 * two dozen libraries it brings, which cost every process start ~4 ms. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libpq-fe.h>

#include "conf.h"
#include "util.h"

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
