/* query.c — the user's message embedded as a search query (§13 phase 2),
 * by the model that embedded the history it searches.
 *
 * unde-embed stores messages' vectors through lib/embed_cohere.h's chain
 * (Cohere with input_type "search_document", else the local n-gram
 * embedder) and records the model with each. The query goes through the
 * same chain with input_type "search_query": when Cohere answers, the
 * shard's search compares it only with Cohere-embedded messages of that
 * model (SIMILARITY_THRESHOLD); when Cohere has no key, fails or is late,
 * the local embedder stands in and only locally embedded messages are
 * compared (LOCAL_SIMILARITY_THRESHOLD: its cosines run lower). Vectors of
 * two models are never compared (shard_search_model). */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "conf.h"
#include "embed_cohere.h"
#include "embed_local.h"
#include "llm.h"
#include "log.h"

static struct embed_conf qconf;
static int qconf_loaded;

json_t *query_embed(struct turn *t, struct deadline dl, struct shard_search_opts *so, char *model,
		    size_t mlen, struct counters *k)
{
	if (!qconf_loaded) {
		embed_conf_load(&qconf, NULL);
		qconf_loaded = 1;
	}
	struct chain_result res;
	const json_t *v = embed_text(&qconf, t->message, "search_query", dl, &res);
	const char *m = json_string_value(json_object_get(res.answer, "model"));
	snprintf(model, mlen, "%s", v && m ? m : EMBED_LOCAL_MODEL);
	/* SIMILARITY_THRESHOLD (0.5) is the spec's for Cohere's vectors; the
	 * local n-gram model's cosines run lower (one shared word among several
	 * gives 0.25–0.45, unrelated sentences stay under 0.15), so a query it
	 * embeds is compared with its own threshold */
	if (!strcmp(model, EMBED_LOCAL_MODEL))
		so->threshold = conf_double("LOCAL_SIMILARITY_THRESHOLD", 0.2, 0, 1);
	json_decref(t->query);
	t->query = json_pack("{s:s, s:s}", "provider", res.provider[0] ? res.provider : "none", "model",
			     v ? model : "");
	if (json_array_size(res.skipped)) {
		json_object_set(t->query, "providers_skipped", res.skipped);
		/* Cohere was meant to embed it (a key is set) and did not */
		if (!qconf.local_only && provider_configured(&embed_cohere))
			counters_add(k, "llm_query_embedding_fallbacks", NULL, 1);
	}
	json_t *out = v ? json_deep_copy(v) : NULL;
	if (!v)
		log_event(LOG_INFO, "the query has no embedding; full-text search only",
			  json_pack("{s:s}", "why", res.message));
	chain_result_free(&res);
	return out;
}

void query_note_hits(struct turn *t)
{
	if (!t->query || !t->episodes)
		return;
	json_t *hits = json_array();
	size_t i;
	const json_t *e;
	json_array_foreach(t->episodes, i, e)
	{
		double v = json_number_value(json_object_get(e, "vec_score"));
		if (v > 0)
			json_array_append_new(hits, json_pack("{s:O, s:f}", "id", json_object_get(e, "id"), "vec_score", v));
	}
	json_object_set_new(t->query, "vector_hits", hits);
}
