/* stylist.c — the stylist intent of §13 step 6: "что надеть с…", "подбери
 * образ" goes to Intelistyle for outfits, and its answer feeds the
 * ContextPack (block E) and the local responder.
 *
 * The request (our contract, documented in unde-llm(1) under INTELISTYLE;
 * shared/upstreams.md has no Intelistyle section):
 *
 *   POST $INTELISTYLE_API_URL/outfits          Authorization: Bearer KEY
 *   {"query": the message, "occasion": "wedding" | … | null,
 *    "gender": "female" | "male" | null, "items": [{sku, brand, name,
 *    category, colour}] (the catalog context), "max_outfits": 3}
 *   → 200 {"outfits": [{"id", "items": [{"sku", "role"}], "reason"}]}
 *
 * Intelistyle knows the retailers' feeds, not our stock: every SKU it
 * names is looked up in production (in stock, with store and price), and
 * one production does not have is dropped and counted, so neither the LLM
 * nor the local responder can name a product that does not exist. No key,
 * a failure, a timeout or garbage leave the turn without outfits (counted
 * in intelistyle_errors), never a failed turn. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "llm.h"
#include "log.h"
#include "pg.h"
#include "util.h"

#define STYLIST_MAX_OUTFITS 3
#define STYLIST_MAX_ITEMS 8   /* per outfit */
#define STYLIST_SKU_MAX 100   /* products.sku is VARCHAR(100) */
#define STYLIST_REASON_MAX 300 /* characters of a reason kept */

/* The request body from the turn the chain input carries. */
static int intelistyle_build(void *ud, const json_t *in, struct provider_request *rq, char *why,
			     size_t whylen)
{
	(void)ud, (void)why, (void)whylen;
	snprintf(rq->path, sizeof rq->path, "/outfits");
	rq->body = json_deep_copy(in);
	return 0;
}

/* {"outfits": [{"items": [{"sku": "…"}…], "reason"?}…]}: anything else is
 * a malformed answer. Answers {outfits: [{id?, reason, skus: […]}]}. */
static json_t *intelistyle_parse(void *ud, const json_t *body, char *why, size_t whylen)
{
	(void)ud;
	const json_t *outs = json_object_get(body, "outfits");
	if (!json_is_array(outs)) {
		snprintf(why, whylen, "outfits: expected an array");
		return NULL;
	}
	json_t *res = json_array();
	size_t i, j;
	const json_t *o, *it;
	json_array_foreach(outs, i, o)
	{
		const json_t *items = json_object_get(o, "items"), *reason = json_object_get(o, "reason");
		if (!json_is_object(o) || !json_is_array(items) || (reason && !json_is_string(reason) && !json_is_null(reason))) {
			snprintf(why, whylen, "outfits[%zu]: expected {items: [...], reason?: string}", i);
			json_decref(res);
			return NULL;
		}
		json_t *skus = json_array();
		json_array_foreach(items, j, it)
		{
			const char *sku = json_string_value(json_object_get(it, "sku"));
			if (!sku || !*sku || strlen(sku) > STYLIST_SKU_MAX) {
				snprintf(why, whylen, "outfits[%zu].items[%zu].sku: expected a string of 1-%d bytes", i,
					 j, STYLIST_SKU_MAX);
				json_decref(skus);
				json_decref(res);
				return NULL;
			}
			if (j < STYLIST_MAX_ITEMS)
				json_array_append_new(skus, json_string(sku));
		}
		if (i < STYLIST_MAX_OUTFITS)
			json_array_append_new(res, json_pack("{s:O?, s:s, s:o}", "id", json_object_get(o, "id"), "reason",
							     json_string_value(reason) ?: "", "skus", skus));
		else
			json_decref(skus);
	}
	return json_pack("{s:o}", "outfits", res);
}

static const struct provider intelistyle = {
	.name = "intelistyle",
	.default_url = "https://api.intelistyle.com/v3",
	.auth = PROVIDER_AUTH_BEARER,
	.build = intelistyle_build,
	.parse = intelistyle_parse,
};

/* The occasion the message names, as the request's vocabulary has it
 * (prefixes of lower-cased words, Russian and English), or NULL. */
