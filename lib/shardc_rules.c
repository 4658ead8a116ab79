/* shardc_rules.c — the synchronous rules of spec §13 that every save and
 * replay applies to a message before it is stored (salience_check,
 * classify_memory), and the rule-based memory_snippet that unde-embed
 * writes later. All rule-based, no I/O, microseconds per message.
 *
 * Words are compared by their Snowball stems (lib/stem.h: Russian for
 * Cyrillic, English for Latin), so "грустно", "грустный" and "грустная"
 * meet one lexicon entry. The lexicons below are written as ordinary word
 * forms and stemmed once, on first use; a phrase ("терпеть не могу",
 * "next week") matches consecutive words. One stemmer per process: these
 * functions are not thread-safe (the shard filters are single-threaded). */
#include "config.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "shardc.h"
#include "stem.h"
#include "util.h"

#define PHRASE_MAX 4
#define STEM_MAX 64

/* A lexicon entry: up to PHRASE_MAX words, stemmed on first use. */
struct entry {
	const char *words;
	char stems[PHRASE_MAX][STEM_MAX];
	int n;
};

/* memory types, in the order ties are broken: a feeling named outranks
 * the day it is felt ("сегодня так грустно"), a date outranks a fact */
enum mtype { M_EMOTION, M_EVENT, M_FACT, M_PREFERENCE, M_NTYPES };
static const char *const mtype_name[] = { "emotion", "event", "fact", "preference" };

#define E(w) { w, { { 0 } }, 0 }

