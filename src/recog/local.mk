# Fashion recognition (spec §8-§10, issue 15): the Ximilar Gateway, the
# LLM Reranker and the Recognition Orchestrator, sharing src/recog/.
RECOG_COMMON = src/recog/recog.h src/recog/photo.c src/recog/gw.c src/recog/gw_int.h src/recog/gw_search.c \
	src/recog/rr.c src/recog/rmetrics.c \
	src/recog/ratelimit.c src/recog/cmd.c src/recog/regions.c src/recog/vips.c src/recog/rvips.h
bin_PROGRAMS += src/unde-ximilar src/unde-rerank src/unde-recognize
src_unde_ximilar_SOURCES = $(RECOG_COMMON) src/recog/ximilar_main.c
src_unde_ximilar_CFLAGS = $(AM_CFLAGS) $(VIPS_CFLAGS) $(JPEG_CFLAGS)
src_unde_ximilar_LDADD = $(UNDE_LIBS) $(JPEG_LIBS) -ldl -lpthread
src_unde_rerank_SOURCES = $(RECOG_COMMON) src/recog/rerank_main.c
src_unde_rerank_CFLAGS = $(AM_CFLAGS) $(VIPS_CFLAGS) $(JPEG_CFLAGS)
src_unde_rerank_LDADD = $(UNDE_LIBS) $(JPEG_LIBS) -ldl -lpthread
src_unde_recognize_SOURCES = $(RECOG_COMMON) src/recog/recognize_main.c src/recog/recognize.h \
	src/recog/recognize_decide.c src/recog/recognize_row.c
src_unde_recognize_CFLAGS = $(AM_CFLAGS) $(VIPS_CFLAGS) $(JPEG_CFLAGS)
src_unde_recognize_LDADD = $(UNDE_LIBS) $(JPEG_LIBS) -ldl -lpthread
TESTS += t/unde-ximilar.bats t/unde-rerank.bats t/unde-recognize.bats
dist_man_MANS += man/unde-ximilar.1 man/unde-rerank.1 man/unde-recognize.1
EXTRA_DIST += bench/recognize/run bench/recognize/overhead bench/recognize/stamp.py bench/recognize/gen.py bench/recognize/README.md