static const char *occasion_of(const char *message)
{
	static const struct {
		const char *occasion, *const stems[8];
	} table[] = {
		{ "wedding", { "свадьб", "wedding", NULL } },
		{ "office", { "офис", "на работу", "собеседован", "office", "interview", NULL } },
		{ "date", { "свидани", "date", NULL } },
		{ "party", { "вечеринк", "тусовк", "party", NULL } },
		{ "dinner", { "ужин", "ресторан", "театр", "dinner", "theatre", "theater", NULL } },
		{ "sport", { "спорт", "трениров", "зал", "gym", "sport", NULL } },
		{ "vacation", { "отпуск", "пляж", "на море", "vacation", "beach", NULL } },
		{ "casual", { "прогулк", "каждый день", "casual", "walk", NULL } },
	};
	char *lc = llm_lower(message);
	const char *hit = NULL;
	for (size_t i = 0; i < sizeof table / sizeof *table && !hit; i++)
		for (size_t k = 0; table[i].stems[k] && !hit; k++) {
			/* at a word's start, so "date" is not in "update" */
			const char *s = table[i].stems[k];
			for (const char *p = strstr(lc, s); p && !hit; p = strstr(p + 1, s))
				if (p == lc || p[-1] == ' ' || p[-1] == ',' || p[-1] == '.' || p[-1] == '-')
					hit = table[i].occasion;
		}
	free(lc);
	return hit;
}

/* The user's gender as user knowledge holds it ({"gender": "female"} in a
 * fact's data), or NULL: never guessed from the text. */
static const char *gender_of(const struct turn *t)
{
	size_t i;
	const json_t *f;
	json_array_foreach(t->knowledge, i, f)
	{
		const char *g = json_string_value(json_object_get(json_object_get(f, "data"), "gender"));
		if (g && (!strcmp(g, "female") || !strcmp(g, "male")))
			return g;
	}
	return NULL;
}

/* The products of production among skus (a JSON array), in stock, with
 * the store of their brand (mall_id's first), keyed by SKU. NULL when
 * production cannot answer. */
static json_t *products_by_sku(PGconn *prod, const json_t *skus, const char *mall_id)
{
	char *arr = json_dumps(skus, JSON_COMPACT);
	const char *pp[] = { arr, mall_id };
	PGresult *r = arr ? pg_query(prod,
				     "SELECT DISTINCT ON (p.sku) p.sku, p.brand, p.name, p.price::text, p.currency,"
				     "  p.category, p.colour, s.name, s.floor::text, s.mall_id"
				     " FROM products p"
				     " LEFT JOIN LATERAL (SELECT st.name, st.floor, st.mall_id FROM stores st"
				     "   WHERE st.brand IS NOT NULL AND lower(st.brand) = lower(p.brand)"
				     "     AND p.availability ? st.external_store_id::text"
				     "   ORDER BY (st.mall_id IS NOT DISTINCT FROM $2) DESC LIMIT 1) s ON true"
				     " WHERE p.available"
				     "   AND p.sku IN (SELECT jsonb_array_elements_text($1::jsonb))"
				     " ORDER BY p.sku, (s.name IS NOT NULL) DESC, p.updated_at DESC",
				     2, pp)
			       : NULL;
	free(arr);
	if (!r)
		return NULL;
	static const char *const keys[] = { "sku", "brand", "name", "price", "currency",
					    "category", "colour", "store", "floor", "mall_id" };
	json_t *by = json_object();
	for (int row = 0; row < PQntuples(r); row++) {
		json_t *o = json_object();
		for (int col = 0; col < 10; col++)
			if (!PQgetisnull(r, row, col))
				json_object_set_new(o, keys[col], json_string(PQgetvalue(r, row, col)));
		json_object_set_new(by, PQgetvalue(r, row, 0), o);
	}
	PQclear(r);
	return by;
}

/* The outfits with each SKU replaced by its production product; SKUs
 * production lacks go to unknown, outfits left empty are dropped. */
