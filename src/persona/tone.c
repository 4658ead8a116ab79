/* tone.c — the ToneAdapter: one of the 8 tone modes from mood, context,
 * intent and profile. Mood and context rules are overrides (they beat the
 * profile's own tone and the stage), checked in this order, first match
 * wins; with none matching, the profile's or the default tone stays. */
#include "config.h"

#include <string.h>

#include "persona.h"

static int intent_is(const struct persona_ctx *c, const char *a, const char *b)
{
	return c->intent && (!strcmp(c->intent, a) || (b && !strcmp(c->intent, b)));
}

void tone_adapter_apply(struct persona_ctx *c)
{
	int hurry = c->urgency >= 0.7 || (c->rush && intent_is(c, "quick_find", "buy")) ||
		    (c->closes_in_h >= 0 && c->closes_in_h < 0.5);
	int night = c->part_of_day && !strcmp(c->part_of_day, "night");
	if (c->frustration >= 0.6 || intent_is(c, "complaint", NULL)) {
		resolver_set(c, D_TONE, L_OVERRIDE, "tone.frustration_high", T_SUPPORTIVE);
		resolver_cap(c, D_HUMOR, L_OVERRIDE, "tone.frustration_high.no_jokes", 0);
	} else if (c->has_mood && c->valence <= 0.3) {
		resolver_set(c, D_TONE, L_OVERRIDE, "tone.low_valence", T_GENTLE);
		resolver_cap(c, D_HUMOR, L_OVERRIDE, "tone.low_valence.soft_humor", 1);
	} else if (hurry) {
		resolver_set(c, D_TONE, L_OVERRIDE, "tone.in_a_hurry", T_EFFICIENT);
	} else if (c->fatigue >= 0.6 || night) {
		resolver_set(c, D_TONE, L_OVERRIDE, c->fatigue >= 0.6 ? "tone.fatigue" : "tone.night", T_CALM);
	} else if (c->period && !strcmp(c->sensitivity, "high")) {
		resolver_set(c, D_TONE, L_OVERRIDE, "tone.cultural_period_high_sensitivity", T_RESPECTFUL);
	} else if ((c->event_in_days >= 0 || intent_is(c, "event_outfit", NULL)) && c->valence >= 0.55) {
		resolver_set(c, D_TONE, L_OVERRIDE, "tone.upcoming_event", T_CELEBRATORY);
	} else if (c->has_mood && c->valence >= 0.7 && c->arousal >= 0.5 && c->d[D_HUMOR].value >= 2) {
		resolver_set(c, D_TONE, L_OVERRIDE, "tone.high_spirits", T_PLAYFUL);
	}
}
