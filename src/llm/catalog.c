/* catalog.c — "контекст каталога" of §13: the products of production that
 * match the user's message, in stock, with store and price.
 *
 * The user writes Russian or English; the catalogue is mostly English
 * (Zara's names and colours) with Russian rows too. Words are compared by
 * their Snowball stems (lib/stem.h: Russian for Cyrillic, English for
 * Latin), and colour and garment words go through a small bilingual
 * lexicon of concepts ("зелёную" and "green" are one colour, "юбку" and
 * "skirts" one garment), so "Покажи зелёную юбку" finds "Green midi skirt".
 *
 * The rule: when the message names colours, a product must have one of
 * them; when it names garments, one of those; several of a kind are
 * alternatives ("красную или зелёную юбку"). Other words (materials,
 * brands, "льняную") only rank the products, unless the message names no
 * concept at all, when one of them must match. So "red skirt" never
 * answers with a green skirt, and a message about nothing in the
 * catalogue gets no products (the responder then says so).
 *
 * PostgreSQL does the coarse part (substring prefixes of the stems over
 * name, category, colour and brand, concept kinds ANDed); this file checks
 * every candidate exactly, stem by stem, and keeps the best five. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm.h"
#include "log.h"
#include "pg.h"
#include "stem.h"
#include "util.h"

enum kind { COLOUR, GARMENT };

/* A concept and its surface forms, Russian and English, space-separated.
 * A form is matched by its stem; "=form" only as that exact word (English
 * "shorts" is not "short dress"). Forms whose inflections stem apart
 * ("юбка"/"юбок") are listed both. */
static const struct concept {
	enum kind kind;
	const char *forms;
} lexicon[] = {
	{ COLOUR, "зелёный green" },
	{ COLOUR, "красный red" },
	{ COLOUR, "синий голубой blue navy" },
	{ COLOUR, "белый white" },
	{ COLOUR, "чёрный black" },
	{ COLOUR, "серый grey gray" },
	{ COLOUR, "розовый pink" },
	{ COLOUR, "бежевый beige" },
	{ COLOUR, "коричневый brown" },
	{ COLOUR, "жёлтый yellow" },
	{ COLOUR, "оранжевый orange" },
	{ COLOUR, "фиолетовый сиреневый purple violet lilac" },
	{ COLOUR, "бордовый бордо burgundy" },
	{ COLOUR, "хаки khaki" },
	{ COLOUR, "золотой gold golden" },
	{ COLOUR, "серебряный silver" },
	{ GARMENT, "юбка юбок skirt" },
	{ GARMENT, "платье платьев dress" },
	{ GARMENT, "рубашка рубашек рубаха shirt" },
	{ GARMENT, "блузка блузок блуза blouse" },
	{ GARMENT, "футболка футболок t-shirt tee" },
	{ GARMENT, "брюки штаны trousers pants" },
	{ GARMENT, "джинсы jeans" },
	{ GARMENT, "куртка курток jacket" },
	{ GARMENT, "пиджак жакет blazer" },
	{ GARMENT, "пальто тренч coat trench" },
	{ GARMENT, "свитер джемпер sweater jumper pullover" },
	{ GARMENT, "худи толстовка толстовок hoodie sweatshirt" },
	{ GARMENT, "кардиган cardigan" },
	{ GARMENT, "шорты =shorts" },
	{ GARMENT, "туфли туфель обувь shoes" },
	{ GARMENT, "кроссовки кроссовок кеды кед sneakers trainers" },
	{ GARMENT, "ботинки ботинок сапоги сапог boots" },
	{ GARMENT, "сумка сумок bag handbag" },
	{ GARMENT, "топ top" },
	{ GARMENT, "костюм suit" },
	{ GARMENT, "смокинг tuxedo" },
	{ GARMENT, "шарф scarf" },
	{ GARMENT, "шапка шапок шляпа hat beanie" },
	{ GARMENT, "ремень пояс belt" },
};
#define NCONCEPTS (sizeof lexicon / sizeof *lexicon)
_Static_assert(NCONCEPTS <= 64, "concept sets are 64-bit masks");

/* One form of the lexicon, ready to compare. */
struct form {
	unsigned concept;
	int exact;        /* "=form": the word itself, not its stem */
	char key[64];     /* the stem (or the exact word) */
	char prefix[64];  /* what the coarse SQL match looks for */
};

/* Words that say nothing about a product (kept out of the match). */
static const char *const stopwords[] = { "хочу", "хотела", "хотел", "пойти", "сегодня", "можно",
					 "нужно", "нужен", "нужна", "какой", "какая", "какие",
					 "есть", "купить", "где", "магазин", "найди", "найти",
					 "посоветуй", "подбери", "покажи", "покажите", "пожалуйста",
					 "нибудь", "что", "это", "want", "need", "where", "some",
					 "with", "have", "buy", "find", "show", "please", NULL };

