/* sensors.c — the three sibling frames of a turn (spec §13, phase 1–2).
 *
 * The pipe `unde-mood | unde-context | unde-persona | unde-llm` brings
 * mood_frame, context_frame and persona in the record; behind unde-httpd
 * the record may come bare, and what it lacks is asked of MOOD_AGENT_URL
 * (POST /analyze), CONTEXT_AGENT_URL (POST /context) and PERSONA_AGENT_URL
 * (POST /persona), each in its own thread so the waits overlap. A sensor
 * that fails, is late or is not configured is replaced by its default
 * frame and counted (llm_orchestrator_sensor_defaults_total{sensor}):
 * never a failed turn. */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "http.h"
#include "llm.h"
#include "log.h"
#include "svc.h"
#include "util.h"

json_t *default_mood_frame(void)
{
	return json_pack("{s:s, s:{s:f, s:f, s:f}, s:{s:f, s:f, s:f, s:f}, s:{s:f, s:s, s:s},"
			 " s:s, s:b}",
			 "mood_frame_id", "default", "emotion", "valence", 0.0, "arousal", 0.4,
			 "dominance", 0.5, "signals", "frustration", 0.0, "urgency", 0.0, "confidence",
			 0.5, "fatigue", 0.0, "style_params", "warmth", 0.5, "tempo", "normal",
			 "response_length", "medium", "provider", "default", "default", 1);
}

json_t *default_context_frame(void)
{
	return json_pack("{s:s, s:{s:s}, s:[], s:b}", "context_frame_id", "default", "location",
			 "type", "unknown", "opportunities", "default", 1);
}

json_t *default_persona(void)
{
	const char *directive =
		"You are UNDE, a personal fashion assistant: honest, tasteful, on the user's side. "
		"Be polite and attentive; keep replies to a few sentences. Never pressure the user, "
		"never invent scarcity, never comment on the user's body.";
	return json_pack("{s:{s:s}, s:{s:s, s:f, s:f}, s:{s:s, s:s}, s:{s:s}, s:b}",
			 "persona_directive", "text", directive, "voice_params", "preset",
			 "neutral_confident", "warmth", 0.5, "tempo", 1.0, "avatar_state",
			 "expression", "neutral", "listen_state", "attentive", "render_hints",
			 "expression", "neutral", "default", 1);
}

struct sensor_call {
	const char *service, *path, *key; /* "mood-agent", "/analyze", "mood_frame" */
	json_t *body;                     /* owned */
	struct deadline dl;
	char request_id[128];
	pthread_t th;
	int started;
	json_t *frame; /* owned on success */
	char why[128];
};

/* The thread: one sibling call; the frame is the answer's key (or the
 * whole answer when the sibling answers with the frame itself). */
static void *sensor_thread(void *p)
{
	struct sensor_call *s = p;
	log_set_request_id(s->request_id[0] ? s->request_id : NULL);
	struct svc_answer a;
	if (svc_call(s->service, s->path, s->body, s->dl, &a) == 0) {
		json_t *f = json_object_get(a.answer, s->key);
		if (json_is_object(f))
			s->frame = json_incref(f);
		else
			snprintf(s->why, sizeof s->why, "the answer has no %s object", s->key);
	} else {
		snprintf(s->why, sizeof s->why, "%s", a.code);
	}
	svc_answer_free(&a);
	http_thread_cleanup();
	return NULL;
}

static int sensor_configured(const char *service)
{
	char var[64];
	size_t k = 0;
	for (const char *c = service; *c && k + 5 < sizeof var; c++)
		var[k++] = *c == '-' ? '_' : (char)(*c >= 'a' && *c <= 'z' ? *c - 32 : *c);
	memcpy(var + k, "_URL", 5);
	const char *v = conf_str(var, NULL);
	return v && *v;
}

static void sensor_start(struct sensor_call *s, const struct turn *t, struct deadline dl)
{
	s->dl = dl;
	snprintf(s->request_id, sizeof s->request_id, "%s", t->request_id ? t->request_id : "");
	if (!sensor_configured(s->service)) {
		snprintf(s->why, sizeof s->why, "not_configured");
		return;
	}
	if (pthread_create(&s->th, NULL, sensor_thread, s) == 0)
		s->started = 1;
	else
		snprintf(s->why, sizeof s->why, "no_thread");
}

