/* local.c — the local provider: espeak-ng speaks the text as 16-bit PCM,
 * LAME turns it into MP3 of the same format ElevenLabs answers with
 * (44.1 kHz, 128 kbit/s CBR, mono), and each piece of MP3 goes to the sink
 * as soon as LAME has it. The text is spoken sentence by sentence: at the
 * end of each one LAME's frames are flushed (gaplessly, so the sentences
 * join into one stream) and the sink is told to send what it holds, so
 * the first chunk leaves when the first sentence is made, not after the
 * whole reply; within a sentence espeak-ng hands over PCM every buffer_ms
 * of speech. espeak-ng keeps global state and is not reentrant: one
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

/* Is the UTF-8 character at s a lower-case letter (Latin or Cyrillic)? A
 * stop followed by one is an abbreviation ("т. е. это", "e. g. this"),
 * not the end of a sentence. */
static int local_lower_at(const unsigned char *s)
{
	if (*s >= 'a' && *s <= 'z')
		return 1;
	if (s[0] == 0xd0 && s[1] >= 0xb0 && s[1] <= 0xbf)
		return 1; /* а..п */
	return s[0] == 0xd1 && ((s[1] >= 0x80 && s[1] <= 0x8f) || s[1] == 0x91); /* р..я, ё */
}

size_t local_sentence_len(const char *text)
{
	const unsigned char *s = (const unsigned char *)text, *p = s;
	while (*p) {
		int stop = *p == '.' || *p == '!' || *p == '?';
		size_t w = 1;
		if (p[0] == 0xe2 && p[1] == 0x80 && p[2] == 0xa6) { /* … */
			stop = 1;
			w = 3;
		}
		if (*p == '\n') { /* a line break ends a sentence, whatever precedes it */
			while (*p == '\n' || *p == '\r' || *p == ' ' || *p == '\t')
				p++;
			return (size_t)(p - s);
		}
		if (!stop) {
			p++;
			continue;
		}
		p += w;
		/* the rest of the stop ("?!", "...") and closing quotes or brackets */
		for (;;) {
			if (*p == '.' || *p == '!' || *p == '?' || *p == '"' || *p == '\'' || *p == ')' ||
			    *p == ']')
				p++;
			else if ((p[0] == 0xc2 && p[1] == 0xbb) || (p[0] == 0xe2 && p[1] == 0x80 &&
								      (p[2] == 0xa6 || p[2] == 0x9d)))
				p += p[0] == 0xc2 ? 2 : 3; /* » … ” */
			else
				break;
		}
		if (*p && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
			continue; /* "3.5", "example.com": not an end */
		const unsigned char *q = p;
		while (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')
			q++;
		if (*q && local_lower_at(q))
			continue;
		return (size_t)(q - s);
	}
	return (size_t)(p - s);
}

/* Speak one sentence (len bytes of text) into the running encoder. */
static espeak_ERROR local_speak_one(const char *text, size_t len)
{
	char *one = xmalloc(len + 1);
	memcpy(one, text, len);
	one[len] = '\0';
	espeak_ERROR rc = espeak_Synth(one, len + 1, 0, POS_CHARACTER, 0, espeakCHARS_UTF8, NULL, NULL);
	if (rc == EE_OK)
		rc = espeak_Synchronize();
	free(one);
	return rc;
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
	espeak_ERROR rc = EE_OK;
	for (const char *p = text; *p && rc == EE_OK && !cur.failed;) {
		size_t n = local_sentence_len(p);
		rc = local_speak_one(p, n);
		p += n;
		if (rc != EE_OK || cur.failed)
			break;
		/* the sentence's last frames out now (the last one's after the loop) */
		if (*p) {
			local_room(0);
			local_emit(lame_encode_flush_nogap(cur.lame, cur.mp3, (int)cur.mp3cap));
			if (!cur.failed && sink->flush && sink->flush(sink->ctx) != 0)
				cur.failed = 1;
		}
	}
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
