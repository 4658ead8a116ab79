/* memory.c — what the shard tells a turn beyond the hybrid search: the
 * last messages, the saved moods of the episodes found, and the record of
 * how many memories each answer used (the density cap's window).
 *
 * The emotional filter (spec §13 step 3), our rule, documented in
 * unde-llm(1):
 *   the mood is fragile when valence < −0.2, frustration ≥ 0.6,
 *   fatigue ≥ 0.7, or the Mood Agent asked to defuse first;
 *   an episode is painful when its own saved mood had valence ≤ −0.3 or
 *   frustration ≥ 0.6, or it is an emotion memory saved without a mood or
 *   with valence < 0.2, or its text names a loss (the stems below).
 * In a fragile mood painful episodes are left out; in any mood forgotten
 * episodes are (search already skips them: this is the second lock). */
#include "config.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm.h"
#include "log.h"
#include "pg.h"
#include "util.h"

static double num_at(const json_t *o, const char *a, const char *b, double def)
{
	const json_t *v = json_object_get(json_object_get(o, a), b);
	return json_is_number(v) ? json_number_value(v) : def;
}

int mood_is_fragile(const json_t *mood)
{
	if (!json_is_object(mood))
		return 0;
	const json_t *defuse = json_object_get(json_object_get(mood, "style_params"), "defuse_first");
	return num_at(mood, "emotion", "valence", 0) < -0.2 ||
	       num_at(mood, "signals", "frustration", 0) >= 0.6 ||
	       num_at(mood, "signals", "fatigue", 0) >= 0.7 || json_is_true(defuse);
}

/* Words of loss and hurt, matched as lower-case prefixes of the episode's
 * words (UTF-8 bytes; Cyrillic lower case only as written). */
static const char *const painful_stems[] = {
	"умер", "умерл", "смерт", "похорон", "развод", "развел", "расстал", "бросил", "бросила",
	"болезн", "болею", "больниц", "уволил", "уволен", "депресс", "плакал", "одиноч",
	"died", "death", "funeral", "divorc", "broke up", "dumped", "fired", "hospital", "cancer",
	"depress", "lonely", NULL,
};

/* Lower case for the lexicons here and in feedback.c (llm.h). */
char *llm_lower(const char *s)
{
	size_t n = strlen(s);
	unsigned char *o = xmalloc(n + 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == 0xD0 && i + 1 < n) {
			unsigned char d = (unsigned char)s[i + 1];
			if (d >= 0x90 && d <= 0x9F) { o[i] = 0xD0; o[i + 1] = d + 0x20; i++; continue; }
			if (d >= 0xA0 && d <= 0xAF) { o[i] = 0xD1; o[i + 1] = d - 0x20; i++; continue; }
			if (d == 0x81) { o[i] = 0xD1; o[i + 1] = 0x91; i++; continue; } /* Ё */
		}
		o[i] = (unsigned char)tolower(c);
	}
	o[n] = 0;
	return (char *)o;
}

/* Does a painful stem start a word of s? */
static int text_painful(const char *s)
{
	if (!s)
		return 0;
	char *low = llm_lower(s);
	int hit = 0;
	for (int i = 0; painful_stems[i] && !hit; i++) {
		for (const char *p = low; (p = strstr(p, painful_stems[i])); p++) {
			unsigned char before = p == low ? ' ' : (unsigned char)p[-1];
			if (before < 0x80 && !isalnum(before)) {
				hit = 1;
				break;
			}
		}
	}
	free(low);
	return hit;
}

/* Is this episode painful, by its saved mood, type and words? */
static int episode_painful(const char *type, const json_t *saved_mood, const char *content)
{
	int has = json_is_object(saved_mood);
	double v = num_at(saved_mood, "emotion", "valence", 0);
	if (has && (v <= -0.3 || num_at(saved_mood, "signals", "frustration", 0) >= 0.6))
		return 1;
	if (type && !strcmp(type, "emotion") && (!has || v < 0.2))
		return 1;
	return text_painful(content);
}

