/* situational.c — the SituationalRulesEngine: budget (never above it),
 * body and weight talk (never unless the user raised it), time of day and
 * closing time, upcoming events. Each rule adds a sentence for the
 * directive's situation block and may override a decision. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "persona.h"

static void say(struct persona_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct persona_ctx *c, const char *fmt, ...)
{
	char line[300];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	json_array_append_new(c->situation, json_string(line));
}

void situational_apply(struct persona_ctx *c)
{
	if (c->budget_max >= 0)
		say(c, "Budget: at most %.0f %s. Never suggest anything above it; if nothing fits, say so "
		       "and offer the closest option within it.",
		    c->budget_max, c->budget_currency ? c->budget_currency : "");
	if (c->user_raised_body) {
		resolver_set(c, D_BODY_TALK, L_OVERRIDE, "situational.user_raised_body", 1);
		say(c, "The user raised body or fit themselves: talk about fit and comfort only as far as "
		       "they take it.");
	}
	if (c->closes_in_h >= 0 && c->closes_in_h < 1) {
		resolver_cap(c, D_VERBOSITY, L_OVERRIDE, "situational.closing_soon", 0);
		say(c, "The mall closes in about %.0f minutes: mention it once, calmly, and prefer what is "
		       "nearby.",
		    c->closes_in_h * 60);
	}
	if (c->part_of_day && !strcmp(c->part_of_day, "night")) {
		resolver_cap(c, D_VERBOSITY, L_OVERRIDE, "situational.night", 0);
		say(c, "It is late at night: keep it short and restful.");
	} else if (c->part_of_day && !strcmp(c->part_of_day, "morning")) {
		say(c, "It is morning: a fresh, practical start.");
	}
	if (c->rush) {
		resolver_cap(c, D_VERBOSITY, L_OVERRIDE, "situational.rush_hour", 0);
		say(c, "It is rush hour: get to the point.");
	}
	if (c->fatigue >= 0.6)
		resolver_cap(c, D_VERBOSITY, L_OVERRIDE, "situational.fatigue", 0);
	if (c->event_in_days >= 0)
		say(c, "Upcoming: %s in %d day%s. Tie suggestions to it where it helps.", c->event_name,
		    c->event_in_days, c->event_in_days == 1 ? "" : "s");
	if (c->period && strcmp(c->sensitivity, "low"))
		say(c, "A cultural period is on: use neutral wording (\"meal break\", not its religious name) "
		       "unless the user uses it first.");
}

/* Explicit requests of this turn (user_intent.requested {decision: level}):
 * the user asked for it, so it beats the stage and the profile — but not a
 * hard ban, which runs after. Unknown names were refused by the engine. */
void overrides_apply(struct persona_ctx *c)
{
	static char rules[NDECISIONS][48];
	if (!c->requested)
		return;
	for (int i = 0; i < NDECISIONS; i++) {
		json_t *v = json_object_get(c->requested, DECISIONS[i].name);
		if (!v)
			continue;
		int level = contract_level_index(i, json_string_value(v));
		snprintf(rules[i], sizeof rules[i], "intent.requested.%s", DECISIONS[i].name);
		resolver_set(c, i, L_OVERRIDE, rules[i], level);
	}
}
