/* responder.c — the parts of a turn that need no provider: the intent of
 * the message and the local responder, the last link of the LLM chain
 * (the catalog context it names products from is catalog.c's).
 *
 * The local responder answers from the ContextPack only, honestly: it
 * names products only from the catalog block (brand, name, price, store as
 * production has them), recalls at most the episodes the density cap let
 * through, mentions the context it was given, acknowledges a fact the user
 * just stated, and says plainly when it found nothing, never inventing. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "llm.h"
#include "log.h"
#include "pg.h"
#include "shardc.h"
#include "stem.h"
#include "svc.h"
#include "util.h"

/* The message's words, lower case (lib/stem.h), as a JSON array. */
static json_t *words_of(const char *message)
{
	struct stem_tokens tk = { 0 };
	size_t bad;
	json_t *w = json_array();
	if (stem_tokenize(message, strlen(message), &tk, &bad) == 0)
		for (size_t i = 0; i < tk.n; i++)
			if (tk.v[i].kind == STEM_WORD)
				json_array_append_new(w, json_string(tk.v[i].text));
	stem_tokens_free(&tk);
	return w;
}

static int has_prefix_word(const json_t *words, const char *const *stems)
{
	size_t i;
	const json_t *w;
	json_array_foreach(words, i, w) for (int k = 0; stems[k]; k++) if (
		!strncmp(json_string_value(w), stems[k], strlen(stems[k]))) return 1;
	return 0;
}

/* A photo is recognition; else stylist or catalog words (or a garment
 * named, catalog.c) by their prefixes; else chat. */
const char *intent_classify(const char *message, const json_t *rec)
{
	const char *photo = json_string_value(json_object_get(rec, "photo_url"));
	if (photo && *photo)
		return "recognition";
	static const char *const stylist[] = { "образ", "лук", "надеть", "подбери", "подобрать",
					       "стилист", "сочета", "outfit", "look", "wear",
					       "style", NULL };
	static const char *const catalog[] = { "где", "купить", "куплю", "магазин", "найди",
					       "найти", "наличи", "цена", "стоит", "размер", "покаж",
					       "этаж", "buy", "store", "where", "price", "shop", "show",
					       NULL };
	json_t *w = words_of(message);
	const char *it = has_prefix_word(w, stylist) ? "stylist"
			 : has_prefix_word(w, catalog) || catalog_names_garment(message) ? "catalog"
										       : "chat";
	json_decref(w);
	return it;
}

json_t *recognition_call(const struct turn *t, const json_t *rec, struct deadline dl)
{
	const char *url = conf_str("RECOGNITION_URL", NULL);
	if (!url || !*url)
		return NULL;
	/* recognition's request_id is its row's id, a UUID (the app's feedback
	 * names it): the turn's own when it is one, else a new one, logged */
	char rid[37];
	const char *turn_rid = t->request_id;
	if (turn_rid && shard_uuid_valid(turn_rid))
		snprintf(rid, sizeof rid, "%s", turn_rid);
	else {
		util_uuid4(rid);
		log_event(LOG_INFO, "recognition request", json_pack("{s:s}", "recognition_id", rid));
	}
	json_t *body = json_pack("{s:O, s:s, s:s}", "photo_url", json_object_get(rec, "photo_url"), "user_id",
				 t->user_id, "request_id", rid);
	struct svc_answer a;
	json_t *out;
	char keep[129];
	snprintf(keep, sizeof keep, "%s", log_request_id() ? log_request_id() : "");
	log_set_request_id(rid); /* the X-Request-Id unde-httpd matches the lines against */
	int rc = svc_call("recognition", "/recognize", body, deadline_min(dl, deadline_in(15000)), &a);
	log_set_request_id(keep[0] ? keep : NULL);
	if (rc == 0 && json_is_array(json_object_get(a.answer, "items")))
		out = json_pack("{s:s, s:s, s:O}", "status", "done", "request_id", rid, "items",
				json_object_get(a.answer, "items"));
	else {
		log_event(LOG_WARN, "recognition failed; the turn goes on without it",
			  json_pack("{s:s, s:s}", "code", a.code[0] ? a.code : "malformed", "message", a.message));
		out = json_pack("{s:s, s:s}", "status", "unavailable", "error", a.code[0] ? a.code : "malformed");
	}
	svc_answer_free(&a);
	json_decref(body);
	return out;
}

