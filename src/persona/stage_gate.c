/* stage_gate.c — the StageGate: what the relationship stage allows
 * (STAGE_LIMITS). Stage 0: humour at most low, no cultural references,
 * memory subtle; stage 1 in between; stage 2+ everything unlocked. A
 * playful tone needs humour of at least medium, so it falls back to warm
 * when the stage caps humour lower. */
#include "config.h"

#include "persona.h"

void stage_gate_apply(struct persona_ctx *c)
{
	static const char *const rule[4] = { "stage_gate.stage_0", "stage_gate.stage_1",
					     "stage_gate.stage_2", "stage_gate.stage_3" };
	const struct stage_limit *l = &STAGE_LIMITS[c->stage];
	resolver_cap(c, D_HUMOR, L_STAGE, rule[c->stage], l->humor_max);
	resolver_cap(c, D_MEMORY, L_STAGE, rule[c->stage], l->memory_max);
	resolver_cap(c, D_COMPLIMENTS, L_STAGE, rule[c->stage], l->compliments_max);
	if (!l->cultural_refs)
		resolver_cap(c, D_CULTURAL_REFS, L_STAGE, rule[c->stage], 0);
	if (c->d[D_TONE].value == T_PLAYFUL && c->d[D_HUMOR].value < 2)
		resolver_set(c, D_TONE, L_STAGE, rule[c->stage], T_WARM);
}
