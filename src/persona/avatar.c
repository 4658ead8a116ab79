/* avatar.c — the AvatarDirector: the Rive avatar's expression, energy
 * level, listen state and reactive gestures, from the tone mode, the
 * mood's arousal and the stage (a wink only from stage 2). */
#include "config.h"

#include <math.h>
#include <string.h>

#include "persona.h"

json_t *avatar_director(const struct persona_ctx *c)
{
	const struct tone_mode *t = &TONE_MODES[c->d[D_TONE].value];
	double energy = c->has_mood ? 0.7 * t->energy + 0.3 * c->arousal : t->energy;
	energy = round((energy < 0 ? 0 : energy > 1 ? 1 : energy) * 1000) / 1000;
	json_t *g = json_array();
	for (int i = 0; t->gestures[i]; i++) {
		if (!strcmp(t->gestures[i], "wink") && !STAGE_LIMITS[c->stage].gestures_playful)
			continue;
		json_array_append_new(g, json_string(t->gestures[i]));
	}
	return json_pack("{s:s, s:f, s:s, s:o}", "expression", t->expression, "energy_level", energy,
			 "listen_state", t->listen_state, "reactive_gestures", g);
}
