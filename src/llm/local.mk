# unde-llm: the LLM Orchestrator (spec §13), one module per step of a turn.
bin_PROGRAMS += src/unde-llm
src_unde_llm_SOURCES = \
	src/llm/llm.h src/llm/main.c src/llm/sensors.c src/llm/memory.c \
	src/llm/pack.c src/llm/providers.c src/llm/responder.c src/llm/catalog.c src/llm/feedback.c \
	src/llm/query.c src/llm/stylist.c src/llm/stream.c src/llm/gather.c
src_unde_llm_LDADD = $(UNDE_LIBS) $(STEMMER_LIBS) -lpthread -lm
TESTS += t/unde-llm.bats t/unde-llm-stylist.bats
EXTRA_DIST += t/fakes/claude.py t/fakes/qwen.py t/fakes/intelistyle.py
dist_man_MANS += man/unde-llm.1
EXTRA_DIST += bench/llm/README.md bench/llm/run bench/llm/gen.py bench/llm/recall
