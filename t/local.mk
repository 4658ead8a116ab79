# Tests: every t/*.bats file runs under bats --tap through automake's TAP
# driver, so test-suite.log counts each test case, not each file.
TEST_EXTENSIONS = .bats
BATS_LOG_DRIVER = env AM_TAP_AWK='$(AWK)' $(SHELL) $(top_srcdir)/build-aux/tap-driver.sh
BATS_LOG_COMPILER = $(BATS)
AM_BATS_LOG_FLAGS = --tap
AM_TESTS_ENVIRONMENT = \
	UNDE_TOP_SRCDIR='$(abs_top_srcdir)'; export UNDE_TOP_SRCDIR; \
	UNDE_TOP_BUILDDIR='$(abs_top_builddir)'; export UNDE_TOP_BUILDDIR;
# Test files ship with the tarball, so make distcheck runs the whole suite.
EXTRA_DIST += t/lib t/fakes t/fixtures $(TESTS)

# libtest: drives lib/ from t/libunde.bats (built by make check, and by
# make all so the tests can run straight from bats).
noinst_PROGRAMS += t/unit/libtest
t_unit_libtest_SOURCES = t/unit/libtest.c
t_unit_libtest_SOURCES += t/unit/libtest-online.c
t_unit_libtest_LDADD = $(UNDE_LIBS) $(JPEG_LIBS)
TESTS += t/libunde.bats t/unde-db.bats
TESTS += t/unde-job.bats t/unde-dev.bats t/unde-demo.bats

# The CI's full run: check, valgrind on the lib tests, ASan+UBSan, distcheck.
check-all:
	MAKE='$(MAKE)' PACKAGE_TARNAME='$(PACKAGE_TARNAME)' $(SHELL) $(top_srcdir)/t/check-all

# Only the lib tests under valgrind.
check-valgrind:
	UNDE_VALGRIND=1 $(MAKE) check TESTS=t/libunde.bats

.PHONY: check-all check-valgrind
EXTRA_DIST += t/check-all
TESTS += t/cron.bats t/fakes.bats t/pg-helper.bats

# libFuzzer over the JSON-lines reader and the env-file parser:
# `make fuzz-lib FUZZ_SECONDS=300`.
FUZZ_SECONDS ?= 30
FUZZ_CC = clang
FUZZ_FLAGS = -g -O1 -fsanitize=fuzzer,address,undefined -I$(top_srcdir)/lib -I$(top_builddir)
t/fuzz/jsonl-fuzz: $(top_srcdir)/t/fuzz/jsonl-fuzz.c $(top_srcdir)/lib/jsonl.c $(top_srcdir)/lib/conf.c $(top_srcdir)/lib/redact.c $(top_srcdir)/lib/log.c $(top_srcdir)/lib/util.c
	@mkdir -p t/fuzz
	$(FUZZ_CC) $(FUZZ_FLAGS) $(JANSSON_CFLAGS) $(PQ_CFLAGS) -o $@ $^ $(JANSSON_LIBS) $(PQ_LIBS) $(CRYPTO_LIBS)
fuzz-lib: t/fuzz/jsonl-fuzz
	@mkdir -p t/fuzz/work-jsonl
	./t/fuzz/jsonl-fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
		t/fuzz/work-jsonl $(top_srcdir)/t/fuzz/corpus/jsonl
.PHONY: fuzz-lib
CLEANFILES += t/fuzz/jsonl-fuzz
EXTRA_DIST += t/fuzz/jsonl-fuzz.c t/fuzz/corpus/jsonl

# example-online: the pattern of an online command (issue 10), under 150
# lines: options table, provider chain with a local stand-in, a sibling
# call, shared counters, the cache.
noinst_PROGRAMS += t/unit/example-online
t_unit_example_online_SOURCES = t/unit/example-online.c
t_unit_example_online_LDADD = $(UNDE_LIBS)
TESTS += t/example-online.bats
# hmood: lib/stem (tokenizer + Snowball) driven by t/stem.bats.
noinst_PROGRAMS += t/unit/stemtest
t_unit_stemtest_SOURCES = t/unit/stemtest.c
t_unit_stemtest_LDADD = $(UNDE_LIBS) $(STEMMER_LIBS)
TESTS += t/stem.bats
# Operations (issue 18): PgBouncer, roles, install layout, Prometheus config.
TESTS += t/pgbouncer.bats
TESTS += t/roles.bats
TESTS += t/prometheus.bats
TESTS += t/unde-install.bats
TESTS += t/cron-run.bats
