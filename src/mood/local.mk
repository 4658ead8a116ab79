# unde-mood: the Mood Agent (spec §11).
bin_PROGRAMS += src/unde-mood
src_unde_mood_SOURCES = \
	src/mood/main.c \
	src/mood/classify.c src/mood/classify.h \
	src/mood/lexicon.c src/mood/lexicon.h \
	src/mood/frame.c src/mood/frame.h \
	src/mood/providers.c src/mood/providers.h \
	src/mood/history.c src/mood/history.h
src_unde_mood_CPPFLAGS = $(AM_CPPFLAGS) -DUNDE_PKGDATADIR='"$(pkgdatadir)"'
src_unde_mood_LDADD = $(UNDE_LIBS) $(STEMMER_LIBS)
moodlexicondir = $(pkgdatadir)/mood
dist_moodlexicon_DATA = src/mood/lexicon.tsv
dist_man_MANS += man/unde-mood.1
TESTS += t/unde-mood.bats
EXTRA_DIST += t/fakes/deepseek.py t/fakes/gemini.py
