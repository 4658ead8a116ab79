/* shardc_rows.c — a turn's messages as the rows save and replay insert:
 * every field checked (what and where, for the error), and the template
 * that turns an assistant's artifact into its response_description. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "shardc.h"
#include "shardc_write.h"
#include "util.h"

static const char *const roles[] = { "user", "assistant", "system", NULL };
static const char *const mtypes[] = { "emotion", "preference", "fact", "event", "general", NULL };
static const char *const itypes[] = { "voice", "text", NULL };

static int in_list(const char *s, const char *const *l)
{
	for (; *l; l++)
		if (!strcmp(s, *l))
			return 1;
	return 0;
}

/* Append "text" to b, skipping NULL/empty. */
static void desc_add(struct buf *b, const char *sep, const char *text)
{
	if (!text || !*text)
		return;
	if (b->len && sep)
		buf_append(b, sep, strlen(sep));
	buf_append(b, text, strlen(text));
}

char *shard_describe_artifact(const json_t *a)
{
	if (!json_is_object(a))
		return NULL;
	const json_t *items = json_object_get(a, "items");
	if (!json_is_array(items) || json_array_size(items) == 0)
		return NULL;
	struct buf b = { 0 };
	const char *type = shard_jstr(a, "type");
	desc_add(&b, NULL, type ? type : "artifact");
	if (shard_jstr(a, "title")) {
		buf_append(&b, " \"", 2);
		desc_add(&b, NULL, shard_jstr(a, "title"));
		buf_append(&b, "\"", 1);
	}
	buf_append(&b, ":", 1);
	size_t i;
	const json_t *it;
	json_array_foreach(items, i, it)
	{
		if (!json_is_object(it))
			continue;
		buf_append(&b, i ? "; " : " ", i ? 2 : 1);
		size_t start = b.len;
		desc_add(&b, NULL, shard_jstr(it, "brand"));
		desc_add(&b, " ", shard_jstr(it, "name"));
		desc_add(&b, " ", shard_jstr(it, "category"));
		desc_add(&b, " ", shard_jstr(it, "color"));
		const char *sku = shard_jstr(it, "sku") ? shard_jstr(it, "sku") : shard_jstr(it, "item_id");
		if (sku) {
			desc_add(&b, b.len > start ? ", " : NULL, "SKU ");
			buf_append(&b, sku, strlen(sku));
		}
		const char *store = shard_jstr(it, "store") ? shard_jstr(it, "store") : shard_jstr(a, "store");
		if (store) {
			desc_add(&b, b.len > start ? ", " : NULL, "store ");
			buf_append(&b, store, strlen(store));
		}
		const json_t *price = json_object_get(it, "price");
		if (json_is_number(price)) {
			char pr[64];
			snprintf(pr, sizeof pr, "%s%g %s", b.len > start ? ", " : "",
				 json_number_value(price),
				 shard_jstr(it, "currency") ? shard_jstr(it, "currency") : "");
			desc_add(&b, NULL, pr);
			while (b.len && b.data[b.len - 1] == ' ')
				b.len--;
		}
	}
	buf_append(&b, "", 1);
	return b.data;
}

/* Validate one message and copy the columns we store into a clean object
 * for jsonb_to_recordset. On error returns NULL with why in err. */
