/* engine.c — POST /persona as one pure function of the request (plus the
 * clock): canonicalize, then the rule layers in priority order (defaults,
 * profile, stage, overrides, hard bans), then the directors that read the
 * decisions. Database loading happens before (store.c), never inside. */
#include "config.h"

#include <string.h>

#include "persona.h"

/* user_intent.requested may only name decisions and their levels. */
static int check_requested(const struct persona_ctx *c, struct persona_err *err)
{
	const char *key;
	json_t *v;
	if (!c->requested)
		return 0;
	json_object_foreach(c->requested, key, v) {
		int d = -1;
		for (int i = 0; i < NDECISIONS; i++)
			if (!strcmp(DECISIONS[i].name, key))
				d = i;
		if (d < 0 || !json_is_string(v) || contract_level_index(d, json_string_value(v)) < 0) {
			snprintf(err->code, sizeof err->code, "invalid_field");
			snprintf(err->message, sizeof err->message,
				 "user_intent.requested.%s: not a decision and one of its levels (see unde-persona(1), DECISIONS)",
				 key);
			return -1;
		}
	}
	return 0;
}

json_t *persona_run(struct persona_ctx *c, const json_t *rec, struct persona_err *err)
{
	if (check_requested(c, err) < 0)
		return NULL;
	defaults_apply(c);
	profile_apply(c);
	stage_gate_apply(c);
	tone_adapter_apply(c);
	situational_apply(c);
	overrides_apply(c);
	anti_pattern_guard_apply(c);
	cultural_refs_apply(c);
	relationship_style_apply(c);
	json_t *voice = voice_director(c);
	json_t *avatar = avatar_director(c);
	json_t *hints = render_hints_build(c, voice, avatar);
	json_t *directive = directive_build(c);
	json_object_set_new(c->debug, "rules", resolver_debug(c));
	json_object_set_new(c->debug, "stage", json_integer(c->stage));
	json_object_set_new(c->debug, "profile_source", json_string(c->profile_source));
	json_object_set_new(c->debug, "stage_source", json_string(c->stage_source));
	json_object_set_new(c->debug, "contract_version", json_string(PERSONA_CONTRACT_VERSION));
	json_object_set_new(c->debug, "temp_blocks_active", json_integer(c->nblocks));
	(void)rec;
	return json_pack("{s:o, s:o, s:o, s:o, s:O}", "persona_directive", directive, "voice_params", voice,
			 "avatar_state", avatar, "render_hints", hints, "debug", c->debug);
}

void persona_ctx_free(struct persona_ctx *c)
{
	json_decref(c->debug);
	json_decref(c->bans);
	json_decref(c->situation);
}

/* A fresh context at time now: defaults everywhere, empty debug. */
void persona_ctx_init(struct persona_ctx *c, double now)
{
	memset(c, 0, sizeof *c);
	c->now = now;
	c->profile_source = "default";
	c->stage_source = "default";
	c->debug = json_pack("{s:[], s:{}, s:{}, s:[]}", "trace", "aliased", "clamped", "unknown_fields");
	c->trace = json_object_get(c->debug, "trace");
	c->bans = json_array();
	c->situation = json_array();
}
