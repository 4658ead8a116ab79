/* pack.c — the ContextPack of spec §13: the system prompt with the
 * memory rules, then blocks A–G in the order of the spec's example
 *
 *   A [User Knowledge — extracted facts]     decrypted facts
 *   B [Episode Cards — precomputed snippets] episodes after both filters
 *   C [Последние сообщения]                  the last messages + this one
 *   D [Mood: …]                              the mood frame in one line
 *   E [Context — мир вокруг]                 context frame + catalog
 *   F [Referenced Artifact]                  when reply_to resolves
 *   G [Persona Directive]                    the Persona Agent's text
 *
 * bounded by LLM_CONTEXT_MAX_TOKENS (estimated as UTF-8 characters / 3,
 * rounded up: Cyrillic runs ~3 characters a token in the providers'
 * tokenisers, Latin ~4, so the estimate errs on the large side). Over the
 * bound, lines are cut in this order until it fits: the oldest recent
 * messages (the last two and the current one stay), the lowest episodes,
 * catalog and context lines, facts from the end; the cut counts are kept. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm.h"
#include "util.h"

static const char system_prompt[] =
	"Ты UNDE — персональный AI-стилист и друг. Ты знаешь юзера лично. Проявляй память "
	"естественно, без цитирования дат и источников. Используй контекст реального мира для "
	"актуальных рекомендаций. Не упоминай прошлое чаще чем в каждом третьем ответе. Максимум "
	"2-3 воспоминания за раз. Если есть Referenced Artifact — учитывай его при ответе на "
	"реакцию юзера. Называй только товары из блока каталога: не выдумывай товары, цены и "
	"магазины.";

long pack_tokens(const char *s)
{
	long chars = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		chars += (*p & 0xC0) != 0x80;
	return (chars + 2) / 3;
}

/* A value as short text: strings as they are, objects as "k: v; k: v". */
static void value_text(struct buf *b, const json_t *v)
{
	if (json_is_string(v)) {
		buf_printf(b, "%s", json_string_value(v));
	} else if (json_is_object(v)) {
		const char *k;
		const json_t *x;
		int first = 1;
		json_object_foreach((json_t *)v, k, x)
		{
			buf_printf(b, "%s%s: ", first ? "" : "; ", k);
			value_text(b, x);
			first = 0;
		}
	} else if (json_is_array(v)) {
		size_t i;
		const json_t *x;
		json_array_foreach(v, i, x)
		{
			if (i)
				buf_printf(b, ", ");
			value_text(b, x);
		}
	} else if (v && !json_is_null(v)) {
		char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
		buf_printf(b, "%s", s ? s : "");
		free(s);
	}
}

static void add_line(json_t *lines, struct buf *b)
{
	json_array_append_new(lines, json_string(b->data ? b->data : ""));
	buf_reset(b);
}

static json_t *block_knowledge(const struct turn *t)
{
	json_t *l = json_array();
	struct buf b = { 0 };
	size_t i;
	const json_t *f;
	json_array_foreach(t->knowledge, i, f)
	{
		buf_printf(&b, "%s: ", json_string_value(json_object_get(f, "knowledge_type")));
		value_text(&b, json_object_get(f, "data"));
		add_line(l, &b);
	}
	buf_free(&b);
	return l;
}

static json_t *block_episodes(const struct turn *t)
{
	json_t *l = json_array();
	size_t i;
	const json_t *e;
	json_array_foreach(t->episodes, i, e)
	{
		struct buf b = { 0 };
		buf_printf(&b, "- %s", json_string_value(json_object_get(e, "episode_card")));
		add_line(l, &b);
		buf_free(&b);
	}
	return l;
}

static json_t *block_recent(const struct turn *t)
{
	json_t *l = json_array();
	size_t i;
	const json_t *m;
	struct buf b = { 0 };
	json_array_foreach(t->recent, i, m)
	{
		const char *role = json_string_value(json_object_get(m, "role"));
		buf_printf(&b, "%s: \"%s\"", role && !strcmp(role, "assistant") ? "UNDE" : "Юзер",
			   json_string_value(json_object_get(m, "content")));
		add_line(l, &b);
	}
	buf_printf(&b, "Юзер: \"%s\"", t->message);
	add_line(l, &b);
	buf_free(&b);
	return l;
}

