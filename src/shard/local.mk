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
TESTS += t/unde-shard.bats t/unde-shard-memory.bats t/unde-shard-native.bats
EXTRA_DIST += bench/shard/README.md bench/shard/run bench/shard/cluster.sh \
	bench/shard/build.sh bench/shard/gen.sql bench/shard/measure.sql bench/shard/dense.sql \
	bench/shard/enrich.sh bench/shard/enrich-bench.c \
	bench/shard/crowded.sh bench/shard/crowded.sql bench/shard/module-ab.sh

# unde-shard's PostgreSQL module: the vector branch as one C function
# (migration 0050 creates it from the installed path). Built with the
# server's own flags, never the sanitizers: the postmaster that loads it
# is not built with them.
unde_pgmoduledir = $(pkglibdir)
unde_pgmodule_DATA = src/shard/pg/unde_vector.so
PGMOD_WARN = -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers \
	-Wno-sign-compare -Wno-declaration-after-statement $(PGMOD_WERROR)
src/shard/pg/unde_vector.so: src/shard/pg/unde_vector.c
	@$(MKDIR_P) src/shard/pg
	$(AM_V_CC)$(CC) $(PGMOD_CFLAGS) $(PGMOD_WARN) -shared -o $@ $(srcdir)/src/shard/pg/unde_vector.c
CLEANFILES += src/shard/pg/unde_vector.so
EXTRA_DIST += src/shard/pg/unde_vector.c
