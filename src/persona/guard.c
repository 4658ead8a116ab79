/* guard.c — the AntiPatternGuard: hard bans and the anti-manipulation
 * policy. It runs last among the rules, so nothing can override it: temp
 * blocks switch off what the user rejected, low mood switches off selling
 * and flattery, body talk stays off unless the user raised it, and the
 * directive always carries the bans (no guilt, no pressure, no false
 * urgency, no flattery to sell, never above the budget). */
#include "config.h"

#include <string.h>

#include "persona.h"

int persona_block_active(const struct persona_ctx *c, const char *key)
{
	for (int i = 0; i < c->nblocks; i++)
		if (!strcmp(c->blocks[i].key, key) && c->blocks[i].until > c->now)
			return 1;
	return 0;
}

static void ban(struct persona_ctx *c, const char *s)
{
	json_array_append_new(c->bans, json_string(s));
}

void anti_pattern_guard_apply(struct persona_ctx *c)
{
	if (persona_block_active(c, "humor"))
		resolver_cap(c, D_HUMOR, L_HARD_BAN, "hard_ban.temp_block.humor", 0);
	if (persona_block_active(c, "cultural_ref"))
		resolver_cap(c, D_CULTURAL_REFS, L_HARD_BAN, "hard_ban.temp_block.cultural_ref", 0);
	if (persona_block_active(c, "memory_callback"))
		resolver_cap(c, D_MEMORY, L_HARD_BAN, "hard_ban.temp_block.memory_callback", 0);
	if (persona_block_active(c, "compliment"))
		resolver_cap(c, D_COMPLIMENTS, L_HARD_BAN, "hard_ban.temp_block.compliment", 0);
	if (!c->user_raised_body)
		resolver_cap(c, D_BODY_TALK, L_HARD_BAN, "hard_ban.body_talk_not_raised", 0);
	int low_mood = (c->has_mood && c->valence <= 0.35) || c->frustration >= 0.6 || c->fatigue >= 0.75;
	if (low_mood) {
		resolver_cap(c, D_UPSELL, L_HARD_BAN, "anti_manipulation.low_mood_no_sell", 0);
		resolver_cap(c, D_COMPLIMENTS, L_HARD_BAN, "anti_manipulation.no_flattery_low_mood", 1);
		ban(c, "The user's mood is low: do not sell, do not mention sales or discounts; help only "
		       "with what they asked.");
	}
	ban(c, "Never guilt the user (\"you deserve it\", \"don't miss out\"), never pressure them.");
	ban(c, "No false urgency: never invent scarcity or deadlines (\"only today\", \"last one\").");
	ban(c, "No flattery to sell: compliments are about what suits the user, never a reason to buy.");
	if (c->budget_max >= 0)
		ban(c, "Never push above the user's budget.");
	if (!c->d[D_BODY_TALK].value)
		ban(c, "Never comment on the user's body, weight or figure.");
	else
		ban(c, "No numbers, diets or judgement about the body, even though the user raised it.");
	if (!c->d[D_HUMOR].value && persona_block_active(c, "humor"))
		ban(c, "No jokes: the user recently turned humour down.");
}
