/* unde-voice — the Voice Server (spec §12): text + voice_params → speech,
 * as MP3 (AUDIO_FORMAT mp3_44100_128).
 *
 *   echo '{"text":"Привет!","voice_params":{"warmth":0.7,"tempo":1.0,"tension":0.2}}' \
 *     | unde-voice | jq -r .audio | base64 -d > hello.mp3
 *
 * Per record: the phrase cache (cache.c), then the providers in order —
 * ElevenLabs when ELEVENLABS_API_KEY is set, then espeak-ng, which always
 * answers — under the record's budget. Without "stream" the record gets
 * "audio" (the whole MP3, base64) and "tts" (provider, timings, size);
 * unde-httpd's POST /synthesize answers that as an audio/mpeg body. With
 * "stream":true (or --stream) the MP3 leaves as progress lines
 * {"stage":"audio","seq":N,"audio":…} of at most AUDIO_CHUNK_SIZE bytes, as
 * soon as they are made (at the latest STREAM_BUFFER_MS after the
 * previous one), and the record ends the reply with "stage":"done" and the
 * timings: what unde-httpd's WebSocket /stream turns into binary frames and
 * a final text frame. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "conf.h"
#include "filter.h"
#include "log.h"
#include "voice.h"

struct voice_state {
	int stream_all;        /* --stream */
	int local_only;        /* --local */
	long chunk_size;       /* AUDIO_CHUNK_SIZE */
	long buffer_ms;        /* STREAM_BUFFER_MS */
	long max_text;         /* VOICE_MAX_TEXT */
	struct voice_cache *cache;
	struct eleven_conf eleven;
	int have_eleven;
	long local_reserve_ms; /* VOICE_LOCAL_RESERVE_MS: kept for espeak-ng */
};

static struct voice_state vs;

static const struct filter_option voice_opts[] = {
	{ "stream", 0, NULL, "every record streams (as if it had \"stream\":true)",
	  .flag = &vs.stream_all },
	{ "local", 0, NULL, "espeak-ng only, even when ElevenLabs is configured",
	  .flag = &vs.local_only },
	{ 0 } };

static const struct filter_field voice_fields[] = {
	{ "text", FILTER_STRING, .required = 1 },
	{ "voice_params", FILTER_OBJECT, .required = 0 },
	{ "cache_key", FILTER_STRING, .max = 128 },
	{ "previous_text", FILTER_STRING, .max = 5000 },
	{ "next_text", FILTER_STRING, .max = 5000 },
	{ "voice", FILTER_STRING, .max = 31 },
	{ "stream", FILTER_BOOL, .required = 0 },
	{ 0 } };

int voice_params_parse(const json_t *vp, struct voice_params *out, char *err, size_t errlen)
{
	*out = (struct voice_params){ .warmth = 0.5, .tempo = 1.0, .tension = 0.2,
				      .expressiveness = "moderate" };
	if (!vp || json_is_null(vp))
		return 0;
	static const struct { const char *key; double lo, hi; size_t off; } nums[] = {
		{ "warmth", 0, 1, offsetof(struct voice_params, warmth) },
		{ "tempo", 0.5, 2, offsetof(struct voice_params, tempo) },
		{ "tension", 0, 1, offsetof(struct voice_params, tension) },
	};
	for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
		const json_t *v = json_object_get(vp, nums[i].key);
		if (!v || json_is_null(v))
			continue;
		double x = json_number_value(v);
		if (!json_is_number(v) || x < nums[i].lo || x > nums[i].hi) {
			snprintf(err, errlen, "voice_params.%s must be a number in %g..%g", nums[i].key,
				 nums[i].lo, nums[i].hi);
			return -1;
		}
		*(double *)((char *)out + nums[i].off) = x;
	}
	/* §11's mood frames say low / moderate / high, §16's persona presets
	 * (and §12's own example) calm / warm / lively: the same three levels */
	static const char *const levels[][2] = {
		{ "low", "low" }, { "calm", "low" }, { "moderate", "moderate" },
		{ "warm", "moderate" }, { "high", "high" }, { "lively", "high" },
	};
	const json_t *e = json_object_get(vp, "expressiveness");
	if (e && !json_is_null(e)) {
		const char *s = json_string_value(e);
		size_t i, n = sizeof levels / sizeof levels[0];
		for (i = 0; s && i < n && strcmp(s, levels[i][0]) != 0; i++)
			;
		if (!s || i == n) {
			snprintf(err, errlen, "voice_params.expressiveness must be low, moderate or high"
					      " (or persona's calm, warm, lively)");
			return -1;
		}
		out->expressiveness = levels[i][1];
	}
	return 0;
}

