/* routes.h — the routes file of unde-httpd: which command answers which
 * METHOD /path.
 *
 *   # comment
 *   POST /analyze                 unde-mood
 *   POST /persona/feedback        unde-persona feedback
 *   POST /detect   timeout=10     unde-ximilar detect
 *   POST /synthesize              stream: unde-voice
 *
 * One route per line: METHOD PATH [OPTION…] COMMAND [ARG…], the options
 * timeout=SECONDS, binary=KEY (answer with the decoded base64 member KEY
 * of the command's line instead of the line) and type=MEDIA/TYPE (that
 * body's Content-Type, default application/octet-stream), e.g.
 *
 *   POST /synthesize  timeout=30 binary=audio type=audio/mpeg  unde-voice
 *
 * and start=early: the command is started as soon as the connection's
 * first request to another start=early route has been handed to its
 * command, not on its own first request (a client that asks /detect, then /tag, then
 * /search on one connection finds the later ones running; their starts
 * overlap the first request's wait).
 *
 * A streaming route starts its command per request unless it has
 * keep=connection: then, like a plain route's, the command serves every
 * request of the connection, one line in, and each answer's stream ends
 * at its first line that is not progress (a "stage" other than "done"):
 *
 *   POST /recognize  timeout=30 keep=connection  stream: unde-recognize
 *
 * Fields
 * are separated by blanks; there is no quoting. A COMMAND of "stream:"
 * (alone, or glued to the command as "stream:unde-voice") marks a
 * streaming route. Paths are exact (no patterns), use only unreserved and
 * sub-delim characters, and have no "." or ".." segment; /health and
 * /metrics belong to unde-httpd itself. */
#ifndef UNDE_HTTPD_ROUTES_H
#define UNDE_HTTPD_ROUTES_H

#include <stddef.h>

#include <jansson.h>

#define ROUTE_METHOD_MAX 32
#define ROUTE_PATH_MAX 128
#define ROUTE_ARGS_MAX 32
#define ROUTES_MAX 256
#define ROUTE_LINE_MAX 4096
#define ROUTE_KEY_MAX 64
#define ROUTE_CTYPE_MAX 127

struct route {
	size_t index;                         /* position in the file: child slot */
	int line;                             /* line number, for messages */
	char method[ROUTE_METHOD_MAX + 1];
	char path[ROUTE_PATH_MAX + 1];
	char label[ROUTE_METHOD_MAX + ROUTE_PATH_MAX + 2]; /* "POST /analyze" */
	char *argv[ROUTE_ARGS_MAX + 1];       /* NULL-terminated */
	int streaming;
	int start_early;                      /* start=early */
	int keep_command;                     /* a stream's keep=connection */
	long timeout_ms;
	/* binary=KEY: the answer's body is the base64 string member KEY of
	 * the command's answer line, decoded, sent as type=TYPE (HTTP) or as a
	 * binary message (WebSocket); "" when the answer is the line itself. */
	char binary_key[ROUTE_KEY_MAX + 1];
	char ctype[ROUTE_CTYPE_MAX + 1];
};

struct routes {
	struct route *r;
	size_t n;
};

/* Read FILE. Returns 0, or -1 with err holding "FILE:LINE: what" (the
 * caller exits 78). default_timeout_ms applies where a route sets none. */
int routes_load(const char *file, long default_timeout_ms, struct routes *out, char *err,
		size_t errlen);
void routes_free(struct routes *rs);

/* The route for method and (decoded) path, or NULL. When NULL and some
 * route has that path, *path_known is set and allow lists its methods
 * ("GET, POST"). */
const struct route *routes_find(const struct routes *rs, const char *method, const char *path,
				int *path_known, char *allow, size_t allowlen);

/* Is the route's command runnable (an executable file, found on PATH when
 * it has no slash)? */
int routes_command_exists(const struct route *r);

#endif