static struct entry lex_event[] = {
	E("завтра"), E("вчера"), E("сегодня"), E("послезавтра"), E("выходные"), E("выходных"),
	E("свадьба"), E("свадьбу"), E("свадьбе"), E("встреча"), E("встречу"), E("собеседование"),
	E("собеседовании"), E("отпуск"), E("отпуске"), E("поездка"), E("поездку"), E("командировка"),
	E("командировку"), E("концерт"), E("вечеринка"), E("вечеринку"), E("праздник"), E("корпоратив"),
	E("день рождения"), E("на следующей неделе"), E("в пятницу"), E("в субботу"), E("в воскресенье"),
	E("в понедельник"), E("лечу"), E("летим"), E("еду"), E("едем"), E("идём"), E("иду"), E("было"),
	E("ходила"), E("ходил"), E("была"), E("был"), E("случилось"), E("свидание"), E("выпускной"),
	E("театр"), E("кино"), E("imax"), E("ресторан"), E("ужин"), E("презентация"), E("экзамен"),
	E("tomorrow"), E("yesterday"), E("today"), E("tonight"), E("weekend"), E("wedding"),
	E("meeting"), E("interview"), E("vacation"), E("trip"), E("party"), E("birthday"),
	E("concert"), E("next week"), E("on friday"), E("on saturday"), E("flying"), E("went"),
	E("date"), E("dinner"), E("conference"), E("graduation"), E("happened"), E("was"),
};
static struct entry lex_fact[] = {
	E("размер"), E("размера"), E("рост"), E("вес"), E("вешу"), E("лет"), E("работаю"), E("живу"),
	E("аллергия"), E("аллергию"), E("не ем"), E("вегетарианка"), E("вегетарианец"), E("веган"),
	E("у меня"), E("мой"), E("моя"), E("мои"), E("дочь"), E("сын"), E("муж"), E("жена"),
	E("профессия"), E("учусь"), E("переехала"), E("переехал"), E("см"), E("кг"), E("зовут"),
	E("size"), E("height"), E("weigh"), E("years old"), E("i work"), E("work as"), E("live in"),
	E("allergic"), E("vegetarian"), E("vegan"), E("i am a"), E("my husband"), E("my wife"),
	E("my daughter"), E("my son"), E("cm"), E("kg"), E("my name"), E("i study"), E("moved"),
	E("don't eat"), E("do not eat"),
};
static struct entry lex_preference[] = {
	E("люблю"), E("любит"), E("любимый"), E("любимая"), E("любимые"), E("нравится"), E("нравятся"),
	E("обожаю"), E("предпочитаю"), E("ненавижу"), E("терпеть не могу"), E("не ношу"), E("ношу"),
	E("хочу"), E("хотела"), E("хотел"), E("стиль"), E("не люблю"), E("не нравится"),
	E("мне идёт"), E("не идёт"), E("подходит"), E("выбираю"), E("лучше"), E("цвет"), E("цвета"),
	E("like"), E("love"), E("prefer"), E("hate"), E("favorite"), E("favourite"), E("can't stand"),
	E("never wear"), E("always wear"), E("wear"), E("want"), E("style"), E("rather"), E("into"),
	E("suits me"), E("colour"), E("color"), E("fan of"),
};
static struct entry lex_emotion[] = {
	E("грустно"), E("грустный"), E("грустная"), E("радостно"), E("рада"), E("рад"), E("счастлива"),
	E("счастлив"), E("устала"), E("устал"), E("злюсь"), E("бесит"), E("нервничаю"), E("волнуюсь"),
	E("тревожно"), E("тревога"), E("обидно"), E("стыдно"), E("страшно"), E("боюсь"), E("плачу"),
	E("одиноко"), E("настроение"), E("чувствую"), E("ужасно"), E("отлично"), E("кайф"), E("депрессия"),
	E("расстроена"), E("расстроен"), E("переживаю"), E("восторге"), E("скучно"), E("плохо"),
	E("happy"), E("sad"), E("tired"), E("angry"), E("upset"), E("anxious"), E("excited"),
	E("stressed"), E("feel"), E("feeling"), E("lonely"), E("depressed"), E("nervous"), E("scared"),
	E("afraid"), E("mood"), E("awful"), E("thrilled"), E("annoyed"), E("frustrated"), E("crying"),
	E("worried"), E("bored"),
};
static struct entry lex_intensifier[] = {
	E("очень"), E("сильно"), E("обожаю"), E("всегда"), E("никогда"), E("абсолютно"), E("точно"),
	E("совсем"), E("безумно"), E("ужасно"), E("прям"), E("реально"), E("категорически"),
	E("обязательно"), E("really"), E("very"), E("always"), E("never"), E("definitely"),
	E("absolutely"), E("so"), E("totally"), E("extremely"), E("super"), E("must"),
};
static struct entry lex_softener[] = {
	E("наверное"), E("может"), E("возможно"), E("кажется"), E("вроде"), E("немного"), E("чуть"),
	E("иногда"), E("пожалуй"), E("не уверена"), E("не уверен"), E("думаю"), E("скорее"),
	E("maybe"), E("perhaps"), E("probably"), E("kind of"), E("sort of"), E("a bit"),
	E("sometimes"), E("i think"), E("not sure"), E("might"), E("guess"), E("somewhat"),
};
/* a message of nothing but these is not worth embedding */
static struct entry lex_filler[] = {
	E("ок"), E("окей"), E("ага"), E("угу"), E("да"), E("нет"), E("спасибо"), E("спс"), E("хорошо"),
	E("понятно"), E("ясно"), E("ладно"), E("класс"), E("супер"), E("круто"), E("привет"), E("пока"),
	E("ну"), E("ой"), E("ах"), E("хм"), E("вообще-то"), E("вообще"), E("кстати"), E("честно"), E("ммм"), E("пожалуйста"), E("большое"), E("тебе"), E("вам"),
	E("ok"), E("okay"), E("yes"), E("no"), E("yeah"), E("yep"), E("nope"), E("thanks"), E("thank"),
	E("you"), E("thx"), E("ty"), E("cool"), E("nice"), E("great"), E("sure"), E("hi"), E("hello"),
	E("bye"), E("lol"), E("hmm"), E("wow"), E("well"), E("actually"), E("honestly"), E("much"), E("so"), E("very"), E("oh"), E("ah"),
};

#define LEX(a) { a, sizeof a / sizeof *a }
static const struct {
	struct entry *v;
	size_t n;
} lex_type[M_NTYPES] = { LEX(lex_emotion), LEX(lex_event), LEX(lex_fact), LEX(lex_preference) };

static struct stemmer *stemmer_once;
static int stemmer_failed;

/* Stem one word into out (STEM_MAX); on any trouble the word itself. */
static void stem_word(const char *w, size_t len, char out[STEM_MAX])
{
	if (!stemmer_once || stemmer_stem(stemmer_once, w, len, out, STEM_MAX) < 0)
		snprintf(out, STEM_MAX, "%.*s", (int)len, w);
}

/* Stem one lexicon's entries, once. */
static void lex_prepare(struct entry *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct stem_tokens t = { 0 };
		size_t bad;
		v[i].n = 0;
		if (stem_tokenize(v[i].words, strlen(v[i].words), &t, &bad) == 0)
			for (size_t k = 0; k < t.n && v[i].n < PHRASE_MAX; k++)
				if (t.v[k].kind == STEM_WORD)
					stem_word(t.v[k].text, t.v[k].len, v[i].stems[v[i].n++]);
		stem_tokens_free(&t);
		assert(v[i].n > 0);
	}
}

/* The stemmer and every lexicon, on first use. 0, or -1 when libstemmer
 * is broken (the rules then fall back to the caller's values). */