/* Join a sensor and put its frame (or the default) in *out. */
static void sensor_join(struct sensor_call *s, struct turn *t, const char *name, json_t **out,
			json_t *(*def)(void), struct counters *k)
{
	if (s->started)
		pthread_join(s->th, NULL);
	json_decref(s->body);
	s->body = NULL;
	if (s->frame) {
		*out = s->frame;
		json_object_set_new(t->sensors, name, json_string("agent"));
		return;
	}
	*out = def();
	json_object_set_new(t->sensors, name, json_string("default"));
	json_t *why = json_object_get(t->sensors, "defaults_why");
	if (!json_is_object(why)) {
		why = json_object();
		json_object_set_new(t->sensors, "defaults_why", why);
	}
	json_object_set_new(why, name, json_string(s->why));
	struct buf lb = { 0 };
	counters_label(&lb, "sensor", name);
	counters_add(k, "llm_orchestrator_sensor_defaults_total", lb.data, 1);
	buf_free(&lb);
	log_event(LOG_WARN, "sensor replaced by its default frame",
		  json_pack("{s:s, s:s}", "sensor", name, "why", s->why));
}

void sensors_frames(struct turn *t, const json_t *rec, struct deadline dl, struct counters *k)
{
	struct sensor_call mood = { .service = "mood-agent", .path = "/analyze", .key = "mood_frame" };
	struct sensor_call ctx = { .service = "context-agent", .path = "/context",
				   .key = "context_frame" };
	const json_t *m = json_object_get(rec, "mood_frame"), *c = json_object_get(rec, "context_frame");
	if (json_is_object(m)) {
		t->mood = json_incref((json_t *)m);
		json_object_set_new(t->sensors, "mood", json_string("pipe"));
	} else {
		mood.body = json_pack("{s:s, s:s, s:s?}", "user_id", t->user_id, "text", t->message,
				      "request_id", t->request_id);
		sensor_start(&mood, t, dl);
	}
	if (json_is_object(c)) {
		t->context = json_incref((json_t *)c);
		json_object_set_new(t->sensors, "context", json_string("pipe"));
	} else {
		ctx.body = json_pack("{s:s, s:s?}", "user_id", t->user_id, "request_id", t->request_id);
		static const char *const keys[] = { "lat", "lng", "mall_id", "timezone", NULL };
		for (int i = 0; keys[i]; i++)
			if (json_object_get(rec, keys[i]))
				json_object_set(ctx.body, keys[i], json_object_get(rec, keys[i]));
		sensor_start(&ctx, t, dl);
	}
	if (!t->mood)
		sensor_join(&mood, t, "mood", &t->mood, default_mood_frame, k);
	if (!t->context)
		sensor_join(&ctx, t, "context", &t->context, default_context_frame, k);
}

struct persona_call {
	struct sensor_call s;
};

struct persona_call *sensors_persona_start(struct turn *t, const json_t *rec, struct deadline dl)
{
	const json_t *p = json_object_get(rec, "persona");
	if (json_is_object(p)) {
		t->persona = json_incref((json_t *)p);
		json_object_set_new(t->sensors, "persona", json_string("pipe"));
		return NULL;
	}
	struct persona_call *pc = xcalloc(1, sizeof *pc);
	pc->s.service = "persona-agent";
	pc->s.path = "/persona";
	pc->s.key = "persona";
	pc->s.body = json_pack("{s:s, s:O, s:O, s:s, s:s?}", "user_id", t->user_id, "mood_frame",
			       t->mood, "context_frame", t->context, "user_intent",
			       t->intent ? t->intent : "chat", "request_id", t->request_id);
	sensor_start(&pc->s, t, dl);
	return pc;
}

void sensors_persona_join(struct persona_call *pc, struct turn *t, struct counters *k)
{
	if (!pc)
		return;
	sensor_join(&pc->s, t, "persona", &t->persona, default_persona, k);
	free(pc);
}
