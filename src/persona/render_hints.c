/* render_hints.c — RenderHints: the UI contract of the app (man page
 * unde-persona(1), "render_hints", documents every field). Derived from
 * the decisions, the voice and the avatar, never decided here. */
#include "config.h"

#include <string.h>

#include "persona.h"

static int has_sale(const struct persona_ctx *c)
{
	size_t i;
	json_t *o;
	if (!c->opportunities)
		return 0;
	json_array_foreach(c->opportunities, i, o) {
		json_t *t = json_object_get(o, "type");
		if (json_is_string(t) && !strcmp(json_string_value(t), "sale"))
			return 1;
	}
	return 0;
}

json_t *render_hints_build(const struct persona_ctx *c, const json_t *voice, const json_t *avatar)
{
	int tone = c->d[D_TONE].value;
	int compact = tone == T_EFFICIENT || c->d[D_VERBOSITY].value == 0;
	int typing = (tone == T_CALM || tone == T_GENTLE || tone == T_SUPPORTIVE) ? 900
		     : tone == T_EFFICIENT ? 300 : 600;
	json_t *h = json_pack("{s:O, s:O, s:O, s:O, s:s, s:i, s:b, s:s, s:i, s:b}",
			      "expression", json_object_get(avatar, "expression"),
			      "listen_state", json_object_get(avatar, "listen_state"),
			      "energy_level", json_object_get(avatar, "energy_level"),
			      "animation_tempo", json_object_get(voice, "tempo"),
			      "ui_density", compact ? "compact" : "comfortable",
			      "max_product_cards", tone == T_EFFICIENT ? 3 : compact ? 4 : 6,
			      "highlight_sale", c->d[D_UPSELL].value && has_sale(c),
			      "emoji", decision_level_name(c, D_EMOJI),
			      "typing_indicator_ms", typing,
			      "show_closing_banner", c->closes_in_h >= 0 && c->closes_in_h < 1);
	json_object_set_new(h, "price_ceiling", c->budget_max >= 0 ? json_real(c->budget_max) : json_null());
	json_object_set_new(h, "closing_in_minutes",
			    c->closes_in_h >= 0 && c->closes_in_h < 1 ? json_integer((json_int_t)(c->closes_in_h * 60 + 0.5))
								       : json_null());
	return h;
}