static const char *jstr(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

json_t *responder_answer(const struct turn *t)
{
	struct buf b = { 0 };
	if (mood_is_fragile(t->mood))
		buf_printf(&b, "Понимаю, сейчас непросто. Я рядом. ");
	const char *mtype = NULL;
	double conf = 0;
	if (shard_classify_memory(t->message, &mtype, &conf) == 0 &&
	    (!strcmp(mtype, "fact") || !strcmp(mtype, "preference"))) {
		char *snip = shard_memory_snippet(t->message, 80);
		if (snip)
			buf_printf(&b, "Запомню: «%s». ", snip);
		free(snip);
	}
	/* the episodes the pack kept (the density cap may have left none) */
	const json_t *cards = json_object_get(json_object_get(t->pack, "blocks"), "B");
	if (json_array_size(cards)) {
		const char *card = json_string_value(json_array_get(cards, 0));
		buf_printf(&b, "Помню, ты говорил(а): «%s». ", card && card[0] == '-' ? card + 2 : card);
	}
	size_t n = json_array_size(t->catalog), i;
	const json_t *p;
	if (stylist_answer(t, &b)) {
		/* the outfits are of production's products already */
	} else if (n) {
		buf_printf(&b, "Из того, что сейчас есть в наличии: ");
		json_array_foreach(t->catalog, i, p)
		{
			if (i == 3)
				break;
			buf_printf(&b, "%s%s %s", i ? "; " : "", jstr(p, "brand"), jstr(p, "name") ? jstr(p, "name") : jstr(p, "sku"));
			if (jstr(p, "price"))
				buf_printf(&b, " за %s %s", jstr(p, "price"), jstr(p, "currency") ? jstr(p, "currency") : "");
			if (jstr(p, "store"))
				buf_printf(&b, " (%s%s%s)", jstr(p, "store"), jstr(p, "floor") ? ", этаж " : "",
					   jstr(p, "floor") ? jstr(p, "floor") : "");
		}
		buf_printf(&b, ". ");
	} else if (!strcmp(t->intent, "catalog") || !strcmp(t->intent, "stylist")) {
		buf_printf(&b, "В каталоге я сейчас не нашла подходящих вещей в наличии — придумывать не буду. ");
	}
	const json_t *tc = json_object_get(json_object_get(t->context, "environment"), "time_context");
	const json_t *closes = json_object_get(tc, "mall_closes_in_hours");
	if (json_is_number(closes))
		buf_printf(&b, "ТЦ закрывается примерно через %.1f ч. ", json_number_value(closes));
	const json_t *opp = json_array_get(json_object_get(t->context, "opportunities"), 0);
	if (json_is_object(opp) && jstr(opp, "text"))
		buf_printf(&b, "Кстати: %s. ", jstr(opp, "text"));
	const json_t *ritems = json_object_get(t->recognition, "items");
	if (json_array_size(ritems)) {
		/* what recognition matched, as it said it: never a product of our own */
		buf_printf(&b, "На фото нашла: ");
		const json_t *it;
		json_array_foreach(ritems, i, it)
		{
			const json_t *m = json_array_get(json_object_get(it, "matches"), 0);
			const json_t *md = json_object_get(m, "metadata");
			buf_printf(&b, "%s%s", i ? "; " : "", jstr(it, "category") ? jstr(it, "category") : "вещь");
			if (jstr(m, "sku_id"))
				buf_printf(&b, " — %s %s (SKU %s, %s)", jstr(md, "brand") ? jstr(md, "brand") : "",
					   jstr(md, "name") ? jstr(md, "name") : "", jstr(m, "sku_id"),
					   !strcmp(jstr(it, "match_type") ?: "", "exact") ? "точное совпадение"
											 : "похожее");
			else
				buf_printf(&b, " — похожих вещей в каталоге не нашла");
		}
		buf_printf(&b, ". ");
	} else if (t->recognition && !strcmp(jstr(t->recognition, "status") ?: "", "unavailable"))
		buf_printf(&b, "Фото получила, но распознать вещи на нём сейчас не получилось. ");
	else if (t->recognition)
		buf_printf(&b, "Фото получила, но вещей на нём не нашла. ");
	else if (!strcmp(t->intent, "recognition"))
		buf_printf(&b, "Фото получила — распознавание вещей на нём идёт отдельно. ");
	buf_printf(&b, "%s", !strcmp(t->intent, "stylist") ? json_array_size(json_object_get(t->stylist, "outfits"))
								 ? "Как тебе такой вариант?"
								 : "Для какого случая подбираем образ?"
			     : !strcmp(t->intent, "catalog") ? "Уточнишь, что именно ищешь — размер, цвет?"
							     : "Расскажи подробнее?");
	char *text = buf_take(&b);
	json_t *a = json_pack("{s:s, s:s, s:I, s:I}", "text", text, "model", "local-template-v1",
			      "tokens_in", (json_int_t)json_integer_value(json_object_get(t->pack, "tokens")),
			      "tokens_out", (json_int_t)pack_tokens(text));
	free(text);
	return a;
}
