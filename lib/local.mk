noinst_LIBRARIES = lib/libunde.a
lib_libunde_a_SOURCES = \
	lib/conf.c lib/conf.h lib/redact.c \
	lib/filter.c lib/filter.h \
	lib/http.c lib/http.h lib/http_int.h lib/http_pool.c \
	lib/jsonl.c lib/jsonl.h \
	lib/log.c lib/log.h \
	lib/metrics.c lib/metrics.h \
	lib/pg.c lib/pg.h \
	lib/util.c lib/util.h
lib_libunde_a_SOURCES += lib/objstore.c lib/objstore.h lib/objstore_int.h lib/objstore_file.c \
	lib/objstore_key.c lib/objstore_list.c
lib_libunde_a_SOURCES += lib/crypto.c lib/crypto.h
lib_libunde_a_SOURCES += lib/image.c lib/image.h
# the shard client (lib/shardc.h): unde-shard and every command reading a user's shard
lib_libunde_a_SOURCES += lib/shardc.h lib/shardc_route.c lib/shardc_write.h \
	lib/shardc_save.c lib/shardc_rows.c lib/shardc_replay.c \
	lib/shardc_search.c lib/shardc_envelope.c lib/shardc_rules.c lib/shardc_limit.c \
	lib/embed_local.c lib/embed_local.h
lib_libunde_a_SOURCES += lib/stem.c lib/stem.h
# Online-service pieces (issue 10): deadlines, sibling calls, provider
# chains, shared counters, the cache, SSE, the sysexits↔HTTP table.
lib_libunde_a_SOURCES += lib/deadline.c lib/deadline.h lib/status.c lib/status.h \
	lib/svc.c lib/svc.h lib/provider.c lib/provider.h lib/counters.c lib/counters.h \
	lib/cache.c lib/cache.h lib/sse.c lib/sse.h
lib_libunde_a_SOURCES += lib/descriptor.c lib/descriptor.h
# one option table for argv parsing and --help (filters and the other commands)
lib_libunde_a_SOURCES += lib/options.c lib/options.h
# the online agents' metrics, summed across processes (unde-mood, unde-context)
lib_libunde_a_SOURCES += lib/agent_stats.c lib/agent_stats.h
# requests in flight per host, robust to kill -9 (unde-llm and unde-recognize queue sizes)
lib_libunde_a_SOURCES += lib/inflight.c lib/inflight.h
# guarded fetches of URLs someone else gave (SSRF): the address check (issue 15, hrecog2)
lib_libunde_a_SOURCES += lib/netguard.c lib/netguard.h
# the embedding chain (Cohere, then the local embedder): unde-embed's documents, unde-llm's queries
lib_libunde_a_SOURCES += lib/embed_cohere.c lib/embed_cohere.h
# libjpeg that returns its errors (unde-collage, the recognition crops)
lib_libunde_a_SOURCES += lib/jpegerr.c lib/jpegerr.h