static struct {
	struct stemmer *st;
	struct form *forms;
	size_t nforms;
} cat;

/* The longest common prefix of a and b, cut back to whole UTF-8
 * characters, into out (the SQL side's substring: "navy" and its stem
 * "navi" share "nav"). */
static void common_prefix(const char *a, const char *b, char *out, size_t outsz)
{
	size_t n = 0;
	while (a[n] && a[n] == b[n] && n + 1 < outsz)
		n++;
	while (n > 0 && ((unsigned char)a[n] & 0xC0) == 0x80)
		n--;
	memcpy(out, a, n);
	out[n] = '\0';
}

/* The stem of a lower-cased word into buf ("" when it does not fit). */
static void stem_of(const char *w, size_t len, char *buf, size_t bufsz)
{
	if (stemmer_stem(cat.st, w, len, buf, bufsz) < 0)
		buf[0] = '\0';
}

/* Stem the lexicon once. 0, or -1 when libstemmer is unusable. */
static int catalog_init(void)
{
	if (cat.st)
		return 0;
	cat.st = stemmer_new();
	if (!cat.st)
		return -1;
	for (size_t c = 0; c < NCONCEPTS; c++) {
		struct stem_tokens tk = { 0 };
		size_t bad;
		const char *f = lexicon[c].forms;
		if (stem_tokenize(f, strlen(f), &tk, &bad) == 0)
			for (size_t i = 0; i < tk.n; i++) {
				if (tk.v[i].kind != STEM_WORD)
					continue;
				int exact = tk.v[i].offset > 0 && f[tk.v[i].offset - 1] == '=';
				cat.forms = xrealloc(cat.forms, (cat.nforms + 1) * sizeof *cat.forms);
				struct form *fm = &cat.forms[cat.nforms++];
				fm->concept = (unsigned)c;
				fm->exact = exact;
				if (exact)
					snprintf(fm->key, sizeof fm->key, "%s", tk.v[i].text);
				else
					stem_of(tk.v[i].text, tk.v[i].len, fm->key, sizeof fm->key);
				common_prefix(tk.v[i].text, fm->key, fm->prefix, sizeof fm->prefix);
			}
		stem_tokens_free(&tk);
	}
	return 0;
}

void catalog_done(void)
{
	stemmer_free(cat.st);
	free(cat.forms);
	memset(&cat, 0, sizeof cat);
}

/* The concepts one word (already lower-cased) names, by its stem; a
 * hyphenated word that names none as a whole is tried part by part
 * ("тёмно-зелёный" → green, but "t-shirt" stays a t-shirt). */
static uint64_t concepts_of_word(const char *w, size_t len)
{
	char st[128];
	stem_of(w, len, st, sizeof st);
	uint64_t m = 0;
	for (size_t i = 0; i < cat.nforms; i++) {
		const struct form *f = &cat.forms[i];
		if (f->exact ? strlen(f->key) == len && !memcmp(f->key, w, len) : !strcmp(f->key, st))
			m |= 1ull << f->concept;
	}
	if (m || !memchr(w, '-', len))
		return m;
	for (size_t a = 0; a < len;) {
		size_t b = a;
		while (b < len && w[b] != '-')
			b++;
		if (b > a)
			m |= concepts_of_word(w + a, b - a);
		a = b + 1;
	}
	return m;
}

/* The words of text (lib/stem.h's tokens) with, per word, its concepts
 * and its stem. Caller frees with stem_tokens_free. */
static uint64_t concepts_of_text(const char *text, struct stem_tokens *tk)
{
	size_t bad;
	uint64_t m = 0;
	if (stem_tokenize(text, strlen(text), tk, &bad) != 0)
		return 0;
	for (size_t i = 0; i < tk->n; i++)
		if (tk->v[i].kind == STEM_WORD)
			m |= concepts_of_word(tk->v[i].text, tk->v[i].len);
	return m;
}

static uint64_t kind_mask(enum kind k)
{
	uint64_t m = 0;
	for (size_t c = 0; c < NCONCEPTS; c++)
		if (lexicon[c].kind == k)
			m |= 1ull << c;
	return m;
}

/* What the message asks for: the concepts it names, and its other
 * content words' stems (at most 12). */
struct query {
	uint64_t concepts;
	char stems[12][64];
	char prefix[12][64]; /* common to the word and its stem, for SQL */
	size_t nstems;
};

