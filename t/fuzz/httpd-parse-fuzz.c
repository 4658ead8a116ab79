/* httpd-parse-fuzz.c — libFuzzer target for unde-httpd's request parser
 * (src/httpd/parse.c): `make fuzz-httpd FUZZ_SECONDS=N`.
 *
 * The first input byte picks the limits (small ones reach the 431/413
 * paths quickly); the rest is fed as a request. Beyond "no crash, no
 * sanitizer report" it checks the parser's promises:
 *   - every span lies inside the head it came from;
 *   - a prefix of the input is never judged differently from the whole
 *     (incomplete, or the same verdict): reads may split anywhere;
 *   - a decoded path never holds a "." or ".." segment;
 *   - the chunked decoder gives the same verdict and bytes whether fed at
 *     once or one byte at a time. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"

static void span_inside(struct hp_span s, size_t len)
{
	if ((size_t)s.off + s.len > len)
		abort();
}

static void check_path(const char *buf, const struct hp_request *req)
{
	char out[65536];
	const char *why = NULL;
	long n = hp_decode_path(buf + req->path.off, req->path.len, out, sizeof out, &why);
	if (n < 0) {
		if (!why)
			abort();
		return;
	}
	if ((size_t)n > req->path.len || out[n] != '\0' || out[0] != '/')
		abort();
	for (long i = 0; i < n; i++) {
		if (out[i] != '/')
			continue;
		const char *seg = out + i + 1;
		size_t len = strcspn(seg, "/");
		if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.'))
			abort();
	}
}

static void check_query(const char *buf, const struct hp_request *req)
{
	const char *q = buf + req->query.off;
	size_t pos = 0, kl, vl;
	char key[128], val[128];
	const char *why = NULL;
	int rc, guard = 0;
	while ((rc = hp_query_next(q, req->query.len, &pos, key, sizeof key, &kl, val, sizeof val,
				   &vl, &why)) == 1) {
		if (pos > req->query.len || kl >= sizeof key || vl >= sizeof val || ++guard > 100000)
			abort();
	}
	if (rc < 0 && !why)
		abort();
}

static void check_chunked(const char *in, size_t len, uint64_t max_body)
{
	char *once = malloc(len + 1), *step = malloc(len + 1);
	if (!once || !step)
		abort();
	struct hp_chunked a, b;
	memset(&a, 0, sizeof a);
	memset(&b, 0, sizeof b);
	const char *why = NULL;
	size_t used_a = 0, made_a = 0;
	int rc_a = hp_chunked_feed(&a, in, len, max_body, once, &used_a, &made_a, &why);
	if (used_a > len || made_a > len || a.total > max_body || (rc_a < 0 && !why))
		abort();
	int rc_b = 0;
	size_t made_b = 0, used_b = 0;
	for (size_t i = 0; i < len && rc_b == 0; i++) {
		size_t u = 0, m = 0;
		rc_b = hp_chunked_feed(&b, in + i, 1, max_body, step + made_b, &u, &m, &why);
		used_b += u;
		made_b += m;
	}
	if (rc_a != rc_b || made_a != made_b || memcmp(once, step, made_a) != 0)
		abort();
	if (rc_a == 1 && used_a != used_b)
		abort();
	free(once);
	free(step);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t knob = data[0];
	const char *buf = (const char *)data + 1;
	size_t len = size - 1;
	struct hp_limits lim = { (knob & 1) ? 40 : 8192, (knob & 2) ? 96 : 16384,
				 (knob & 4) ? 16 : 1048576 };
	struct hp_request req;
	const char *why = NULL;
	long whole = hp_parse_head(buf, len, &lim, &req, &why);
	if (whole < 0 && !why)
		abort();

	size_t cuts[3] = { len / 2, len ? len - 1 : 0, whole > 0 ? (size_t)whole - 1 : len / 3 };
	for (int i = 0; i < 3; i++) {
		struct hp_request part;
		if (cuts[i] >= len)
			continue;
		long r = hp_parse_head(buf, cuts[i], &lim, &part, &why);
		if (r != 0 && r != whole)
			abort();
	}
	if (whole <= 0)
		return 0;

	size_t h = (size_t)whole;
	if (h > len || req.head_len != h || req.nheaders > HP_MAX_HEADERS)
		abort();
	span_inside(req.method, h);
	span_inside(req.target, h);
	span_inside(req.path, h);
	span_inside(req.query, h);
	span_inside(req.request_id, h);
	for (unsigned i = 0; i < req.nheaders; i++) {
		span_inside(req.headers[i].name, h);
		span_inside(req.headers[i].value, h);
	}
	if (req.body == HP_BODY_LENGTH && (req.content_length == 0 || req.content_length > lim.max_body))
		abort();
	check_path(buf, &req);
	check_query(buf, &req);
	if (req.body == HP_BODY_CHUNKED)
		check_chunked(buf + h, len - h, lim.max_body);
	return 0;
}
