/* cache.c — the phrase cache: finished MP3 in object storage (lib/objstore),
 * so every process and every host behind the same bucket shares it, and a
 * greeting synthesized once is served from the store afterwards.
 *
 * Key: VOICE_CACHE_PREFIX (default "voice-cache/") + provider + "/" + then
 * "named/<cache_key>.mp3" when the caller names the phrase, else the hex
 * SHA-256 of the text, a newline and the provider's settings line (voice,
 * model, format and every voice parameter the provider uses) + ".mp3".
 * The provider is part of the key: ElevenLabs' audio and espeak-ng's are
 * different answers to the same request, and a fallback must not shadow
 * the real voice. Bounded: only phrases up to VOICE_CACHE_MAX_TEXT bytes
 * (default 200, the greetings and confirmations of §12) are cached unless
 * named; `unde-voice prune` (prune.c, daily from cron) bounds its age and
 * its size. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "conf.h"
#include "log.h"
#include "objstore.h"
#include "voice.h"

#define VOICE_CACHE_MAX_OBJECT (8u << 20)

struct voice_cache {
	struct objstore *os;
	const char *prefix;
	long max_text;
};

struct voice_cache *voice_cache_open(void)
{
	const char *mode = conf_str("VOICE_CACHE", "on");
	if (strcmp(mode, "off") == 0)
		return NULL;
	if (strcmp(mode, "on") != 0)
		conf_die("VOICE_CACHE", "must be on or off");
	const char *ep = conf_str("S3_ENDPOINT", NULL);
	if (!ep || !*ep) {
		log_msg(LOG_INFO, "phrase cache off: no S3_ENDPOINT");
		return NULL;
	}
	struct voice_cache *vc = xcalloc(1, sizeof *vc);
	vc->os = objstore_open();
	vc->prefix = conf_str("VOICE_CACHE_PREFIX", "voice-cache/");
	vc->max_text = conf_long("VOICE_CACHE_MAX_TEXT", 200, 0, 1 << 20);
	char probe[160];
	snprintf(probe, sizeof probe, "%sprobe", vc->prefix);
	if (!objstore_key_valid(probe))
		conf_die("VOICE_CACHE_PREFIX", "not usable as the start of an object key");
	return vc;
}

void voice_cache_close(struct voice_cache *vc)
{
	if (!vc)
		return;
	objstore_close(vc->os);
	free(vc);
}

char *voice_cache_key(const struct voice_cache *vc, const char *provider, const char *cache_key,
		      const char *text, const char *settings)
{
	struct buf b = {0};
	if (cache_key) {
		buf_printf(&b, "%s%s/named/%s.mp3", vc->prefix, provider, cache_key);
		return buf_take(&b);
	}
	if ((long)strlen(text) > vc->max_text)
		return NULL;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char h[32];
	unsigned int hl = 0;
	if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(md, text, strlen(text)) != 1 || EVP_DigestUpdate(md, "\n", 1) != 1 ||
	    EVP_DigestUpdate(md, settings, strlen(settings)) != 1 ||
	    EVP_DigestFinal_ex(md, h, &hl) != 1) {
		EVP_MD_CTX_free(md);
		return NULL;
	}
	EVP_MD_CTX_free(md);
	buf_printf(&b, "%s%s/", vc->prefix, provider);
	for (unsigned i = 0; i < hl; i++)
		buf_printf(&b, "%02x", h[i]);
	buf_printf(&b, ".mp3");
	return buf_take(&b);
}

int voice_cache_get(struct voice_cache *vc, const char *key, struct buf *out)
{
	struct objstore_error e;
	int rc = objstore_get(vc->os, key, out, VOICE_CACHE_MAX_OBJECT, &e);
	if (rc == OBJSTORE_OK && out->len > 0)
		return 1;
	if (rc == OBJSTORE_NOT_FOUND || rc == OBJSTORE_OK)
		return 0;
	log_event(LOG_WARN, "phrase cache read failed",
		  json_pack("{s:s, s:s, s:s}", "key", key, "code", e.code, "error", e.message));
	return -1;
}

void voice_cache_put(struct voice_cache *vc, const char *key, const void *data, size_t len)
{
	struct objstore_error e;
	if (objstore_put(vc->os, key, data, len, "audio/mpeg", &e) != OBJSTORE_OK)
		log_event(LOG_WARN, "phrase cache write failed",
			  json_pack("{s:s, s:s, s:s}", "key", key, "code", e.code, "error", e.message));
}

char *voice_base64(const unsigned char *data, size_t len)
{
	size_t cap = 4 * ((len + 2) / 3) + 1;
	char *out = xmalloc(cap);
	int n = len ? EVP_EncodeBlock((unsigned char *)out, data, (int)len) : 0;
	out[n < 0 ? 0 : n] = '\0';
	return out;
}
