/* cohere.c — unde-embed's provider chain: Cohere Embed v2 (wire format in
 * shared/upstreams.md §5) through lib/provider.h, then the local embedder
 * (lib/embed_local.h). A chain input is {"texts":[…≤96], "input_type"};
 * every answer is {"model", "vectors":[[dim floats]…]} with one vector per
 * text, checked here: a wrong count or dimension is a malformed answer,
 * never stored. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "embed.h"
#include "embed_local.h"

/* The model and dimension asked of Cohere (EMBEDDING_MODEL, _DIM). */
static int cohere_build(void *ud, const json_t *in, struct provider_request *rq, char *why,
			size_t whylen)
{
	const struct embed_conf *c = ud;
	(void)why, (void)whylen;
	snprintf(rq->path, sizeof rq->path, "/v2/embed");
	rq->body = json_pack("{s:s, s:O, s:O, s:[s], s:s}", "model", c->model, "texts",
			     json_object_get(in, "texts"), "input_type", json_object_get(in, "input_type"),
			     "embedding_types", "float", "truncate", "END");
	return 0;
}

/* {"embeddings":{"float":[[…]…]}} (v2) or {"embeddings":[[…]…]} (v1):
 * exactly one vector of c->dim numbers per text sent. */
static json_t *cohere_parse(void *ud, const json_t *body, char *why, size_t whylen)
{
	const struct embed_conf *c = ud;
	const json_t *e = json_object_get(body, "embeddings");
	if (json_is_object(e))
		e = json_object_get(e, "float");
	if (!json_is_array(e) || json_array_size(e) != c->expect) {
		snprintf(why, whylen, "embeddings: expected %zu vectors", c->expect);
		return NULL;
	}
	size_t i, j;
	const json_t *v, *x;
	json_array_foreach(e, i, v)
	{
		if (!json_is_array(v) || json_array_size(v) != (size_t)c->dim) {
			snprintf(why, whylen, "embeddings[%zu]: expected %ld numbers", i, c->dim);
			return NULL;
		}
		json_array_foreach(v, j, x) if (!json_is_number(x))
		{
			snprintf(why, whylen, "embeddings[%zu][%zu] is not a number", i, j);
			return NULL;
		}
	}
	return json_pack("{s:s, s:O}", "model", c->model, "vectors", e);
}

const struct provider embed_cohere = {
	.name = "cohere",
	.default_url = "https://api.cohere.com",
	.auth = PROVIDER_AUTH_BEARER,
	.build = cohere_build,
	.parse = cohere_parse,
};

json_t *embed_local_answer(void *ud, const json_t *in, char *why, size_t whylen)
{
	(void)ud;
	json_t *vecs = json_array();
	size_t i;
	const json_t *t;
	json_array_foreach(json_object_get(in, "texts"), i, t)
	{
		float v[EMBED_LOCAL_DIM];
		const char *s = json_string_value(t);
		if (embed_local(s, strlen(s), v) != 0) {
			snprintf(why, whylen, "texts[%zu] has no word to embed", i);
			json_decref(vecs);
			return NULL;
		}
		json_t *a = json_array();
		for (size_t k = 0; k < EMBED_LOCAL_DIM; k++)
			json_array_append_new(a, json_real(v[k]));
		json_array_append_new(vecs, a);
	}
	return json_pack("{s:s, s:o}", "model", EMBED_LOCAL_MODEL, "vectors", vecs);
}
