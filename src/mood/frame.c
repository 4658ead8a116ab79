/* frame.c — the mood_frame and its derived parameters (see frame.h). */
#include "config.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "frame.h"
#include "util.h"

static double clamp(double v, double lo, double hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/* Round to three decimals, so frames stay small and stable in tests. */
static double r3(double v)
{
	return round(v * 1000.0) / 1000.0;
}

static int num_in(const json_t *o, const char *key, double *out)
{
	const json_t *v = json_object_get(o, key);
	if (!json_is_number(v))
		return -1;
	double d = json_number_value(v);
	if (!(d >= 0 && d <= 1))
		return -1;
	*out = d;
	return 0;
}

int mood_prev_from_json(const json_t *frame, struct mood_prev *out, char *why, size_t whylen)
{
	memset(out, 0, sizeof *out);
	if (!json_is_object(frame)) {
		snprintf(why, whylen, "previous_mood_frame is not an object");
		return -1;
	}
	const json_t *em = json_object_get(frame, "emotion");
	if (num_in(em, "valence", &out->valence) || num_in(em, "arousal", &out->arousal)) {
		snprintf(why, whylen,
			 "previous_mood_frame.emotion needs valence and arousal numbers in [0,1]");
		return -1;
	}
	const json_t *base = json_object_get(frame, "smoothed_baseline");
	if (base) {
		if (num_in(base, "valence", &out->base_valence) ||
		    num_in(base, "arousal", &out->base_arousal)) {
			snprintf(why, whylen, "previous_mood_frame.smoothed_baseline needs valence "
					      "and arousal numbers in [0,1]");
			return -1;
		}
	} else {
		out->base_valence = out->valence;
		out->base_arousal = out->arousal;
	}
	out->have = 1;
	return 0;
}

/* One step of exponential smoothing from base toward x. A jump larger
 * than the spike threshold is cut to the threshold and followed at half
 * the rate: one outburst moves the baseline a little, not a lot. Sets
 * *spiked. */
static double smooth(double base, double x, const struct mood_settings *cfg, int *spiked)
{
	double d = x - base;
	double alpha = cfg->smoothing;
	if (fabs(d) > cfg->spike_threshold) {
		d = d > 0 ? cfg->spike_threshold : -cfg->spike_threshold;
		alpha *= 0.5;
		*spiked = 1;
	}
	return clamp(base + alpha * d, 0, 1);
}

static void timestamp_now(char out[32])
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

json_t *mood_frame_build(const struct mood_reading *r, const struct mood_prev *prev,
			 const struct mood_settings *cfg, const char *provider)
{
	assert(r && prev && cfg && provider);
	char id[37], ts[32];
	util_uuid4(id);
	timestamp_now(ts);

	/* smoothing */
	int spiked = 0;
	double bv = r->valence, ba = r->arousal;
	if (prev->have) {
		bv = smooth(prev->base_valence, r->valence, cfg, &spiked);
		ba = smooth(prev->base_arousal, r->arousal, cfg, &spiked);
	}

	/* topic: a reversal is valence crossing neutral by a clear step */
	int reversal = 0;
	if (prev->have) {
		double a = prev->valence - 0.5, b = r->valence - 0.5;
		reversal = a * b < 0 && fabs(a) >= 0.1 && fabs(b) >= 0.1 &&
			   fabs(r->valence - prev->valence) >= 0.3;
	}
	int thread_break = r->thread_break || (r->topic_shift && reversal);
	int shift = r->topic_shift || thread_break;
	const char *action = thread_break ? "reset_thread"
			     : reversal   ? "acknowledge_reversal"
			     : shift      ? "follow_shift"
					  : "continue";

	/* style */
	double fr = r->frustration, fa = r->fatigue, ur = r->urgency;
	double warmth = clamp(0.55 + 0.3 * (bv - 0.5) + 0.25 * fr + 0.2 * fa - 0.1 * ur, 0, 1);
	int defuse = fr >= 0.6;
	const char *tempo = (fa >= 0.5 || fr >= 0.6) ? "slow" : ur >= 0.6 ? "fast" : "normal";
	const char *length = (ur >= 0.6 || fr >= 0.6 || fa >= 0.6) ? "short"
			     : (r->confidence < 0.35 && r->arousal < 0.6) ? "long"
									  : "medium";
	int ask = r->confidence < 0.35;
	double tension = clamp(0.6 * fr + 0.3 * ur + 0.4 * fmax(0, ba - 0.5), 0, 1);
	double tempo_n = clamp(1.0 + 0.3 * ur - 0.3 * fa - 0.2 * fr, 0.5, 1.5);
	const char *gesture = thread_break ? "reset"
			      : reversal   ? "empathy"
			      : shift      ? "topic_switch"
			      : defuse     ? "calm"
					   : NULL;
	const char *expr = (fa >= 0.5 || fr >= 0.6) ? "low"
			   : (r->arousal >= 0.65 && r->valence >= 0.6) ? "high"
								       : "moderate";

	json_t *f = json_pack(
	    "{s:s, s:s, s:{s:f, s:f, s:f}, s:{s:f, s:f, s:f, s:f}, s:{s:f, s:f},"
	    " s:{s:b, s:b, s:b, s:s},"
	    " s:{s:f, s:s, s:s, s:b, s:b},"
	    " s:{s:f, s:f, s:f, s:o},"
	    " s:{s:f, s:f, s:f, s:s}, s:s, s:b}",
	    "mood_frame_id", id, "timestamp", ts,
	    "emotion", "valence", r3(r->valence), "arousal", r3(r->arousal), "dominance",
	    r3(r->dominance),
	    "signals", "frustration", r3(fr), "urgency", r3(ur), "confidence", r3(r->confidence),
	    "fatigue", r3(fa),
	    "smoothed_baseline", "valence", r3(bv), "arousal", r3(ba),
	    "topic", "shift_detected", shift, "emotional_reversal", reversal, "thread_break",
	    thread_break, "action", action,
	    "style_params", "warmth", r3(warmth), "tempo", tempo, "response_length", length,
	    "ask_clarification", ask, "defuse_first", defuse,
	    "rive_params", "warmth", r3(warmth), "tension", r3(tension), "tempo", r3(tempo_n),
	    "gesture", gesture ? json_string(gesture) : json_null(),
	    "voice_params", "warmth", r3(warmth), "tempo", r3(tempo_n), "tension", r3(tension),
	    "expressiveness", expr,
	    "provider", provider, "spike_damped", spiked);
	assert(f);
	return f;
}
