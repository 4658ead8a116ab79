/* objstore_file.c — the file:// backend of the object store: objects are
 * files under S3_ENDPOINT's directory, <bucket>/<key>, written to a
 * temporary file and renamed so that a reader never sees half of one. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "objstore.h"
#include "objstore_int.h"
#include "util.h"

char *objstore_file_path(const struct objstore *os, const char *key)
{
	size_t n = strlen(os->root) + strlen(os->bucket) + strlen(key) + 3;
	char *p = xmalloc(n);
	snprintf(p, n, "%s/%s/%s", strcmp(os->root, "/") == 0 ? "" : os->root, os->bucket, key);
	return p;
}

/* mkdir -p of the directories above path's last component. */
static int objstore_mkdirs(char *path, size_t keep)
{
	for (char *p = path + keep + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		int rc = mkdir(path, 0755);
		int e = errno;
		*p = '/';
		if (rc != 0 && e != EEXIST)
			return -1;
	}
	return 0;
}

int objstore_file_put(struct objstore *os, const char *key, const void *data, size_t len,
		      struct objstore_error *err)
{
	char *path = objstore_file_path(os, key);
	int rc = OBJSTORE_ERROR;
	char *tmp = NULL;
	if (objstore_mkdirs(path, strlen(os->root)) != 0) {
		objstore_set_error(err, 0, 0, "io", "cannot create the directories of %s: %s", key,
				   strerror(errno));
		goto out;
	}
	/* the temporary file sits next to its target (same file system, so the
	 * rename is atomic), hidden, and named so a cleanup job can find it */
	const char *slash = strrchr(path, '/');
	size_t dl = (size_t)(slash - path);
	char rnd[17];
	unsigned char rb[8];
	util_random_bytes(rb, sizeof rb);
	for (int i = 0; i < 8; i++)
		snprintf(rnd + 2 * i, 3, "%02x", rb[i]);
	size_t tl = strlen(path) + 64;
	tmp = xmalloc(tl);
	snprintf(tmp, tl, "%.*s/.%s.tmp.%ld.%s", (int)dl, path, slash + 1, (long)getpid(), rnd);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		objstore_set_error(err, 0, 0, "io", "cannot create a file for %s: %s", key, strerror(errno));
		goto out;
	}
	const char *p = data;
	size_t left = len;
	while (left > 0) {
		ssize_t w = write(fd, p, left);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			objstore_set_error(err, 0, 0, "io", "cannot write %s: %s", key, strerror(errno));
			close(fd);
			unlink(tmp);
			goto out;
		}
		p += w;
		left -= (size_t)w;
	}
	if (close(fd) != 0 || rename(tmp, path) != 0) {
		objstore_set_error(err, 0, 0, "io", "cannot store %s: %s", key, strerror(errno));
		unlink(tmp);
		goto out;
	}
	rc = OBJSTORE_OK;
out:
	free(tmp);
	free(path);
	return rc;
}

int objstore_file_get(struct objstore *os, const char *key, struct buf *out, size_t max,
		      struct objstore_error *err)
{
	char *path = objstore_file_path(os, key);
	int rc = OBJSTORE_ERROR;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT || errno == ENOTDIR) {
			objstore_set_error(err, 404, 0, "NoSuchKey", "no object %s", key);
			rc = OBJSTORE_NOT_FOUND;
		} else {
			objstore_set_error(err, 0, 0, "io", "cannot open %s: %s", key, strerror(errno));
		}
		goto out;
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		objstore_set_error(err, 0, 0, "io", "%s is not a regular file", key);
		close(fd);
		goto out;
	}
	if ((size_t)st.st_size > max) {
		objstore_set_error(err, 0, 0, "too_large", "object %s is larger than %zu bytes", key, max);
		close(fd);
		goto out;
	}
	char chunk[65536];
	for (;;) {
		ssize_t r = read(fd, chunk, sizeof chunk);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			objstore_set_error(err, 0, 0, "io", "cannot read %s: %s", key, strerror(errno));
			close(fd);
			goto out;
		}
		if (r == 0)
			break;
		if (out->len + (size_t)r > max) {
			objstore_set_error(err, 0, 0, "too_large", "object %s is larger than %zu bytes",
					   key, max);
			close(fd);
			goto out;
		}
		buf_append(out, chunk, (size_t)r);
	}
	close(fd);
	rc = OBJSTORE_OK;
out:
	free(path);
	return rc;
}

int objstore_file_head(struct objstore *os, const char *key, struct objstore_info *info,
		       struct objstore_error *err)
{
	char *path = objstore_file_path(os, key);
	struct stat st;
	int rc = OBJSTORE_OK, found = stat(path, &st) == 0;
	if (!found || !S_ISREG(st.st_mode)) {
		/* a directory where the object would be is no object either */
		int missing = found ? S_ISDIR(st.st_mode) : errno == ENOENT || errno == ENOTDIR;
		objstore_set_error(err, missing ? 404 : 0, 0, missing ? "NoSuchKey" : "io", "no object %s",
				   key);
		rc = missing ? OBJSTORE_NOT_FOUND : OBJSTORE_ERROR;
	} else if (info) {
		info->size = (size_t)st.st_size;
		snprintf(info->etag, sizeof info->etag, "\"%lx-%lx\"", (unsigned long)st.st_mtime,
			 (unsigned long)st.st_size);
	}
	free(path);
	return rc;
}

int objstore_file_delete(struct objstore *os, const char *key, struct objstore_error *err)
{
	char *path = objstore_file_path(os, key);
	int rc = OBJSTORE_OK;
	if (unlink(path) != 0 && errno != ENOENT && errno != ENOTDIR) {
		objstore_set_error(err, 0, 0, "io", "cannot remove %s: %s", key, strerror(errno));
		rc = OBJSTORE_ERROR;
	}
	free(path);
	return rc;
}
