/* frame.h — from a reading of one message to the spec's mood_frame (§11):
 * smoothing against the previous frame, spike damping, topic changes, and
 * the style / Rive / voice parameters. The formulas are in unde-mood(1). */
#ifndef UNDE_MOOD_FRAME_H
#define UNDE_MOOD_FRAME_H

#include <jansson.h>

#include "classify.h"

struct mood_settings {
	double smoothing;       /* MOOD_SMOOTHING_FACTOR, 0.3 */
	double spike_threshold; /* MOOD_SPIKE_THRESHOLD, 0.5 */
};

/* What is kept of the previous frame. */
struct mood_prev {
	int have;
	double valence, arousal;       /* its emotion */
	double base_valence, base_arousal; /* its smoothed_baseline */
};

/* Read a previous mood_frame object (from the input or the shard). Returns
 * 0, or -1 with why when it is not a frame in the spec's shape. */
int mood_prev_from_json(const json_t *frame, struct mood_prev *out, char *why, size_t whylen);

/* A new mood_frame object for reading r (its "provider" key says who read). */
json_t *mood_frame_build(const struct mood_reading *r, const struct mood_prev *prev,
			 const struct mood_settings *cfg, const char *provider);

#endif