static json_t *verified_outfits(const json_t *outfits, const json_t *by, json_t *unknown)
{
	json_t *out = json_array();
	size_t i, j;
	const json_t *o, *sku;
	json_array_foreach(outfits, i, o)
	{
		json_t *items = json_array();
		json_array_foreach(json_object_get(o, "skus"), j, sku)
		{
			const json_t *p = json_object_get(by, json_string_value(sku));
			if (p)
				json_array_append(items, (json_t *)p);
			else
				json_array_append(unknown, (json_t *)sku);
		}
		if (!json_array_size(items)) {
			json_decref(items);
			continue;
		}
		/* a reason is the provider's text: kept short, it goes into a prompt */
		const char *reason = json_string_value(json_object_get(o, "reason"));
		char rs[STYLIST_REASON_MAX * 4 + 8]; /* 300 characters of up to 4 bytes */
		size_t n = 0, chars = 0;
		for (; reason && reason[n] && n < sizeof rs - 5; n++) {
			if (((unsigned char)reason[n] & 0xC0) != 0x80 && ++chars > STYLIST_REASON_MAX)
				break;
			rs[n] = reason[n] == '\n' || reason[n] == '\r' ? ' ' : reason[n];
		}
		rs[n] = '\0';
		json_array_append_new(out, json_pack("{s:s, s:o}", "reason", rs, "items", items));
	}
	return out;
}

/* A failed call: logged, counted by reason, the turn goes on. */
static json_t *unavailable(struct counters *k, const char *reason, const char *error)
{
	struct buf lb = { 0 };
	counters_label(&lb, "result", reason);
	counters_add(k, "intelistyle_requests_total", lb.data, 1);
	buf_free(&lb);
	if (strcmp(reason, "no_key") != 0) {
		counters_add(k, "intelistyle_errors", NULL, 1);
		log_event(LOG_WARN, "stylist failed; the turn goes on without outfits",
			  json_pack("{s:s, s:s}", "reason", reason, "error", error));
	}
	return json_pack("{s:s, s:s, s:s}", "status", "unavailable", "reason", reason, "error", error);
}

json_t *stylist_call(const struct turn *t, struct shard_ctx *x, const json_t *rec, struct deadline dl,
		     struct counters *k)
{
	long timeout_ms = (long)(conf_double("INTELISTYLE_TIMEOUT", 3, 0.1, 60) * 1000);
	if (!provider_configured(&intelistyle))
		return unavailable(k, "no_key", "INTELISTYLE_API_KEY is not set");
	json_t *items = json_array();
	size_t i;
	const json_t *p;
	json_array_foreach(t->catalog, i, p)
		json_array_append_new(items, json_pack("{s:O?, s:O?, s:O?, s:O?, s:O?}", "sku",
						       json_object_get(p, "sku"), "brand", json_object_get(p, "brand"),
						       "name", json_object_get(p, "name"), "category",
						       json_object_get(p, "category"), "colour",
						       json_object_get(p, "colour")));
	const char *occ = occasion_of(t->message), *gender = gender_of(t);
	json_t *in = json_pack("{s:s, s:s?, s:s?, s:o, s:i}", "query", t->message, "occasion", occ, "gender",
			       gender, "items", items, "max_outfits", STYLIST_MAX_OUTFITS);
	static const struct provider *const only[] = { &intelistyle, NULL };
	const struct chain ch = { .providers = only };
	struct chain_result res;
	double t0 = util_now_ms();
	chain_run(&ch, NULL, in, deadline_min(dl, deadline_in(timeout_ms)), &res);
	counters_observe_ms(k, "intelistyle_latency_seconds", NULL, util_now_ms() - t0);
	json_decref(in);
	if (!res.answer) {
		const json_t *last = json_array_get(res.skipped, json_array_size(res.skipped) - 1);
		json_t *u = unavailable(k, json_string_value(json_object_get(last, "reason")) ?: "failed",
					json_string_value(json_object_get(last, "message")) ?: res.message);
		chain_result_free(&res);
		return u;
	}
	/* every SKU it named, checked against production */
	json_t *skus = json_array();
	const json_t *o, *s;
	size_t j;
	json_array_foreach(json_object_get(res.answer, "outfits"), i, o)
		json_array_foreach(json_object_get(o, "skus"), j, s) json_array_append(skus, (json_t *)s);
	struct shard_err pe = { 0 };
	PGconn *prod = json_array_size(skus) ? sctx_production(x, 0, &pe) : NULL;
	json_t *by = !json_array_size(skus) ? json_object()
		     : prod ? products_by_sku(prod, skus, json_string_value(json_object_get(rec, "mall_id")))
			    : NULL;
	json_decref(skus);
	if (!by) {
		/* outfits nobody can check are outfits nobody may show */
		json_t *u = unavailable(k, "catalog", prod ? pg_last_error(prod)
							    : pe.msg[0] ? pe.msg : "PRODUCTION_DB_URL is not set");
		chain_result_free(&res);
		return u;
	}
	json_t *unknown = json_array();
	json_t *outfits = verified_outfits(json_object_get(res.answer, "outfits"), by, unknown);
	json_decref(by);
	chain_result_free(&res);
	counters_add(k, "intelistyle_requests_total", "result=\"ok\"", 1);
	if (json_array_size(unknown)) {
		counters_add(k, "intelistyle_unknown_skus", NULL, json_array_size(unknown));
		log_event(LOG_WARN, "the stylist named SKUs production does not have in stock; left out",
			  json_pack("{s:O}", "skus", unknown));
	}
	return json_pack("{s:s, s:o, s:o, s:s?, s:s?}", "status", "done", "outfits", outfits, "unknown_skus",
			 unknown, "occasion", occ, "gender", gender);
}

