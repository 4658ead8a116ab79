# unde-voice: the Voice Server (spec §12): ElevenLabs, espeak-ng + LAME, phrase cache.
bin_PROGRAMS += src/unde-voice
src_unde_voice_SOURCES = \
	src/voice/main.c src/voice/voice.h \
	src/voice/local.c src/voice/eleven.c src/voice/cache.c src/voice/metrics.c src/voice/prune.c
src_unde_voice_CFLAGS = $(AM_CFLAGS) $(ESPEAK_CFLAGS) $(LAME_CFLAGS)
src_unde_voice_LDADD = $(UNDE_LIBS) $(ESPEAK_LIBS) $(LAME_LIBS)
dist_man_MANS += man/unde-voice.1
TESTS += t/unde-voice.bats
EXTRA_DIST += t/fakes/elevenlabs.py
