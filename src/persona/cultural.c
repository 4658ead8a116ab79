/* cultural.c — CulturalReferences: the registry (contract.c) filtered by
 * 6 gates — stage, the context frame's sensitivity level, temp blocks,
 * the active period, locale and recent use — and the first reference that
 * passes them all is offered to the LLM. debug.cultural_gates tells, per
 * gate, how many references it turned away. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "persona.h"

enum { G_STAGE, G_SENSITIVITY, G_TEMP_BLOCK, G_PERIOD, G_LOCALE, G_RECENT, NGATES };
static const char *const GATE_NAMES[NGATES] = { "stage", "sensitivity", "temp_block",
						 "period", "locale", "recent_use" };

static int locale_ok(const char *locales, const char *locale)
{
	if (!strcmp(locales, "*"))
		return 1;
	if (!locale)
		return 0;
	char lang[8];
	size_t n = strcspn(locale, "-_");
	if (n == 0 || n >= sizeof lang)
		return 0;
	memcpy(lang, locale, n);
	lang[n] = 0;
	const char *p = locales;
	while (*p) {
		size_t m = strcspn(p, ",");
		if (m == n && !strncmp(p, lang, n))
			return 1;
		p += m + (p[m] == ',');
	}
	return 0;
}

static int recently_used(const struct persona_ctx *c, const char *id)
{
	size_t i;
	json_t *m;
	if (!c->last_meta)
		return 0;
	json_array_foreach(c->last_meta, i, m) {
		json_t *r = json_object_get(m, "cultural_ref_id");
		if (json_is_string(r) && !strcmp(json_string_value(r), id))
			return 1;
	}
	return 0;
}

/* The first gate that turns ref away, or -1. */
static int first_closed_gate(const struct persona_ctx *c, const struct cultural_ref *r)
{
	int stage_ok = STAGE_LIMITS[c->stage].cultural_refs;
	if (!stage_ok || (stage_ok == 1 && !r->light))
		return G_STAGE;
	if (!strcmp(c->sensitivity, "high") || (!strcmp(c->sensitivity, "medium") && r->religious))
		return G_SENSITIVITY;
	char key[51];
	snprintf(key, sizeof key, "cultural_ref:%s", r->id);
	if (persona_block_active(c, "cultural_ref") || persona_block_active(c, key))
		return G_TEMP_BLOCK;
	if (r->period && (!c->period || strcmp(r->period, c->period)))
		return G_PERIOD;
	if (!locale_ok(r->locales, c->locale))
		return G_LOCALE;
	if (recently_used(c, r->id))
		return G_RECENT;
	return -1;
}

void cultural_refs_apply(struct persona_ctx *c)
{
	int closed[NGATES] = { 0 };
	const struct cultural_ref *chosen = NULL;
	for (int i = 0; i < N_CULTURAL_REFS; i++) {
		int g = first_closed_gate(c, &CULTURAL_REFS[i]);
		if (g >= 0)
			closed[g]++;
		else if (!chosen)
			chosen = &CULTURAL_REFS[i];
	}
	/* a reference of the active period goes first */
	for (int i = 0; c->period && i < N_CULTURAL_REFS; i++)
		if (CULTURAL_REFS[i].period && first_closed_gate(c, &CULTURAL_REFS[i]) < 0) {
			chosen = &CULTURAL_REFS[i];
			break;
		}
	json_t *gates = json_object();
	for (int g = 0; g < NGATES; g++)
		json_object_set_new(gates, GATE_NAMES[g], json_integer(closed[g]));
	if (!c->d[D_CULTURAL_REFS].value)
		chosen = NULL;
	c->chosen_ref = chosen;
	json_object_set_new(c->debug, "cultural_gates",
			    json_pack("{s:o, s:s?, s:i}", "turned_away", gates, "chosen",
				      chosen ? chosen->id : NULL, "registry", N_CULTURAL_REFS));
}
