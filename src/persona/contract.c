/* contract.c — persona_contract 0.7.0 as data: canonical fields and their
 * legacy aliases, output decisions and their levels, stage limits and
 * requirements, tone modes, voice presets, signal effects, conflict edges,
 * momentum limits and the cultural reference registry. Code elsewhere reads
 * these tables; no threshold lives outside this file. man/unde-persona.1
 * explains every table, and must change with it. */
#include "config.h"

#include <string.h>

#include "persona.h"

/* Profile fields, all in [0,1]. group says which momentum caps apply. */
const struct canonical_field CANONICAL_FIELDS[] = {
	[F_WARMTH] = { "warmth", 0.7, 0, 1, GROUP_SAFE, { "warmth_level", "warm", NULL } },
	[F_HUMOR] = { "humor_level", 0.4, 0, 1, GROUP_SAFE, { "humour", "humor", NULL } },
	[F_PLAYFULNESS] = { "playfulness", 0.5, 0, 1, GROUP_SAFE, { "playful", NULL } },
	[F_FORMALITY] = { "formality", 0.5, 0, 1, GROUP_SAFE, { "formal_level", NULL } },
	[F_VERBOSITY] = { "verbosity", 0.5, 0, 1, GROUP_SAFE, { "response_length_pref", "length", NULL } },
	[F_DIRECTNESS] = { "directness", 0.5, 0, 1, GROUP_SAFE, { NULL } },
	[F_EMOJI] = { "emoji_level", 0.3, 0, 1, GROUP_SAFE, { "emoji", "emojis", NULL } },
	[F_CULTURAL] = { "cultural_refs_affinity", 0.5, 0, 1, GROUP_SENSITIVE, { "culture_refs", "cultural_refs", NULL } },
	[F_MEMORY] = { "memory_callbacks", 0.5, 0, 1, GROUP_SENSITIVE, { "memory_level", "callbacks", NULL } },
	[F_COMPLIMENT] = { "compliment_level", 0.4, 0, 1, GROUP_SENSITIVE, { "compliments", NULL } },
};
const int N_CANONICAL_FIELDS = NFIELDS;

/* The canonical index of a profile key, or -1; *is_alias says it was a
 * legacy name. */
int contract_field_index(const char *name, int *is_alias)
{
	for (int i = 0; i < NFIELDS; i++) {
		if (!strcmp(name, CANONICAL_FIELDS[i].name)) {
			*is_alias = 0;
			return i;
		}
		for (int a = 0; CANONICAL_FIELDS[i].aliases[a]; a++)
			if (!strcmp(name, CANONICAL_FIELDS[i].aliases[a])) {
				*is_alias = 1;
				return i;
			}
	}
	return -1;
}

/* Output decisions. A profile value v picks the first level i with
 * v < cuts[i] (the last level otherwise). */
const struct decision_def DECISIONS[NDECISIONS] = {
	[D_TONE] = { "tone_mode", { NULL }, T_WARM, -1, { 0 } },
	[D_HUMOR] = { "humor", { "none", "low", "medium", "high", NULL }, 1, F_HUMOR, { 0.15, 0.4, 0.7 } },
	[D_MEMORY] = { "memory", { "off", "subtle", "moderate", "full", NULL }, 1, F_MEMORY, { 0.1, 0.4, 0.7 } },
	[D_COMPLIMENTS] = { "compliments", { "off", "light", "normal", NULL }, 1, F_COMPLIMENT, { 0.2, 0.6 } },
	[D_VERBOSITY] = { "verbosity", { "short", "medium", "long", NULL }, 1, F_VERBOSITY, { 0.35, 0.7 } },
	[D_FORMALITY] = { "formality", { "casual", "neutral", "formal", NULL }, 1, F_FORMALITY, { 0.35, 0.7 } },
	[D_EMOJI] = { "emoji", { "none", "few", "some", NULL }, 1, F_EMOJI, { 0.2, 0.6 } },
	[D_CULTURAL_REFS] = { "cultural_refs", { "off", "on", NULL }, 1, F_CULTURAL, { 0.2 } },
	[D_UPSELL] = { "upsell", { "off", "gentle", NULL }, 1, -1, { 0 } },
	[D_BODY_TALK] = { "body_talk", { "off", "on", NULL }, 0, -1, { 0 } },
};

int contract_level_index(int decision, const char *name)
{
	if (decision == D_TONE)
		return contract_tone_index(name);
	for (int i = 0; DECISIONS[decision].levels[i]; i++)
		if (!strcmp(DECISIONS[decision].levels[i], name))
			return i;
	return -1;
}