/* A cache_key names an object: [A-Za-z0-9._-], not starting with a dot. */
static int voice_cache_key_ok(const char *k)
{
	if (!*k || *k == '.')
		return 0;
	for (; *k; k++)
		if (!((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') || (*k >= '0' && *k <= '9') ||
		      *k == '.' || *k == '_' || *k == '-'))
			return 0;
	return 1;
}

/* One reply being made: the whole MP3 (for the cache and the non-streaming
 * answer) and, when streaming, what is not yet sent. */
struct reply {
	struct filter_run *run;
	int stream;
	struct buf all;
	size_t sent;          /* bytes of all already emitted as chunks */
	long seq;
	double last_emit_ms;
	double first_chunk_ms;
};

/* Emit all[sent..sent+n) as one progress line. */
static void reply_emit(struct reply *r, size_t n)
{
	char *b64 = voice_base64((const unsigned char *)r->all.data + r->sent, n);
	const char *rid = log_request_id();
	json_t *line = json_pack("{s:s, s:I, s:s, s:o}", "stage", "audio", "seq", (json_int_t)r->seq++,
				 "audio", b64, "request_id", rid ? json_string(rid) : json_null());
	free(b64);
	filter_emit(r->run, line);
	r->sent += n;
	r->last_emit_ms = util_now_ms();
	if (!r->first_chunk_ms)
		r->first_chunk_ms = r->last_emit_ms;
}

/* Send every full chunk, and what is pending once STREAM_BUFFER_MS has
 * passed since the last one (or, with final, everything). */
static void reply_pump(struct reply *r, int final)
{
	if (!r->stream)
		return;
	size_t chunk = (size_t)vs.chunk_size;
	while (r->all.len - r->sent >= chunk)
		reply_emit(r, chunk);
	size_t rest = r->all.len - r->sent;
	if (rest && (final || util_now_ms() - r->last_emit_ms >= (double)vs.buffer_ms))
		reply_emit(r, rest);
}

static int reply_write(void *ctx, const unsigned char *data, size_t len)
{
	struct reply *r = ctx;
	if (buf_append(&r->all, data, len) != 0)
		return -1;
	reply_pump(r, 0);
	return 0;
}

/* The end of a sentence: what is held goes out now, not after
 * STREAM_BUFFER_MS or the next AUDIO_CHUNK_SIZE bytes. */
static int reply_flush(void *ctx)
{
	reply_pump(ctx, 1);
	return 0;
}

/* Serve the phrase from the cache when it is there: 1 hit (audio in r),
 * 0 miss, -1 no cache. */
static int voice_try_cache(struct reply *r, const char *provider, const char *cache_key,
			   const char *text, const char *settings, const char **state,
			   double *first_byte_ms)
{
	if (!vs.cache)
		return -1;
	char *key = voice_cache_key(vs.cache, provider, cache_key, text, settings);
	if (!key)
		return 0;
	int rc = voice_cache_get(vs.cache, key, &r->all);
	free(key);
	if (rc != 1) {
		buf_reset(&r->all);
		return 0;
	}
	*state = "hit";
	*first_byte_ms = util_now_ms();
	return 1;
}

/* Keep ElevenLabs' audio for the next time this phrase is asked for. */
static void voice_cache_store(struct reply *r, const char *provider, const char *cache_key,
			      const char *text, const struct eleven_conf *ec,
			      const struct voice_params *vp, const char *prev, const char *next)
{
	if (!vs.cache)
		return;
	struct buf line = {0};
	eleven_settings_line(ec, vp, prev, next, &line);
	char *key = voice_cache_key(vs.cache, provider, cache_key, text, line.data);
	if (key)
		voice_cache_put(vs.cache, key, r->all.data, r->all.len);
	free(key);
	buf_free(&line);
}

/* The local provider's settings line: what its audio depends on. */
static void voice_local_settings_line(const struct local_settings *ls, char *out, size_t cap)
{
	snprintf(out, cap, "espeak-ng voice=%s rate=%d pitch=%d amplitude=%d format=mp3_44100_128",
		 ls->voice, ls->rate, ls->pitch, ls->amplitude);
}

static int voice_on_start(void *state, struct filter_run *run, int argc, char **argv)
{
	(void)state;
	(void)run;
	(void)argc;
	(void)argv;
	vs.chunk_size = conf_long("AUDIO_CHUNK_SIZE", 4096, 256, 1 << 20);
	vs.buffer_ms = conf_long("STREAM_BUFFER_MS", 100, 10, 10000);
	vs.max_text = conf_long("VOICE_MAX_TEXT", 5000, 1, 1 << 20);
	const char *fmt = conf_str("AUDIO_FORMAT", "mp3_44100_128");
	if (strcmp(fmt, "mp3_44100_128") != 0)
		conf_die("AUDIO_FORMAT", "only mp3_44100_128 is made (espeak-ng is encoded to it too)");
	vs.local_reserve_ms = conf_long("VOICE_LOCAL_RESERVE_MS", 1000, 0, 60000);
	vs.have_eleven = !vs.local_only && eleven_config(&vs.eleven) == 0;
	if (local_init((int)vs.buffer_ms) != 0)
		return EX_UNAVAILABLE;
	vs.cache = voice_cache_open();
	voice_metrics_open();
	return 0;
}

static void voice_on_finish(void *state, struct filter_run *run)
{
	(void)state;
	(void)run;
	voice_cache_close(vs.cache);
	local_finish();
	voice_metrics_close();
}

#define VOICE_FAIL(run, status, code, ...)                                               \
	(voice_metrics_count("voice_errors_total", "code=\"" code "\""), voice_metrics_flush(), \
	 filter_fail(run, status, code, __VA_ARGS__))

static int voice_on_record(void *state, struct filter_run *run, json_t *rec)
{
	(void)state;
	double t0 = util_now_ms();
	const char *text = json_string_value(json_object_get(rec, "text"));
	size_t tlen = json_string_length(json_object_get(rec, "text"));
	if (tlen == 0 || strspn(text, " \t\r\n") == tlen)
		return VOICE_FAIL(run, EX_DATAERR, "invalid_field", "text: nothing to say (empty)");
	if ((long)tlen > vs.max_text)
		return VOICE_FAIL(run, EX_DATAERR, "invalid_field",
				  "text: %zu bytes, over VOICE_MAX_TEXT (%ld)", tlen, vs.max_text);
	if (strlen(text) != tlen)
		return VOICE_FAIL(run, EX_DATAERR, "invalid_field", "text: contains a NUL character");
	struct voice_params vp;
	char err[256];
	if (voice_params_parse(json_object_get(rec, "voice_params"), &vp, err, sizeof err) != 0)
		return VOICE_FAIL(run, EX_DATAERR, "invalid_field", "%s", err);
	const char *cache_key = json_string_value(json_object_get(rec, "cache_key"));
	if (cache_key && !voice_cache_key_ok(cache_key))
		return VOICE_FAIL(run, EX_DATAERR, "invalid_field",
				  "cache_key: use only letters, digits, '.', '_' and '-' (not first '.')");
	const char *voice = json_string_value(json_object_get(rec, "voice"));
	int stream = vs.stream_all || json_is_true(json_object_get(rec, "stream"));

	const char *prev = json_string_value(json_object_get(rec, "previous_text"));
	const char *next = json_string_value(json_object_get(rec, "next_text"));

	struct reply r = { .run = run, .stream = stream, .last_emit_ms = t0 };
	struct voice_sink sink = { reply_write, &r, reply_flush };
	const char *provider = "local", *cache_state = vs.cache ? "miss" : "off";
	double first_byte_ms = 0;
	double duration_ms = 0;
	struct local_settings ls;
	local_settings_for(&vp, text, voice, &ls);
	int done = 0;
	/* ElevenLabs first, while it can still be fallen back from */
	if (vs.have_eleven && !vs.local_only) {
		struct buf line = {0};
		eleven_settings_line(&vs.eleven, &vp, prev, next, &line);
		int rc = voice_try_cache(&r, "elevenlabs", cache_key, text, line.data, &cache_state,
					 &first_byte_ms);
		buf_free(&line);
		if (rc == 1) {
			provider = "elevenlabs";
			done = 1;
		} else {
			struct deadline dl = deadline_less(filter_deadline(run), vs.local_reserve_ms);
			struct eleven_failure f;
			if (eleven_speak(&vs.eleven, text, &vp, prev, next, stream, dl, &sink,
					 &first_byte_ms, &f) == 0) {
				provider = "elevenlabs";
				done = 1;
				voice_cache_store(&r, "elevenlabs", cache_key, text, &vs.eleven, &vp, prev, next);
			} else {
				char labels[64];
				snprintf(labels, sizeof labels, "reason=\"%s\"", f.reason);
				voice_metrics_count("voice_elevenlabs_errors_total", labels);
				if (r.seq > 0) {
					/* the client has audio already: no second voice after it */
					buf_free(&r.all);
					voice_metrics_flush();
					return VOICE_FAIL(run, EX_TEMPFAIL, "upstream_cut",
							  "%s (after %ld chunks were sent)", f.message, r.seq);
				}
				log_event(LOG_WARN, "ElevenLabs failed, falling back to espeak-ng",
					  json_pack("{s:s, s:s}", "reason", f.reason, "error", f.message));
				buf_reset(&r.all);
				r.sent = 0;
				first_byte_ms = 0;
			}
		}
		if (done)
			duration_ms = (double)r.all.len * 8.0 / VOICE_BITRATE_KBPS;
	}
	if (!done) {
		char settings[256];
		voice_local_settings_line(&ls, settings, sizeof settings);
		if (voice_try_cache(&r, "local", cache_key, text, settings, &cache_state,
				    &first_byte_ms) == 1) {
			duration_ms = (double)r.all.len * 8.0 / VOICE_BITRATE_KBPS;
		} else {
			long samples = 0;
			int rate = 0;
			if (local_speak(text, &ls, &sink, &samples, &rate, &first_byte_ms, err,
					sizeof err) != 0) {
				buf_free(&r.all);
				return VOICE_FAIL(run, EX_SOFTWARE, "synthesis_failed", "%s", err);
			}
			duration_ms = rate ? 1000.0 * (double)samples / rate : 0;
			char *key = vs.cache ? voice_cache_key(vs.cache, "local", cache_key, text, settings)
					     : NULL;
			if (key)
				voice_cache_put(vs.cache, key, r.all.data, r.all.len);
			free(key);
		}
	}
	reply_pump(&r, 1);
	if (vs.cache)
		voice_metrics_count("voice_cache_total",
				    strcmp(cache_state, "hit") == 0 ? "result=\"hit\"" : "result=\"miss\"");
	double t1 = util_now_ms();
	double fb = (stream ? r.first_chunk_ms : first_byte_ms) - t0;
	char labels[96];
	snprintf(labels, sizeof labels, "phase=\"first_byte\",provider=\"%s\"", provider);
	voice_metrics_ms("voice_tts_latency_seconds", labels, fb);
	snprintf(labels, sizeof labels, "phase=\"total\",provider=\"%s\"", provider);
	voice_metrics_ms("voice_tts_latency_seconds", labels, t1 - t0);
	snprintf(labels, sizeof labels, "provider=\"%s\"", provider);
	voice_metrics_count("voice_requests_total", labels);
	voice_metrics_flush();

	int local = strcmp(provider, "local") == 0;
	json_t *tts = json_pack("{s:s, s:s, s:s, s:s, s:I, s:f, s:f, s:f, s:I}",
				"provider", provider, "voice", local ? ls.voice : vs.eleven.voice_id,
				"format", "mp3_44100_128",
				"cache", cache_state, "bytes", (json_int_t)r.all.len,
				"duration_ms", duration_ms, "first_byte_ms", fb, "total_ms", t1 - t0,
				"chunks", (json_int_t)r.seq);
	if (local)
		json_object_set_new(tts, "local",
				    json_pack("{s:i, s:i, s:i}", "rate", ls.rate, "pitch", ls.pitch,
					      "amplitude", ls.amplitude));
	else
		json_object_set_new(tts, "model", json_string(vs.eleven.model));
	json_object_set_new(rec, "tts", tts);
	if (stream) {
		json_object_set_new(rec, "stage", json_string("done"));
	} else {
		char *b64 = voice_base64((const unsigned char *)r.all.data, r.all.len);
		json_object_set_new(rec, "audio", json_string(b64));
		free(b64);
	}
	buf_free(&r.all);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "prune") == 0) {
		log_init("unde-voice");
		return voice_prune(argc - 1, argv + 1);
	}
	static const struct filter_def def = {
		.name = "unde-voice",
		.summary = "speak each record's text as MP3 (ElevenLabs, else espeak-ng), with a phrase cache",
		.synopsis = "[--stream] [--local] [OPTIONS] | prune [--dry-run] (see unde-voice(1))",
		.options = voice_opts,
		.fields = voice_fields,
		.max_operands = FILTER_NO_OPERANDS,
		.on_start = voice_on_start,
		.on_record = voice_on_record,
		.on_finish = voice_on_finish,
	};
	return filter_main(&def, &vs, argc, argv);
}
