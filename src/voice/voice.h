/* voice.h — what the modules of unde-voice share.
 *
 * Every provider writes MP3 (the AUDIO_FORMAT mp3_44100_128 ElevenLabs
 * answers with) to a sink as the bytes are made, so a streaming request
 * sends its first chunk while the rest is still being synthesized, and a
 * whole-answer request collects them in a buffer. */
#ifndef UNDE_VOICE_VOICE_H
#define UNDE_VOICE_VOICE_H

#include <stddef.h>

#include <jansson.h>

#include "util.h"

#define VOICE_SAMPLE_RATE_OUT 44100
#define VOICE_BITRATE_KBPS 128

/* The record's voice_params (spec §11/§12), with their defaults. */
struct voice_params {
	double warmth;          /* 0..1, default 0.5 */
	double tempo;           /* ~0.7..1.2, default 1.0 */
	double tension;         /* 0..1, default 0.2 */
	const char *expressiveness; /* low | moderate | high */
};

/* Read voice_params (may be NULL: all defaults). 0, or -1 with err set. */
int voice_params_parse(const json_t *vp, struct voice_params *out, char *err, size_t errlen);

/* Where MP3 bytes go as they are made. write returns 0, or -1 to stop
 * the synthesis (the client is gone); flush (may be NULL) is called at
 * the end of each sentence the local provider speaks: send what is held. */
struct voice_sink {
	int (*write)(void *ctx, const unsigned char *data, size_t len);
	void *ctx;
	int (*flush)(void *ctx);
};

/* --- local.c: espeak-ng → PCM → LAME → MP3 ------------------------------ */

/* The espeak-ng settings a voice_params gives (documented in unde-voice(1)):
 *   rate  = 175 × tempo words per minute, within 80..450
 *   pitch = 50 + 30 × (tension − 0.3) − 20 × (warmth − 0.5), within 0..100
 *   amplitude = 80 (low), 100 (moderate), 120 (high expressiveness). */
struct local_settings {
	int rate, pitch, amplitude;
	char voice[32]; /* espeak-ng voice name: "ru", "en", or the record's */
};
void local_settings_for(const struct voice_params *vp, const char *text, const char *voice,
			struct local_settings *out);

/* The length of the first sentence of text, with the whitespace after it:
 * up to a run of . ! ? … (and closing quotes or brackets) followed by
 * whitespace and not by a lower-case letter, or a line break; all of text
 * when there is no such end. */
size_t local_sentence_len(const char *text);
/* Start espeak-ng (once per process). 0, or -1 after logging why. */
int local_init(int buffer_ms);
/* Speak text with the settings into sink, as MP3. Returns 0, or -1 with
 * err set; *samples gets the PCM length (22 050 Hz), *first_byte_ms when
 * the first MP3 byte reached the sink (util_now_ms clock; 0 when none). */
int local_speak(const char *text, const struct local_settings *ls, struct voice_sink *sink,
		long *samples, int *sample_rate, double *first_byte_ms, char *err, size_t errlen);
void local_finish(void);

/* --- eleven.c: ElevenLabs text-to-speech ---------------------------------- */

#include "deadline.h"

struct eleven_conf {
	const char *api_key, *base_url, *voice_id, *model;
	long timeout_ms;   /* ELEVENLABS_TIMEOUT: for the whole call, retries included */
	int max_attempts;  /* ELEVENLABS_MAX_ATTEMPTS (429/5xx/transport, within the timeout) */
};
/* Read ELEVENLABS_*; -1 when there is no key (the provider is off). */
int eleven_config(struct eleven_conf *ec);
/* The request body of §12's mapping (new reference). */
json_t *eleven_body(const struct eleven_conf *ec, const char *text, const struct voice_params *vp,
		    const char *prev, const char *next);
/* What the audio depends on, for the phrase cache's key. */
void eleven_settings_line(const struct eleven_conf *ec, const struct voice_params *vp,
			  const char *prev, const char *next, struct buf *out);

struct eleven_failure {
	char reason[16];     /* 401, 429, 500, …, timeout, transport, garbage, cut */
	char message[320];
	size_t delivered;    /* audio bytes handed to the sink before it failed */
};
/* Speak text into sink (streaming endpoint when stream) by dl and
 * ELEVENLABS_TIMEOUT. 0, or -1 with f filled in. */
int eleven_speak(const struct eleven_conf *ec, const char *text, const struct voice_params *vp,
		 const char *prev, const char *next, int stream, struct deadline dl,
		 struct voice_sink *sink, double *first_byte_ms, struct eleven_failure *f);

/* --- cache.c: the phrase cache in object storage ------------------------- */

struct voice_cache;
/* NULL when off (VOICE_CACHE=off, or no S3_ENDPOINT). */
struct voice_cache *voice_cache_open(void);
void voice_cache_close(struct voice_cache *vc);
/* The object key of a phrase (caller frees): VOICE_CACHE_PREFIX +
 * provider + "/" + either "named/<cache_key>" or the hex SHA-256 of
 * text, voice parameters, voice and model, + ".mp3". NULL when the phrase
 * is not cached (text longer than VOICE_CACHE_MAX_TEXT and no cache_key). */
char *voice_cache_key(const struct voice_cache *vc, const char *provider, const char *cache_key,
		      const char *text, const char *settings);
/* 1: found (audio appended to out), 0: missing, -1: the store failed (logged). */
int voice_cache_get(struct voice_cache *vc, const char *key, struct buf *out);
/* Store audio under key (failures are logged, not fatal). */
void voice_cache_put(struct voice_cache *vc, const char *key, const void *data, size_t len);

/* --- prune.c: `unde-voice prune`, the cache's eviction ------------------ */
/* argv[0] is "prune". Returns the exit status. */
int voice_prune(int argc, char **argv);

/* --- b64 ------------------------------------------------------------------ */
/* base64 of data (caller frees). */
char *voice_base64(const unsigned char *data, size_t len);

/* --- metrics.c ------------------------------------------------------------- */
void voice_metrics_open(void);
void voice_metrics_count(const char *name, const char *labels);
void voice_metrics_ms(const char *name, const char *labels, double ms);
void voice_metrics_flush(void);
void voice_metrics_close(void);

#endif
