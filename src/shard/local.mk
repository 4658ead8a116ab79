# unde-shard: the user data shard (spec §14), one module per job.
bin_PROGRAMS += src/unde-shard
src_unde_shard_SOURCES = \
	src/shard/main.c src/shard/shard.h \
	src/shard/admin.c \
	src/shard/save.c \
	src/shard/knowledge.c src/shard/keys.c \
	src/shard/forget.c src/shard/tombcopy.c src/shard/apply.c src/shard/compact.c \
	src/shard/search.c \
	src/shard/move.c \
	src/shard/status.c
src_unde_shard_LDADD = $(UNDE_LIBS) $(STEMMER_LIBS)
dist_man_MANS += man/unde-shard.1
TESTS += t/unde-shard.bats t/unde-shard-memory.bats
EXTRA_DIST += bench/shard/README.md bench/shard/run bench/shard/cluster.sh \
	bench/shard/build.sh bench/shard/gen.sql bench/shard/measure.sql bench/shard/dense.sql \
	bench/shard/enrich.sh bench/shard/enrich-bench.c \
	bench/shard/crowded.sh bench/shard/crowded.sql
