# Commands. Each links libunde; only the ones that glue images link libvips.
AM_CPPFLAGS += -DUNDE_SRCDIR='"$(abs_top_srcdir)"' -DUNDE_BUILDDIR='"$(abs_top_builddir)"'

bin_PROGRAMS += src/unde-db
src_unde_db_SOURCES = src/unde-db.c
src_unde_db_LDADD = $(UNDE_LIBS)