static double num_at(const json_t *o, const char *a, const char *k, double def)
{
	const json_t *v = json_object_get(json_object_get(o, a), k);
	return json_is_number(v) ? json_number_value(v) : def;
}

static json_t *block_mood(const struct turn *t)
{
	double v = num_at(t->mood, "emotion", "valence", 0), a = num_at(t->mood, "emotion", "arousal", 0.4);
	char s[256];
	snprintf(s, sizeof s, "[Mood: %s, энергия %s, valence %.1f%s]",
		 v >= 0.2 ? "позитивное" : v <= -0.2 ? "негативное" : "нейтральное",
		 a >= 0.66 ? "высокая" : a >= 0.33 ? "средняя" : "низкая", v,
		 mood_is_fragile(t->mood) ? ", хрупкое: без болезненных воспоминаний" : "");
	return json_string(s);
}

static json_t *block_context(const struct turn *t)
{
	json_t *l = json_array();
	struct buf b = { 0 };
	const json_t *c = t->context, *loc = json_object_get(c, "location");
	const json_t *env = json_object_get(c, "environment");
	const char *mall = json_string_value(json_object_get(loc, "nearest_mall_id"));
	const char *mname = json_string_value(json_object_get(loc, "mall_name"));
	buf_printf(&b, "Локация: %s", mname ? mname : mall ? mall : "неизвестна");
	add_line(l, &b);
	const json_t *w = json_object_get(env, "weather");
	if (json_is_object(w)) {
		buf_printf(&b, "Погода: ");
		value_text(&b, w);
		add_line(l, &b);
	}
	const char *sunset = json_string_value(json_object_get(env, "sunset"));
	if (sunset) {
		buf_printf(&b, "Закат: %s", sunset);
		add_line(l, &b);
	}
	const json_t *tc = json_object_get(env, "time_context");
	if (json_is_object(tc)) {
		buf_printf(&b, "Время: %s, %s",
			   json_string_value(json_object_get(tc, "day_of_week")) ?: "?",
			   json_string_value(json_object_get(tc, "part_of_day")) ?: "?");
		const json_t *cl = json_object_get(tc, "mall_closes_in_hours");
		if (json_is_number(cl))
			buf_printf(&b, ", ТЦ закрывается через %.1f ч", json_number_value(cl));
		add_line(l, &b);
	}
	const char *hint = json_string_value(json_object_get(json_object_get(c, "cultural"), "hint"));
	if (hint) {
		buf_printf(&b, "Культура: %s", hint);
		add_line(l, &b);
	}
	size_t i;
	const json_t *o;
	json_array_foreach(json_object_get(c, "opportunities"), i, o)
	{
		buf_printf(&b, "Возможность: ");
		value_text(&b, json_is_object(o) && json_object_get(o, "text") ? json_object_get(o, "text") : o);
		add_line(l, &b);
	}
	json_array_foreach(t->catalog, i, o)
	{
		buf_printf(&b, "Каталог: %s %s, %s %s, %s (SKU %s)",
			   json_string_value(json_object_get(o, "brand")) ?: "",
			   json_string_value(json_object_get(o, "name")) ?: "",
			   json_string_value(json_object_get(o, "price")) ?: "?",
			   json_string_value(json_object_get(o, "currency")) ?: "",
			   json_string_value(json_object_get(o, "store")) ?: "в наличии",
			   json_string_value(json_object_get(o, "sku")) ?: "");
		add_line(l, &b);
	}
	/* a stylist turn: Intelistyle's outfits, of products production has */
	stylist_pack_lines(t, l);
	/* a photo turn: what unde-recognize found, its matches as it gave them */
	json_array_foreach(json_object_get(t->recognition, "items"), i, o)
	{
		const json_t *m = json_array_get(json_object_get(o, "matches"), 0);
		const json_t *md = json_object_get(m, "metadata");
		buf_printf(&b, "Фото: %s, %s", json_string_value(json_object_get(o, "category")) ?: "вещь",
			   json_string_value(json_object_get(o, "match_type")) ?: "?");
		if (json_string_value(json_object_get(m, "sku_id")))
			buf_printf(&b, ": %s %s (SKU %s)", json_string_value(json_object_get(md, "brand")) ?: "",
				   json_string_value(json_object_get(md, "name")) ?: "",
				   json_string_value(json_object_get(m, "sku_id")));
		add_line(l, &b);
	}
	buf_free(&b);
	return l;
}

