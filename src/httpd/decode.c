/* decode.c — the decoding half of the request parser (see parse.h): the
 * path, the query string and chunked bodies, and the reason phrases. Pure
 * functions, no I/O, no allocation, like parse.c. */
#include "config.h"

#include <string.h>

#include "parse.h"
#include "util.h"

#define HP_ERR(status, msg) (*why = (msg), -(status))

static int hp_is_ows(char c) { return c == ' ' || c == '\t'; }

/* The segment out[from..to) is "." or "..". */
static int hp_dot_segment(const char *out, size_t from, size_t to)
{
	size_t n = to - from;
	return (n == 1 && out[from] == '.') || (n == 2 && out[from] == '.' && out[from + 1] == '.');
}

long hp_decode_path(const char *path, size_t len, char *out, size_t outcap, const char **why)
{
	if (len == 0 || path[0] != '/')
		return HP_ERR(400, "path must start with /");
	if (outcap < len + 1)
		return HP_ERR(400, "path too long");
	size_t o = 0, seg = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)path[i];
		if (c == '%') {
			int hi = i + 2 < len ? util_hexval(path[i + 1]) : -1;
			int lo = i + 2 < len ? util_hexval(path[i + 2]) : -1;
			if (hi < 0 || lo < 0)
				return HP_ERR(400, "bad percent escape in path");
			c = (unsigned char)(hi * 16 + lo);
			i += 2;
			if (c == '/')
				return HP_ERR(400, "encoded slash in path");
			if (c == 0)
				return HP_ERR(400, "encoded NUL in path");
		} else if (c == '/') {
			if (hp_dot_segment(out, seg, o))
				return HP_ERR(400, "dot segment in path");
			seg = o + 1;
		}
		if (c == '\\')
			return HP_ERR(400, "backslash in path");
		if (c < 0x20 || c == 0x7f)
			return HP_ERR(400, "control character in path");
		out[o++] = (char)c;
	}
	if (hp_dot_segment(out, seg, o))
		return HP_ERR(400, "dot segment in path");
	out[o] = '\0';
	return (long)o;
}

/* Decode one form-encoded component src[0..n) into out. */
static int hp_form_decode(const char *src, size_t n, char *out, size_t cap, size_t *outlen,
			  const char **why)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		char c = src[i];
		if (c == '+') {
			c = ' ';
		} else if (c == '%') {
			int hi = i + 2 < n ? util_hexval(src[i + 1]) : -1;
			int lo = i + 2 < n ? util_hexval(src[i + 2]) : -1;
			if (hi < 0 || lo < 0)
				return HP_ERR(400, "bad percent escape in query");
			c = (char)(hi * 16 + lo);
			if (c == 0)
				return HP_ERR(400, "encoded NUL in query");
			i += 2;
		}
		if (o + 1 >= cap)
			return HP_ERR(400, "query parameter too long");
		out[o++] = c;
	}
	out[o] = '\0';
	*outlen = o;
	return 0;
}

int hp_query_next(const char *q, size_t len, size_t *pos, char *key, size_t keycap,
		  size_t *keylen, char *val, size_t valcap, size_t *vallen, const char **why)
{
	size_t p = *pos;
	while (p < len && q[p] == '&')
		p++;
	if (p >= len) {
		*pos = len;
		return 0;
	}
	const char *amp = memchr(q + p, '&', len - p);
	size_t end = amp ? (size_t)(amp - q) : len;
	const char *eq = memchr(q + p, '=', end - p);
	size_t kend = eq ? (size_t)(eq - q) : end;
	if (kend == p)
		return HP_ERR(400, "query parameter without a name");
	int rc = hp_form_decode(q + p, kend - p, key, keycap, keylen, why);
	if (rc == 0)
		rc = eq ? hp_form_decode(q + kend + 1, end - kend - 1, val, valcap, vallen, why)
			: hp_form_decode("", 0, val, valcap, vallen, why);
	if (rc < 0)
		return rc;
	*pos = end;
	return 1;
}

enum {
	CH_SIZE,
	CH_EXT_BWS,
	CH_EXT,
	CH_SIZE_LF,
	CH_DATA,
	CH_DATA_CR,
	CH_DATA_LF,
	CH_TRAILER_START,
	CH_TRAILER,
	CH_TRAILER_LF,
	CH_END_LF,
};

