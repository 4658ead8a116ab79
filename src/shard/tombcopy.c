/* tombcopy.c — the copy of production's tombstone and forget registries
 * (§14/§21: a restore re-applies the deletions even when production is the
 * thing that was lost). The copy goes to object storage — one JSON-lines
 * object per batch, TOMBSTONE_COPY_PREFIX/<kind>/<first registry id>.jsonl
 * in TOMBSTONE_COPY_BUCKET — or, on a single box, to a local file
 * (--copy-file, TOMBSTONE_COPY_FILE). `unde-cluster restore --tombstones`
 * reads either back into `apply-deletions --from-copy`.
 *
 * Each batch is written and made durable (PUT answered, or fsync) before
 * its rows are marked exported, in one transaction with the rows locked:
 * concurrent erasers copy each row once; a crash between the copy and the
 * commit copies it again under the same key (applying it twice is
 * harmless). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "objstore.h"
#include "pg.h"
#include "shard.h"
#include "util.h"

/* Where the copy goes: the file when one is named, else object storage
 * when required or configured (S3_ENDPOINT set), else nowhere. */
int tomb_copy_open(struct tomb_copy *t, const char *file, int required)
{
	memset(t, 0, sizeof *t);
	const char *env = conf_str("TOMBSTONE_COPY_FILE", NULL);
	if (!file && env && *env)
		file = env;
	if (file) {
		t->file = file;
		snprintf(t->where, sizeof t->where, "%s", file);
		return 0;
	}
	const char *ep = conf_str("S3_ENDPOINT", NULL);
	if (!required && !(ep && *ep))
		return 0;
	t->prefix = conf_str("TOMBSTONE_COPY_PREFIX", "tombstones");
	while (*t->prefix == '/')
		t->prefix++;
	size_t n = strlen(t->prefix);
	if (!n || t->prefix[n - 1] == '/' || !objstore_key_valid(t->prefix)) {
		log_event(LOG_ERROR, "TOMBSTONE_COPY_PREFIX must be a key prefix such as tombstones",
			  json_pack("{s:s, s:i}", "variable", "TOMBSTONE_COPY_PREFIX", "exit", 78));
		return 78;
	}
	t->store = objstore_open_bucket("TOMBSTONE_COPY_BUCKET", "unde-backups");
	snprintf(t->where, sizeof t->where, "s3://%s/%s", objstore_bucket(t->store), t->prefix);
	return 0;
}

void tomb_copy_close(struct tomb_copy *t)
{
	objstore_close(t->store);
	t->store = NULL;
}

/* Append the lines to the file, fsync'd, under an exclusive lock. */
static int to_file(const char *path, const struct buf *lines)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	int ok = fd >= 0 && flock(fd, LOCK_EX) == 0 &&
		 write(fd, lines->data, lines->len) == (ssize_t)lines->len && fsync(fd) == 0;
	int err = errno;
	if (fd >= 0)
		close(fd);
	if (!ok)
		log_event(LOG_ERROR, "cannot append to the tombstone copy",
			  json_pack("{s:s, s:s}", "path", path, "error", strerror(err)));
	return ok ? 0 : -2;
}

/* PUT the batch as one object named by its kind and first registry id. */
static int to_store(struct tomb_copy *t, const char *kind, const char *first, const struct buf *lines)
{
	char key[600];
	snprintf(key, sizeof key, "%s/%s/%020lld.jsonl", t->prefix, kind, strtoll(first, NULL, 10));
	struct objstore_error e;
	if (objstore_put(t->store, key, lines->data, lines->len, "application/x-ndjson", &e) == OBJSTORE_OK)
		return 0;
	log_event(LOG_ERROR, "cannot store the tombstone copy",
		  json_pack("{s:s, s:s, s:s, s:I}", "key", key, "code", e.code, "error", e.message,
			    "http_status", (json_int_t)e.http_status));
	return -2;
}

int tomb_copy_pending(struct tomb_copy *t, PGconn *p, const char *table)
{
	if (!t->file && !t->store)
		return 0;
	const char *kind = !strcmp(table, "deleted_users_registry") ? "user"
			   : !strcmp(table, "forgotten_messages_registry") ? "forget" : "message";
	const char *sel = !strcmp(kind, "user")
		? "SELECT id, json_build_object('type', 'user', 'registry_id', id, 'user_id', user_id,"
		  " 'deleted_at', deleted_at, 'shard_id', shard_id)::text"
		  " FROM deleted_users_registry WHERE exported_at IS NULL ORDER BY id FOR UPDATE"
		: !strcmp(kind, "forget")
		? "SELECT id, json_build_object('type', 'forget', 'registry_id', id,"
		  " 'conversation_id', conversation_id, 'message_id', message_id,"
		  " 'forget_description', forget_description, 'forgotten_at', forgotten_at,"
		  " 'shard_id', shard_id)::text"
		  " FROM forgotten_messages_registry WHERE exported_at IS NULL ORDER BY id FOR UPDATE"
		: "SELECT id, json_build_object('type', 'message', 'registry_id', id,"
		  " 'conversation_id', conversation_id, 'message_id', message_id,"
		  " 'deleted_at', deleted_at, 'shard_id', shard_id)::text"
		  " FROM deleted_messages_registry WHERE exported_at IS NULL ORDER BY id FOR UPDATE";
	if (pg_begin(p) != 0)
		return -1;
	PGresult *r = pg_query(p, sel, 0, NULL);
	if (!r) {
		pg_rollback(p);
		return -1;
	}
	if (PQntuples(r) == 0) {
		PQclear(r);
		pg_rollback(p);
		return 0;
	}
	struct buf ids = { 0 }, lines = { 0 };
	buf_append(&ids, "{", 1);
	for (int i = 0; i < PQntuples(r); i++) {
		const char *line = PQgetvalue(r, i, 1);
		buf_append(&lines, line, strlen(line));
		buf_append(&lines, "\n", 1);
		if (i)
			buf_append(&ids, ",", 1);
		buf_append(&ids, PQgetvalue(r, i, 0), strlen(PQgetvalue(r, i, 0)));
	}
	buf_append(&ids, "}", 2);
	int rc = t->file ? to_file(t->file, &lines) : to_store(t, kind, PQgetvalue(r, 0, 0), &lines);
	PQclear(r);
	buf_free(&lines);
	if (rc) {
		buf_free(&ids);
		pg_rollback(p);
		return rc;
	}
	const char *pp[] = { ids.data };
	char upd[160];
	snprintf(upd, sizeof upd, "UPDATE %s SET exported_at = now() WHERE id = ANY($1::bigint[])", table);
	rc = pg_exec(p, upd, 1, pp) == 0 && pg_commit(p) == 0 ? 0 : -1;
	if (rc)
		pg_rollback(p);
	buf_free(&ids);
	return rc;
}