/* Stage limits (spec §16: stage 0 — humour at most low, no cultural
 * references, memory subtle; stage 2+ — everything unlocked). */
const struct stage_limit STAGE_LIMITS[4] = {
	{ 1, 1, 1, 0, 0, "new acquaintance: polite and attentive, no nicknames, no teasing, no assumptions about taste" },
	{ 2, 2, 1, 1, 0, "friendly regular: relaxed, may recall a recent preference once, light humour" },
	{ 3, 3, 2, 2, 1, "familiar friend: easy banter, callbacks to shared history, honest opinions" },
	{ 3, 3, 2, 2, 1, "close confidante: candid, personal, remembers the story so far" },
};

/* What reaching a stage takes (counters of relationship_stage), and how
 * long without activity drops it by one. Stage 0 has no requirement. */
const struct stage_requirement STAGE_REQUIREMENTS[4] = {
	{ 0, 0, 0, 0 },
	{ 3, 10, 2, 90 },
	{ 10, 50, 8, 60 },
	{ 30, 200, 25, 45 },
};

/* Tone modes: 5 of the spec's, plus calm, celebratory, respectful. */
const struct tone_mode TONE_MODES[NTONES] = {
	[T_PLAYFUL] = { "playful", "friendly_upbeat", "smile_big", "attentive", 0.75,
			{ "head_tilt", "wink", NULL },
			"Be light and playful; a quick joke is welcome if it fits the moment." },
	[T_WARM] = { "warm", "friendly_warm", "smile", "attentive", 0.55,
		     { "nod", "open_hands", NULL },
		     "Be warm and personal, like a friend who knows fashion." },
	[T_GENTLE] = { "gentle", "soft_calm", "soft_smile", "patient", 0.35,
		       { "slow_nod", NULL },
		       "Be gentle and unhurried; keep it soft and low-pressure." },
	[T_SUPPORTIVE] = { "supportive", "soft_empathetic", "concerned_soft", "patient", 0.3,
			   { "slow_nod", "lean_in", NULL },
			   "Acknowledge the feeling first, then help with one clear, small next step." },
	[T_EFFICIENT] = { "efficient", "neutral_confident", "focused", "ready", 0.6,
			  { "quick_nod", NULL },
			  "Be brief and concrete: the answer first, no small talk." },
	[T_CALM] = { "calm", "soft_calm", "relaxed", "patient", 0.25,
		     { "slow_blink", NULL },
		     "Be calm and restful; short sentences, nothing demanding." },
	[T_CELEBRATORY] = { "celebratory", "energetic_happy", "excited", "eager", 0.85,
			    { "clap_small", "head_tilt", NULL },
			    "Share the excitement about the occasion; be upbeat and encouraging." },
	[T_RESPECTFUL] = { "respectful", "neutral_confident", "attentive_calm", "attentive", 0.4,
			   { "nod", NULL },
			   "Be respectful and considerate of the season and its customs; neutral wording." },
};

int contract_tone_index(const char *name)
{
	for (int i = 0; i < NTONES; i++)
		if (!strcmp(TONE_MODES[i].name, name))
			return i;
	return -1;
}

/* Voice presets (spec §12's voice_params ranges: warmth, tension 0..1,
 * tempo 0.7..1.2 as ElevenLabs speed, expressiveness a word). */
const struct voice_preset VOICE_PRESETS[] = {
	{ "friendly_upbeat", 0.75, 1.08, 0.15, "lively" },
	{ "friendly_warm", 0.85, 1.0, 0.1, "warm" },
	{ "soft_calm", 0.7, 0.9, 0.05, "calm" },
	{ "soft_empathetic", 0.9, 0.92, 0.05, "warm" },
	{ "neutral_confident", 0.5, 1.05, 0.2, "moderate" },
	{ "energetic_happy", 0.8, 1.12, 0.2, "lively" },
};
const int N_VOICE_PRESETS = (int)(sizeof VOICE_PRESETS / sizeof VOICE_PRESETS[0]);

const struct voice_preset *contract_voice_preset(const char *name)
{
	for (int i = 0; i < N_VOICE_PRESETS; i++)
		if (!strcmp(VOICE_PRESETS[i].name, name))
			return &VOICE_PRESETS[i];
	return NULL;
}

/* The 14 feedback signals: the field each moves, by how much, whether it
 * counts toward the stage, its conservativeness rank, and the temp block a
 * rejection creates. */
