/* item.c — one Apify item → one raw_products row (spec §2, §6).
 *
 * Scrapers name the same thing differently (id/productId/sku, images/
 * imageUrls, colour/color), and give prices as numbers, strings with
 * currency signs and thousands separators, or objects. This accepts the
 * usual spellings and refuses what would not fit the column, so that an
 * item is either stored whole or reported, never stored half-right. */
#include "config.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apify.h"
#include "util.h"

#define APIFY_MAX_IMAGES 50

int apify_brand_slug(const char *name, char *out, size_t len)
{
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)name; *p && n + 4 < len; p++) {
		if (isalnum(*p) && *p < 0x80) {
			out[n++] = (char)tolower(*p);
		} else if (*p == '&') {
			memcpy(out + n, "and", 3);
			n += 3;
		}
	}
	out[n] = '\0';
	return n ? 0 : -1;
}

/* The first of these keys the item has (not null). */
static const json_t *apify_get_any(const json_t *item, const char *const *keys)
{
	for (; *keys; keys++) {
		const json_t *v = json_object_get(item, *keys);
		if (v && !json_is_null(v))
			return v;
	}
	return NULL;
}

static size_t apify_utf8_chars(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += ((unsigned char)*s & 0xC0) != 0x80;
	return n;
}

static int apify_trimmed_nonempty(const char *s)
{
	for (; *s; s++)
		if (!isspace((unsigned char)*s))
			return 1;
	return 0;
}

