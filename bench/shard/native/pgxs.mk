# bench/shard/native — the design candidate unde_bench_topk (see its .c),
# built with PostgreSQL's PGXS: make -f pgxs.mk && make -f pgxs.mk install
# (into PostgreSQL's own library directory: root, on the bench machine
# only). Not Makefile: .gitignore ignores those, automake's.
MODULE_big = unde_bench_topk
OBJS = unde_bench_topk.o
PG_CONFIG ?= /usr/lib/postgresql/15/bin/pg_config
PG_CFLAGS = -Wno-declaration-after-statement -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare -Werror
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)
