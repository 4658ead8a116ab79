/* embed_cohere.c — the embedding chain of unde-embed and unde-llm
 * (embed_cohere.h): Cohere Embed v2, then the local embedder. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "conf.h"
#include "embed_cohere.h"
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

void embed_conf_load(struct embed_conf *c, const char *model_opt)
{
	const char *provider = conf_str("EMBEDDING_PROVIDER", "cohere");
	if (strcmp(provider, "cohere") != 0 && strcmp(provider, "local") != 0)
		conf_die("EMBEDDING_PROVIDER", "EMBEDDING_PROVIDER must be cohere or local");
	c->model = model_opt ? model_opt : conf_str("EMBEDDING_MODEL", "embed-multilingual-v3.0");
	c->dim = conf_long("EMBEDDING_DIM", 1024, 1, 16000);
	c->timeout_ms = (long)(conf_double("EMBEDDING_TIMEOUT", 10, 0.05, 600) * 1000);
	c->local_only = !strcmp(provider, "local") || !strcmp(c->model, EMBED_LOCAL_MODEL);
	if (c->local_only)
		c->model = EMBED_LOCAL_MODEL;
	c->expect = 0;
}

/* One query's embedding: the same chain as the stored messages', so the
 * two meet in one model whenever Cohere answers both. */
const json_t *embed_text(struct embed_conf *c, const char *text, const char *input_type,
			 struct deadline dl, struct chain_result *res)
{
	static const struct provider *const cohere_only[] = { &embed_cohere, NULL };
	static const struct provider *const none[] = { NULL };
	const struct chain ch = {
		.providers = c->local_only ? none : cohere_only,
		.local = embed_local_answer,
		.reserve_ms = 5, /* the local embedder takes well under a millisecond */
	};
	json_t *in = json_pack("{s:[s], s:s}", "texts", text, "input_type", input_type);
	c->expect = 1;
	chain_run(&ch, c, in, deadline_min(dl, deadline_in(c->timeout_ms)), res);
	json_decref(in);
	return res->answer ? json_array_get(json_object_get(res->answer, "vectors"), 0) : NULL;
}
