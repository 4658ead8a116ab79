/* voice.c — the VoiceDirector: tone mode → one of the 6 voice presets,
 * then voice_params {warmth, tempo, tension, expressiveness} in the mood
 * frame's ranges (warmth, tension 0..1; tempo 0.7..1.2), which unde-voice
 * maps to ElevenLabs settings (§12). The profile's warmth tints warmth;
 * fatigue slows the tempo a little. */
#include "config.h"

#include <assert.h>
#include <math.h>

#include "persona.h"

static double clamp(double x, double lo, double hi)
{
	return x < lo ? lo : x > hi ? hi : x;
}

static double round3(double x)
{
	return round(x * 1000) / 1000;
}

json_t *voice_director(const struct persona_ctx *c)
{
	const struct tone_mode *t = &TONE_MODES[c->d[D_TONE].value];
	const struct voice_preset *p = contract_voice_preset(t->preset);
	assert(p);
	double warmth = clamp(0.8 * p->warmth + 0.2 * c->profile[F_WARMTH], 0, 1);
	double tempo = p->tempo * (c->fatigue >= 0.6 ? 0.95 : 1.0);
	tempo = clamp(tempo, 0.7, 1.2);
	double tension = clamp(p->tension, 0, 1);
	return json_pack("{s:s, s:f, s:f, s:f, s:s}", "preset", p->name, "warmth", round3(warmth), "tempo",
			 round3(tempo), "tension", round3(tension), "expressiveness", p->expressiveness);
}