static void lines_text(struct buf *b, const char *header, const json_t *lines)
{
	if (!json_array_size(lines))
		return;
	buf_printf(b, "\n\n%s", header);
	size_t i;
	const json_t *s;
	json_array_foreach(lines, i, s) buf_printf(b, "\n%s", json_string_value(s));
}

static char *render(const json_t *bl)
{
	struct buf b = { 0 };
	buf_printf(&b, "[System Prompt]\n%s", system_prompt);
	lines_text(&b, "[User Knowledge — extracted facts]", json_object_get(bl, "A"));
	lines_text(&b, "[Episode Cards — precomputed snippets]", json_object_get(bl, "B"));
	lines_text(&b, "[Последние сообщения]", json_object_get(bl, "C"));
	buf_printf(&b, "\n\n%s", json_string_value(json_object_get(bl, "D")));
	lines_text(&b, "[Context — мир вокруг]", json_object_get(bl, "E"));
	const char *f = json_string_value(json_object_get(bl, "F"));
	if (f)
		buf_printf(&b, "\n\n[Referenced Artifact]\n%s", f);
	const char *g = json_string_value(json_object_get(bl, "G"));
	if (g && *g)
		buf_printf(&b, "\n\n[Persona Directive]\n%s", g);
	return buf_take(&b);
}

json_t *pack_build(const struct turn *t, const struct llm_conf *cf)
{
	json_t *bl = json_object();
	json_object_set_new(bl, "A", block_knowledge(t));
	json_object_set_new(bl, "B", block_episodes(t));
	json_object_set_new(bl, "C", block_recent(t));
	json_object_set_new(bl, "D", block_mood(t));
	json_object_set_new(bl, "E", block_context(t));
	const char *art = json_string_value(json_object_get(t->artifact, "response_description"));
	json_object_set_new(bl, "F", art ? json_string(art) : json_null());
	const json_t *pd = json_object_get(t->persona, "persona_directive");
	const char *g = json_is_string(pd) ? json_string_value(pd) : json_string_value(json_object_get(pd, "text"));
	json_object_set_new(bl, "G", json_string(g ? g : ""));

	/* the bound: cut in the documented order until it fits */
	static const struct {
		const char *block;
		size_t keep;
		int from_front;
	} order[] = { { "C", 3, 1 }, { "B", 0, 0 }, { "E", 1, 0 }, { "A", 0, 0 } };
	json_t *cut = json_object();
	char *text = render(bl);
	for (size_t k = 0; k < sizeof order / sizeof *order && pack_tokens(text) > cf->max_tokens; k++) {
		json_t *lines = json_object_get(bl, order[k].block);
		long n = 0;
		while (json_array_size(lines) > order[k].keep && pack_tokens(text) > cf->max_tokens) {
			json_array_remove(lines, order[k].from_front ? 0 : json_array_size(lines) - 1);
			n++;
			free(text);
			text = render(bl);
		}
		if (n)
			json_object_set_new(cut, order[k].block, json_integer(n));
	}
	json_t *ids = json_array();
	for (size_t i = 0; i < json_array_size(json_object_get(bl, "B")); i++)
		json_array_append(ids, json_object_get(json_array_get(t->episodes, i), "id"));
	json_t *pack = json_pack("{s:s, s:o, s:s, s:I, s:I, s:o, s:o}", "system_prompt", system_prompt,
				 "blocks", bl, "text", text, "tokens", (json_int_t)pack_tokens(text),
				 "max_tokens", (json_int_t)cf->max_tokens, "cut", cut, "episode_ids", ids);
	free(text);
	return pack;
}
