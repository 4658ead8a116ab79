/* child.c — starting, feeding, reading and reaping filter processes; see
 * child.h. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "deadline.h"
#include "util.h"

extern char **environ;

#define CHILD_READ_CHUNK 65536
#define CHILD_REGISTRY 512

/* Live children's pids, for the fatal-signal handler (which may only read
 * plain memory and call async-signal-safe functions). */
static volatile sig_atomic_t child_registry[CHILD_REGISTRY];

static void child_register(pid_t pid)
{
	for (size_t i = 0; i < CHILD_REGISTRY; i++)
		if (child_registry[i] == 0) {
			child_registry[i] = pid;
			return;
		}
}

static void child_unregister(pid_t pid)
{
	for (size_t i = 0; i < CHILD_REGISTRY; i++)
		if (child_registry[i] == pid)
			child_registry[i] = 0;
}

void child_kill_all_from_signal(void)
{
	for (size_t i = 0; i < CHILD_REGISTRY; i++)
		if (child_registry[i] > 0)
			kill(-(pid_t)child_registry[i], SIGKILL);
}

static void child_close_fd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

int child_start(struct child *k, char *const argv[], size_t max_line)
{
	int in[2], out[2];
	memset(k, 0, sizeof *k);
	k->to = k->from = -1;
	k->max_line = max_line;
	if (pipe2(in, O_CLOEXEC) != 0)
		return errno;
	if (pipe2(out, O_CLOEXEC) != 0) {
		int e = errno;
		close(in[0]);
		close(in[1]);
		return e;
	}
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawnattr_init(&attr);
	sigset_t none, dfl;
	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE);
	sigaddset(&dfl, SIGTERM);
	sigaddset(&dfl, SIGINT);
	sigaddset(&dfl, SIGHUP);
	sigaddset(&dfl, SIGCHLD);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &dfl);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
						POSIX_SPAWN_SETSIGDEF);
	pid_t pid;
	int rc = posix_spawnp(&pid, argv[0], &fa, &attr, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(in[0]);
	close(out[1]);
	if (rc != 0) {
		close(in[1]);
		close(out[0]);
		return rc;
	}
	fcntl(in[1], F_SETFL, fcntl(in[1], F_GETFL) | O_NONBLOCK);
	fcntl(out[0], F_SETFL, fcntl(out[0], F_GETFL) | O_NONBLOCK);
	k->pid = pid;
	k->to = in[1];
	k->from = out[0];
	child_register(pid);
	return 0;
}

int child_stale(const struct child *k)
{
	if (k->len > 0 || k->eof)
		return 1;
	struct pollfd p = { .fd = k->from, .events = POLLIN };
	return poll(&p, 1, 0) != 0;
}

/* Read what the child has written so far into k->buf. Returns bytes read,
 * 0 at end of file, -1 when nothing was ready (or an error: errno). */
static ssize_t child_fill(struct child *k)
{
	if (k->cap - k->len < CHILD_READ_CHUNK) {
		k->cap = k->len + CHILD_READ_CHUNK;
		k->buf = xrealloc(k->buf, k->cap);
	}
	ssize_t n;
	do
		n = read(k->from, k->buf + k->len, k->cap - k->len);
	while (n < 0 && errno == EINTR);
	if (n > 0)
		k->len += (size_t)n;
	else if (n == 0)
		k->eof = 1;
	return n;
}

enum child_rc child_send(struct child *k, const char *data, size_t len, double deadline)
{
	size_t off = 0;
	while (off < len) {
		ssize_t n = write(k->to, data + off, len - off);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EPIPE)
			return CHILD_EOF;
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return CHILD_IO;
		/* The pipe is full: wait for room, and drain its output meanwhile. */
		struct pollfd p[2] = { { .fd = k->to, .events = POLLOUT },
				       { .fd = k->eof ? -1 : k->from, .events = POLLIN } };
		int ms = deadline_poll_ms(deadline_at(deadline));
		if (ms == 0)
			return CHILD_TIMEOUT;
		int r = poll(p, 2, ms);
		if (r < 0 && errno != EINTR)
			return CHILD_IO;
		if (r > 0 && (p[1].revents & (POLLIN | POLLHUP))) {
			if (k->len > k->max_line)
				return CHILD_TOO_LONG;
			if (child_fill(k) < 0 && errno != EAGAIN)
				return CHILD_IO;
		}
		if (r > 0 && (p[0].revents & (POLLERR | POLLHUP)) && !(p[0].revents & POLLOUT))
			return CHILD_EOF;
	}
	return CHILD_OK;
}

void child_close_input(struct child *k) { child_close_fd(&k->to); }

enum child_rc child_line(struct child *k, double deadline, size_t *linelen)
{
	size_t scanned = 0;
	for (;;) {
		char *nl = k->len > scanned ? memchr(k->buf + scanned, '\n', k->len - scanned)
					    : NULL;
		if (nl) {
			*linelen = (size_t)(nl - k->buf);
			return *linelen > k->max_line ? CHILD_TOO_LONG : CHILD_OK;
		}
		scanned = k->len;
		if (k->len > k->max_line)
			return CHILD_TOO_LONG;
		if (k->eof)
			return CHILD_EOF;
		/* Wait first: the answer is rarely there the moment we ask. */
		struct pollfd p = { .fd = k->from, .events = POLLIN };
		int ms = deadline_poll_ms(deadline_at(deadline));
		if (ms == 0)
			return CHILD_TIMEOUT;
		int r = poll(&p, 1, ms);
		if (r < 0 && errno != EINTR)
			return CHILD_IO;
		if (r <= 0)
			continue;
		if (child_fill(k) < 0 && errno != EAGAIN && errno != EINTR)
			return CHILD_IO;
	}
}

void child_take(struct child *k, size_t n)
{
	if (n >= k->len) {
		k->len = 0;
		return;
	}
	memmove(k->buf, k->buf + n, k->len - n);
	k->len -= n;
}

/* Forget a reaped child: descriptors, buffer, registry entry. */
static void child_forget(struct child *k)
{
	child_unregister(k->pid);
	child_close_fd(&k->to);
	child_close_fd(&k->from);
	free(k->buf);
	k->buf = NULL;
	k->len = k->cap = 0;
	k->pid = 0;
	k->eof = 0;
}

int child_reap(struct child *k, double deadline, int *wstatus)
{
	int st = 0, killed = 0, step = 1;
	/* Nothing more will be read: a child still writing gets EPIPE. */
	child_close_fd(&k->to);
	child_close_fd(&k->from);
	for (;;) {
		pid_t r = waitpid(k->pid, &st, WNOHANG);
		if (r == k->pid || (r < 0 && errno != EINTR))
			break;
		int ms = deadline_poll_ms(deadline_at(deadline));
		if (ms == 0) {
			kill(-k->pid, SIGKILL);
			while (waitpid(k->pid, &st, 0) < 0 && errno == EINTR)
				;
			killed = 1;
			break;
		}
		/* Exiting takes microseconds once stdout is closed: poll briefly. */
		poll(NULL, 0, step < ms ? step : ms);
		if (step < 64)
			step *= 2;
	}
	if (wstatus)
		*wstatus = st;
	child_forget(k);
	return killed;
}

void child_kill(struct child *k)
{
	if (!k->pid)
		return;
	kill(-k->pid, SIGKILL);
	int st;
	while (waitpid(k->pid, &st, 0) < 0 && errno == EINTR)
		;
	child_forget(k);
}

void child_stop(struct child *k, double grace_ms)
{
	if (!k->pid)
		return;
	child_close_input(k);
	child_reap(k, util_now_ms() + grace_ms, NULL);
}
