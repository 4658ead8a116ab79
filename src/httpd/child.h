/* child.h — the filter processes behind unde-httpd's routes.
 *
 * A child is one command started with its stdin and stdout on pipes (our
 * ends non-blocking, every other descriptor of ours closed on exec), in a
 * process group of its own so that a timeout kills it together with
 * anything it started. Talking to it never blocks past a deadline: writes
 * drain its output at the same time (a child answering before it has read
 * everything cannot deadlock us), and every wait is a poll with the time
 * left. Every child is reaped: by waiting when it exits, or by SIGKILL to
 * its group and waiting when it does not; either way its process group is
 * killed before the reap, so nothing it started outlives it. */
#ifndef UNDE_HTTPD_CHILD_H
#define UNDE_HTTPD_CHILD_H

#include <stddef.h>
#include <sys/types.h>

struct child {
	pid_t pid;        /* 0: not running */
	int to, from;     /* our ends of its stdin and stdout; -1 when closed */
	int pidfd;        /* readable once it has exited; -1 when unavailable */
	char *buf;        /* output read but not yet taken */
	size_t len, cap;
	size_t max_line;  /* a longer output line is an error */
	int eof;          /* its stdout reached end of file */
};

enum child_rc {
	CHILD_OK,       /* done (or a line is ready) */
	CHILD_EOF,      /* the child closed its output (it is exiting) */
	CHILD_TIMEOUT,  /* the deadline passed */
	CHILD_TOO_LONG, /* an output line passed max_line */
	CHILD_IO,       /* a read or poll error */
	CHILD_EARLY,    /* child_send: a line came before the input was all read */
};

/* Start argv[0] (searched on PATH). Returns 0, or an errno value (ENOENT
 * when the command does not exist). */
int child_start(struct child *k, char *const argv[], size_t max_line);

/* Before reusing an idle child: has it written something unasked (it is
 * out of step: a failure), or gone away (start another)? */
enum { CHILD_STALE_NO, CHILD_STALE_EXITED, CHILD_STALE_UNASKED };
int child_stale(struct child *k);

/* Write data[*sent..len) to the child's stdin by the deadline (ms,
 * util_now_ms clock), draining its output meanwhile; *sent says how far
 * it got. With stop_at_line, returns CHILD_EARLY as soon as a whole output
 * line is buffered while the child is not reading: it answered early. */
enum child_rc child_send(struct child *k, const char *data, size_t len, size_t *sent,
			 double deadline, int stop_at_line);

/* Close the child's stdin: it sees end of file. */
void child_close_input(struct child *k);

/* Wait until a whole line is buffered; *linelen is its length without the
 * newline, the line itself starts at k->buf. Take it with child_take. */
enum child_rc child_line(struct child *k, double deadline, size_t *linelen);
void child_take(struct child *k, size_t n);

/* Reap a child whose output ended: wait for it until the deadline, then
 * kill its group. Stores the wait status; returns 1 when it had to kill. */
int child_reap(struct child *k, double deadline, int *wstatus);

/* Kill the child's process group now and reap it. */
void child_kill(struct child *k);

/* The end of a connection: close its stdin, give it grace_ms to exit,
 * then kill it. */
void child_stop(struct child *k, double grace_ms);

/* For a fatal signal: SIGKILL every live child's group (async-signal-safe). */
void child_kill_all_from_signal(void);

#endif
