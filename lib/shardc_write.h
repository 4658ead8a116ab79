/* shardc_write.h — what the two writers of chat history, saving a turn
 * (shardc_save.c) and verify-and-replay (shardc_replay.c), share. Internal
 * to lib/shardc_*.c; commands use lib/shardc.h. */
#ifndef UNDE_SHARDC_WRITE_H
#define UNDE_SHARDC_WRITE_H

#include <jansson.h>
#include <libpq-fe.h>

#include "shardc.h"

/* The client's messages as rows to insert: each checked and reduced to the
 * columns stored, replay rows marked so. NULL with e set on the first bad
 * message (named by its index). */
json_t *shard_rows_of(struct shard_err *e, const json_t *msgs, int replay);
/* Drop from rows the messages production's tombstone registry holds, their
 * ids appended to erased: an erased message is never written back. 0, or
 * -1 with err. */
int shard_drop_erased(struct shard_err *err, struct shard_ctx *x, json_t *rows, json_t *erased);
/* The user's one conversation (§14: UNIQUE(user_id)), created on first
 * use with the client's id (want) when it sent one; conv gets its id.
 * Inside the caller's transaction. 0, or -1 with err. */
int shard_conversation_for(struct shard_err *err, PGconn *c, const char *user_id,
			   const char *want, char conv[37]);
/* Insert rows (from shard_rows_of) into conversation conv, enrich marking
 * them for the backfill; the ids go to inserted or, already there, to
 * existing. Inside the caller's transaction. 0, or -1 with err. */
int shard_insert_rows(struct shard_err *err, PGconn *c, const char *conv, json_t *rows,
		      int enrich, json_t *inserted, json_t *existing);

/* One attempt of a write; *reached gets the shard id once a connection to
 * it was had (-1 before), so that a shard_unavailable is known to come
 * from a write that lost its primary. */
typedef int shard_write_once(struct shard_ctx *x, json_t *rec, struct shard_err *err, long *reached);
/* Run once, and again on the new primary when the write lost its
 * connection to a failed one (at most 3 more times); what names the write
 * in the log. Safe because both writes are idempotent by message UUID. */
int shard_with_failover(shard_write_once *once, struct shard_ctx *x, json_t *rec,
			struct shard_err *err, const char *what);

#endif