static void query_of(const char *message, struct query *q)
{
	struct stem_tokens tk = { 0 };
	memset(q, 0, sizeof *q);
	size_t bad;
	if (stem_tokenize(message, strlen(message), &tk, &bad) == 0)
		for (size_t i = 0; i < tk.n; i++) {
			const struct stem_token *t = &tk.v[i];
			if (t->kind != STEM_WORD)
				continue;
			uint64_t m = concepts_of_word(t->text, t->len);
			if (m) {
				q->concepts |= m;
				continue;
			}
			size_t chars = 0;
			for (const unsigned char *p = (const unsigned char *)t->text; *p; p++)
				chars += (*p & 0xC0) != 0x80;
			int stop = 0;
			for (int k = 0; stopwords[k]; k++)
				stop |= !strcmp(stopwords[k], t->text);
			if (chars < 4 || stop || q->nstems == sizeof q->stems / sizeof *q->stems)
				continue;
			char *s = q->stems[q->nstems];
			stem_of(t->text, t->len, s, sizeof q->stems[0]);
			int dup = !*s;
			for (size_t k = 0; k < q->nstems && !dup; k++)
				dup = !strcmp(q->stems[k], s);
			if (!dup)
				common_prefix(t->text, s, q->prefix[q->nstems++], sizeof q->prefix[0]);
		}
	stem_tokens_free(&tk);
}

/* How many of the query's other stems a product's words have. */
static int stem_hits(const struct query *q, const struct stem_tokens *tk)
{
	unsigned hit = 0;
	for (size_t i = 0; i < tk->n; i++) {
		char st[128];
		if (tk->v[i].kind != STEM_WORD)
			continue;
		stem_of(tk->v[i].text, tk->v[i].len, st, sizeof st);
		for (size_t k = 0; k < q->nstems; k++)
			if (!strcmp(st, q->stems[k]))
				hit |= 1u << k;
	}
	return __builtin_popcount(hit);
}

/* The coarse match's parameters: $1, per concept kind the message names,
 * the prefixes of its concepts' forms ([[…colours], […garments]]); $3 the
 * other words' stems. */
static json_t *kind_groups(uint64_t concepts)
{
	json_t *g = json_array();
	for (int k = COLOUR; k <= GARMENT; k++) {
		uint64_t m = concepts & kind_mask((enum kind)k);
		if (!m)
			continue;
		json_t *a = json_array();
		for (size_t i = 0; i < cat.nforms; i++)
			if ((m >> cat.forms[i].concept & 1) && cat.forms[i].prefix[0])
				json_array_append_new(a, json_string(cat.forms[i].prefix));
		json_array_append_new(g, a);
	}
	return g;
}

static const char catalog_sql[] =
	"SELECT p.sku, p.brand, p.name, p.price::text, p.currency, p.category, p.colour,"
	"  s.name, s.floor::text, s.mall_id"
	" FROM products p"
	" CROSS JOIN LATERAL (SELECT translate(lower(concat_ws(' ', p.name, p.category, p.colour, p.brand)),"
	"   'ё', 'е') AS txt) t"
	" LEFT JOIN LATERAL (SELECT st.name, st.floor, st.mall_id FROM stores st"
	"   WHERE st.brand IS NOT NULL AND lower(st.brand) = lower(p.brand)"
	"     AND p.availability ? st.external_store_id::text"
	"   ORDER BY (st.mall_id IS NOT DISTINCT FROM $2) DESC LIMIT 1) s ON true"
	" WHERE p.available"
	"  AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements($1::jsonb) g WHERE NOT EXISTS"
	"   (SELECT 1 FROM jsonb_array_elements_text(g) w WHERE t.txt LIKE '%' || w || '%'))"
	"  AND (jsonb_array_length($1::jsonb) > 0 OR EXISTS"
	"   (SELECT 1 FROM jsonb_array_elements_text($3::jsonb) w WHERE t.txt LIKE '%' || w || '%'))"
	" ORDER BY (SELECT count(*) FROM jsonb_array_elements_text($3::jsonb) w"
	"   WHERE t.txt LIKE '%' || w || '%') DESC,"
	"  (s.name IS NOT NULL) DESC, p.updated_at DESC, p.id LIMIT 100";

int catalog_names_garment(const char *message)
{
	if (catalog_init() != 0)
		return 0;
	struct stem_tokens tk = { 0 };
	uint64_t m = concepts_of_text(message, &tk);
	stem_tokens_free(&tk);
	return (m & kind_mask(GARMENT)) != 0;
}