static int rules_init(void)
{
	if (stemmer_once)
		return 0;
	if (stemmer_failed)
		return -1;
	if (!(stemmer_once = stemmer_new())) {
		stemmer_failed = 1;
		log_event(LOG_ERROR, "libstemmer has no Russian or English stemmer", NULL);
		return -1;
	}
	for (int i = 0; i < M_NTYPES; i++)
		lex_prepare(lex_type[i].v, lex_type[i].n);
	lex_prepare(lex_intensifier, sizeof lex_intensifier / sizeof *lex_intensifier);
	lex_prepare(lex_softener, sizeof lex_softener / sizeof *lex_softener);
	lex_prepare(lex_filler, sizeof lex_filler / sizeof *lex_filler);
	return 0;
}

/* A message's words, stemmed, with the tokens they came from. */
struct words {
	struct stem_tokens t;
	char (*stem)[STEM_MAX];
	size_t *tok; /* token index of each word */
	size_t n;
	int ok;      /* tokenized (valid UTF-8) */
};

static void words_of(const char *text, struct words *w)
{
	memset(w, 0, sizeof *w);
	size_t bad;
	if (stem_tokenize(text, strlen(text), &w->t, &bad) != 0)
		return;
	w->ok = 1;
	w->stem = xmalloc((w->t.n + 1) * sizeof *w->stem);
	w->tok = xmalloc((w->t.n + 1) * sizeof *w->tok);
	for (size_t i = 0; i < w->t.n; i++)
		if (w->t.v[i].kind == STEM_WORD) {
			stem_word(w->t.v[i].text, w->t.v[i].len, w->stem[w->n]);
			w->tok[w->n++] = i;
		}
}

static void words_free(struct words *w)
{
	stem_tokens_free(&w->t);
	free(w->stem);
	free(w->tok);
}

/* Does entry e match the words at position i? */
static int entry_at(const struct entry *e, const struct words *w, size_t i)
{
	if (i + (size_t)e->n > w->n)
		return 0;
	for (int k = 0; k < e->n; k++)
		if (strcmp(e->stems[k], w->stem[i + (size_t)k]) != 0)
			return 0;
	return 1;
}

/* How many times any entry of a lexicon occurs in the words. */
static int lex_count(const struct entry *v, size_t n, const struct words *w)
{
	int hits = 0;
	for (size_t i = 0; i < w->n; i++)
		for (size_t k = 0; k < n; k++)
			if (entry_at(&v[k], w, i)) {
				hits++;
				break;
			}
	return hits;
}

/* Characters (code points) of a UTF-8 string. */
static size_t utf8_chars(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += ((unsigned char)*s & 0xC0) != 0x80;
	return n;
}

int shard_salience(const char *role, const char *content)
{
	if (!role || strcmp(role, "user") != 0 || !content || utf8_chars(content) <= 15)
		return 0;
	if (rules_init() != 0)
		return 1; /* no stemmer: the length rule alone */
	struct words w;
	words_of(content, &w);
	int salient = 0;
	if (!w.ok) {
		salient = 1; /* not ours to judge: the database refuses bad UTF-8 */
	} else {
		size_t fillers = 0, numbers = 0;
		for (size_t i = 0; i < w.t.n; i++)
			numbers += w.t.v[i].kind == STEM_NUMBER;
		for (size_t i = 0; i < w.n; i++)
			for (size_t k = 0; k < sizeof lex_filler / sizeof *lex_filler; k++)
				if (entry_at(&lex_filler[k], &w, i)) {
					fillers++;
					break;
				}
		salient = numbers > 0 || w.n > fillers;
	}
	words_free(&w);
	return salient;
}

int shard_classify_memory(const char *content, const char **type, double *confidence)
{
	*type = "general";
	*confidence = 0.5;
	if (!content || rules_init() != 0)
		return -1;
	struct words w;
	words_of(content, &w);
	if (!w.ok) {
		words_free(&w);
		return -1;
	}
	int best = -1, best_hits = 0;
	for (int m = 0; m < M_NTYPES; m++) {
		int h = lex_count(lex_type[m].v, lex_type[m].n, &w);
		if (m == M_EMOTION)
			for (size_t i = 0; i < w.t.n; i++) /* a sad or happy face is an emotion word */
				h += w.t.v[i].kind == STEM_EMOJI || w.t.v[i].kind == STEM_EMOTICON;
		if (h > best_hits) {
			best = m;
			best_hits = h;
		}
	}
	int up = lex_count(lex_intensifier, sizeof lex_intensifier / sizeof *lex_intensifier, &w);
	int down = lex_count(lex_softener, sizeof lex_softener / sizeof *lex_softener, &w);
	for (size_t i = 0; i < w.t.n; i++) {
		const struct stem_token *k = &w.t.v[i];
		if (k->flags & (STEM_TOK_CAPS | STEM_TOK_ELONGATED))
			up++;
		if (k->kind == STEM_PUNCT && strchr(k->text, '!') && k->len >= 2)
			up++;
		if (k->kind == STEM_PUNCT && strchr(k->text, '?'))
			down++;
	}
	words_free(&w);
	double c = best < 0 ? 0.5 : 0.6;
	c += 0.1 * (up > 3 ? 3 : up) - 0.1 * (down > 3 ? 3 : down);
	*confidence = c < 0.1 ? 0.1 : c > 0.95 ? 0.95 : c;
	if (best >= 0)
		*type = mtype_name[best];
	return 0;
}

