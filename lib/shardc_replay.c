/* shardc_replay.c — §14's client-side verify-and-replay after a failover:
 * the pairs the app holds unconfirmed are written again (idempotent by
 * their UUIDs, marked for the enrichment backfill), the ids it believes
 * confirmed are checked, under the server's replay rate limit. */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "log.h"
#include "pg.h"
#include "shardc.h"
#include "shardc_write.h"

/* Flatten replay pairs: each is {"user":{…},"assistant":{…}} or an array
 * of messages. */
static json_t *replay_messages(const json_t *pairs, char *err, size_t errlen)
{
	json_t *out = json_array();
	size_t i;
	const json_t *p;
	json_array_foreach(pairs, i, p)
	{
		if (json_is_array(p)) {
			json_array_extend(out, (json_t *)p);
		} else if (json_is_object(p) && (json_object_get(p, "user") || json_object_get(p, "assistant"))) {
			static const char *const k[] = { "user", "assistant" };
			for (int j = 0; j < 2; j++) {
				json_t *m = json_object_get(p, k[j]);
				if (m && !json_is_null(m)) {
					json_t *cp = json_deep_copy(m);
					if (json_is_object(cp) && !json_object_get(cp, "role"))
						json_object_set_new(cp, "role", json_string(k[j]));
					json_array_append_new(out, cp);
				}
			}
		} else {
			snprintf(err, errlen, "unconfirmed[%zu] must be a pair {user, assistant} or an array", i);
			json_decref(out);
			return NULL;
		}
	}
	return out;
}

