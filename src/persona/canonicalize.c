/* canonicalize.c — the Canonicalizer: the one place that reads the request.
 * Profile keys become canonical names (legacy aliases mapped, unknown keys
 * reported in debug, values clamped to the field's range); mood, context,
 * intent and knowledge are read with their types checked, so every other
 * module sees plain numbers and strings. A value of the wrong type is an
 * error naming its path; a missing one is defaulted. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "persona.h"

static int fail(struct persona_err *err, const char *code, const char *path, const char *what)
{
	snprintf(err->code, sizeof err->code, "%s", code);
	snprintf(err->message, sizeof err->message, "%s: %s", path, what);
	return -1;
}

/* An optional member of type object; -1 when present and not an object. */
static int opt_object(const json_t *o, const char *key, const char *path, json_t **out,
		      struct persona_err *err)
{
	*out = NULL;
	json_t *v = o ? json_object_get(o, key) : NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_object(v))
		return fail(err, "invalid_field", path, "expected an object");
	*out = v;
	return 1;
}

/* An optional number in [0,1], clamped (noted in debug.clamped). */
static int opt_unit(const json_t *o, const char *key, const char *path, double *out,
		    json_t *debug, struct persona_err *err)
{
	json_t *v = o ? json_object_get(o, key) : NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_number(v))
		return fail(err, "invalid_field", path, "expected a number");
	double x = json_number_value(v);
	if (x < 0 || x > 1) {
		json_object_set_new(json_object_get(debug, "clamped"), path, json_real(x));
		x = x < 0 ? 0 : 1;
	}
	*out = x;
	return 1;
}

/* An optional string; NULL when absent or null. */
static int opt_string(const json_t *o, const char *key, const char *path, const char **out,
		      struct persona_err *err)
{
	json_t *v = o ? json_object_get(o, key) : NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return fail(err, "invalid_field", path, "expected a string");
	*out = json_string_value(v);
	return 1;
}

/* RFC 3339 time ("2026-02-13T19:30:00+04:00", "…Z", fractions allowed) or
 * a date ("2026-02-13", midnight UTC) → seconds since the epoch. */
int persona_parse_time(const char *s, double *out)
{
	struct tm tm = { 0 };
	int y, mo, d, h = 0, mi = 0, n = 0;
	double sec = 0;
	if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10)
		return -1;
	const char *p = s + 10;
	long off = 0;
	if (*p == 'T' || *p == ' ') {
		int m = 0;
		if (sscanf(p + 1, "%2d:%2d:%lf%n", &h, &mi, &sec, &m) != 3)
			return -1;
		p += 1 + m;
		if (*p == 'Z' || *p == 'z') {
			p++;
		} else if (*p == '+' || *p == '-') {
			int oh, om;
			if (sscanf(p + 1, "%2d:%2d", &oh, &om) != 2 || strlen(p) != 6)
				return -1;
			off = (oh * 3600L + om * 60L) * (*p == '-' ? -1 : 1);
			p += 6;
		} else {
			return -1;
		}
	}
	if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec < 0 || sec >= 61)
		return -1;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	*out = (double)timegm(&tm) + sec - (double)off;
	return 0;
}

/* The contract_version member: absent means the current; another major
 * version is refused. */
int canonicalize_contract_version(const json_t *rec, struct persona_err *err)
{
	json_t *v = json_object_get(rec, "contract_version");
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return fail(err, "invalid_field", "contract_version", "expected a string like \"0.7.0\"");
	int major, minor, patch, n = 0;
	const char *s = json_string_value(v);
	if (sscanf(s, "%d.%d.%d%n", &major, &minor, &patch, &n) != 3 || s[n] || major < 0)
		return fail(err, "invalid_field", "contract_version", "expected MAJOR.MINOR.PATCH");
	if (major != PERSONA_CONTRACT_MAJOR) {
		snprintf(err->code, sizeof err->code, "contract_version_mismatch");
		snprintf(err->message, sizeof err->message,
			 "contract_version: %s has major version %d; this agent speaks %s (major %d)", s,
			 major, PERSONA_CONTRACT_VERSION, PERSONA_CONTRACT_MAJOR);
		return -1;
	}
	return 0;
}

