/* persona.h — unde-persona, the Persona Agent of spec §16: the actuator
 * that turns mood_frame + context_frame + profile into how the avatar
 * speaks, sounds and looks. Rule based, zero LLM calls.
 *
 * The persona contract (contract.c) holds every table as data; each other
 * file of src/persona/ is one module owning its rule. The engine runs the
 * modules in a fixed order over one struct persona_ctx, and every output
 * field's value goes through the RulePriorityResolver (resolver.c), which
 * records the layer and the rule that decided it for debug. */
#ifndef UNDE_PERSONA_H
#define UNDE_PERSONA_H
#include <stdio.h>
#include <jansson.h>
#include <libpq-fe.h>

#define PERSONA_CONTRACT_VERSION "0.7.0"
#define PERSONA_CONTRACT_MAJOR 0

/* --- the contract's tables (contract.c) ------------------------------------ */

enum field_group { GROUP_SAFE, GROUP_SENSITIVE };

struct canonical_field {
	const char *name;
	double def, min, max;
	enum field_group group;
	const char *aliases[3]; /* legacy names, NULL-terminated */
};
extern const struct canonical_field CANONICAL_FIELDS[];
extern const int N_CANONICAL_FIELDS;
enum {
	F_WARMTH, F_HUMOR, F_PLAYFULNESS, F_FORMALITY, F_VERBOSITY, F_DIRECTNESS, F_EMOJI,
	F_CULTURAL, F_MEMORY, F_COMPLIMENT, NFIELDS
};
int contract_field_index(const char *name, int *is_alias);

/* Output decisions: each an ordinal level with names, except tone. */
enum decision_id {
	D_TONE, D_HUMOR, D_MEMORY, D_COMPLIMENTS, D_VERBOSITY, D_FORMALITY, D_EMOJI,
	D_CULTURAL_REFS, D_UPSELL, D_BODY_TALK, NDECISIONS
};
struct decision_def {
	const char *name;
	const char *levels[5]; /* NULL-terminated; D_TONE uses TONE_MODES */
	int def;               /* the defaults layer's value */
	int profile_field;     /* field whose value picks the profile level, or -1 */
	double cuts[4];        /* profile value < cuts[i] → level i */
};
extern const struct decision_def DECISIONS[NDECISIONS];
int contract_level_index(int decision, const char *name);

struct stage_limit {
	int humor_max, memory_max, compliments_max, cultural_refs; /* cultural: 0 off, 1 light only, 2 all */
	int gestures_playful;                                       /* wink etc. allowed */
	const char *style;
};
extern const struct stage_limit STAGE_LIMITS[4];
struct stage_requirement {
	int sessions, exchanges, positive_signals;
	int downgrade_after_days; /* inactivity that drops this stage by one */
};
extern const struct stage_requirement STAGE_REQUIREMENTS[4];

enum tone_id {
	T_PLAYFUL, T_WARM, T_GENTLE, T_SUPPORTIVE, T_EFFICIENT, T_CALM, T_CELEBRATORY, T_RESPECTFUL,
	NTONES
};
struct tone_mode {
	const char *name, *preset, *expression, *listen_state;
	double energy;
	const char *gestures[3];
	const char *directive;
};
extern const struct tone_mode TONE_MODES[NTONES];
int contract_tone_index(const char *name);

struct voice_preset {
	const char *name;
	double warmth, tempo, tension;
	const char *expressiveness;
};
extern const struct voice_preset VOICE_PRESETS[];
extern const int N_VOICE_PRESETS;
const struct voice_preset *contract_voice_preset(const char *name);

struct signal_effect {
	const char *type;
	int field;          /* the profile field it moves */
	double delta;
	int positive;       /* feeds the relationship stage */
	int conservative;   /* rank: the highest of a conflict component wins */
	const char *block_key; /* temp block it creates, or NULL */
	int block_hours;
};
extern const struct signal_effect SIGNAL_EFFECTS[];
extern const int N_SIGNAL_TYPES;
const struct signal_effect *contract_signal(const char *type);
/* Conflict edges between signal types (both orders conflict). */
extern const char *const CONFLICTS[][2];
extern const int N_CONFLICTS;
int contract_conflicts(const char *a, const char *b);

struct momentum_limit { double per_exchange, per_day; };
extern const struct momentum_limit MOMENTUM_LIMITS[2]; /* by field_group */

struct cultural_ref {
	const char *id, *hint, *locales, *period;
	int religious; /* neutral wording only allowed at medium sensitivity when 0 */
	int light;     /* allowed from stage 1 (else stage 2+) */
};
extern const struct cultural_ref CULTURAL_REFS[];
extern const int N_CULTURAL_REFS;

#define PERSONA_TEMP_BLOCK_LIMIT 20
#define PERSONA_IDEMPOTENCY_HOURS 72
#define PERSONA_STALE_BUFFER_MINUTES 10
#define PERSONA_SESSION_GAP_MINUTES 30
#define PERSONA_DELTA_TTL_DAYS 7

/* --- one request -------------------------------------------------------------- */

enum layer { L_DEFAULT, L_PROFILE, L_STAGE, L_OVERRIDE, L_HARD_BAN, NLAYERS };
extern const char *const LAYER_NAMES[NLAYERS];

struct decision {
	int value;
	enum layer layer;
	const char *rule;
};

