/* store.c — unde-embed's writes: the embeddings and snippets of a batch
 * in one UPDATE per EMBED_STORE_BATCH messages instead of one per message (the
 * round trips were most of --pending's time), with the per-message
 * isolation of the old way kept: a statement that fails is sent again for
 * each of its messages alone, so one bad message fails by itself.
 * EMBED_STORE_BATCH=1 is the old way, for a benchmark's baseline.
 *
 * The rows travel as one JSON parameter to store_enrichment() (migration
 * 0040: an UPDATE … FROM the batch was a scan of every partition per
 * batch); no SQL is built from data, and the vectors keep the text
 * pgvector reads. Each UPDATE re-checks that each message is neither forgotten nor erased, so
 * one forgotten while queued is left alone (it is not RETURNed). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "embed.h"
#include "log.h"
#include "pg.h"
#include "shardc.h"

/* sql/shard/0040: the batch's rows updated one by one by primary key
 * (each pruned to its partition) in one statement; the stored rows back. */
static const char store_sql[] = "SELECT stored_conversation_id::text, stored_id::text, snippet_null"
				" FROM store_enrichment($1::jsonb)";

/* The "conversation_id/message_id" key that maps a RETURNed row back. */
static void row_key(char *key, size_t len, const char *conv, const char *id)
{
	snprintf(key, len, "%s/%s", conv ? conv : "", id ? id : "");
}

/* The JSON row of one record for jsonb_to_recordset, or NULL when out of
 * memory. */
static json_t *store_row(const json_t *r)
{
	const json_t *v = json_object_get(r, "_vector");
	char *vec = v ? json_dumps(v, JSON_COMPACT) : NULL;
	if (v && !vec)
		return NULL;
	json_t *row = json_pack("{s:s?, s:s?, s:s?, s:s?, s:s?}", "conversation_id",
				shard_jstr(r, "conversation_id"), "id", shard_jstr(r, "message_id"),
				"embedding", vec, "model", vec ? shard_jstr(r, "embedding_model") : NULL,
				"snippet", shard_jstr(r, "_snippet"));
	free(vec);
	return row;
}

/* Records recs[from..to) in one statement; on failure each alone (when
 * more than one). Adds the statements sent to *sent. */
static void store_range(PGconn *c, json_t *recs, size_t from, size_t to, long *sent)
{
	json_t *rows = json_array();
	for (size_t i = from; i < to; i++) {
		json_t *row = store_row(json_array_get(recs, i));
		if (!row || json_array_append_new(rows, row)) {
			json_decref(rows);
			for (size_t k = from; k < to; k++)
				json_object_set_new(json_array_get(recs, k), "_store_error",
						    json_pack("{s:i, s:s, s:s}", "status", EX_SOFTWARE, "code",
							      "out_of_memory", "message",
							      "out of memory building the update"));
			return;
		}
	}
	char *param = json_dumps(rows, JSON_COMPACT);
	json_decref(rows);
	const char *pp[] = { param };
	PGresult *r = param ? pg_query(c, store_sql, 1, pp) : NULL;
	free(param);
	(*sent)++;
	if (!r) {
		if (to - from > 1) {
			log_event(LOG_WARN, "a batched update failed: each of its messages again alone",
				  json_pack("{s:I}", "messages", (json_int_t)(to - from)));
			for (size_t i = from; i < to; i++)
				store_range(c, recs, i, i + 1, sent);
			return;
		}
		struct shard_err e;
		shard_err_query(&e, c, "cannot store the embedding");
		json_object_set_new(json_array_get(recs, from), "_store_error",
				    json_pack("{s:i, s:s, s:s}", "status", e.status, "code", e.code,
					      "message", e.msg));
		return;
	}
	json_t *returned = json_object();
	for (int k = 0; k < PQntuples(r); k++) {
		char key[128];
		row_key(key, sizeof key, PQgetvalue(r, k, 0), PQgetvalue(r, k, 1));
		json_object_set_new(returned, key, json_boolean(PQgetvalue(r, k, 2)[0] == 't'));
	}
	PQclear(r);
	for (size_t i = from; i < to; i++) {
		json_t *rec = json_array_get(recs, i);
		char key[128];
		row_key(key, sizeof key, shard_jstr(rec, "conversation_id"), shard_jstr(rec, "message_id"));
		json_t *null_snippet = json_object_get(returned, key);
		json_object_set_new(rec, "_stored", json_boolean(null_snippet != NULL));
		if (null_snippet)
			json_object_set(rec, "_snippet_null", null_snippet);
	}
	json_decref(returned);
}

long embed_store(PGconn *c, json_t *recs, size_t batch)
{
	long sent = 0;
	size_t n = json_array_size(recs);
	if (batch < 1)
		batch = 1;
	for (size_t i = 0; i < n; i += batch)
		store_range(c, recs, i, i + batch < n ? i + batch : n, &sent);
	return sent;
}
