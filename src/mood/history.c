/* history.c — the previous mood_frame from the shard (see history.h). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "history.h"
#include "log.h"
#include "pg.h"

int mood_history_enabled(void)
{
	if (!conf_bool("MOOD_HISTORY", 1))
		return 0;
	const char *p = conf_str("PRODUCTION_DB_URL", NULL), *s = conf_str("SHARD_0_DB_URL", NULL);
	return (p && *p) || (s && *s);
}

json_t *mood_history_last(struct shard_ctx *x, const char *user_id, const char *frame_id,
			  const char **why)
{
	struct shard_err e = {0};
	long sid = -1;
	*why = NULL;
	if (!shard_uuid_valid(user_id)) {
		*why = "user_id_not_uuid";
		return NULL;
	}
	PGconn *c = sctx_for_user(x, user_id, 0, &sid, &e);
	if (!c) {
		*why = e.code ? e.code : "shard_unavailable";
		return NULL;
	}
	const char *params[] = {user_id, frame_id};
	PGresult *r = pg_query(c,
			       "SELECT m.mood_frame::text FROM messages m "
			       "JOIN conversations c ON c.id = m.conversation_id "
			       "WHERE c.user_id = $1::uuid AND m.mood_frame IS NOT NULL "
			       "  AND m.deleted_at IS NULL AND NOT m.is_forgotten "
			       "  AND ($2::text IS NULL OR m.mood_frame->>'mood_frame_id' = $2) "
			       "ORDER BY m.created_at DESC LIMIT 1",
			       2, params);
	if (!r) {
		*why = "query_failed";
		return NULL;
	}
	json_t *frame = NULL;
	if (PQntuples(r) == 1)
		frame = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
	PQclear(r);
	if (!frame)
		*why = "none";
	return frame;
}
