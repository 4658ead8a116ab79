# unde-persona: the Persona Agent (spec §16), one module per rule.
bin_PROGRAMS += src/unde-persona
src_unde_persona_SOURCES = \
	src/persona/persona.h src/persona/main.c \
	src/persona/contract.c src/persona/canonicalize.c src/persona/resolver.c \
	src/persona/stage_gate.c src/persona/tone.c src/persona/situational.c \
	src/persona/relationship.c src/persona/cultural.c src/persona/voice.c \
	src/persona/avatar.c src/persona/render_hints.c src/persona/guard.c \
	src/persona/directive.c src/persona/engine.c src/persona/signals.c \
	src/persona/clock.c src/persona/store.c src/persona/flush.c src/persona/metrics.c
src_unde_persona_LDADD = $(UNDE_LIBS) -lm
dist_man_MANS += man/unde-persona.1
TESTS += t/unde-persona.bats
EXTRA_DIST += bench/persona/README.md bench/persona/run bench/persona/request.json