json_t *catalog_context(PGconn *prod, const char *message, const char *mall_id)
{
	json_t *out = json_array();
	if (!prod)
		return out;
	if (catalog_init() != 0) {
		log_event(LOG_WARN, "catalog context: libstemmer lacks Russian or English", NULL);
		return out;
	}
	struct query q;
	query_of(message, &q);
	if (!q.concepts && !q.nstems)
		return out;
	json_t *groups = kind_groups(q.concepts), *stems = json_array();
	for (size_t k = 0; k < q.nstems; k++)
		if (q.prefix[k][0])
			json_array_append_new(stems, json_string(q.prefix[k]));
	char *g = json_dumps(groups, JSON_COMPACT), *s = json_dumps(stems, JSON_COMPACT);
	json_decref(groups);
	json_decref(stems);
	const char *pp[] = { g, mall_id, s };
	PGresult *r = g && s ? pg_query(prod, catalog_sql, 3, pp) : NULL;
	free(g);
	free(s);
	if (!r) {
		log_event(LOG_WARN, "catalog context failed", json_pack("{s:s}", "error", pg_last_error(prod)));
		json_decref(out);
		return NULL;
	}
	/* the exact check, best first: rows come ranked by the coarse hits,
	 * a stable insertion by exact hits keeps that order among equals */
	uint64_t colours = q.concepts & kind_mask(COLOUR), garments = q.concepts & kind_mask(GARMENT);
	json_t *kept[5];
	int score[5], nkept = 0;
	for (int row = 0; row < PQntuples(r); row++) {
		struct buf b = { 0 };
		for (int col = 1; col <= 6; col++)
			if (!PQgetisnull(r, row, col) && col != 3 && col != 4)
				buf_printf(&b, "%s ", PQgetvalue(r, row, col));
		struct stem_tokens tk = { 0 };
		uint64_t m = concepts_of_text(b.data ? b.data : "", &tk);
		buf_free(&b);
		int hits = stem_hits(&q, &tk);
		stem_tokens_free(&tk);
		if ((colours && !(m & colours)) || (garments && !(m & garments)) || (!q.concepts && !hits))
			continue;
		int at = nkept;
		while (at > 0 && score[at - 1] < hits)
			at--;
		if (at == 5)
			continue;
		if (nkept == 5)
			json_decref(kept[--nkept]);
		memmove(kept + at + 1, kept + at, (size_t)(nkept - at) * sizeof *kept);
		memmove(score + at + 1, score + at, (size_t)(nkept - at) * sizeof *score);
		json_t *o = json_pack("{s:s, s:s}", "sku", PQgetvalue(r, row, 0), "brand", PQgetvalue(r, row, 1));
		static const char *const keys[] = { NULL, NULL, "name", "price", "currency", "category",
						    "colour", "store", "floor", "mall_id" };
		for (int col = 2; col < 10; col++)
			if (!PQgetisnull(r, row, col))
				json_object_set_new(o, keys[col], json_string(PQgetvalue(r, row, col)));
		kept[at] = o;
		score[at] = hits;
		nkept++;
	}
	PQclear(r);
	for (int i = 0; i < nkept; i++)
		json_array_append_new(out, kept[i]);
	return out;
}

/* Does the lower-cased text hold needle (lower-cased here)? */
static int names(const char *text_lc, const char *needle)
{
	if (!needle || strlen(needle) < 3)
		return 0;
	char *n = llm_lower(needle);
	int hit = strstr(text_lc, n) != NULL;
	free(n);
	return hit;
}

json_t *catalog_artifact(const json_t *catalog, const char *intent, const char *text)
{
	if (!text || !json_array_size(catalog))
		return NULL;
	char *lc = llm_lower(text);
	json_t *items = json_array();
	size_t i;
	const json_t *p;
	json_array_foreach(catalog, i, p)
	{
		const char *sku = json_string_value(json_object_get(p, "sku"));
		const char *name = json_string_value(json_object_get(p, "name"));
		if (!names(lc, sku) && !names(lc, name))
			continue;
		json_t *it = json_pack("{s:s?, s:s?, s:s?, s:s?, s:s?, s:s?, s:s?}", "sku", sku, "brand",
				       json_string_value(json_object_get(p, "brand")), "name", name, "category",
				       json_string_value(json_object_get(p, "category")), "color",
				       json_string_value(json_object_get(p, "colour")), "store",
				       json_string_value(json_object_get(p, "store")), "currency",
				       json_string_value(json_object_get(p, "currency")));
		const char *price = json_string_value(json_object_get(p, "price"));
		char *end;
		double v = price ? strtod(price, &end) : 0;
		if (price && *price && !*end)
			json_object_set_new(it, "price", json_real(v));
		json_array_append_new(items, it);
	}
	free(lc);
	if (!json_array_size(items)) {
		json_decref(items);
		return NULL;
	}
	return json_pack("{s:s, s:o}", "type", !strcmp(intent, "stylist") ? "look" : "products", "items", items);
}