const struct signal_effect SIGNAL_EFFECTS[] = {
	{ "humor_positive", F_HUMOR, +0.05, 1, 1, NULL, 0 },
	{ "humor_ignored", F_HUMOR, -0.03, 0, 2, NULL, 0 },
	{ "humor_rejected", F_HUMOR, -0.10, 0, 3, "humor", 24 },
	{ "cultural_ref_positive", F_CULTURAL, +0.05, 1, 1, NULL, 0 },
	{ "cultural_ref_rejected", F_CULTURAL, -0.10, 0, 3, "cultural_ref", 24 * 7 },
	{ "warmth_positive", F_WARMTH, +0.05, 1, 1, NULL, 0 },
	{ "warmth_too_much", F_WARMTH, -0.05, 0, 2, NULL, 0 },
	{ "brevity_requested", F_VERBOSITY, -0.10, 0, 2, NULL, 0 },
	{ "detail_requested", F_VERBOSITY, +0.10, 0, 1, NULL, 0 },
	{ "formality_requested", F_FORMALITY, +0.10, 0, 2, NULL, 0 },
	{ "casual_requested", F_FORMALITY, -0.10, 0, 1, NULL, 0 },
	{ "memory_callback_positive", F_MEMORY, +0.05, 1, 1, NULL, 0 },
	{ "memory_callback_rejected", F_MEMORY, -0.10, 0, 3, "memory_callback", 24 * 7 },
	{ "compliment_rejected", F_COMPLIMENT, -0.10, 0, 3, "compliment", 24 * 3 },
};
const int N_SIGNAL_TYPES = (int)(sizeof SIGNAL_EFFECTS / sizeof SIGNAL_EFFECTS[0]);

const struct signal_effect *contract_signal(const char *type)
{
	for (int i = 0; i < N_SIGNAL_TYPES; i++)
		if (!strcmp(SIGNAL_EFFECTS[i].type, type))
			return &SIGNAL_EFFECTS[i];
	return NULL;
}

/* The conflict graph's edges: signals of one exchange that contradict each
 * other. A connected component keeps only its most conservative type. */
const char *const CONFLICTS[][2] = {
	{ "humor_positive", "humor_ignored" },
	{ "humor_positive", "humor_rejected" },
	{ "cultural_ref_positive", "cultural_ref_rejected" },
	{ "warmth_positive", "warmth_too_much" },
	{ "brevity_requested", "detail_requested" },
	{ "formality_requested", "casual_requested" },
	{ "memory_callback_positive", "memory_callback_rejected" },
	{ "warmth_positive", "compliment_rejected" },
};
const int N_CONFLICTS = (int)(sizeof CONFLICTS / sizeof CONFLICTS[0]);

int contract_conflicts(const char *a, const char *b)
{
	for (int i = 0; i < N_CONFLICTS; i++)
		if ((!strcmp(a, CONFLICTS[i][0]) && !strcmp(b, CONFLICTS[i][1])) ||
		    (!strcmp(a, CONFLICTS[i][1]) && !strcmp(b, CONFLICTS[i][0])))
			return 1;
	return 0;
}

/* Momentum caps by group (spec §16). */
const struct momentum_limit MOMENTUM_LIMITS[2] = {
	[GROUP_SAFE] = { 0.10, 0.30 },
	[GROUP_SENSITIVE] = { 0.05, 0.15 },
};

/* The static cultural reference registry. locales: comma list or "*";
 * period: the cultural period it belongs to, or NULL for any time. */
const struct cultural_ref CULTURAL_REFS[] = {
	{ "ramadan_evening_elegance", "Evening looks for gatherings after the fast: modest cuts, rich fabrics.",
	  "ar,en", "ramadan", 1, 0 },
	{ "eid_new_outfit", "The tradition of a new outfit for Eid.", "ar,en", "eid", 1, 1 },
	{ "diwali_colours", "Festive jewel tones and gold accents for Diwali.", "en,hi", "diwali", 1, 0 },
	{ "national_day_colours", "A touch of the national colours for National Day.", "ar,en", "national_day", 0, 1 },
	{ "desert_evening_layers", "Light layers for cool desert evenings.", "*", NULL, 0, 1 },
	{ "red_carpet_season", "Award-season red carpet silhouettes.", "*", NULL, 0, 0 },
	{ "korean_street_style", "Seoul street style: oversized layers and clean sneakers.", "en,ko", NULL, 0, 1 },
	{ "parisian_chic", "Effortless Parisian chic: few pieces, perfect fit.", "en,fr", NULL, 0, 0 },
};
const int N_CULTURAL_REFS = (int)(sizeof CULTURAL_REFS / sizeof CULTURAL_REFS[0]);

const char *const LAYER_NAMES[NLAYERS] = { "default", "profile", "stage", "override", "hard_ban" };