/* Map a persona_profile object to canonical values. out/set are filled for
 * the fields present; debug gets aliased, clamped and unknown_fields. */
int canonicalize_profile(const json_t *profile, double out[NFIELDS], int set[NFIELDS],
			 json_t *debug, struct persona_err *err)
{
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)profile, key, v) {
		int alias = 0, f = contract_field_index(key, &alias);
		if (f < 0) {
			json_array_append_new(json_object_get(debug, "unknown_fields"), json_string(key));
			continue;
		}
		char path[120];
		snprintf(path, sizeof path, "persona_profile.%s", key);
		if (json_is_null(v))
			continue;
		if (!json_is_number(v))
			return fail(err, "invalid_field", path, "expected a number in [0,1]");
		if (set[f] == 2)
			return fail(err, "invalid_field", path, "the same field is given twice (canonical name and alias)");
		double x = json_number_value(v);
		const struct canonical_field *cf = &CANONICAL_FIELDS[f];
		if (x < cf->min || x > cf->max) {
			json_object_set_new(json_object_get(debug, "clamped"), path, json_real(x));
			x = x < cf->min ? cf->min : cf->max;
		}
		if (alias)
			json_object_set_new(json_object_get(debug, "aliased"), key, json_string(cf->name));
		out[f] = x;
		set[f] = 2;
	}
	for (int f = 0; f < NFIELDS; f++)
		if (set[f])
			set[f] = 1;
	return 0;
}

static int read_mood(struct persona_ctx *c, const json_t *rec, struct persona_err *err)
{
	json_t *m, *emo, *sig;
	c->valence = 0.5;
	c->arousal = 0.4;
	if (opt_object(rec, "mood_frame", "mood_frame", &m, err) < 0)
		return -1;
	if (!m)
		return 0;
	c->has_mood = 1;
	if (opt_object(m, "emotion", "mood_frame.emotion", &emo, err) < 0 ||
	    opt_object(m, "signals", "mood_frame.signals", &sig, err) < 0)
		return -1;
	/* the short form {"valence":…, "energy":…} of the spec's smoke test */
	if (opt_unit(m, "valence", "mood_frame.valence", &c->valence, c->debug, err) < 0 ||
	    opt_unit(m, "energy", "mood_frame.energy", &c->arousal, c->debug, err) < 0 ||
	    opt_unit(emo, "valence", "mood_frame.emotion.valence", &c->valence, c->debug, err) < 0 ||
	    opt_unit(emo, "arousal", "mood_frame.emotion.arousal", &c->arousal, c->debug, err) < 0 ||
	    opt_unit(sig, "frustration", "mood_frame.signals.frustration", &c->frustration, c->debug, err) < 0 ||
	    opt_unit(sig, "fatigue", "mood_frame.signals.fatigue", &c->fatigue, c->debug, err) < 0 ||
	    opt_unit(sig, "urgency", "mood_frame.signals.urgency", &c->urgency, c->debug, err) < 0)
		return -1;
	return 0;
}

static int read_context(struct persona_ctx *c, const json_t *rec, struct persona_err *err)
{
	json_t *cf, *env, *tc, *cult;
	c->closes_in_h = -1;
	c->sensitivity = "low";
	if (opt_object(rec, "context_frame", "context_frame", &cf, err) < 0)
		return -1;
	if (!cf)
		return 0;
	if (opt_object(cf, "environment", "context_frame.environment", &env, err) < 0 ||
	    opt_object(env, "time_context", "context_frame.environment.time_context", &tc, err) < 0 ||
	    opt_object(cf, "cultural", "context_frame.cultural", &cult, err) < 0 ||
	    opt_string(tc, "part_of_day", "context_frame.environment.time_context.part_of_day", &c->part_of_day, err) < 0 ||
	    opt_string(cult, "sensitivity_level", "context_frame.cultural.sensitivity_level", &c->sensitivity, err) < 0 ||
	    opt_string(cult, "active_period", "context_frame.cultural.active_period", &c->period, err) < 0 ||
	    opt_string(cf, "locale", "context_frame.locale", &c->locale, err) < 0)
		return -1;
	if (strcmp(c->sensitivity, "low") && strcmp(c->sensitivity, "medium") && strcmp(c->sensitivity, "high"))
		return fail(err, "invalid_field", "context_frame.cultural.sensitivity_level",
			    "expected \"low\", \"medium\" or \"high\"");
	json_t *v = tc ? json_object_get(tc, "mall_closes_in_hours") : NULL;
	if (v && !json_is_null(v)) {
		if (!json_is_number(v) || json_number_value(v) < 0)
			return fail(err, "invalid_field", "context_frame.environment.time_context.mall_closes_in_hours",
				    "expected a number of hours >= 0");
		c->closes_in_h = json_number_value(v);
	}
	v = tc ? json_object_get(tc, "is_rush_hour") : NULL;
	if (v && !json_is_null(v)) {
		if (!json_is_boolean(v))
			return fail(err, "invalid_field", "context_frame.environment.time_context.is_rush_hour",
				    "expected true or false");
		c->rush = json_is_true(v);
	}
	v = json_object_get(cf, "opportunities");
	if (v && !json_is_null(v)) {
		if (!json_is_array(v))
			return fail(err, "invalid_field", "context_frame.opportunities", "expected an array");
		c->opportunities = v;
	}
	return 0;
}