/* One attempt of shard_replay; *reached as for save_turn_once. */
static int replay_once(struct shard_ctx *x, json_t *rec, struct shard_err *err, long *reached)
{
	*reached = -1;
	const char *conv = shard_jstr(rec, "conversation_id"), *user = shard_jstr(rec, "user_id");
	const json_t *pairs = json_object_get(rec, "unconfirmed");
	const json_t *confirmed = json_object_get(rec, "recent_confirmed_ids");
	if (!conv || !shard_uuid_valid(conv))
		return shard_err_set(err, EX_DATAERR, "invalid_field", "conversation_id must be a UUID");
	if (user && !shard_uuid_valid(user))
		return shard_err_set(err, EX_DATAERR, "invalid_field", "user_id must be a UUID");
	if (pairs && !json_is_array(pairs))
		return shard_err_set(err, EX_DATAERR, "invalid_field", "unconfirmed must be an array");
	if (confirmed && !json_is_array(confirmed))
		return shard_err_set(err, EX_DATAERR, "invalid_field", "recent_confirmed_ids must be an array");
	json_t *ids = json_array();
	size_t i;
	const json_t *v;
	json_array_foreach(confirmed, i, v)
	{
		/* an id, or a pair of ids */
		const json_t *one = v;
		for (size_t j = 0; j < (json_is_array(v) ? json_array_size(v) : 1); j++) {
			if (json_is_array(v))
				one = json_array_get(v, j);
			if (!json_is_string(one) || !shard_uuid_valid(json_string_value(one))) {
				json_decref(ids);
				return shard_err_set(err, EX_DATAERR, "invalid_field",
						   "recent_confirmed_ids[%zu] must be a UUID or an array of UUIDs", i);
			}
			json_array_append(ids, (json_t *)one);
		}
	}
	char why[256];
	json_t *msgs = pairs ? replay_messages(pairs, why, sizeof why) : json_array();
	if (!msgs) {
		json_decref(ids);
		return shard_err_set(err, EX_DATAERR, "invalid_field", "%s", why);
	}
	json_t *rows = shard_rows_of(err, msgs, 1);
	json_decref(msgs);
	if (!rows) {
		json_decref(ids);
		return -1;
	}
	long sid;
	PGconn *c = user ? sctx_for_user_write(x, user, 1, &sid, err)
			 : sctx_for_conversation(x, conv, NULL, 1, &sid, err);
	if (!c) {
		json_decref(rows);
		json_decref(ids);
		sctx_write_done(x);
		return -1;
	}
	*reached = sid;
	int rc = 0;
	json_t *ins = json_array(), *old = json_array(), *cpresent = json_array(),
	       *cmissing = json_array(), *erased = json_array();
	char have[37];
	if ((rc = shard_drop_erased(err, x, rows, erased)) != 0)
		goto out;
	if (pg_begin(c) != 0) {
		rc = shard_err_query(err, c, "cannot begin");
		goto out;
	}
	char owner[37] = "";
	if (user) {
		if ((rc = shard_conversation_for(err, c, user, conv, have)) != 0)
			goto out;
		snprintf(owner, sizeof owner, "%s", user);
	} else {
		const char *pp[] = { conv };
		PGresult *r = pg_query(c, "SELECT user_id::text FROM conversations WHERE id = $1", 1, pp);
		int found = r && PQntuples(r) == 1;
		if (found)
			snprintf(owner, sizeof owner, "%s", PQgetvalue(r, 0, 0));
		PQclear(r);
		if (!found) {
			rc = shard_err_set(err, EX_DATAERR, "unknown_conversation",
					 "conversation %s is not on this shard; send user_id to create it", conv);
			goto out;
		}
	}
	if (x->replay_limit) {
		json_t *mids = json_array();
		size_t k;
		const json_t *row;
		json_array_foreach(rows, k, row)
			json_array_append(mids, json_object_get(row, "id"));
		rc = shard_replay_admit(x->replay_limit, c, owner, pairs ? json_array_size(pairs) : 0,
					mids, err);
		json_decref(mids);
		if (rc)
			goto out;
	}
	if (json_array_size(rows) && (rc = shard_insert_rows(err, c, conv, rows, 1, ins, old)) != 0)
		goto out;
	if (json_array_size(ids)) {
		char *js = json_dumps(ids, JSON_COMPACT);
		const char *pp[] = { conv, js };
		PGresult *r = pg_query(c,
				       "SELECT i::text, EXISTS (SELECT 1 FROM messages m"
				       " WHERE m.conversation_id = $1::uuid AND m.id = i)"
				       " FROM jsonb_array_elements_text($2::jsonb) AS t(i0),"
				       " LATERAL (SELECT t.i0::uuid AS i) x",
				       2, pp);
		free(js);
		if (!r) {
			rc = shard_err_query(err, c, "cannot check the confirmed messages");
			goto out;
		}
		for (int k = 0; k < PQntuples(r); k++)
			json_array_append_new(PQgetvalue(r, k, 1)[0] == 't' ? cpresent : cmissing,
					      json_string(PQgetvalue(r, k, 0)));
		PQclear(r);
	}
	if (pg_commit(c) != 0)
		rc = shard_err_query(err, c, "cannot commit");
out:
	if (rc) {
		pg_rollback(c);
	} else {
		if (json_array_size(cmissing))
			log_event(LOG_WARN, "confirmed messages missing after failover",
				  json_pack("{s:s, s:O}", "conversation_id", conv, "missing", cmissing));
		json_object_set_new(rec, "replay",
				    json_pack("{s:i, s:O, s:O, s:O, s:O, s:O, s:O}", "shard_id", (int)sid,
					      "inserted", ins, "already_present", old,
					      "backfill", ins, "confirmed_present", cpresent,
					      "confirmed_missing", cmissing, "erased", erased));
	}
	json_decref(ins);
	json_decref(old);
	json_decref(cpresent);
	json_decref(cmissing);
	json_decref(erased);
	json_decref(rows);
	json_decref(ids);
	sctx_write_done(x);
	return rc ? -1 : 0;
}

int shard_replay(struct shard_ctx *x, json_t *rec, struct shard_err *err)
{
	return shard_with_failover(replay_once, x, rec, err, "replay");
}
