/* metrics.c — unde-voice's §19 metrics over lib/counters (shared by every
 * process of the service): voice_tts_latency_seconds{phase=first_byte|
 * total, provider} (the spec's voice_tts_latency_ms, in seconds as
 * Prometheus wants), voice_elevenlabs_errors_total{reason},
 * voice_requests_total{provider}, voice_cache_total{result=hit|miss}.
 * voice_ws_connections is unde-httpd's, which holds the connections. With
 * UNDE_METRICS_DIR set, each record rewrites unde-voice.prom there for
 * node_exporter's textfile collector. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "counters.h"
#include "log.h"
#include "voice.h"

static struct counters *vk;

static const struct counters_help voice_help[] = {
	{ "voice_tts_latency_seconds", "histogram",
	  "Synthesis latency: phase=first_byte (time to the first audio byte) and phase=total." },
	{ "voice_requests_total", "counter", "Phrases synthesized or served from the cache, by provider." },
	{ "voice_elevenlabs_errors_total", "counter", "ElevenLabs calls that failed, by reason." },
	{ "voice_cache_total", "counter", "Phrase cache lookups, by result (hit, miss)." },
	{ "voice_errors_total", "counter", "Records refused or failed, by code." },
	{ "voice_cache_pruned_total", "counter", "Cached phrases removed by unde-voice prune, by reason (age, size)." },
	{ NULL, NULL, NULL },
};

void voice_metrics_open(void)
{
	if (!vk)
		vk = counters_open_service("unde-voice");
}

void voice_metrics_count(const char *name, const char *labels)
{
	if (vk)
		counters_add(vk, name, labels, 1);
}

void voice_metrics_ms(const char *name, const char *labels, double ms)
{
	if (vk)
		counters_observe_ms(vk, name, labels, ms);
}

void voice_metrics_flush(void)
{
	const char *dir = getenv("UNDE_METRICS_DIR");
	if (!vk || !dir || !*dir)
		return;
	char path[1024];
	snprintf(path, sizeof path, "%s/unde-voice.prom", dir);
	if (counters_write_textfile(vk, voice_help, path) != 0)
		log_msg(LOG_WARN, "metrics: cannot write %s", path);
}

void voice_metrics_close(void)
{
	voice_metrics_flush();
	counters_close(vk);
	vk = NULL;
}
