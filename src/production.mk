# The catalog's way to production (spec §1, §4, §17.2, §17.4, §18):
# unde-ximilar-sync (photos → Ximilar collection, or local descriptors in
# pgvector), unde-availability (store stock → staging), unde-sync
# (staging → production), unde-cleanup (old staging data).

bin_PROGRAMS += src/unde-sync
src_unde_sync_SOURCES = src/sync/main.c
src_unde_sync_LDADD = $(UNDE_LIBS)

bin_PROGRAMS += src/unde-availability
src_unde_availability_SOURCES = src/availability/main.c src/availability/inditex.c \
	src/availability/availability.h
src_unde_availability_LDADD = $(UNDE_LIBS)

bin_PROGRAMS += src/unde-cleanup
src_unde_cleanup_SOURCES = src/cleanup/main.c
src_unde_cleanup_LDADD = $(UNDE_LIBS)

TESTS += t/unde-availability.bats t/unde-sync.bats t/unde-cleanup.bats

# unde-ximilar-sync links libjpeg (local descriptors) and the claims
bin_PROGRAMS += src/unde-ximilar-sync
src_unde_ximilar_sync_SOURCES = src/ximilar-sync/main.c src/ximilar-sync/ximilar.c \
	src/ximilar-sync/local.c src/ximilar-sync/xsync.h
src_unde_ximilar_sync_CFLAGS = $(AM_CFLAGS) $(JPEG_CFLAGS)
src_unde_ximilar_sync_LDADD = src/catalog/libcatalog.a $(UNDE_LIBS) $(JPEG_LIBS)
TESTS += t/unde-ximilar-sync.bats
dist_man_MANS += man/unde-ximilar-sync.1 man/unde-availability.1 man/unde-sync.1 man/unde-cleanup.1
TESTS += t/catalog-pipeline.bats
EXTRA_DIST += share/sample/README.md share/sample/items.jsonl share/sample/stock.jsonl share/sample/make-dataset share/sample/run
EXTRA_DIST += bench/production/run bench/production/README.md