/* Is word i a filler or a softener (no content of its own)? */
static int word_is_empty(const struct words *w, size_t i)
{
	for (size_t k = 0; k < sizeof lex_filler / sizeof *lex_filler; k++)
		if (lex_filler[k].n == 1 && entry_at(&lex_filler[k], w, i))
			return 1;
	for (size_t k = 0; k < sizeof lex_softener / sizeof *lex_softener; k++)
		if (lex_softener[k].n == 1 && entry_at(&lex_softener[k], w, i))
			return 1;
	return 0;
}

/* Characters in content[from, to). */
static size_t span_chars(const char *content, size_t from, size_t to)
{
	size_t n = 0;
	for (size_t b = from; b < to; b++)
		n += ((unsigned char)content[b] & 0xC0) != 0x80;
	return n;
}

/* The rule-based episode card: the message without its leading fillers
 * and softeners ("ну, вообще-то", "maybe") when that fits in max_chars;
 * a longer one is split into clauses at sentence punctuation and commas,
 * and the clause with the most content words (the first on a tie) is kept
 * with the clauses after it while they fit, cut on a word boundary with
 * "…" when even it does not. */
char *shard_memory_snippet(const char *content, size_t max_chars)
{
	if (!content || max_chars < 8 || rules_init() != 0)
		return NULL;
	struct words w;
	words_of(content, &w);
	if (!w.ok || !w.n) {
		words_free(&w);
		return NULL;
	}
	/* clauses: byte span from the first content word to the last word or
	 * number, with the count of content words */
	size_t nc = 0, *from = xcalloc(w.t.n + 1, sizeof *from), *to = xcalloc(w.t.n + 1, sizeof *to);
	size_t *score = xcalloc(w.t.n + 1, sizeof *score);
	size_t wi = 0;
	int open = 0;
	for (size_t ti = 0; ti <= w.t.n; ti++) {
		const struct stem_token *k = ti < w.t.n ? &w.t.v[ti] : NULL;
		if (!k || (k->kind == STEM_PUNCT && strpbrk(k->text, ".!?;,"))) {
			if (open)
				nc++;
			open = 0;
			continue;
		}
		int content_word = k->kind == STEM_NUMBER || (k->kind == STEM_WORD && !word_is_empty(&w, wi));
		if (k->kind == STEM_WORD)
			wi++;
		if (!open && !content_word)
			continue;
		if (!open) {
			open = 1;
			from[nc] = k->offset;
			score[nc] = 0;
		}
		if (k->kind == STEM_WORD || k->kind == STEM_NUMBER)
			to[nc] = k->offset + k->raw_len;
		score[nc] += content_word;
	}
	char *out = NULL;
	if (nc) {
		size_t a = from[0], b = to[nc - 1];
		if (span_chars(content, a, b) > max_chars) {
			size_t best = 0;
			for (size_t c = 1; c < nc; c++)
				if (score[c] > score[best])
					best = c;
			a = from[best], b = to[best];
			for (size_t c = best + 1; c < nc && span_chars(content, a, to[c]) <= max_chars; c++)
				b = to[c];
		}
		int cut_short = span_chars(content, a, b) > max_chars;
		if (cut_short) { /* the last space that leaves room for "…" */
			size_t chars = 0, cut = a, e = a;
			for (; e < b; e++) {
				if (((unsigned char)content[e] & 0xC0) != 0x80 && ++chars > max_chars - 1)
					break;
				if (content[e] == ' ')
					cut = e;
			}
			b = cut > a ? cut : e;
			while (b > a && (content[b - 1] == ' ' || content[b - 1] == ','))
				b--;
		}
		struct buf o = { 0 };
		buf_append(&o, content + a, b - a);
		if (cut_short)
			buf_append(&o, "…", strlen("…"));
		buf_append(&o, "", 1);
		out = o.data;
	}
	free(from);
	free(to);
	free(score);
	words_free(&w);
	return out;
}