static int read_intent(struct persona_ctx *c, const json_t *rec, struct persona_err *err)
{
	json_t *v = json_object_get(rec, "user_intent");
	c->budget_max = -1;
	c->event_in_days = -1;
	if (!v || json_is_null(v))
		return 0;
	if (json_is_string(v)) {
		c->intent = json_string_value(v);
		return 0;
	}
	if (!json_is_object(v))
		return fail(err, "invalid_field", "user_intent", "expected a string or an object");
	if (opt_string(v, "intent", "user_intent.intent", &c->intent, err) < 0 ||
	    opt_object(v, "requested", "user_intent.requested", &c->requested, err) < 0)
		return -1;
	json_t *topics = json_object_get(v, "topics");
	if (topics && !json_is_null(topics)) {
		size_t i;
		json_t *t;
		if (!json_is_array(topics))
			return fail(err, "invalid_field", "user_intent.topics", "expected an array of strings");
		json_array_foreach(topics, i, t) {
			if (!json_is_string(t))
				return fail(err, "invalid_field", "user_intent.topics", "expected an array of strings");
			const char *s = json_string_value(t);
			if (!strcmp(s, "body") || !strcmp(s, "weight") || !strcmp(s, "figure"))
				c->user_raised_body = 1;
		}
	}
	json_t *b = json_object_get(v, "budget_max");
	if (b && !json_is_null(b)) {
		if (!json_is_number(b) || json_number_value(b) < 0)
			return fail(err, "invalid_field", "user_intent.budget_max", "expected a number >= 0");
		c->budget_max = json_number_value(b);
	}
	return 0;
}

static int read_knowledge(struct persona_ctx *c, const json_t *rec, struct persona_err *err)
{
	json_t *uk, *budget;
	if (opt_object(rec, "user_knowledge_compact", "user_knowledge_compact", &uk, err) < 0)
		return -1;
	if (!uk)
		return 0;
	if (!c->locale && opt_string(uk, "locale", "user_knowledge_compact.locale", &c->locale, err) < 0)
		return -1;
	if (opt_object(uk, "budget", "user_knowledge_compact.budget", &budget, err) < 0 ||
	    opt_string(budget, "currency", "user_knowledge_compact.budget.currency", &c->budget_currency, err) < 0)
		return -1;
	json_t *m = budget ? json_object_get(budget, "max") : NULL;
	if (m && !json_is_null(m)) {
		if (!json_is_number(m) || json_number_value(m) < 0)
			return fail(err, "invalid_field", "user_knowledge_compact.budget.max", "expected a number >= 0");
		if (c->budget_max < 0 || json_number_value(m) < c->budget_max)
			c->budget_max = json_number_value(m);
	}
	json_t *ev = json_object_get(uk, "upcoming_events");
	if (ev && !json_is_null(ev)) {
		size_t i;
		json_t *e;
		if (!json_is_array(ev))
			return fail(err, "invalid_field", "user_knowledge_compact.upcoming_events", "expected an array");
		json_array_foreach(ev, i, e) {
			const char *name = NULL, *date = NULL;
			double t;
			if (!json_is_object(e) ||
			    opt_string(e, "name", "user_knowledge_compact.upcoming_events[].name", &name, err) < 0 ||
			    opt_string(e, "date", "user_knowledge_compact.upcoming_events[].date", &date, err) < 0)
				return err->code[0] ? -1 : fail(err, "invalid_field", "user_knowledge_compact.upcoming_events[]", "expected an object {name, date}");
			if (!name || !date || persona_parse_time(date, &t) < 0)
				return fail(err, "invalid_field", "user_knowledge_compact.upcoming_events[]",
					    "expected {name, date} with date YYYY-MM-DD or RFC 3339");
			int days = (int)floor((t - c->now) / 86400.0);
			if (days >= 0 && days <= 14 && (c->event_in_days < 0 || days < c->event_in_days)) {
				c->event_in_days = days;
				c->event_name = name;
			}
		}
	}
	return 0;
}

