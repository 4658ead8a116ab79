# unde-httpd: the inetd-style HTTP/1.1 front for every online filter.
bin_PROGRAMS += src/unde-httpd
src_unde_httpd_SOURCES = \
	src/httpd/main.c src/httpd/httpd.h \
	src/httpd/parse.c src/httpd/decode.c src/httpd/parse.h \
	src/httpd/routes.c src/httpd/routes.h \
	src/httpd/conn.c src/httpd/response.c \
	src/httpd/serve.c src/httpd/serve.h src/httpd/exchange.c src/httpd/accesslog.c \
	src/httpd/jscan.c src/httpd/jscan.h \
	src/httpd/child.c src/httpd/child.h \
	src/httpd/stats.c src/httpd/stats.h \
	src/httpd/ws.c
src_unde_httpd_LDADD = $(UNDE_CORE_LIBS) $(WSLAY_LIBS)

dist_man_MANS += man/unde-httpd.1
TESTS += t/unde-httpd.bats

# Deployment files: a .socket + @.service pair and a routes file per
# service of the spec, and the matching inetd.conf lines.
EXTRA_DIST += etc/httpd/inetd.conf \
	etc/httpd/mood.routes etc/httpd/context.routes etc/httpd/persona.routes \
	etc/httpd/voice.routes etc/httpd/ximilar.routes etc/httpd/rerank.routes \
	etc/systemd/unde-httpd-mood.socket etc/systemd/unde-httpd-mood@.service \
	etc/systemd/unde-httpd-context.socket etc/systemd/unde-httpd-context@.service \
	etc/systemd/unde-httpd-persona.socket etc/systemd/unde-httpd-persona@.service \
	etc/systemd/unde-httpd-voice.socket etc/systemd/unde-httpd-voice@.service \
	etc/systemd/unde-httpd-ximilar.socket etc/systemd/unde-httpd-ximilar@.service \
	etc/systemd/unde-httpd-rerank.socket etc/systemd/unde-httpd-rerank@.service
EXTRA_DIST += etc/systemd/unde-httpd.slice bench/httpd/memory bench/httpd/start

# Benchmark (bench/httpd/run; not part of make check).
EXTRA_DIST += bench/httpd/run bench/httpd/echo.routes bench/httpd/uvicorn_app.py \
	bench/httpd/post.lua bench/httpd/loadgen.c bench/README.md

# Fuzzing the request parser with libFuzzer (clang). CI runs it briefly:
#   make fuzz-httpd FUZZ_SECONDS=30   (FUZZ_SECONDS is shared with fuzz-lib)
EXTRA_DIST += t/fuzz/httpd-parse-fuzz.c t/fuzz/corpus/httpd-parse
HTTPD_FUZZ_CC = clang
FUZZ_HTTPD = t/fuzz/httpd-parse-fuzz
$(FUZZ_HTTPD): $(srcdir)/t/fuzz/httpd-parse-fuzz.c $(srcdir)/src/httpd/parse.c $(srcdir)/src/httpd/decode.c $(srcdir)/src/httpd/parse.h $(srcdir)/lib/util.h
	@$(MKDIR_P) t/fuzz
	$(AM_V_CC)$(HTTPD_FUZZ_CC) -g -O1 -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=undefined -I$(top_builddir) -I$(srcdir)/src/httpd -I$(srcdir)/lib \
		-o $@ $(srcdir)/t/fuzz/httpd-parse-fuzz.c $(srcdir)/src/httpd/parse.c \
		$(srcdir)/src/httpd/decode.c
fuzz-httpd: $(FUZZ_HTTPD)
	@work=$$(mktemp -d /tmp/unde-fuzz-httpd.XXXXXX) && \
	./$(FUZZ_HTTPD) -max_total_time=$(or $(FUZZ_SECONDS),30) -max_len=20000 -timeout=10 \
		-print_final_stats=1 -artifact_prefix=t/fuzz/ \
		"$$work" $(srcdir)/t/fuzz/corpus/httpd-parse; \
	rc=$$?; rm -rf "$$work"; exit $$rc
CLEANFILES += $(FUZZ_HTTPD)
.PHONY: fuzz-httpd

# Fuzzing the body/answer scanner against jansson (a differential target):
#   make fuzz-httpd-jscan FUZZ_SECONDS=30
EXTRA_DIST += t/fuzz/httpd-jscan-fuzz.c t/fuzz/corpus/httpd-jscan
FUZZ_HTTPD_JSCAN = t/fuzz/httpd-jscan-fuzz
$(FUZZ_HTTPD_JSCAN): $(srcdir)/t/fuzz/httpd-jscan-fuzz.c $(srcdir)/src/httpd/jscan.c $(srcdir)/src/httpd/jscan.h $(srcdir)/lib/util.c $(srcdir)/lib/log.c
	@$(MKDIR_P) t/fuzz
	$(AM_V_CC)$(HTTPD_FUZZ_CC) -g -O1 -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=undefined -I$(top_builddir) -I$(srcdir)/src/httpd -I$(srcdir)/lib \
		$(JANSSON_CFLAGS) -o $@ $(srcdir)/t/fuzz/httpd-jscan-fuzz.c $(srcdir)/src/httpd/jscan.c \
		$(srcdir)/lib/util.c $(srcdir)/lib/log.c $(JANSSON_LIBS) $(CRYPTO_LIBS)
fuzz-httpd-jscan: $(FUZZ_HTTPD_JSCAN)
	@work=$$(mktemp -d /tmp/unde-fuzz-jscan.XXXXXX) && \
	./$(FUZZ_HTTPD_JSCAN) -max_total_time=$(or $(FUZZ_SECONDS),30) -max_len=4096 -timeout=10 \
		-print_final_stats=1 -artifact_prefix=t/fuzz/ \
		"$$work" $(srcdir)/t/fuzz/corpus/httpd-jscan; \
	rc=$$?; rm -rf "$$work"; exit $$rc
CLEANFILES += $(FUZZ_HTTPD_JSCAN)
.PHONY: fuzz-httpd-jscan
