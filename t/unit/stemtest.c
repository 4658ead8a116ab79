/* stemtest — drives lib/stem from the shell for t/stem.bats:
 *
 *   stemtest tokens TEXT   one JSON line per token: kind, text, script,
 *                          flags (caps, elongated, capital), stem, offset
 *   stemtest stem WORD…    one line per word: its Snowball stem
 *   stemtest squeeze WORD  the word with letter runs cut to one
 * Exit 65 on invalid UTF-8 (the offset of the bad byte on stderr). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <jansson.h>

#include "stem.h"

static const char *kind_name(enum stem_kind k)
{
	switch (k) {
	case STEM_WORD: return "word";
	case STEM_NUMBER: return "number";
	case STEM_EMOJI: return "emoji";
	case STEM_EMOTICON: return "emoticon";
	case STEM_PUNCT: return "punct";
	}
	return "?";
}

static const char *script_name(enum stem_script s)
{
	switch (s) {
	case STEM_SCRIPT_LATIN: return "latin";
	case STEM_SCRIPT_CYRILLIC: return "cyrillic";
	case STEM_SCRIPT_MIXED: return "mixed";
	case STEM_SCRIPT_NONE: break;
	}
	return "none";
}

static int run_tokens(const char *text)
{
	struct stem_tokens t;
	size_t bad = 0;
	if (stem_tokenize(text, strlen(text), &t, &bad) != 0) {
		fprintf(stderr, "invalid UTF-8 at byte %zu\n", bad);
		stem_tokens_free(&t);
		return EX_DATAERR;
	}
	struct stemmer *st = stemmer_new();
	if (!st) {
		stem_tokens_free(&t);
		return EX_SOFTWARE;
	}
	for (size_t i = 0; i < t.n; i++) {
		const struct stem_token *k = &t.v[i];
		json_t *o = json_pack("{s:s, s:s, s:I, s:I}", "kind", kind_name(k->kind), "text", k->text,
				      "offset", (json_int_t)k->offset, "raw_len", (json_int_t)k->raw_len);
		if (k->kind == STEM_WORD) {
			char buf[1100];
			if (stemmer_stem(st, k->text, k->len, buf, sizeof buf) >= 0)
				json_object_set_new(o, "stem", json_string(buf));
			json_object_set_new(o, "script", json_string(script_name(k->script)));
			json_object_set_new(o, "caps", json_boolean(k->flags & STEM_TOK_CAPS));
			json_object_set_new(o, "elongated", json_boolean(k->flags & STEM_TOK_ELONGATED));
			json_object_set_new(o, "capital", json_boolean(k->flags & STEM_TOK_CAPITAL));
		}
		char *line = json_dumps(o, JSON_COMPACT);
		puts(line);
		free(line);
		json_decref(o);
	}
	stemmer_free(st);
	stem_tokens_free(&t);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && strcmp(argv[1], "tokens") == 0)
		return run_tokens(argv[2]);
	if (argc >= 3 && strcmp(argv[1], "stem") == 0) {
		struct stemmer *st = stemmer_new();
		if (!st)
			return EX_SOFTWARE;
		for (int i = 2; i < argc; i++) {
			char buf[1100];
			if (stemmer_stem(st, argv[i], strlen(argv[i]), buf, sizeof buf) < 0) {
				stemmer_free(st);
				return EX_SOFTWARE;
			}
			puts(buf);
		}
		stemmer_free(st);
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "squeeze") == 0) {
		char buf[1024];
		if (stem_squeeze(argv[2], buf, sizeof buf) < 0)
			return EX_SOFTWARE;
		puts(buf);
		return 0;
	}
	fprintf(stderr, "usage: stemtest tokens TEXT | stem WORD... | squeeze WORD\n");
	return EX_USAGE;
}
