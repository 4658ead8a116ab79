/* inflight.c — requests in flight per host, one flock'ed file per process
 * (inflight.h). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "inflight.h"
#include "log.h"
#include "util.h"

static int own_fd = -1;
static pid_t own_pid;
static int own_failed;

/* $UNDE_COUNTERS_DIR/<service>.inflight into buf. 0, or -1 when too long. */
static int dir_of(const char *service, char *buf, size_t len)
{
	const char *dir = conf_str("UNDE_COUNTERS_DIR", "/run/unde");
	int n = snprintf(buf, len, "%s/%s.inflight", dir, service);
	return n > 0 && (size_t)n < len ? 0 : -1;
}

/* Open this process's file once (a fork reopens its own), then hold its
 * lock for the request. */
int inflight_enter(const char *service)
{
	if (own_fd >= 0 && own_pid != getpid()) { /* a forked child: its own file */
		close(own_fd);
		own_fd = -1;
	}
	if (own_fd < 0) {
		if (own_failed)
			return -1;
		char dir[4096], path[4200];
		if (dir_of(service, dir, sizeof dir) != 0 || (mkdir(dir, 0700) != 0 && errno != EEXIST)) {
			own_failed = 1;
			log_event(LOG_WARN, "in-flight requests not counted: cannot make the directory",
				  json_pack("{s:s, s:s}", "service", service, "error", strerror(errno)));
			return -1;
		}
		own_pid = getpid();
		snprintf(path, sizeof path, "%s/%ld", dir, (long)own_pid);
		own_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (own_fd < 0) {
			own_failed = 1;
			log_event(LOG_WARN, "in-flight requests not counted: cannot open the process's file",
				  json_pack("{s:s, s:s}", "path", path, "error", strerror(errno)));
			return -1;
		}
	}
	return flock(own_fd, LOCK_EX) == 0 ? 0 : -1;
}

/* Drop the lock, keep the file open for the next request. */
void inflight_leave(void)
{
	if (own_fd >= 0 && own_pid == getpid())
		flock(own_fd, LOCK_UN);
}

/* A held lock is a request in flight; an unheld file of a dead process
 * is swept. */
long inflight_count(const char *service)
{
	char dir[4096];
	if (dir_of(service, dir, sizeof dir) != 0)
		return -1;
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -1;
	long n = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		if (*end || pid <= 0)
			continue;
		int fd = openat(dirfd(d), e->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			continue;
		if (flock(fd, LOCK_SH | LOCK_NB) != 0) {
			if (errno == EWOULDBLOCK)
				n++;
		} else {
			flock(fd, LOCK_UN);
			if (kill((pid_t)pid, 0) != 0 && errno == ESRCH)
				unlinkat(dirfd(d), e->d_name, 0);
		}
		close(fd);
	}
	closedir(d);
	return n;
}
