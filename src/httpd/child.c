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
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
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

/* Milliseconds left until deadline, rounded up, for poll(); 0 when past. */
static int child_ms_left(double deadline)
{
	double left = deadline - util_now_ms();
	if (left <= 0)
		return 0;
	return left > 1e9 ? 1000000000 : (int)left + 1;
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
	k->to = k->from = k->pidfd = -1;
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
	/* Its exit is seen even when something it started still holds its
	 * stdout open (no end of file would come); -1 on old kernels. */
	k->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (k->pidfd >= 0)
		fcntl(k->pidfd, F_SETFD, FD_CLOEXEC);
	child_register(pid);
	return 0;
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

int child_stale(struct child *k)
{
	if (k->len > 0)
		return CHILD_STALE_UNASKED;
	if (k->eof)
		return CHILD_STALE_EXITED;
	struct pollfd gone = { .fd = k->pidfd, .events = POLLIN };
	struct pollfd p = { .fd = k->from, .events = POLLIN };
	int r = poll(&p, 1, 0);
	if (r == 0)
		return poll(&gone, 1, 0) > 0 ? CHILD_STALE_EXITED : CHILD_STALE_NO;
	if (r < 0)
		return CHILD_STALE_EXITED;
	ssize_t n = child_fill(k);
	if (n > 0)
		return CHILD_STALE_UNASKED;
	if (n < 0 && errno == EAGAIN)
		return CHILD_STALE_NO;
	return CHILD_STALE_EXITED;
}

enum child_rc child_send(struct child *k, const char *data, size_t len, size_t *sent,
			 double deadline, int stop_at_line)
{
	size_t off = *sent;
	enum child_rc rc = CHILD_OK;
	while (off < len) {
		ssize_t n = write(k->to, data + off, len - off);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EPIPE) {
			rc = CHILD_EOF;
			break;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			rc = CHILD_IO;
			break;
		}
		/* The pipe is full: wait for room, and drain its output meanwhile. */
		struct pollfd p[3] = { { .fd = k->to, .events = POLLOUT },
				       { .fd = k->eof ? -1 : k->from, .events = POLLIN },
				       { .fd = k->pidfd, .events = POLLIN } };
		int ms = child_ms_left(deadline);
		if (ms == 0) {
			rc = CHILD_TIMEOUT;
			break;
		}
		int r = poll(p, 3, ms);
		if (r > 0 && (p[2].revents & POLLIN) && !(p[0].revents & POLLOUT)) {
			/* It exited without reading the rest (something it
			 * started holds its stdin): stop writing, read. */
			while (child_fill(k) > 0)
				;
			rc = CHILD_EOF;
			break;
		}
		if (r < 0 && errno != EINTR) {
			rc = CHILD_IO;
			break;
		}
		if (r > 0 && (p[1].revents & (POLLIN | POLLHUP))) {
			if (k->len > k->max_line) {
				rc = CHILD_TOO_LONG;
				break;
			}
			if (child_fill(k) < 0 && errno != EAGAIN) {
				rc = CHILD_IO;
				break;
			}
			/* It answered before reading all of its input: let the
			 * caller look instead of waiting for room that may never
			 * come. */
			if (stop_at_line && memchr(k->buf, '\n', k->len)) {
				rc = CHILD_EARLY;
				break;
			}
		}
		if (r > 0 && (p[0].revents & (POLLERR | POLLHUP)) && !(p[0].revents & POLLOUT)) {
			rc = CHILD_EOF;
			break;
		}
	}
	*sent = off;
	return rc;
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
		struct pollfd p[2] = { { .fd = k->from, .events = POLLIN },
				       { .fd = k->pidfd, .events = POLLIN } };
		int ms = child_ms_left(deadline);
		if (ms == 0)
			return CHILD_TIMEOUT;
		int r = poll(p, 2, ms);
		if (r < 0 && errno != EINTR)
			return CHILD_IO;
		if (r <= 0)
			continue;
		if (p[1].revents & POLLIN) {
			/* It exited: what it wrote is in the pipe already. Take
			 * it all; without a line, that is its end of output, even
			 * if a leftover of its group keeps the pipe open. */
			ssize_t n;
			while ((n = child_fill(k)) > 0)
				;
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				return CHILD_IO;
			if (!memchr(k->buf + scanned, '\n', k->len - scanned))
				k->eof = 1;
			continue;
		}
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
	child_close_fd(&k->pidfd);
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
		/* Seen exited but not yet reaped (WNOWAIT): its pid, and so its
		 * group id, cannot be reused yet, so whatever it left running in
		 * its group is killed before it is reaped. */
		siginfo_t si;
		memset(&si, 0, sizeof si);
		int r = waitid(P_PID, (id_t)k->pid, &si, WEXITED | WNOHANG | WNOWAIT);
		if (r == 0 && si.si_pid == k->pid) {
			kill(-k->pid, SIGKILL);
			while (waitpid(k->pid, &st, 0) < 0 && errno == EINTR)
				;
			break;
		}
		if (r < 0 && errno != EINTR)
			break;
		int ms = child_ms_left(deadline);
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