/* temp_blocks given in the request (the orchestrator's cached copy, or a
 * test): [{key, until}] — the shard's are added by store_load. */
static int read_blocks(struct persona_ctx *c, const json_t *rec, struct persona_err *err)
{
	json_t *v = json_object_get(rec, "temp_blocks"), *b;
	size_t i;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_array(v))
		return fail(err, "invalid_field", "temp_blocks", "expected an array of {key, until}");
	json_array_foreach(v, i, b) {
		const char *key = NULL, *until = NULL;
		double t;
		if (!json_is_object(b) || opt_string(b, "key", "temp_blocks[].key", &key, err) < 0 ||
		    opt_string(b, "until", "temp_blocks[].until", &until, err) < 0 || !key || !until ||
		    strlen(key) > 50 || persona_parse_time(until, &t) < 0)
			return fail(err, "invalid_field", "temp_blocks[]",
				    "expected {key (at most 50 characters), until (RFC 3339)}");
		if (c->nblocks < (int)(sizeof c->blocks / sizeof c->blocks[0])) {
			snprintf(c->blocks[c->nblocks].key, sizeof c->blocks[0].key, "%s", key);
			c->blocks[c->nblocks++].until = t;
		}
	}
	return 0;
}

/* Read the whole request into c. */
int canonicalize_request(struct persona_ctx *c, const json_t *rec, struct persona_err *err)
{
	if (canonicalize_contract_version(rec, err) < 0)
		return -1;
	json_t *uid = json_object_get(rec, "user_id");
	if (uid && !json_is_null(uid) && !json_is_string(uid))
		return fail(err, "invalid_field", "user_id", "expected a string");
	for (int f = 0; f < NFIELDS; f++)
		c->profile[f] = CANONICAL_FIELDS[f].def;
	json_t *p;
	if (opt_object(rec, "persona_profile", "persona_profile", &p, err) < 0)
		return -1;
	if (p) {
		if (canonicalize_profile(p, c->profile, c->profile_set, c->debug, err) < 0)
			return -1;
		c->profile_source = "request";
	}
	json_t *st = json_object_get(rec, "relationship_stage");
	if (st && json_is_object(st))
		st = json_object_get(st, "stage");
	if (st && !json_is_null(st)) {
		if (!json_is_integer(st))
			return fail(err, "invalid_field", "relationship_stage", "expected an integer 0..3 or {stage}");
		json_int_t s = json_integer_value(st);
		if (s < 0 || s > 3) {
			json_object_set_new(json_object_get(c->debug, "clamped"), "relationship_stage", json_integer(s));
			s = s < 0 ? 0 : 3;
		}
		c->stage = (int)s;
		c->stage_source = "request";
	}
	json_t *meta = json_object_get(rec, "last_n_response_meta");
	if (meta && !json_is_null(meta)) {
		if (!json_is_array(meta))
			return fail(err, "invalid_field", "last_n_response_meta", "expected an array");
		c->last_meta = meta;
	}
	if (read_mood(c, rec, err) < 0 || read_context(c, rec, err) < 0 || read_intent(c, rec, err) < 0 ||
	    read_knowledge(c, rec, err) < 0 || read_blocks(c, rec, err) < 0)
		return -1;
	return 0;
}