int memory_conversation(PGconn *c, const char *user_id, char conv[37], struct shard_err *e)
{
	conv[0] = 0;
	const char *pp[] = { user_id };
	PGresult *r = pg_query(c, "SELECT id::text FROM conversations WHERE user_id = $1", 1, pp);
	if (!r)
		return shard_err_query(e, c, "cannot find the conversation");
	if (PQntuples(r))
		snprintf(conv, 37, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	return 0;
}

json_t *memory_recent(PGconn *c, const char *conv, long n, struct shard_err *e)
{
	if (!conv || !*conv)
		return json_array();
	char ns[24];
	snprintf(ns, sizeof ns, "%ld", n);
	const char *pp[] = { conv, ns };
	PGresult *r = pg_query(c,
			       "SELECT m.id::text, m.role, m.content, m.response_description"
			       " FROM messages m"
			       " WHERE m.conversation_id = $1::uuid AND NOT m.is_forgotten AND m.deleted_at IS NULL"
			       "   AND m.role <> 'system'"
			       " ORDER BY m.created_at DESC, m.role DESC LIMIT $2::int",
			       2, pp);
	if (!r) {
		shard_err_query(e, c, "cannot read the recent messages");
		return NULL;
	}
	json_t *out = json_array();
	for (int i = PQntuples(r) - 1; i >= 0; i--)
		json_array_append_new(out, json_pack("{s:s, s:s, s:s, s:s?}", "id", PQgetvalue(r, i, 0),
						     "role", PQgetvalue(r, i, 1), "content",
						     PQgetvalue(r, i, 2), "response_description",
						     PQgetisnull(r, i, 3) ? NULL : PQgetvalue(r, i, 3)));
	PQclear(r);
	return out;
}

static int in_recent(const json_t *recent, const char *id)
{
	size_t i;
	const json_t *m;
	json_array_foreach(recent, i, m) if (!strcmp(json_string_value(json_object_get(m, "id")), id))
		return 1;
	return 0;
}

static void drop(struct turn *t, const json_t *ep, const char *why)
{
	json_array_append_new(t->episodes_dropped,
			      json_pack("{s:O, s:s}", "id", json_object_get(ep, "id"), "reason", why));
}

int memory_filter(PGconn *c, struct turn *t, struct shard_err *e)
{
	size_t n = json_array_size(t->episodes);
	if (!n)
		return 0;
	struct buf ids = { 0 };
	buf_append(&ids, "{", 1);
	for (size_t i = 0; i < n; i++)
		buf_printf(&ids, "%s%s", i ? "," : "",
			   json_string_value(json_object_get(json_array_get(t->episodes, i), "id")));
	buf_append(&ids, "}", 1);
	const char *pp[] = { ids.data, t->conv };
	PGresult *r = pg_query(c,
			       "SELECT m.id::text, m.mood_frame::text,"
			       "  m.is_forgotten OR m.deleted_at IS NOT NULL, m.content"
			       " FROM messages m WHERE m.conversation_id = $2::uuid AND m.id = ANY($1::uuid[])",
			       2, pp);
	buf_free(&ids);
	if (!r)
		return shard_err_query(e, c, "cannot read the episodes' moods");
	int fragile = mood_is_fragile(t->mood);
	json_t *kept = json_array();
	for (size_t i = 0; i < n; i++) {
		json_t *ep = json_array_get(t->episodes, i);
		const char *id = json_string_value(json_object_get(ep, "id"));
		int row = -1;
		for (int k = 0; k < PQntuples(r); k++)
			if (!strcmp(PQgetvalue(r, k, 0), id))
				row = k;
		if (row < 0 || !strcmp(PQgetvalue(r, row, 2), "t")) {
			drop(t, ep, "forgotten_or_erased");
			continue;
		}
		if (in_recent(t->recent, id)) {
			drop(t, ep, "in_recent_messages");
			continue;
		}
		json_t *saved = PQgetisnull(r, row, 1) ? NULL : json_loads(PQgetvalue(r, row, 1), 0, NULL);
		int painful = episode_painful(json_string_value(json_object_get(ep, "memory_type")), saved,
					      PQgetvalue(r, row, 3));
		json_decref(saved);
		if (fragile && painful) {
			drop(t, ep, "emotional_filter");
			continue;
		}
		json_array_append(kept, ep);
	}
	PQclear(r);
	json_decref(t->episodes);
	t->episodes = kept;
	return 0;
}

int memory_density_window(PGconn *c, struct turn *t, struct shard_err *e)
{
	t->answers_with_memory = 0;
	if (!c)
		return 0;
	const char *pp[] = { t->user_id };
	PGresult *r = pg_query(c,
			       "SELECT episodes_used, exchange_id::text FROM llm_answer_meta"
			       " WHERE user_id = $1 ORDER BY created_at DESC LIMIT 9",
			       1, pp);
	if (!r)
		return shard_err_query(e, c, "cannot read the density window");
	for (int i = 0; i < PQntuples(r); i++)
		t->answers_with_memory += atol(PQgetvalue(r, i, 0)) > 0;
	if (PQntuples(r) && !PQgetisnull(r, 0, 1)) {
		snprintf(t->prev_exchange, sizeof t->prev_exchange, "%s", PQgetvalue(r, 0, 1));
		t->prev_used_memory = atol(PQgetvalue(r, 0, 0)) > 0;
	}
	PQclear(r);
	return 0;
}

void memory_density_cut(struct turn *t, const struct llm_conf *cf)
{
	/* the window is this answer and the 9 before it */
	long allowed = (long)floor(cf->max_density * 10 + 1e-9);
	t->memory_allowed = t->answers_with_memory + 1 <= allowed;
	json_t *kept = json_array();
	size_t i;
	json_t *ep;
	json_array_foreach(t->episodes, i, ep)
	{
		if (!t->memory_allowed)
			drop(t, ep, "density_cap_rolling_10");
		else if ((long)json_array_size(kept) >= cf->max_episodes)
			drop(t, ep, "max_episodes_per_response");
		else
			json_array_append(kept, ep);
	}
	json_decref(t->episodes);
	t->episodes = kept;
}

int memory_record(PGconn *c, const char *user_id, const char *message_id, const json_t *used,
		  const char *exchange_id, struct shard_err *e)
{
	struct buf ids = { 0 };
	buf_append(&ids, "{", 1);
	size_t i;
	const json_t *ep;
	json_array_foreach(used, i, ep)
		buf_printf(&ids, "%s%s", i ? "," : "", json_string_value(json_object_get(ep, "id")));
	buf_append(&ids, "}", 1);
	char n[24];
	snprintf(n, sizeof n, "%zu", json_array_size(used));
	const char *pp[] = { message_id, user_id, n, ids.data, exchange_id };
	int rc = pg_exec(c,
			 "INSERT INTO llm_answer_meta (message_id, user_id, episodes_used, episode_ids, exchange_id)"
			 " VALUES ($1, $2, $3::smallint, $4::uuid[], $5::uuid) ON CONFLICT DO NOTHING",
			 5, pp);
	buf_free(&ids);
	return rc == 0 ? 0 : shard_err_query(e, c, "cannot record the answer's episodes");
}
