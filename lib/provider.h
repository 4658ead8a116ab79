/* provider.h — upstream providers and the chains that fall through them.
 *
 * A provider is a name ("gemini"), a base URL ($GEMINI_API_URL, else its
 * default), a key ($GEMINI_API_KEY, a secret: never logged), an auth style,
 * a request builder, an answer validator and an error-body parser. A chain
 * tries its providers in order while time is left, then its local
 * stand-in, and says who answered and why each one before was skipped:
 *
 *   no_key      the provider needs a key and none is set (not called)
 *   no_time     too little of the deadline was left to call it
 *   timeout     it did not answer in time
 *   429         it rate-limited us (a Retry-After past the deadline too)
 *   5xx         it failed (500-599, after the client's retries)
 *   4xx         it refused the request (a bug of ours or a bad key)
 *   unreachable no HTTP answer at all (refused, reset, DNS)
 *   malformed   it answered 2xx but not JSON, or not the shape asked for
 *
 * A malformed answer is a failure of that provider, never an answer.
 *
 *   static const struct provider gemini = { .name = "gemini",
 *           .default_url = "https://generativelanguage.googleapis.com",
 *           .auth = PROVIDER_AUTH_HEADER, .auth_name = "x-goog-api-key",
 *           .build = gemini_build, .parse = gemini_parse };
 *   static const struct provider *const mood_providers[] = { &gemini, NULL };
 *   static const struct chain mood_chain = { .providers = mood_providers,
 *           .local = mood_local, .reserve_ms = 50 };
 *   struct chain_result res;
 *   chain_run(&mood_chain, state, rec, filter_deadline(run), &res);
 *   chain_annotate(&res, rec);        // "provider", "providers_skipped"
 */
#ifndef UNDE_PROVIDER_H
#define UNDE_PROVIDER_H

#include <stddef.h>

#include <jansson.h>

#include "deadline.h"
#include "util.h"

enum provider_auth {
	PROVIDER_AUTH_BEARER = 0, /* Authorization: Bearer KEY (the default) */
	PROVIDER_AUTH_HEADER,     /* <auth_name>: KEY (x-api-key, x-goog-api-key) */
	PROVIDER_AUTH_TOKEN,      /* Authorization: Token KEY (Ximilar) */
	PROVIDER_AUTH_QUERY,      /* ?<auth_name>=KEY */
	PROVIDER_AUTH_NONE,       /* no key at all */
};

enum provider_skip {
	PROVIDER_ANSWERED = 0,
	PROVIDER_NO_KEY,
	PROVIDER_NO_TIME,
	PROVIDER_TIMEOUT,
	PROVIDER_RATE_LIMITED,
	PROVIDER_SERVER_ERROR,
	PROVIDER_CLIENT_ERROR,
	PROVIDER_UNREACHABLE,
	PROVIDER_MALFORMED,
};

/* "no_key", "timeout", "429", "5xx", … (see above). */
const char *provider_skip_name(enum provider_skip why);

/* What a builder fills in: the path under the base URL (may carry a query)
 * and the JSON body (owned; NULL for a GET). */
struct provider_request {
	const char *method; /* NULL: POST with a body, GET without */
	char path[1024];
	json_t *body;
};

struct provider {
	const char *name;        /* lower case; the variables are its upper case */
	const char *default_url; /* NULL: <NAME>_API_URL must be set */
	enum provider_auth auth;
	const char *auth_name;   /* header or query name for HEADER / QUERY */
	const char *const *headers; /* extra "Name: value" lines, NULL-terminated */
	long timeout_ms;         /* per attempt; 0: the HTTP client's default */
	int max_attempts;        /* 0: 2 (a chain has other places to go) */
	/* Build the request for input. Return 0, or -1 (why set) to skip it. */
	int (*build)(void *ud, const json_t *input, struct provider_request *rq, char *why,
		     size_t whylen);
	/* Validate a 2xx body and extract the answer: a new object, or NULL
	 * with why set when the body is not what was asked for. */
	json_t *(*parse)(void *ud, const json_t *body, char *why, size_t whylen);
	/* The message inside an error body, for the log; NULL: the common
	 * {"error":{"message"}} / {"message"} shapes are tried. */
	void (*error_message)(const json_t *body, char *msg, size_t msglen);
	/* The key's variable when it is not <NAME>_API_KEY (unde-mood's
	 * MOOD_LLM_API_KEY: one provider, a key per role); NULL: the default. */
	const char *key_var;
};

/* The local stand-in: compute the answer here (a new object), or NULL with
 * why set. */
typedef json_t *(*chain_local_fn)(void *ud, const json_t *input, char *why, size_t whylen);

struct chain {
	const struct provider *const *providers; /* NULL-terminated */
	chain_local_fn local;                    /* NULL: no stand-in */
	long reserve_ms;  /* deadline time kept back for the stand-in */
	long min_call_ms; /* a provider is not called with less left (default 20) */
};

struct chain_result {
	int status;           /* 0, or the EX_* status when nobody answered */
	json_t *answer;       /* owned; NULL when nobody answered */
	char provider[64];    /* who answered: a provider's name or "local" */
	json_t *skipped;      /* owned: [{"provider","reason","status","message"}] */
	char code[64], message[512]; /* on failure */
};

/* Run the chain for input under dl. Returns res->status. */
int chain_run(const struct chain *c, void *ud, const json_t *input, struct deadline dl,
	      struct chain_result *res);

/* Add "provider" and, when any was skipped, "providers_skipped" to rec. */
void chain_annotate(const struct chain_result *res, json_t *rec);

void chain_result_free(struct chain_result *res);

/* Is the provider configured (a key set, or none needed)? */
int provider_configured(const struct provider *p);

/* ---- the pieces of one call, for callers that perform it themselves
 * (a streamed answer: unde-llm's src/llm/stream.c) ---- */
typedef int (*provider_build_fn)(void *ud, const json_t *input, struct provider_request *rq,
				 char *why, size_t whylen);
struct provider_http {
	const char *method;
	struct buf url, auth;    /* the auth header line: a secret, never logged */
	const char *headers[20]; /* NULL-terminated, for http_request.headers */
	char *body;              /* the JSON body, or NULL */
};
/* p's request for input, built by build (NULL: p->build): the URL under
 * its base, the auth and extra headers, the body. 0, or -1 with why and
 * msg (no key, no URL, the builder refused). Free with provider_http_free. */
int provider_http_prepare(const struct provider *p, void *ud, const json_t *input,
			  provider_build_fn build, struct provider_http *h, enum provider_skip *why,
			  char *msg, size_t msglen);
void provider_http_free(struct provider_http *h);
/* How a request that got no 2xx answer failed (timeout, 429, 5xx, 4xx,
 * unreachable), its message (with the error body's) into msg. */
struct http_response;
enum provider_skip provider_http_failure(const struct provider *p, const struct http_response *r,
					 char *msg, size_t msglen);

/* The model's text in an OpenAI-style chat completion (DeepSeek, Qwen):
 * choices[0].message.content, or NULL; it lives in body. */
const char *provider_openai_text(const json_t *body);

/* The model's text in a Gemini generateContent answer: the text parts of
 * candidates[0] joined; malloc'd (free it), NULL when there is none. */
char *provider_gemini_text(const json_t *body);

#endif
