/* parse.c — strict HTTP/1.1 request heads; see parse.h. The decoders of
 * paths, query strings and chunked bodies are in decode.c. */
#include "config.h"

#include <string.h>
#include <strings.h>

#include "parse.h"
#include "util.h"

#define HP_ERR(status, msg) (*why = (msg), -(status))

/* RFC 9110 §5.6.2 token characters. */
int hp_tchar(unsigned char c)
{
	if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
		return 1;
	return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int hp_is_ows(char c) { return c == ' ' || c == '\t'; }

static struct hp_span hp_span_make(size_t off, size_t len)
{
	struct hp_span s = { (uint32_t)off, (uint32_t)len };
	return s;
}

int hp_span_eq(const char *buf, struct hp_span s, const char *name)
{
	return strlen(name) == s.len && strncasecmp(buf + s.off, name, s.len) == 0;
}

/* Find the end of the head, checking every byte on the way: CRLF line
 * ends only, no NUL or other control bytes, the size limits. Returns the
 * head length, 0 when incomplete, or a negative status. */
static long hp_find_end(const char *buf, size_t len, size_t start, const struct hp_limits *lim,
			size_t *request_line_end, const char **why)
{
	size_t line_start = start;
	int first = 1;
	for (size_t i = start; i < len; i++) {
		unsigned char c = (unsigned char)buf[i];
		if (i - start >= lim->max_head)
			return HP_ERR(431, "request header section too large");
		if (first && i - line_start > lim->max_request_line)
			return HP_ERR(431, "request line too long");
		if (c == '\r') {
			if (i + 1 == len)
				return 0;
			if (buf[i + 1] != '\n')
				return HP_ERR(400, "bare CR in request head");
			if (first) {
				*request_line_end = i;
				first = 0;
			} else if (i == line_start) {
				return (long)(i + 2);
			}
			line_start = i + 2;
			i++;
			continue;
		}
		if (c == '\n')
			return HP_ERR(400, "bare LF in request head (lines must end in CRLF)");
		if (c == 0)
			return HP_ERR(400, "NUL byte in request head");
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return HP_ERR(400, "control character in request head");
	}
	return 0;
}

/* METHOD SP origin-form SP HTTP/1.x */
static long hp_request_line(const char *buf, size_t start, size_t end, struct hp_request *req,
			    const char **why)
{
	size_t p = start;
	while (p < end && hp_tchar((unsigned char)buf[p]))
		p++;
	if (p == start)
		return HP_ERR(400, "request line does not start with a method");
	if (p - start > HP_MAX_METHOD)
		return HP_ERR(400, "method name too long");
	if (p == end || buf[p] != ' ')
		return HP_ERR(400, "malformed request line");
	req->method = hp_span_make(start, p - start);

	size_t ts = ++p;
	while (p < end && buf[p] != ' ') {
		unsigned char c = (unsigned char)buf[p];
		if (c <= 0x20 || c >= 0x7f || c == '#')
			return HP_ERR(400, "invalid character in request target");
		p++;
	}
	if (p == ts)
		return HP_ERR(400, "malformed request line");
	if (buf[ts] != '/')
		return HP_ERR(400, "request target must be an absolute path (origin-form)");
	if (p == end)
		return HP_ERR(400, "request line has no HTTP version");
	req->target = hp_span_make(ts, p - ts);
	const char *qm = memchr(buf + ts, '?', p - ts);
	if (qm) {
		size_t qoff = (size_t)(qm - buf);
		req->path = hp_span_make(ts, qoff - ts);
		req->query = hp_span_make(qoff + 1, p - qoff - 1);
	} else {
		req->path = req->target;
		req->query = hp_span_make(p, 0);
	}

	const char *v = buf + p + 1;
	size_t vlen = end - p - 1;
	if (vlen == 8 && memcmp(v, "HTTP/1.", 7) == 0 && (v[7] == '0' || v[7] == '1')) {
		req->minor = v[7] - '0';
		return 0;
	}
	if (vlen == 8 && memcmp(v, "HTTP/", 5) == 0 && v[5] >= '0' && v[5] <= '9' && v[6] == '.' &&
	    v[7] >= '0' && v[7] <= '9')
		return HP_ERR(505, "HTTP version not supported");
	return HP_ERR(400, "malformed HTTP version");
}

static int hp_alnum(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* A Host value as RFC 9112 §3.2 allows it: uri-host [":" port] of RFC
 * 3986 — an IP literal in brackets or a reg-name (unreserved, sub-delims,
 * percent escapes; empty is allowed), and a port of at most 65535. */
static int hp_host_valid(const char *buf, struct hp_span v)
{
	const char *s = buf + v.off, *e = s + v.len;
	static const char subdelims[] = "!$&'()*+,;=";
	if (s < e && *s == '[') {
		const char *close = memchr(s, ']', (size_t)(e - s));
		if (!close || close == s + 1)
			return 0;
		for (const char *p = s + 1; p < close; p++) {
			unsigned char c = (unsigned char)*p;
			if (!(hp_alnum(c) || c == ':' || c == '.' || c == '-' || c == '_' || c == '~' ||
			      (c && strchr(subdelims, c))))
				return 0;
		}
		s = close + 1;
	} else {
		for (; s < e && *s != ':'; s++) {
			unsigned char c = (unsigned char)*s;
			if (c == '%') {
				if (e - s < 3 || util_hexval(s[1]) < 0 || util_hexval(s[2]) < 0)
					return 0;
				s += 2;
			} else if (!(hp_alnum(c) || c == '.' || c == '-' || c == '_' || c == '~' ||
				     (c && strchr(subdelims, c)))) {
				return 0;
			}
		}
	}
	if (s == e)
		return 1;
	if (*s != ':' || e - s > 6)
		return 0;
	long port = 0;
	for (s++; s < e; s++) {
		if (*s < '0' || *s > '9')
			return 0;
		port = port * 10 + (*s - '0');
	}
	return port <= 65535;
}

/* What the field lines said about framing and the connection. */
struct hp_fields {
	int cl_seen, te_seen, te_chunked_last, te_chunked_count, te_other;
	int too_large, hosts, bad_host, request_ids, close, keep_alive, bad_expect;
	struct hp_span cl_digits; /* first Content-Length, without leading zeros */
};

/* Next element of a comma-separated list in buf[*p..end), OWS trimmed.
 * Returns 0 at the end of the list. Empty elements are returned too. */
static int hp_list_next(const char *buf, size_t *p, size_t end, struct hp_span *elem)
{
	if (*p > end)
		return 0;
	size_t s = *p, e;
	const char *comma = memchr(buf + s, ',', end - s);
	e = comma ? (size_t)(comma - buf) : end;
	*p = e + 1;
	while (s < e && hp_is_ows(buf[s]))
		s++;
	while (e > s && hp_is_ows(buf[e - 1]))
		e--;
	*elem = hp_span_make(s, e - s);
	return 1;
}

static long hp_content_length(const char *buf, struct hp_span v, const struct hp_limits *lim,
			      struct hp_request *req, struct hp_fields *f, const char **why)
{
	size_t p = v.off, end = (size_t)v.off + v.len;
	struct hp_span el;
	while (hp_list_next(buf, &p, end, &el)) {
		if (el.len == 0)
			return HP_ERR(400, "empty Content-Length");
		for (size_t i = el.off; i < (size_t)el.off + el.len; i++)
			if (buf[i] < '0' || buf[i] > '9')
				return HP_ERR(400, "Content-Length is not a non-negative number");
		while (el.len > 1 && buf[el.off] == '0') {
			el.off++;
			el.len--;
		}
		if (f->cl_seen) {
			if (el.len != f->cl_digits.len ||
			    memcmp(buf + el.off, buf + f->cl_digits.off, el.len) != 0)
				return HP_ERR(400, "differing Content-Length values");
			continue;
		}
		f->cl_seen = 1;
		f->cl_digits = el;
		uint64_t n = 0;
		for (size_t i = el.off; i < (size_t)el.off + el.len && !f->too_large; i++) {
			n = n * 10 + (uint64_t)(buf[i] - '0');
			if (n > lim->max_body)
				f->too_large = 1;
		}
		req->content_length = n;
	}
	return 0;
}

static long hp_transfer_encoding(const char *buf, struct hp_span v, struct hp_fields *f,
				 const char **why)
{
	size_t p = v.off, end = (size_t)v.off + v.len;
	struct hp_span el;
	f->te_seen = 1;
	while (hp_list_next(buf, &p, end, &el)) {
		if (el.len == 0)
			continue;
		if (hp_span_eq(buf, el, "chunked")) {
			f->te_chunked_count++;
			f->te_chunked_last = 1;
			continue;
		}
		for (size_t i = el.off; i < (size_t)el.off + el.len; i++)
			if (!hp_tchar((unsigned char)buf[i]) && buf[i] != ';' && buf[i] != '=' &&
			    !hp_is_ows(buf[i]))
				return HP_ERR(400, "malformed Transfer-Encoding");
		f->te_other = 1;
		f->te_chunked_last = 0;
	}
	return 0;
}

static void hp_connection(const char *buf, struct hp_span v, struct hp_fields *f)
{
	size_t p = v.off, end = (size_t)v.off + v.len;
	struct hp_span el;
	while (hp_list_next(buf, &p, end, &el)) {
		if (hp_span_eq(buf, el, "close"))
			f->close = 1;
		else if (hp_span_eq(buf, el, "keep-alive"))
			f->keep_alive = 1;
	}
}

/* One field line buf[s..e): name ":" OWS value OWS. */
static long hp_field_line(const char *buf, size_t s, size_t e, const struct hp_limits *lim,
			  struct hp_request *req, struct hp_fields *f, const char **why)
{
	if (hp_is_ows(buf[s]))
		return HP_ERR(400, "obsolete line folding in request head");
	size_t p = s;
	while (p < e && hp_tchar((unsigned char)buf[p]))
		p++;
	if (p == s)
		return HP_ERR(400, "invalid header field name");
	if (p == e)
		return HP_ERR(400, "header field line without a colon");
	if (buf[p] != ':')
		return HP_ERR(400, hp_is_ows(buf[p]) ? "whitespace between header field name and colon"
						    : "invalid header field name");
	struct hp_span name = hp_span_make(s, p - s);
	p++;
	while (p < e && hp_is_ows(buf[p]))
		p++;
	size_t ve = e;
	while (ve > p && hp_is_ows(buf[ve - 1]))
		ve--;
	struct hp_span value = hp_span_make(p, ve - p);
	if (req->nheaders == HP_MAX_HEADERS)
		return HP_ERR(431, "too many header fields");
	req->headers[req->nheaders].name = name;
	req->headers[req->nheaders].value = value;
	req->nheaders++;

	if (hp_span_eq(buf, name, "content-length"))
		return hp_content_length(buf, value, lim, req, f, why);
	if (hp_span_eq(buf, name, "transfer-encoding"))
		return hp_transfer_encoding(buf, value, f, why);
	if (hp_span_eq(buf, name, "host")) {
		f->hosts++;
		if (!hp_host_valid(buf, value))
			f->bad_host = 1;
	}
	else if (hp_span_eq(buf, name, "connection"))
		hp_connection(buf, value, f);
	else if (hp_span_eq(buf, name, "expect")) {
		if (hp_span_eq(buf, value, "100-continue"))
			req->expect_continue = 1;
		else
			f->bad_expect = 1;
	} else if (hp_span_eq(buf, name, "x-request-id")) {
		f->request_ids++;
		req->has_request_id = 1;
		req->request_id = value;
	}
	return 0;
}

/* Decide framing once every field line is known (RFC 9112 §6.3). */
static long hp_framing(struct hp_request *req, const struct hp_fields *f, const char **why)
{
	if (f->te_seen) {
		if (req->minor == 0)
			return HP_ERR(400, "Transfer-Encoding in an HTTP/1.0 request");
		if (f->cl_seen)
			return HP_ERR(400, "both Content-Length and Transfer-Encoding");
		if (!f->te_chunked_last)
			return HP_ERR(400, "Transfer-Encoding does not end in chunked");
		if (f->te_chunked_count > 1)
			return HP_ERR(400, "chunked applied more than once");
		if (f->te_other)
			return HP_ERR(501, "transfer coding not implemented (only chunked is)");
		req->body = HP_BODY_CHUNKED;
	} else if (f->cl_seen) {
		if (f->too_large)
			return HP_ERR(413, "request body larger than the limit");
		req->body = req->content_length ? HP_BODY_LENGTH : HP_BODY_NONE;
	}
	if (req->minor == 1 && f->hosts != 1)
		return HP_ERR(400, f->hosts ? "more than one Host header" : "missing Host header");
	if (req->minor == 0 && f->hosts > 1)
		return HP_ERR(400, "more than one Host header");
	if (f->bad_host)
		return HP_ERR(400, "invalid Host header value");
	if (f->request_ids > 1)
		return HP_ERR(400, "more than one X-Request-Id header");
	if (f->bad_expect)
		return HP_ERR(417, "unsupported expectation");
	if (req->minor == 0)
		req->expect_continue = 0; /* RFC 9110 §10.1.1: ignored in 1.0 */
	req->keep_alive = req->minor == 1 ? !f->close : (f->keep_alive && !f->close);
	return 0;
}

long hp_parse_head(const char *buf, size_t len, const struct hp_limits *lim,
		   struct hp_request *req, const char **why)
{
	size_t start = 0;
	while (start + 1 < len && buf[start] == '\r' && buf[start + 1] == '\n') {
		start += 2;
		if (start > lim->max_head)
			return HP_ERR(431, "too many empty lines before the request");
	}
	size_t rl_end = 0;
	long end = hp_find_end(buf, len, start, lim, &rl_end, why);
	if (end <= 0)
		return end;

	memset(req, 0, sizeof *req);
	long rc = hp_request_line(buf, start, rl_end, req, why);
	if (rc < 0)
		return rc;
	struct hp_fields f;
	memset(&f, 0, sizeof f);
	size_t s = rl_end + 2;
	while (s < (size_t)end - 2) {
		const char *cr = memchr(buf + s, '\r', (size_t)end - s);
		size_t e = (size_t)(cr - buf); /* hp_find_end saw a CRLF here */
		if ((rc = hp_field_line(buf, s, e, lim, req, &f, why)) < 0)
			return rc;
		s = e + 2;
	}
	if ((rc = hp_framing(req, &f, why)) < 0)
		return rc;
	req->head_len = (size_t)end;
	return end;
}
