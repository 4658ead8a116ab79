# unde-context: the Context Agent (spec §15).
bin_PROGRAMS += src/unde-context
src_unde_context_SOURCES = \
	src/context/main.c \
	src/context/place.c src/context/place.h \
	src/context/weather.c src/context/weather.h \
	src/context/calendar.c src/context/calendar.h \
	src/context/sun.c src/context/sun.h
src_unde_context_CPPFLAGS = $(AM_CPPFLAGS) -DUNDE_PKGDATADIR='"$(pkgdatadir)"'
src_unde_context_LDADD = $(UNDE_LIBS) $(NOVA_LIBS)
contextdatadir = $(pkgdatadir)/context
dist_contextdata_DATA = src/context/calendar.json
dist_man_MANS += man/unde-context.1
TESTS += t/unde-context.bats
EXTRA_DIST += t/fakes/weather.py
