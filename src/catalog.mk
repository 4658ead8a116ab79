# catalog commands: unde-apify, unde-download, unde-collage (spec §2, §3, §5,
# §7): the pipeline `unde-apify | unde-download | unde-collage`. Only
# unde-collage links libvips.

# objtool: drives lib/objstore from t/objstore.bats (built by make all so the
# tests can run straight from bats).
noinst_PROGRAMS += t/unit/objtool
t_unit_objtool_SOURCES = t/unit/objtool.c
t_unit_objtool_LDADD = $(UNDE_LIBS)

bin_PROGRAMS += src/unde-apify
src_unde_apify_SOURCES = src/apify/main.c src/apify/fetch.c src/apify/item.c src/apify/apify.h
src_unde_apify_LDADD = $(UNDE_LIBS) -lpthread

# the claim on staging rows that unde-download and unde-collage share, and their object keys
noinst_LIBRARIES += src/catalog/libcatalog.a
src_catalog_libcatalog_a_SOURCES = src/catalog/claim.c src/catalog/claim.h src/catalog/key.c src/catalog/key.h

bin_PROGRAMS += src/unde-download
src_unde_download_SOURCES = src/download/main.c src/download/photos.c src/download/download.h
src_unde_download_LDADD = src/catalog/libcatalog.a $(UNDE_LIBS) -lpthread

# the only command that uses libvips: its headers at build time, the
# library itself opened (dlopen) only for originals that are not plain
# JPEGs, which libjpeg decodes alone (src/collage/vips.c, jpeg.c)
bin_PROGRAMS += src/unde-collage
src_unde_collage_SOURCES = src/collage/main.c src/collage/image.c src/collage/jpeg.c \
	src/collage/scale.c src/collage/scale.h src/collage/scale_kernels.c \
	src/collage/vips.c src/collage/ahead.c src/collage/collage.h
src_unde_collage_CFLAGS = $(AM_CFLAGS) $(VIPS_CFLAGS) $(JPEG_CFLAGS)
src_unde_collage_LDADD = src/catalog/libcatalog.a $(UNDE_LIBS) $(JPEG_LIBS) -ldl -lpthread

dist_man_MANS += man/unde-apify.1 man/unde-download.1 man/unde-collage.1

# lib/objstore's S3 layer against moto; the three commands; the shared
# helpers and fakes are distributed with t/lib and t/fakes.
TESTS += t/objstore.bats t/unde-apify.bats t/unde-download.bats t/unde-collage.bats

# bench/catalog: unde-collage vs the spec's Pillow procedure, unde-download
# vs its sequential loop (`bench/catalog/run`; figures in its README.md).
EXTRA_DIST += bench/catalog/run bench/catalog/collage_pillow.py \
	bench/catalog/download_sequential.py bench/catalog/README.md
