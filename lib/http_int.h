/* http_int.h — what lib/http.c (the calls) shares with lib/http_pool.c
 * (the state that outlives them). Not for commands: they use http.h. */
#ifndef UNDE_HTTP_INT_H
#define UNDE_HTTP_INT_H

#include <stddef.h>

#include <curl/curl.h>

#define HTTP_ORIGINS 4     /* origins remembered per multi handle */
#define HTTP_ORIGIN_MAX 128

/* A multi handle (its connection cache) and the origins ("scheme://host:port")
 * it last sent requests to, most recent first. */
struct http_conns {
	CURLM *multi;
	char origins[HTTP_ORIGINS][HTTP_ORIGIN_MAX];
};

/* Every thread's multi handle, listed under a lock so the main thread's
 * stays reachable (no leak report) and a thread's is closed when it ends. */
struct http_thread {
	struct http_conns c;
	int busy; /* a call is running on it (a callback may call again) */
	struct http_thread *prev, *next;
};

/* libcurl's global init, once per process (curl_global_init is not
 * thread-safe in 7.88); the share handle every easy handle joins, NULL
 * when libcurl could not make one. */
CURLSH *http_global_init(void);
/* The origin of url ("scheme://host:port", up to the path), for matching
 * kept connections. */
void http_origin(const char *url, char *out, size_t len);
/* Remember origin as c's most recent. */
void http_conns_note(struct http_conns *c, const char *origin);
/* This thread's multi handle, made on first use: an ended thread's that
 * was connected to origin ("": none) when one is kept, else a new one.
 * NULL when libcurl cannot make one. */
struct http_thread *http_thread_get(const char *origin);
/* Before a call to origin: when this thread's handle has never been
 * there but an ended thread's has, swap them (ours is kept in its place). */
void http_thread_adopt(struct http_thread *ht, const char *origin);

#endif