/* A trimmed copy of s, or NULL when nothing is left. */
static char *apify_trimmed(const char *s)
{
	while (*s && isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		n--;
	if (!n)
		return NULL;
	char *d = xmalloc(n + 1);
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

/* Text out of a string, a number, an object's name/value, or an array of
 * those joined by sep. Returns 0 (out NULL when empty) or -1 when the value
 * has another shape. */
static int apify_text(const json_t *v, const char *sep, char **out)
{
	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (json_is_string(v)) {
		*out = apify_trimmed(json_string_value(v));
		return 0;
	}
	if (json_is_number(v)) {
		char tmp[64];
		snprintf(tmp, sizeof tmp, "%g", json_number_value(v));
		*out = xstrdup(tmp);
		return 0;
	}
	if (json_is_object(v)) {
		static const char *const keys[] = { "name", "value", "text", "title", NULL };
		const json_t *s = apify_get_any(v, keys);
		if (s && json_is_string(s)) {
			*out = apify_trimmed(json_string_value(s));
			/* composition: {"name":"cotton","percentage":100} → "100% cotton" */
			const json_t *pct = json_object_get(v, "percentage");
			if (*out && json_is_number(pct)) {
				char *t = xmalloc(strlen(*out) + 32);
				sprintf(t, "%g%% %s", json_number_value(pct), *out);
				free(*out);
				*out = t;
			}
			return 0;
		}
		return -1;
	}
	if (json_is_array(v)) {
		struct buf b = { 0 };
		size_t i;
		const json_t *e;
		json_array_foreach(v, i, e)
		{
			char *t;
			if (json_is_array(e) || apify_text(e, sep, &t) != 0) {
				buf_free(&b);
				return -1;
			}
			if (!t)
				continue;
			if (b.len)
				buf_append(&b, sep, strlen(sep));
			buf_append(&b, t, strlen(t));
			free(t);
		}
		*out = b.data;
		return 0;
	}
	return -1;
}

/* The currency a price text names: a three-letter code ("1.299,50 EUR",
 * "eur 12"), a sign (₸ € $ £ ₽ ₺ ₴ ₩ ₹ ₪) or "тг"/"тенге"/"руб", into
 * cur. The price's own text wins over the item's "currency" field: it is
 * what the shop showed with that amount. Nothing named: cur unchanged. */
static void apify_text_currency(const char *t, char *cur, size_t clen)
{
	static const struct {
		const char *sign, *code;
	} signs[] = { { "\u20b8", "KZT" }, { "\u20ac", "EUR" }, { "$", "USD" }, { "\u00a3", "GBP" },
		      { "\u20bd", "RUB" }, { "\u20ba", "TRY" }, { "\u20b4", "UAH" }, { "\u20a9", "KRW" },
		      { "\u20b9", "INR" }, { "\u20aa", "ILS" }, { "\u0442\u0435\u043d\u0433\u0435", "KZT" },
		      { "\u0442\u0433", "KZT" }, { "\u0440\u0443\u0431", "RUB" } };
	for (const char *p = t; *p; p++) {
		if (isalpha((unsigned char)*p)) {
			size_t n = 0;
			while (isalpha((unsigned char)p[n]))
				n++;
			if (n == 3 && (p == t || !(p[-1] & 0x80)) && !(p[3] & 0x80)) {
				for (size_t i = 0; i < 3 && i + 1 < clen; i++)
					cur[i] = (char)toupper((unsigned char)p[i]);
				cur[3 < clen ? 3 : clen - 1] = '\0';
				return;
			}
			p += n - 1;
			continue;
		}
		for (size_t i = 0; i < sizeof signs / sizeof signs[0]; i++)
			if (strncmp(p, signs[i].sign, strlen(signs[i].sign)) == 0) {
				snprintf(cur, clen, "%s", signs[i].code);
				return;
			}
	}
}

/* "19 990 ₸", "1.299,00 €", "12,50", 1299 → "19990.00" etc., and the
 * currency the text names into currency when that is still empty.
 * Returns 0 with out "" when there is no price, 1 when there is one, -1
 * when unusable. */
static int apify_price(const json_t *v, char *out, size_t len, char *currency, size_t clen)
{
	out[0] = '\0';
	if (!v || json_is_null(v))
		return 0;
	if (json_is_object(v)) {
		static const char *const vk[] = { "value", "amount", "current", "price", NULL };
		static const char *const ck[] = { "currency", "currencyCode", NULL };
		const json_t *c = apify_get_any(v, ck);
		if (c && json_is_string(c) && !currency[0])
			snprintf(currency, clen, "%s", json_string_value(c));
		return apify_price(apify_get_any(v, vk), out, len, currency, clen);
	}
	double d;
	if (json_is_number(v)) {
		d = json_number_value(v);
	} else if (json_is_string(v)) {
		apify_text_currency(json_string_value(v), currency, clen);
		char digits[64];
		size_t n = 0;
		int ndot = 0, ncomma = 0;
		char last_sep = 0;
		size_t last_sep_at = 0;
		for (const char *p = json_string_value(v); *p; p++) {
			if (n + 1 >= sizeof digits)
				return -1;
			if (isdigit((unsigned char)*p)) {
				digits[n++] = *p;
			} else if (*p == '.' || *p == ',') {
				if (!n)
					continue;
				if (*p == '.')
					ndot++;
				else
					ncomma++;
				last_sep = *p;
				last_sep_at = n;
				digits[n++] = *p;
			} else if (*p == '-') {
				return -1;
			}
		}
		digits[n] = '\0';
		if (!n)
			return json_string_length(v) == 0 ? 0 : -1;
		/* the decimal separator is the last one when two kinds appear, a
		 * lone ',' followed by 1-2 digits, or a lone single '.' */
		char dec = 0;
		size_t after = n - last_sep_at - 1;
		if (ndot && ncomma)
			dec = last_sep;
		else if (ncomma == 1 && !ndot && after <= 2)
			dec = ',';
		else if (ndot == 1 && !ncomma)
			dec = '.'; /* "1.299" is ambiguous: read it the JSON way */
		char norm[64];
		size_t m = 0;
		for (size_t i = 0; i < n; i++) {
			if (digits[i] == dec && i == last_sep_at)
				norm[m++] = '.';
			else if (isdigit((unsigned char)digits[i]))
				norm[m++] = digits[i];
		}
		norm[m] = '\0';
		char *end;
		d = strtod(norm, &end);
		if (*end)
			return -1;
	} else {
		return -1;
	}
	/* DECIMAL(10,2) */
	if (!isfinite(d) || d < 0 || d >= 1e8)
		return -1;
	int w = snprintf(out, len, "%.2f", d);
	return w > 0 && (size_t)w < len ? 1 : -1;
}

/* http(s), or file:/// for a local catalogue (unde-download reads those
 * only under DOWNLOAD_FILE_ROOT). */
static int apify_photo_url(const char *s)
{
	return (strncmp(s, "https://", 8) == 0 && s[8]) || (strncmp(s, "http://", 7) == 0 && s[7]) ||
	       (strncmp(s, "file:///", 8) == 0 && s[8]);
}

/* Photos: an array of URLs or of {url|src|href} objects, or one URL.
 * Duplicates are dropped, order kept. Returns 0 or -1 when unusable. */
static int apify_images(const json_t *v, json_t **out)
{
	*out = json_array();
	if (!v || json_is_null(v))
		return 0;
	json_t *one = NULL;
	if (json_is_string(v) || json_is_object(v)) {
		one = json_array();
		json_array_append(one, (json_t *)v);
		v = one;
	}
	if (!json_is_array(v)) {
		json_decref(one);
		return -1;
	}
	size_t i;
	const json_t *e;
	json_array_foreach(v, i, e)
	{
		static const char *const uk[] = { "url", "src", "href", "imageUrl", NULL };
		const json_t *u = json_is_object(e) ? apify_get_any(e, uk) : e;
		if (!json_is_string(u)) {
			json_decref(one);
			return -1;
		}
		const char *s = json_string_value(u);
		if (!apify_photo_url(s) || strlen(s) > 2048 || strpbrk(s, " \t\r\n"))
			continue; /* relative, data: or broken URLs cannot be fetched */
		int dup = 0;
		size_t j;
		json_t *have;
		json_array_foreach(*out, j, have)
			dup |= strcmp(json_string_value(have), s) == 0;
		if (!dup && json_array_size(*out) < APIFY_MAX_IMAGES)
			json_array_append_new(*out, json_string(s));
	}
	json_decref(one);
	return 0;
}

/* External ids become object keys (originals/{brand}/{external_id}/…): only
 * characters that are safe in a key, a URL and a file name. */
static int apify_external_id(const json_t *v, char *out, size_t len)
{
	if (json_is_integer(v)) {
		snprintf(out, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return json_integer_value(v) >= 0 ? 0 : -1;
	}
	if (!json_is_string(v))
		return -1;
	char *t = apify_trimmed(json_string_value(v));
	if (!t)
		return -1;
	size_t n = strlen(t);
	int ok = n < len && strcmp(t, ".") != 0 && strcmp(t, "..") != 0;
	for (const char *p = t; ok && *p; p++)
		ok = isalnum((unsigned char)*p) || *p == '-' || *p == '_' || *p == '.';
	if (ok)
		memcpy(out, t, n + 1);
	free(t);
	return ok ? 0 : -1;
}

#define FAIL(c, ...)                                    \
	do {                                            \
		*code = (c);                            \
		snprintf(msg, msglen, __VA_ARGS__);     \
		apify_product_free(p);                  \
		return -1;                              \
	} while (0)

int apify_item_to_product(const json_t *item, const char *brand_hint, struct apify_product *p,
			  const char **code, char *msg, size_t msglen)
{
	memset(p, 0, sizeof *p);
	static const char *const id_keys[] = { "id", "productId", "product_id", "externalId",
					       "external_id", "sku", "reference", NULL };
	static const char *const name_keys[] = { "name", "title", "productName", NULL };
	static const char *const brand_keys[] = { "brand", "brandName", NULL };
	static const char *const price_keys[] = { "price", "currentPrice", NULL };
	static const char *const cur_keys[] = { "currency", "priceCurrency", NULL };
	static const char *const cat_keys[] = { "category", "categories", "breadcrumbs", NULL };
	static const char *const colour_keys[] = { "colour", "color", "colors", "colours", NULL };
	static const char *const comp_keys[] = { "composition", "materials", "material", NULL };
	static const char *const img_keys[] = { "images", "imageUrls", "image_urls", "photos",
						 "original_image_urls", "image", NULL };

	/* brand: the run's, else --brand, else the item's own */
	const json_t *tag = json_object_get(item, "_apify");
	const json_t *tb = json_is_object(tag) ? json_object_get(tag, "brand") : NULL;
	const char *brand = json_is_string(tb) ? json_string_value(tb) : brand_hint;
	if (!brand) {
		const json_t *b = apify_get_any(item, brand_keys);
		if (b && !json_is_string(b))
			FAIL("invalid_field", "brand is not a string");
		brand = b ? json_string_value(b) : NULL;
	}
	if (!brand)
		FAIL("missing_field", "no brand (give --brand, or a \"brand\" in the item)");
	if (apify_brand_slug(brand, p->brand, sizeof p->brand) != 0 || strlen(p->brand) > 40)
		FAIL("invalid_field", "brand is not a usable name");
	snprintf(p->source, sizeof p->source, "apify_%s", p->brand);

	const json_t *id = apify_get_any(item, id_keys);
	if (!id)
		FAIL("missing_field", "no product id (id, productId, sku, …)");
	if (apify_external_id(id, p->external_id, sizeof p->external_id) != 0)
		FAIL("invalid_field", "product id must be 1-100 of A-Z a-z 0-9 . _ -");

	const json_t *name = apify_get_any(item, name_keys);
	if (!name)
		FAIL("missing_field", "no product name");
	if (!json_is_string(name) || !apify_trimmed_nonempty(json_string_value(name)))
		FAIL("invalid_field", "name must be a non-empty string");
	p->name = json_string_value(name);

	const json_t *desc = json_object_get(item, "description");
	if (desc && !json_is_null(desc) && !json_is_string(desc))
		FAIL("invalid_field", "description must be a string");
	p->description = json_is_string(desc) ? json_string_value(desc) : NULL;

	const json_t *cur = apify_get_any(item, cur_keys);
	if (cur && json_is_string(cur))
		snprintf(p->currency, sizeof p->currency, "%s", json_string_value(cur));
	else if (cur)
		FAIL("invalid_field", "currency must be a string");
	if (apify_price(apify_get_any(item, price_keys), p->price, sizeof p->price, p->currency,
			sizeof p->currency) < 0)
		FAIL("invalid_field", "price is not a usable amount (0 to 99999999.99)");
	if (cur && json_string_length(cur) >= sizeof p->currency)
		FAIL("invalid_field", "currency longer than 10 characters");
	for (char *c = p->currency; *c; c++)
		*c = (char)toupper((unsigned char)*c);

	if (apify_text(apify_get_any(item, cat_keys), " > ", &p->category) != 0)
		FAIL("invalid_field", "category must be text or a list of text");
	if (apify_text(apify_get_any(item, colour_keys), ", ", &p->colour) != 0)
		FAIL("invalid_field", "colour must be text or a list of text");
	if (p->colour && apify_utf8_chars(p->colour) > 100)
		FAIL("invalid_field", "colour longer than 100 characters");
	if (apify_text(apify_get_any(item, comp_keys), ", ", &p->composition) != 0)
		FAIL("invalid_field", "composition must be text or a list");

	const json_t *sizes = json_object_get(item, "sizes");
	if (json_is_array(sizes)) {
		p->sizes = json_deep_copy(sizes);
	} else if (json_is_string(sizes)) {
		p->sizes = json_array();
		char *s = xstrdup(json_string_value(sizes)), *save = NULL;
		for (char *tok = strtok_r(s, ",/;", &save); tok; tok = strtok_r(NULL, ",/;", &save)) {
			char *t = apify_trimmed(tok);
			if (t)
				json_array_append_new(p->sizes, json_string(t));
			free(t);
		}
		free(s);
	} else if (sizes && !json_is_null(sizes)) {
		FAIL("invalid_field", "sizes must be a list or text");
	}

	if (apify_images(apify_get_any(item, img_keys), &p->images) != 0)
		FAIL("invalid_field", "images must be URLs or objects with a url");
	if (json_array_size(p->images) == 0)
		FAIL("no_images", "no usable http(s) photo URL");

	p->raw = json_deep_copy(item);
	json_object_del(p->raw, "_apify");
	return 0;
}

void apify_product_free(struct apify_product *p)
{
	free(p->category);
	free(p->colour);
	free(p->composition);
	json_decref(p->sizes);
	json_decref(p->images);
	json_decref(p->raw);
	p->category = p->colour = p->composition = NULL;
	p->sizes = p->images = p->raw = NULL;
}
