/* resolver.c — the RulePriorityResolver: hard bans > overrides > stage >
 * profile > defaults. Modules run in that order and every change of an
 * output decision goes through here, which refuses (assert) a layer going
 * backwards, so a lower layer can never undo a higher one, and keeps the
 * deciding layer and rule of each decision for debug. */
#include "config.h"

#include <assert.h>

#include "persona.h"

void resolver_init(struct persona_ctx *c)
{
	for (int i = 0; i < NDECISIONS; i++) {
		c->d[i].value = DECISIONS[i].def;
		c->d[i].layer = L_DEFAULT;
		c->d[i].rule = "contract.default";
	}
}

/* Note one rule's effect in the trace: "humor: low → none (hard_ban:temp_block.humor)". */
static void trace(struct persona_ctx *c, int decision, enum layer layer, const char *rule, int from, int to)
{
	const char *a, *b;
	if (decision == D_TONE) {
		a = TONE_MODES[from].name;
		b = TONE_MODES[to].name;
	} else {
		a = DECISIONS[decision].levels[from];
		b = DECISIONS[decision].levels[to];
	}
	json_array_append_new(c->trace, json_pack("{s:s, s:s, s:s, s:s, s:s}", "decision",
						  DECISIONS[decision].name, "from", a, "to", b, "layer",
						  LAYER_NAMES[layer], "rule", rule));
}

/* Set a decision at a layer. A rule of a layer lower than the one that
 * already decided is ignored (it can happen only when a module runs a
 * lower-layer rule late; the assert catches it in tests). */
void resolver_set(struct persona_ctx *c, int decision, enum layer layer, const char *rule, int value)
{
	assert(decision >= 0 && decision < NDECISIONS);
	struct decision *d = &c->d[decision];
	assert(layer >= d->layer);
	if (layer < d->layer)
		return;
	if (d->value == value && layer == d->layer)
		return;
	if (d->value != value)
		trace(c, decision, layer, rule, d->value, value);
	d->value = value;
	d->layer = layer;
	d->rule = rule;
}

/* Lower an ordinal decision to at most max. */
void resolver_cap(struct persona_ctx *c, int decision, enum layer layer, const char *rule, int max)
{
	assert(decision != D_TONE);
	if (c->d[decision].value > max)
		resolver_set(c, decision, layer, rule, max);
}

const char *decision_level_name(const struct persona_ctx *c, int decision)
{
	if (decision == D_TONE)
		return TONE_MODES[c->d[D_TONE].value].name;
	return DECISIONS[decision].levels[c->d[decision].value];
}

/* {decision: {value, layer, rule}} for debug.rules. */
json_t *resolver_debug(const struct persona_ctx *c)
{
	json_t *o = json_object();
	for (int i = 0; i < NDECISIONS; i++)
		json_object_set_new(o, DECISIONS[i].name,
				    json_pack("{s:s, s:s, s:s}", "value", decision_level_name(c, i), "layer",
					      LAYER_NAMES[c->d[i].layer], "rule", c->d[i].rule));
	return o;
}

/* The defaults layer: every decision starts at the contract's default. */
void defaults_apply(struct persona_ctx *c)
{
	resolver_init(c);
}

/* The level a profile value picks for a decision (the cuts of DECISIONS). */
static int level_of(int decision, double v)
{
	const struct decision_def *d = &DECISIONS[decision];
	int n = 0;
	while (d->levels[n])
		n++;
	for (int i = 0; i < n - 1; i++)
		if (v < d->cuts[i])
			return i;
	return n - 1;
}

/* The profile layer: each decision tied to a profile field takes the level
 * that field's value picks, when the profile holds the field; a playful
 * profile (playfulness >= 0.6 with humour of medium or more) makes the
 * tone playful. */
void profile_apply(struct persona_ctx *c)
{
	static const char *const rules[NFIELDS] = {
		[F_HUMOR] = "profile.humor_level", [F_MEMORY] = "profile.memory_callbacks",
		[F_COMPLIMENT] = "profile.compliment_level", [F_VERBOSITY] = "profile.verbosity",
		[F_FORMALITY] = "profile.formality", [F_EMOJI] = "profile.emoji_level",
		[F_CULTURAL] = "profile.cultural_refs_affinity",
	};
	for (int i = 0; i < NDECISIONS; i++) {
		int f = DECISIONS[i].profile_field;
		if (f >= 0 && c->profile_set[f])
			resolver_set(c, i, L_PROFILE, rules[f], level_of(i, c->profile[f]));
	}
	if (c->profile_set[F_PLAYFULNESS] && c->profile[F_PLAYFULNESS] >= 0.6 && c->d[D_HUMOR].value >= 2)
		resolver_set(c, D_TONE, L_PROFILE, "profile.playfulness", T_PLAYFUL);
}