static json_t *message_row(const json_t *m, int replay, char *err, size_t errlen, size_t idx)
{
	if (!json_is_object(m)) {
		snprintf(err, errlen, "messages[%zu] is not an object", idx);
		return NULL;
	}
	const char *id = shard_jstr(m, "id"), *role = shard_jstr(m, "role");
	const json_t *content = json_object_get(m, "content");
	if (!id || !shard_uuid_valid(id)) {
		snprintf(err, errlen, "messages[%zu].id must be a UUID (client-generated)", idx);
		return NULL;
	}
	if (!role || !in_list(role, roles)) {
		snprintf(err, errlen, "messages[%zu].role must be user, assistant or system", idx);
		return NULL;
	}
	if (!json_is_string(content)) {
		snprintf(err, errlen, "messages[%zu].content must be a string", idx);
		return NULL;
	}
	json_t *row = json_pack("{s:s, s:s, s:O}", "id", id, "role", role, "content", content);
	static const struct {
		const char *key;
		int type; /* 's' string, 'b' bool, 'n' number, 'i' integer, 'u' uuid, 'j' json, 'a' array */
	} cols[] = {
		{ "created_at", 's' }, { "embedding", 'a' }, { "is_embeddable", 'b' },
		{ "memory_type", 's' }, { "memory_confidence", 'n' }, { "memory_snippet", 's' },
		{ "response_description", 's' }, { "reply_to_id", 'u' }, { "media_urls", 'j' },
		{ "mood_frame", 'j' }, { "input_type", 's' }, { "duration_ms", 'i' },
		{ "model_used", 's' },
	};
	for (size_t k = 0; k < sizeof cols / sizeof *cols; k++) {
		const json_t *v = json_object_get(m, cols[k].key);
		if (!v || json_is_null(v))
			continue;
		int ok = 1;
		switch (cols[k].type) {
		case 's': ok = json_is_string(v); break;
		case 'b': ok = json_is_boolean(v); break;
		case 'n': ok = json_is_number(v); break;
		case 'i': ok = json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= 2147483647; break;
		case 'u': ok = json_is_string(v) && shard_uuid_valid(json_string_value(v)); break;
		case 'a': {
			size_t j;
			const json_t *e;
			ok = json_is_array(v) && json_array_size(v) > 0;
			json_array_foreach(v, j, e) if (!json_is_number(e)) ok = 0;
			break;
		}
		default: break;
		}
		if (ok && !strcmp(cols[k].key, "memory_type"))
			ok = in_list(json_string_value(v), mtypes);
		if (ok && !strcmp(cols[k].key, "input_type"))
			ok = in_list(json_string_value(v), itypes);
		if (ok && !strcmp(cols[k].key, "memory_confidence"))
			ok = json_number_value(v) >= 0 && json_number_value(v) <= 1;
		if (!ok) {
			snprintf(err, errlen, "messages[%zu].%s has the wrong type or value", idx,
				 cols[k].key);
			json_decref(row);
			return NULL;
		}
		json_object_set(row, cols[k].key, (json_t *)v);
	}
	/* §13 SYNC rules (shard_salience, shard_classify_memory), unless the
	 * caller set the value: the same at save and at replay. */
	if (!json_object_get(row, "is_embeddable"))
		json_object_set_new(row, "is_embeddable",
				    json_boolean(shard_salience(role, json_string_value(content))));
	if (!strcmp(role, "user") && !json_object_get(row, "memory_type") &&
	    !json_object_get(row, "memory_confidence")) {
		const char *type;
		double conf;
		shard_classify_memory(json_string_value(content), &type, &conf);
		json_object_set_new(row, "memory_type", json_string(type));
		json_object_set_new(row, "memory_confidence", json_real(conf));
	}
	if (strcmp(role, "user") != 0 && json_object_get(row, "reply_to_id")) {
		snprintf(err, errlen, "messages[%zu].reply_to_id is only for user messages", idx);
		json_decref(row);
		return NULL;
	}
	const json_t *model = json_object_get(m, "embedding_model");
	if (model && !json_is_null(model)) {
		if (!json_is_string(model) || !*json_string_value(model) ||
		    strlen(json_string_value(model)) > 100 || !json_object_get(row, "embedding")) {
			snprintf(err, errlen, "messages[%zu].embedding_model must be a model name, with an embedding", idx);
			json_decref(row);
			return NULL;
		}
		json_object_set(row, "embedding_model", (json_t *)model);
	}
	/* §13/§14: an assistant artifact's description is always the template's
	 * (its SKU, brand and store tokens are what search finds); a
	 * description without an artifact is refused, a plain answer has none. */
	const json_t *art = json_object_get(m, "artifact");
	if (art && json_is_null(art))
		art = NULL;
	if (art && (!json_is_object(art) || strcmp(role, "assistant") != 0)) {
		snprintf(err, errlen, "messages[%zu].artifact must be an object, on an assistant message", idx);
		json_decref(row);
		return NULL;
	}
	if (!art && json_object_get(row, "response_description")) {
		snprintf(err, errlen, "messages[%zu].response_description is only for an assistant artifact "
			 "(it is built from the artifact)", idx);
		json_decref(row);
		return NULL;
	}
	(void)replay;
	json_object_del(row, "response_description");
	if (art) {
		char *d = shard_describe_artifact(art);
		if (d)
			json_object_set_new(row, "response_description", json_string(d));
		free(d);
	}
	return row;
}

json_t *shard_rows_of(struct shard_err *e, const json_t *msgs, int replay)
{
	char err[256];
	json_t *rows = json_array();
	size_t i;
	const json_t *m;
	json_array_foreach(msgs, i, m)
	{
		json_t *row = message_row(m, replay, err, sizeof err, i);
		if (!row) {
			json_decref(rows);
			shard_err_set(e, EX_DATAERR, "invalid_field", "%s", err);
			return NULL;
		}
		json_array_append_new(rows, row);
	}
	return rows;
}