static const char *jstr(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* "ZARA Linen shirt, 129.00 AED (SKU LN-100)" of one product. */
static void item_text(struct buf *b, const json_t *p)
{
	buf_printf(b, "%s %s", jstr(p, "brand") ?: "", jstr(p, "name") ?: "");
	if (jstr(p, "price"))
		buf_printf(b, ", %s %s", jstr(p, "price"), jstr(p, "currency") ?: "");
	if (jstr(p, "store"))
		buf_printf(b, ", %s", jstr(p, "store"));
	buf_printf(b, " (SKU %s)", jstr(p, "sku"));
}

void stylist_pack_lines(const struct turn *t, json_t *lines)
{
	size_t i, j;
	const json_t *o, *p;
	json_array_foreach(json_object_get(t->stylist, "outfits"), i, o)
	{
		struct buf b = { 0 };
		buf_printf(&b, "Стилист, образ %zu: ", i + 1);
		json_array_foreach(json_object_get(o, "items"), j, p)
		{
			if (j)
				buf_printf(&b, " + ");
			item_text(&b, p);
		}
		if (jstr(o, "reason") && *jstr(o, "reason"))
			buf_printf(&b, ". Почему: %s", jstr(o, "reason"));
		json_array_append_new(lines, json_string(b.data));
		buf_free(&b);
	}
}

int stylist_answer(const struct turn *t, struct buf *b)
{
	const json_t *outs = json_object_get(t->stylist, "outfits");
	if (!json_array_size(outs))
		return 0;
	/* the first outfit in full (it is what the user asked for); the others
	 * by count, so the answer stays short enough to be spoken */
	const json_t *o = json_array_get(outs, 0), *p;
	size_t j;
	buf_printf(b, "Собрала образ из того, что есть в наличии: ");
	json_array_foreach(json_object_get(o, "items"), j, p)
	{
		if (j)
			buf_printf(b, " + ");
		item_text(b, p);
	}
	buf_printf(b, ". ");
	if (jstr(o, "reason") && *jstr(o, "reason"))
		buf_printf(b, "%s%s ", jstr(o, "reason"),
			   strchr(".!?", jstr(o, "reason")[strlen(jstr(o, "reason")) - 1]) ? "" : ".");
	size_t more = json_array_size(outs) - 1;
	if (more)
		buf_printf(b, "Есть ещё %zu %s, показать? ", more, more == 1 ? "вариант" : "варианта");
	return 1;
}

json_t *stylist_artifact_pool(const struct turn *t)
{
	json_t *pool = t->catalog ? json_copy(t->catalog) : json_array();
	json_t *seen = json_object();
	size_t i, j;
	const json_t *p, *o;
	json_array_foreach(pool, i, p) json_object_set_new(seen, jstr(p, "sku") ?: "", json_true());
	json_array_foreach(json_object_get(t->stylist, "outfits"), i, o)
		json_array_foreach(json_object_get(o, "items"), j, p) if (!json_object_get(seen, jstr(p, "sku")))
	{
		json_object_set_new(seen, jstr(p, "sku"), json_true());
		json_array_append(pool, (json_t *)p);
	}
	json_decref(seen);
	return pool;
}
