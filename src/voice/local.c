/* local.c — the local provider: espeak-ng speaks the text as 16-bit PCM,
 * LAME turns it into MP3 of the same format ElevenLabs answers with
 * (44.1 kHz, 128 kbit/s CBR, mono), and each piece of MP3 goes to the sink
 * as soon as LAME has it: espeak-ng hands over PCM every buffer_ms of
 * speech, so the first chunk leaves after the first words, not after the
 * whole reply. espeak-ng keeps global state and is not reentrant: one
 * synthesis at a time per process, which is how a filter runs. */
#include "config.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <espeak-ng/speak_lib.h>
#include <lame.h>

#include "log.h"
#include "voice.h"

static int local_rate; /* espeak-ng's sample rate, 0 before local_init */

/* The one synthesis running: what the espeak-ng callback writes to. */
static struct {
	lame_global_flags *lame;
	struct voice_sink *sink;
	unsigned char *mp3;
	size_t mp3cap;
	long samples;
	double first_byte_ms;
	int failed;      /* LAME refused, or the sink asked to stop */
} cur;

static int clampi(double x, int lo, int hi)
{
	long v = lround(x);
	return v < lo ? lo : v > hi ? hi : (int)v;
}

/* Cyrillic letters outnumber Latin ones: the Russian voice; else English. */
static const char *local_voice_for(const char *text)
{
	size_t cyr = 0, lat = 0;
	const unsigned char *s = (const unsigned char *)text;
	for (; *s; s++) {
		if ((*s == 0xd0 || *s == 0xd1) && (s[1] & 0xc0) == 0x80) {
			cyr++;
			s++;
		} else if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')) {
			lat++;
		}
	}
	return cyr > lat ? "ru" : "en";
}

void local_settings_for(const struct voice_params *vp, const char *text, const char *voice,
			struct local_settings *out)
{
	out->rate = clampi(175.0 * vp->tempo, 80, 450);
	out->pitch = clampi(50.0 + 30.0 * (vp->tension - 0.3) - 20.0 * (vp->warmth - 0.5), 0, 100);
	const char *e = vp->expressiveness ? vp->expressiveness : "moderate";
	out->amplitude = strcmp(e, "low") == 0 ? 80 : strcmp(e, "high") == 0 ? 120 : 100;
	snprintf(out->voice, sizeof out->voice, "%s", voice && *voice ? voice : local_voice_for(text));
}

/* Hand LAME's output to the sink; the first byte's time is kept. */
static void local_emit(int n)
{
	if (n < 0) {
		cur.failed = 1;
		return;
	}
	if (n == 0 || cur.failed)
		return;
	if (!cur.first_byte_ms)
		cur.first_byte_ms = util_now_ms();
	if (cur.sink->write(cur.sink->ctx, cur.mp3, (size_t)n) != 0)
		cur.failed = 1;
}

/* Room for LAME's worst case for n samples (its documented 1.25 n + 7200). */
static void local_room(size_t n)
{
	size_t need = n + n / 4 + 7200;
	if (need > cur.mp3cap) {
		cur.mp3 = xrealloc(cur.mp3, need);
		cur.mp3cap = need;
	}
}

/* espeak-ng's synthesis callback: PCM in, MP3 out. Returning 1 aborts. */
static int local_on_pcm(short *wav, int n, espeak_EVENT *events)
{
	(void)events;
	if (!wav || n <= 0 || cur.failed)
		return cur.failed;
	cur.samples += n;
	local_room((size_t)n);
	local_emit(lame_encode_buffer(cur.lame, wav, wav, n, cur.mp3, (int)cur.mp3cap));
	return cur.failed;
}

int local_init(int buffer_ms)
{
	if (local_rate)
		return 0;
	int rate = espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, buffer_ms, NULL, espeakINITIALIZE_DONT_EXIT);
	if (rate <= 0) {
		log_event(LOG_ERROR, "espeak-ng cannot start (is espeak-ng-data installed?)",
			  json_pack("{s:i}", "rc", rate));
		return -1;
	}
	espeak_SetSynthCallback(local_on_pcm);
	local_rate = rate;
	return 0;
}

void local_finish(void)
{
	if (local_rate)
		espeak_Terminate();
	local_rate = 0;
	free(cur.mp3);
	memset(&cur, 0, sizeof cur);
}

/* A LAME encoder for espeak-ng's mono PCM, resampled to the output format. */
static lame_global_flags *local_encoder(void)
{
	lame_global_flags *g = lame_init();
	if (!g)
		return NULL;
	lame_set_in_samplerate(g, local_rate);
	lame_set_num_channels(g, 1);
	lame_set_mode(g, MONO);
	lame_set_out_samplerate(g, VOICE_SAMPLE_RATE_OUT);
	lame_set_brate(g, VOICE_BITRATE_KBPS);
	lame_set_VBR(g, vbr_off);
	lame_set_quality(g, 7); /* fast: speech, and latency matters more */
	lame_set_bWriteVbrTag(g, 0);
	if (lame_init_params(g) < 0) {
		lame_close(g);
		return NULL;
	}
	return g;
}

int local_speak(const char *text, const struct local_settings *ls, struct voice_sink *sink,
		long *samples, int *sample_rate, double *first_byte_ms, char *err, size_t errlen)
{
	assert(local_rate > 0);
	*samples = 0;
	*first_byte_ms = 0;
	*sample_rate = local_rate;
	if (espeak_SetVoiceByName(ls->voice) != EE_OK) {
		snprintf(err, errlen, "espeak-ng has no voice '%s'", ls->voice);
		return -1;
	}
	espeak_SetParameter(espeakRATE, ls->rate, 0);
	espeak_SetParameter(espeakPITCH, ls->pitch, 0);
	espeak_SetParameter(espeakVOLUME, ls->amplitude, 0);
	cur.lame = local_encoder();
	if (!cur.lame) {
		snprintf(err, errlen, "LAME refused the encoder settings");
		return -1;
	}
	cur.sink = sink;
	cur.samples = 0;
	cur.first_byte_ms = 0;
	cur.failed = 0;
	espeak_ERROR rc = espeak_Synth(text, strlen(text) + 1, 0, POS_CHARACTER, 0,
				       espeakCHARS_UTF8, NULL, NULL);
	if (rc == EE_OK)
		rc = espeak_Synchronize();
	if (rc == EE_OK && !cur.failed) {
		local_room(0);
		local_emit(lame_encode_flush(cur.lame, cur.mp3, (int)cur.mp3cap));
	}
	lame_close(cur.lame);
	cur.lame = NULL;
	*samples = cur.samples;
	*first_byte_ms = cur.first_byte_ms;
	if (rc != EE_OK) {
		snprintf(err, errlen, "espeak-ng failed to synthesize (error %d)", (int)rc);
		return -1;
	}
	if (cur.failed) {
		snprintf(err, errlen, "synthesis stopped: the encoder failed or the output is gone");
		return -1;
	}
	if (cur.samples == 0) {
		snprintf(err, errlen, "espeak-ng produced no audio for this text");
		return -1;
	}
	return 0;
}
