/* eleven.c — the ElevenLabs provider (spec §12, upstreams.md §6):
 * POST {ELEVENLABS_API_URL}/v1/text-to-speech/{voice_id}[/stream]
 * ?output_format=mp3_44100_128 with xi-api-key, the body built by §12's
 * mapping exactly:
 *   stability = 0.4 + warmth × 0.3, similarity_boost = 0.7,
 *   style = min(1, tension + 0.3), use_speaker_boost = true,
 *   speed = tempo, plus previous_text / next_text when given.
 * The audio is handed to the sink chunk by chunk as it arrives (lib/http's
 * on_chunk), after its first bytes were checked to be MP3 (an ID3 tag or
 * an MPEG frame sync): an answer of anything else is a failure before the
 * first byte, so espeak-ng can still answer. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "http.h"
#include "log.h"
#include "voice.h"

#define ELEVEN_PROBE 3 /* bytes needed to tell MP3 from garbage */

int eleven_config(struct eleven_conf *ec)
{
	memset(ec, 0, sizeof *ec);
	ec->api_key = conf_str("ELEVENLABS_API_KEY", NULL);
	if (!ec->api_key || !*ec->api_key)
		return -1;
	ec->base_url = conf_str("ELEVENLABS_API_URL", "https://api.elevenlabs.io");
	ec->voice_id = conf_str("ELEVENLABS_VOICE_ID", NULL);
	if (!ec->voice_id || !*ec->voice_id)
		conf_die("ELEVENLABS_VOICE_ID", "is needed with ELEVENLABS_API_KEY (the avatar's voice)");
	for (const char *p = ec->voice_id; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
			conf_die("ELEVENLABS_VOICE_ID", "must be letters and digits");
	ec->model = conf_str("ELEVENLABS_MODEL", "eleven_v3_conversational");
	ec->timeout_ms = (long)(conf_double("ELEVENLABS_TIMEOUT", 5, 0.05, 120) * 1000.0);
	ec->max_attempts = (int)conf_long("ELEVENLABS_MAX_ATTEMPTS", 2, 1, 10);
	return 0;
}

void eleven_settings_line(const struct eleven_conf *ec, const struct voice_params *vp,
			  const char *prev, const char *next, struct buf *out)
{
	buf_printf(out, "elevenlabs voice=%s model=%s format=mp3_44100_128 warmth=%.3f tension=%.3f tempo=%.3f",
		   ec->voice_id, ec->model, vp->warmth, vp->tension, vp->tempo);
	/* the context changes the intonation: part of what the audio depends on */
	buf_printf(out, "\nprevious=%s\nnext=%s", prev ? prev : "", next ? next : "");
}

json_t *eleven_body(const struct eleven_conf *ec, const char *text, const struct voice_params *vp,
		    const char *prev, const char *next)
{
	json_t *b = json_pack("{s:s, s:s, s:{s:f, s:f, s:f, s:b, s:f}}", "text", text, "model_id",
			      ec->model, "voice_settings", "stability", 0.4 + vp->warmth * 0.3,
			      "similarity_boost", 0.7, "style", fmin(1.0, vp->tension + 0.3),
			      "use_speaker_boost", 1, "speed", vp->tempo);
	if (prev)
		json_object_set_new(b, "previous_text", json_string(prev));
	if (next)
		json_object_set_new(b, "next_text", json_string(next));
	return b;
}

struct eleven_rx {
	struct voice_sink *sink;
	unsigned char probe[ELEVEN_PROBE];
	size_t probed;
	int garbage;
	size_t delivered;
	double first_byte_ms;
};

static int eleven_is_mp3(const unsigned char *p)
{
	return (p[0] == 'I' && p[1] == 'D' && p[2] == '3') || (p[0] == 0xff && (p[1] & 0xe0) == 0xe0);
}

static int eleven_deliver(struct eleven_rx *rx, const unsigned char *d, size_t n)
{
	if (!n)
		return 0;
	if (!rx->first_byte_ms)
		rx->first_byte_ms = util_now_ms();
	rx->delivered += n;
	return rx->sink->write(rx->sink->ctx, d, n);
}

/* lib/http's on_chunk: hold the first bytes until they show MP3. */
static int eleven_on_chunk(void *ud, const char *data, size_t len)
{
	struct eleven_rx *rx = ud;
	const unsigned char *d = (const unsigned char *)data;
	if (rx->probed < ELEVEN_PROBE) {
		size_t take = ELEVEN_PROBE - rx->probed < len ? ELEVEN_PROBE - rx->probed : len;
		memcpy(rx->probe + rx->probed, d, take);
		rx->probed += take;
		d += take;
		len -= take;
		if (rx->probed < ELEVEN_PROBE)
			return 0;
		if (!eleven_is_mp3(rx->probe)) {
			rx->garbage = 1;
			return 1;
		}
		if (eleven_deliver(rx, rx->probe, ELEVEN_PROBE) != 0)
			return 1;
	}
	return eleven_deliver(rx, d, len) != 0;
}

/* What ElevenLabs said in a 4xx/5xx body ({"detail":{"status","message"}}
 * or FastAPI's [{"msg"}]), for the log: never the key. */
static void eleven_detail(const struct buf *body, char *out, size_t cap)
{
	json_t *j = json_loadb(body->data ? body->data : "", body->len, 0, NULL);
	const json_t *d = json_object_get(j, "detail");
	const char *st = json_string_value(json_object_get(d, "status"));
	const char *msg = json_string_value(json_object_get(d, "message"));
	if (!msg && json_is_array(d))
		msg = json_string_value(json_object_get(json_array_get(d, 0), "msg"));
	snprintf(out, cap, "%s%s%s", st ? st : "", st && msg ? ": " : "", msg ? msg : "");
	json_decref(j);
}

int eleven_speak(const struct eleven_conf *ec, const char *text, const struct voice_params *vp,
		 const char *prev, const char *next, int stream, struct deadline dl,
		 struct voice_sink *sink, double *first_byte_ms, struct eleven_failure *f)
{
	memset(f, 0, sizeof *f);
	*first_byte_ms = 0;
	struct buf url = {0};
	buf_printf(&url, "%s/v1/text-to-speech/%s%s?output_format=mp3_44100_128", ec->base_url,
		   ec->voice_id, stream ? "/stream" : "");
	char keyh[512];
	snprintf(keyh, sizeof keyh, "xi-api-key: %s", ec->api_key);
	const char *headers[] = { keyh, "Content-Type: application/json", "Accept: audio/mpeg", NULL };
	json_t *body = eleven_body(ec, text, vp, prev, next);
	char *btext = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	struct eleven_rx rx = { .sink = sink };
	struct deadline own = deadline_in(ec->timeout_ms);
	struct http_request req = {
		.method = "POST", .url = url.data, .headers = headers, .body = btext,
		.body_len = strlen(btext), .timeout_ms = ec->timeout_ms,
		.max_attempts = ec->max_attempts, .backoff_base_ms = 100, .backoff_max_ms = 1000,
		.max_response = 64u << 20, .deadline = deadline_min(dl, own),
		.on_chunk = eleven_on_chunk, .chunk_ud = &rx,
	};
	struct http_response resp;
	int rc = http_perform(&req, &resp);
	free(btext);
	buf_free(&url);
	*first_byte_ms = rx.first_byte_ms;
	f->delivered = rx.delivered;
	int ok = rc == 0 && resp.status >= 200 && resp.status < 300 && !rx.garbage &&
		 rx.delivered > 0 && !resp.error[0];
	if (!ok) {
		if (rx.garbage || (rc == 0 && resp.status == 200 && rx.delivered == 0 && !resp.error[0])) {
			snprintf(f->reason, sizeof f->reason, "garbage");
			snprintf(f->message, sizeof f->message, "ElevenLabs answered 200 with something that is not MP3");
		} else if (rc == 0 && resp.status >= 300) {
			char detail[200];
			eleven_detail(&resp.body, detail, sizeof detail);
			snprintf(f->reason, sizeof f->reason, "%ld", resp.status);
			snprintf(f->message, sizeof f->message, "ElevenLabs answered %ld%s%s",
				 resp.status, detail[0] ? ": " : "", detail);
		} else if (resp.timed_out || resp.deadline_cut) {
			snprintf(f->reason, sizeof f->reason, "timeout");
			snprintf(f->message, sizeof f->message, "ElevenLabs did not finish within %ld ms",
				 ms_left(own) == 0 ? ec->timeout_ms : ms_left(dl));
		} else {
			snprintf(f->reason, sizeof f->reason, rx.delivered ? "cut" : "transport");
			snprintf(f->message, sizeof f->message, "ElevenLabs: %s",
				 resp.error[0] ? resp.error : "no answer");
		}
		if (rx.delivered && strcmp(f->reason, "garbage") != 0 && strcmp(f->reason, "timeout") != 0)
			snprintf(f->reason, sizeof f->reason, "cut");
	}
	http_response_free(&resp);
	return ok ? 0 : -1;
}
