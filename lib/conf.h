/* conf.h — configuration from the environment, with the spec's names.
 *
 * Values come from the process environment, optionally seeded from an env
 * file (KEY=VALUE lines; the environment wins over the file). Typed getters
 * validate: a bad value is a configuration error that logs the variable's
 * name (never its value when the name marks a secret) and exits 78
 * (EX_CONFIG). Secrets — names containing KEY, SECRET, PASSWORD or TOKEN,
 * and passwords inside URLs — never appear in logs, errors or --help. */
#ifndef UNDE_CONF_H
#define UNDE_CONF_H

#include <stddef.h>

#define CONF_DEFAULT_ENV_FILE "/etc/unde/unde.env"

/* Load KEY=VALUE lines ('#' comments, blank lines, optional "export ",
 * single or double quotes). Variables already set are kept. Returns 0, or -1
 * with err set ("FILE:LINE: what"). A missing file is an error only when
 * required is non-zero. */
int conf_load_file(const char *path, int required, char *err, size_t errlen);

/* The env file every command reads: the one named by --env-file (must
 * exist), else $UNDE_ENV_FILE (must exist), else CONF_DEFAULT_ENV_FILE when
 * present. Returns 0, or EX_CONFIG after logging why. */
int conf_load_env(const char *flag_file);

const char *conf_str(const char *name, const char *def);
/* The value, or exit 78 naming the variable when it is unset or empty. */
const char *conf_require(const char *name);
long conf_long(const char *name, long def, long min, long max);
double conf_double(const char *name, double def, double min, double max);
int conf_bool(const char *name, int def);

int conf_is_secret(const char *name);

/* Copy url into buf with any password replaced by "***": the userinfo of
 * scheme://user:pass@host and password=… query keywords; a libpq
 * connection string (URI or keyword=value) is checked with libpq's own
 * parser (PQconninfoParse) and rebuilt from it when a secret option would
 * survive the pattern; one libpq cannot parse is not shown. The whole
 * string is redacted before it is cut to buflen. */
const char *conf_redact_url(const char *url, char *buf, size_t buflen);

/* Log a configuration error naming var and exit 78. */
void conf_die(const char *var, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));

#endif
