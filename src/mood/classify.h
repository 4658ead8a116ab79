/* classify.h — the local mood classifier: lexicon + rules, no model.
 *
 * What it reads in a message (Russian, English, or both mixed; typed chat
 * or partial ASR text without punctuation or capitals):
 *   sentiment words by Snowball stem, with intensity; intensifiers and
 *   softeners on the next sentiment word; negation over the next three
 *   words (or to the clause's end); contrast ("но", "but": the clause after
 *   it weighs more, the one before less); exclamation and question marks,
 *   "?!"; words in capitals; letters held ("сууупер"); emoji and emoticons,
 *   including Russian chat brackets; urgency cues and clock times; fatigue
 *   and frustration cues; certainty and hedging; topic shifts and thread
 *   breaks; sarcasm lead-ins ("ну да", "yeah right") over a complaint.
 * Every output number is in [0, 1]; valence 0.5 is neutral. */
#ifndef UNDE_MOOD_CLASSIFY_H
#define UNDE_MOOD_CLASSIFY_H

#include <stddef.h>

#include "lexicon.h"
#include "stem.h"

struct mood_reading {
	double valence, arousal, dominance;
	double frustration, urgency, confidence, fatigue;
	double compound;   /* signed sentiment in [-1, 1] before mapping to valence */
	int topic_shift;   /* a shift cue ("кстати", "by the way") */
	int thread_break;  /* a break cue ("забудь", "never mind") */
	int sarcasm;       /* positive words turned by a sarcasm lead-in */
	int sentiment_terms; /* how many lexicon sentiment terms were seen */
};

/* Read text. Returns 0, or -1 for invalid UTF-8 (*bad_offset set). */
int mood_classify(const struct lexicon *lx, struct stemmer *st, const char *text, size_t len,
		  struct mood_reading *out, size_t *bad_offset);

#endif
