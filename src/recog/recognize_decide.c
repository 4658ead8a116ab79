/* unde-recognize's §8 decision: exact, similar, or "in this style" from
 * production's catalogue when nothing matched well enough. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "pg.h"
#include "recog.h"
#include "recognize.h"

/* "In this style" (§8): production products of the tags' type and colour,
 * in stock in KZ stores first. "In stock" counts only stores whose place
 * (their own city/country, else their mall's) is RECOGNITION_STOCK_COUNTRY
 * (default KZ; empty: any) and, when set, RECOGNITION_STOCK_CITY: a store
 * id of products.availability that production's stores table does not
 * know, or that is elsewhere, is not stock the user can walk to. */
static json_t *attribute_fallback(const json_t *tags, const char *category, struct recog_err *e)
{
	PGconn *db = gw_production_db(e);
	if (!db)
		return NULL;
	const char *type = json_string_value(json_object_get(tags, "type"));
	const char *color = json_string_value(json_object_get(tags, "color"));
	const char *style = json_string_value(json_object_get(tags, "style"));
	if (!type && category && strcmp(category, "whole_photo"))
		type = strrchr(category, '/') ? strrchr(category, '/') + 1 : category;
	const char *country, *city;
	recog_stock_place(&country, &city);
	const char *params[] = { type, color, style, country, city };
	/* each attribute that matches counts one; stock in the stores first */
	PGresult *r = pg_query(db,
			       "WITH here AS (SELECT lower(s.brand) AS brand, s.external_store_id::text AS store,"
			       "    json_build_object('id', s.id, 'name', s.name, 'city', COALESCE(s.city, m.city),"
			       "      'mall_id', s.mall_id, 'floor', s.floor) AS j"
			       "   FROM stores s LEFT JOIN malls m ON m.id = s.mall_id"
			       "  WHERE s.external_store_id IS NOT NULL"
			       "    AND ($4::text IS NULL OR upper(COALESCE(s.country, m.country)) = upper($4))"
			       "    AND ($5::text IS NULL OR lower(COALESCE(s.city, m.city)) = lower($5))),"
			       " p AS (SELECT pr.*, (SELECT json_agg(here.j ORDER BY here.store) FROM here"
			       "     WHERE here.brand = lower(pr.brand) AND pr.availability ? here.store) AS stock"
			       "   FROM products pr)"
			       " SELECT sku, brand, name, price, category, colour, image_urls, stock IS NOT NULL,"
			       "  (CASE WHEN $1::text IS NOT NULL AND (category ILIKE '%' || $1 || '%' OR name ILIKE '%' || $1 || '%') THEN 1 ELSE 0 END"
			       "   + CASE WHEN $2::text IS NOT NULL AND colour ILIKE '%' || $2 || '%' THEN 1 ELSE 0 END"
			       "   + CASE WHEN $3::text IS NOT NULL AND (name ILIKE '%' || $3 || '%' OR description ILIKE '%' || $3 || '%') THEN 1 ELSE 0 END) AS hits,"
			       "  COALESCE(stock, '[]'::json)"
			       " FROM p"
			       " ORDER BY hits DESC, (stock IS NOT NULL) DESC, synced_at DESC NULLS LAST, id"
			       " LIMIT 5",
			       5, params);
	if (!r) {
		recog_fail(e, pg_failure_status(db), "database_error", "attribute fallback: %s", pg_last_error(db));
		return NULL;
	}
	json_t *out = json_array();
	for (int i = 0; i < PQntuples(r); i++) {
		json_t *urls = json_loads(PQgetvalue(r, i, 6), 0, NULL);
		json_t *stock = json_loads(PQgetvalue(r, i, 9), 0, NULL);
		json_t *m = json_pack("{s:s, s:s, s:s, s:s, s:s?, s:s?, s:o, s:b, s:o, s:i}", "match_type", "style", "sku_id",
				      PQgetvalue(r, i, 0), "brand", PQgetvalue(r, i, 1), "name", PQgetvalue(r, i, 2),
				      "category", PQgetisnull(r, i, 4) ? NULL : PQgetvalue(r, i, 4), "colour",
				      PQgetisnull(r, i, 5) ? NULL : PQgetvalue(r, i, 5), "image_urls",
				      urls ? urls : json_array(), "in_stock", PQgetvalue(r, i, 7)[0] == 't', "in_stock_stores",
				      stock ? stock : json_array(), "attributes_matched", atoi(PQgetvalue(r, i, 8)));
		if (!PQgetisnull(r, i, 3))
			json_object_set_new(m, "price", json_real(strtod(PQgetvalue(r, i, 3), NULL)));
		json_array_append_new(out, m);
	}
	PQclear(r);
	return out;
}

/* recognize_decide: see recognize.h. */
json_t *recognize_decide(const json_t *ranked, const json_t *tags, const char *category, const char **type,
		      struct recog_err *e)
{
	double high = conf_double("CONFIDENCE_HIGH", 0.85, 0, 1), medium = conf_double("CONFIDENCE_MEDIUM", 0.50, 0, 1);
	double top = json_number_value(json_object_get(json_array_get(ranked, 0), "score"));
	json_t *out = json_array();
	size_t take = top > high ? 1 : top >= medium ? 5 : 0;
	*type = top > high ? "exact" : top >= medium ? "similar" : "style";
	for (size_t i = 0; i < take && i < json_array_size(ranked); i++) {
		json_t *m = json_deep_copy(json_array_get(ranked, i));
		json_object_set_new(m, "match_type", json_string(*type));
		json_object_set_new(m, "similarity_pct",
				    json_integer((json_int_t)lround(json_number_value(json_object_get(m, "score")) * 100)));
		json_array_append_new(out, m);
	}
	if (take == 0) {
		json_decref(out);
		out = attribute_fallback(tags, category, e);
	}
	return out;
}
