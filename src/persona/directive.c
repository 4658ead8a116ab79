/* directive.c — the directive builder: persona_directive as 7 named blocks
 * (identity, relationship, tone, situation, cultural, memory, hard_bans)
 * for the LLM's system prompt, and the same joined as text with a heading
 * per block, so the orchestrator can take either. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "persona.h"
#include "util.h"

static const char *const BLOCKS[7] = { "identity", "relationship", "tone", "situation",
				       "cultural", "memory", "hard_bans" };

/* Join the strings of an array with spaces into buf. */
static void join(const json_t *a, char *buf, size_t len)
{
	size_t i, at = 0;
	json_t *s;
	buf[0] = 0;
	json_array_foreach(a, i, s) {
		int n = snprintf(buf + at, len - at, "%s%s", at ? " " : "", json_string_value(s));
		if (n < 0 || (size_t)n >= len - at)
			break;
		at += (size_t)n;
	}
}

json_t *directive_build(const struct persona_ctx *c)
{
	static const char *const humor[4] = { "No humour.", "Humour: at most a light smile.",
					      "Humour: light jokes are fine.", "Humour: playful banter is welcome." };
	static const char *const memory[4] = {
		"Do not refer to earlier conversations.",
		"Memory: use what you know about the user subtly, never quote it back.",
		"Memory: you may recall one relevant preference naturally.",
		"Memory: callbacks to shared history are welcome.",
	};
	static const char *const verbosity[3] = { "Keep replies to one or two short sentences.",
						  "Keep replies to a few sentences.",
						  "Detailed answers are welcome." };
	static const char *const emoji[3] = { "No emoji.", "At most one emoji.", "A few emoji are fine." };
	static const char *const compliments[3] = { "No compliments.", "Compliments: rare and specific.",
						    "Compliments: sincere and specific." };
	char text[7][1200];
	snprintf(text[0], sizeof text[0],
		 "You are UNDE, a personal fashion assistant: honest, tasteful, on the user's side. %s %s",
		 compliments[c->d[D_COMPLIMENTS].value], emoji[c->d[D_EMOJI].value]);
	snprintf(text[1], sizeof text[1], "%s", c->relationship);
	snprintf(text[2], sizeof text[2], "Tone: %s. %s %s %s", TONE_MODES[c->d[D_TONE].value].name,
		 TONE_MODES[c->d[D_TONE].value].directive, humor[c->d[D_HUMOR].value],
		 verbosity[c->d[D_VERBOSITY].value]);
	join(c->situation, text[3], sizeof text[3]);
	if (!text[3][0])
		snprintf(text[3], sizeof text[3], "Nothing special about the moment.");
	if (c->chosen_ref)
		snprintf(text[4], sizeof text[4], "You may make one cultural reference if it fits: %s",
			 c->chosen_ref->hint);
	else
		snprintf(text[4], sizeof text[4], "No cultural references.");
	snprintf(text[5], sizeof text[5], "%s", memory[c->d[D_MEMORY].value]);
	join(c->bans, text[6], sizeof text[6]);
	json_t *blocks = json_object();
	struct buf all = { 0 };
	for (int i = 0; i < 7; i++) {
		json_object_set_new(blocks, BLOCKS[i], json_string(text[i]));
		char head[40];
		int n = snprintf(head, sizeof head, "%s[%s]\n", i ? "\n\n" : "", BLOCKS[i]);
		buf_append(&all, head, (size_t)n);
		buf_append(&all, text[i], strlen(text[i]));
	}
	json_t *d = json_pack("{s:s, s:o, s:s%}", "contract_version", PERSONA_CONTRACT_VERSION, "blocks",
			      blocks, "text", all.data, all.len);
	buf_free(&all);
	return d;
}
