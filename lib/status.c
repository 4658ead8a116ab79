/* status.c — sysexits ↔ HTTP; see status.h. */
#include "config.h"

#include <stddef.h>
#include <sysexits.h>

#include "status.h"

/* Exit statuses that do not answer 500, in one table read both ways. */
static const struct {
	int exit_status;
	int http;
} status_exit_http[] = {
	{ 0, 200 },
	{ EX_USAGE, 400 },
	{ EX_DATAERR, 400 },
	{ EX_UNAVAILABLE, 503 },
	{ EX_TEMPFAIL, 503 },
};

int status_http_for_exit(int exit_status)
{
	for (size_t i = 0; i < sizeof status_exit_http / sizeof *status_exit_http; i++)
		if (status_exit_http[i].exit_status == exit_status)
			return status_exit_http[i].http;
	return 500;
}

/* HTTP statuses with an exit status of their own; the rest go by class. */
static const struct {
	long http;
	int exit_status;
	const char *code;
} status_http_exit[] = {
	{ 401, EX_CONFIG, "upstream_auth" },	  { 403, EX_CONFIG, "upstream_auth" },
	{ 408, EX_TEMPFAIL, "upstream_timeout" }, { 425, EX_TEMPFAIL, "rate_limited" },
	{ 429, EX_TEMPFAIL, "rate_limited" },	  { 500, EX_TEMPFAIL, "upstream_error" },
	{ 502, EX_TEMPFAIL, "upstream_error" },	  { 503, EX_TEMPFAIL, "upstream_unavailable" },
	{ 504, EX_TEMPFAIL, "upstream_timeout" },
};

int status_exit_for_http(long http_status, int timed_out)
{
	if (http_status == 0)
		return timed_out ? EX_TEMPFAIL : EX_UNAVAILABLE;
	if (http_status >= 200 && http_status < 300)
		return 0;
	for (size_t i = 0; i < sizeof status_http_exit / sizeof *status_http_exit; i++)
		if (status_http_exit[i].http == http_status)
			return status_http_exit[i].exit_status;
	if (http_status >= 400 && http_status < 500)
		return EX_DATAERR;
	if (http_status >= 500)
		return EX_UNAVAILABLE;
	return EX_PROTOCOL; /* 1xx/3xx as a final answer: nothing we asked for */
}

const char *status_code_for_http(long http_status, int timed_out)
{
	if (http_status == 0)
		return timed_out ? "upstream_timeout" : "upstream_unavailable";
	for (size_t i = 0; i < sizeof status_http_exit / sizeof *status_http_exit; i++)
		if (status_http_exit[i].http == http_status)
			return status_http_exit[i].code;
	if (http_status >= 400 && http_status < 500)
		return "upstream_rejected";
	if (http_status >= 500)
		return "upstream_error";
	return "upstream_protocol";
}