struct temp_block { char key[51]; double until; };

struct persona_ctx {
	const json_t *record; /* borrowed */
	double now;           /* seconds since the epoch */
	/* canonical inputs */
	double profile[NFIELDS];
	int profile_set[NFIELDS]; /* the field came from the profile */
	int stage;
	const char *profile_source, *stage_source;
	struct temp_block blocks[PERSONA_TEMP_BLOCK_LIMIT * 2];
	int nblocks;
	/* mood */
	double valence, arousal, frustration, fatigue, urgency;
	int has_mood;
	/* context */
	const char *part_of_day, *sensitivity, *period, *locale;
	double closes_in_h; /* < 0: unknown */
	int rush;
	json_t *opportunities; /* borrowed */
	/* intent */
	const char *intent;
	int user_raised_body, explicit_event;
	json_t *requested;     /* borrowed: user_intent.requested {decision: level} */
	double budget_max;     /* < 0: none */
	const char *budget_currency;
	const char *event_name;
	int event_in_days;     /* < 0: none */
	json_t *last_meta;     /* borrowed */
	/* decisions and what the modules add */
	struct decision d[NDECISIONS];
	const struct cultural_ref *chosen_ref;
	json_t *debug;    /* owned */
	json_t *trace;    /* borrowed from debug */
	json_t *bans;     /* owned: array of hard-ban sentences */
	json_t *situation; /* owned: array of situational sentences */
	char relationship[400];
	json_t *out;      /* owned: the persona object */
};

/* Error from a module: an input field that is malformed. */
struct persona_err { char code[40]; char message[300]; int status; /* sysexits, 0: by code */ };

/* resolver.c */
void resolver_init(struct persona_ctx *c);
void resolver_set(struct persona_ctx *c, int decision, enum layer layer, const char *rule, int value);
void resolver_cap(struct persona_ctx *c, int decision, enum layer layer, const char *rule, int max);
json_t *resolver_debug(const struct persona_ctx *c);
const char *decision_level_name(const struct persona_ctx *c, int decision);

/* canonicalize.c: fill the ctx's inputs from the record; 0 or -1 with err. */
int canonicalize_request(struct persona_ctx *c, const json_t *rec, struct persona_err *err);
int canonicalize_profile(const json_t *profile, double out[NFIELDS], int set[NFIELDS],
			 json_t *debug, struct persona_err *err);
int canonicalize_contract_version(const json_t *rec, struct persona_err *err);
int persona_parse_time(const char *s, double *out);

/* the modules, in the engine's order */
void defaults_apply(struct persona_ctx *c);
void profile_apply(struct persona_ctx *c);
void stage_gate_apply(struct persona_ctx *c);
void tone_adapter_apply(struct persona_ctx *c);
void situational_apply(struct persona_ctx *c);
void overrides_apply(struct persona_ctx *c);
void anti_pattern_guard_apply(struct persona_ctx *c);
void cultural_refs_apply(struct persona_ctx *c);
void relationship_style_apply(struct persona_ctx *c);
json_t *voice_director(const struct persona_ctx *c);
json_t *avatar_director(const struct persona_ctx *c);
json_t *render_hints_build(const struct persona_ctx *c, const json_t *voice, const json_t *avatar);
json_t *directive_build(const struct persona_ctx *c);

/* engine.c: the whole of POST /persona, pure. Returns the persona object
 * (new reference) or NULL with err. */
json_t *persona_run(struct persona_ctx *c, const json_t *rec, struct persona_err *err);
void persona_ctx_init(struct persona_ctx *c, double now);
void persona_ctx_free(struct persona_ctx *c);
int persona_block_active(const struct persona_ctx *c, const char *key);

/* signals.c: the SignalBuffer's resolution of one exchange's signals.
 * types[i] in, keep[i] out (1 survives, 0 discarded). Returns survivors. */
int signals_resolve(const char *const *types, int n, int *keep);

/* clock.c */
double persona_now(void);
/* The day (UTC) of t as YYYY-MM-DD. */
void persona_day(double t, char out[11]);
void persona_iso(double t, char out[40]);

/* store.c: the shard side */
PGconn *persona_shard_conn(const char *user_id, const char *url_flag, int write, struct persona_err *err);
void persona_shard_done(void);
int store_load(PGconn *db, struct persona_ctx *c, const char *user_id, int want_profile,
	       int want_stage, json_t **profile_out, struct persona_err *err);
int store_feedback(PGconn *db, const json_t *rec, double now, json_t **result,
		   struct persona_err *err);
int store_flush(PGconn *db, const char *user_id, const char *exchange_id, double now,
		json_t **result, struct persona_err *err);
int store_profile(PGconn *db, const char *user_id, double now, json_t **result,
		  struct persona_err *err);
int store_cleanup(PGconn *db, double now, json_t **result, struct persona_err *err);
int persona_stage_after_inactivity(int stage, double since, double now);
int persona_is_uuid(const char *s);
int store_fail(struct persona_err *err, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int store_db_fail(PGconn *db, struct persona_err *err);

/* metrics.c: counters shared by all processes */
void pmetrics_add(const char *name, double v);
void pmetrics_set(const char *name, double v);
void pmetrics_latency(double ms);
int pmetrics_render(FILE *out);
void pmetrics_write_textfile(void);

#endif
