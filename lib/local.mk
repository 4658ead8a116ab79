noinst_LIBRARIES = lib/libunde.a
lib_libunde_a_SOURCES = \
	lib/conf.c lib/conf.h \
	lib/filter.c lib/filter.h \
	lib/http.c lib/http.h \
	lib/jsonl.c lib/jsonl.h \
	lib/log.c lib/log.h \
	lib/metrics.c lib/metrics.h \
	lib/pg.c lib/pg.h \
	lib/util.c lib/util.h
lib_libunde_a_SOURCES += lib/objstore.c lib/objstore.h
lib_libunde_a_SOURCES += lib/crypto.c lib/crypto.h
lib_libunde_a_SOURCES += lib/image.c lib/image.h
lib_libunde_a_SOURCES += lib/descriptor.c lib/descriptor.h