#define HP_CHUNK_LINE_MAX 4096
#define HP_TRAILERS_MAX 16384

int hp_chunked_feed(struct hp_chunked *c, const char *in, size_t len, uint64_t max_body,
		    char *out, size_t *used, size_t *made, const char **why)
{
	size_t i = 0, o = 0;
	int rc = 0;
	while (i < len && rc == 0) {
		unsigned char ch = (unsigned char)in[i];
		if (c->state == CH_DATA) {
			size_t n = len - i;
			if ((uint64_t)n > c->remaining)
				n = (size_t)c->remaining;
			memcpy(out + o, in + i, n);
			o += n;
			i += n;
			c->remaining -= n;
			c->total += n;
			if (c->remaining == 0)
				c->state = CH_DATA_CR;
			continue;
		}
		i++;
		switch (c->state) {
		case CH_SIZE: {
			int v = util_hexval((char)ch);
			if (v >= 0) {
				c->digits++;
				c->remaining = c->remaining * 16 + (uint64_t)v;
				if (c->remaining > max_body || c->total + c->remaining > max_body)
					rc = HP_ERR(413, "chunked request body larger than the limit");
				break;
			}
			if (c->digits == 0)
				rc = HP_ERR(400, "chunk size missing");
			else if (ch == '\r')
				c->state = CH_SIZE_LF;
			else if (ch == ';')
				c->state = CH_EXT;
			else if (hp_is_ows((char)ch))
				c->state = CH_EXT_BWS;
			else
				rc = HP_ERR(400, "invalid chunk size");
			break;
		}
		case CH_EXT_BWS:
			if (ch == ';')
				c->state = CH_EXT;
			else if (!hp_is_ows((char)ch))
				rc = HP_ERR(400, "invalid chunk size line");
			break;
		case CH_EXT:
			if (ch == '\r')
				c->state = CH_SIZE_LF;
			else if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
				rc = HP_ERR(400, "control character in chunk extension");
			break;
		case CH_SIZE_LF:
			if (ch != '\n')
				rc = HP_ERR(400, "bare CR in chunk size line");
			else if (c->remaining == 0)
				c->state = CH_TRAILER_START;
			else
				c->state = CH_DATA;
			c->line = 0;
			break;
		case CH_DATA_CR:
			if (ch != '\r')
				rc = HP_ERR(400, "chunk data longer than its size");
			c->state = CH_DATA_LF;
			break;
		case CH_DATA_LF:
			if (ch != '\n')
				rc = HP_ERR(400, "bare CR after chunk data");
			c->state = CH_SIZE;
			c->digits = 0;
			c->remaining = 0;
			c->line = 0;
			break;
		case CH_TRAILER_START:
			if (ch == '\r')
				c->state = CH_END_LF;
			else if (!hp_tchar(ch))
				rc = HP_ERR(400, hp_is_ows((char)ch) ? "obsolete line folding in trailer"
								    : "invalid trailer field");
			else
				c->state = CH_TRAILER;
			break;
		case CH_TRAILER:
			if (ch == '\r')
				c->state = CH_TRAILER_LF;
			else if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
				rc = HP_ERR(400, "control character in trailer");
			break;
		case CH_TRAILER_LF:
			if (ch != '\n')
				rc = HP_ERR(400, "bare CR in trailer");
			c->state = CH_TRAILER_START;
			break;
		case CH_END_LF:
			if (ch != '\n')
				rc = HP_ERR(400, "bare CR at the end of the chunked body");
			else
				rc = 1;
			break;
		default:
			rc = HP_ERR(400, "chunked decoder in a bad state");
		}
		if (c->state == CH_SIZE || c->state == CH_EXT_BWS || c->state == CH_EXT) {
			if (++c->line > HP_CHUNK_LINE_MAX)
				rc = HP_ERR(400, "chunk size line too long");
		}
		if (c->state == CH_TRAILER || c->state == CH_TRAILER_LF) {
			if (++c->trailers > HP_TRAILERS_MAX)
				rc = HP_ERR(400, "trailer section too large");
		}
	}
	*used = i;
	*made = o;
	return rc;
}

const char *hp_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 417: return "Expectation Failed";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return "Unknown";
	}
}
