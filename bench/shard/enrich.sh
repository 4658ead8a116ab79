#!/bin/bash
# bench/shard/enrich.sh — issue 13's benchmark: the cost of the §13 SYNC
# rules inside `unde-shard save`, and unde-embed's local throughput.
#
# 1. in process: enrich-bench.c on the labelled set (rules, snippet, local
#    embedder per message, one core);
# 2. end to end on a throwaway PostgreSQL (fsync off, unix socket): N turns
#    of one user message + one assistant reply, one process, once with every
#    field the rules would fill already sent (the rules skip: today's save
#    before issue 13, same binary) and once without (the rules run, plus the
#    reply_to_id query), per-turn wall time from the command's own
#    duration_ms; then `unde-embed --pending` with EMBEDDING_PROVIDER=local
#    over the saved user messages (messages/s, one process).
#
#   bench/shard/enrich.sh [TURNS]    (default 2000; run from a built tree)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
turns=${1:-2000}
export PATH=$top/src:$PATH UNDE_ENV_FILE=/dev/null
PG_BINDIR=${PG_BINDIR:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}
work=$(mktemp -d /tmp/unde-enrich-bench.XXXXXX)
as_owner() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" -eq 0 ] && chown postgres: "$work"
cleanup() { as_owner "$PG_BINDIR/pg_ctl" stop -D "$work/data" -m fast >/dev/null 2>&1 || true; rm -rf "$work"; }
[ -n "${KEEP:-}" ] || trap cleanup EXIT

echo "== $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
cc -O2 -I"$top" -I"$top/lib" $(pkg-config --cflags libpq jansson) -o "$work/enrich-bench" \
	"$here/enrich-bench.c" "$top/lib/libunde.a" $(pkg-config --libs libpq jansson libcurl libcrypto) \
	-lstemmer -lm -lpthread
"$work/enrich-bench" "$top/t/fixtures/memory/labelled.tsv"

as_owner "$PG_BINDIR/initdb" -D "$work/data" --auth=trust -U postgres --no-sync >/dev/null
printf "listen_addresses = ''\nunix_socket_directories = '%s'\nfsync = off\nsynchronous_commit = off\n" "$work" >>"$work/data/postgresql.conf"
as_owner "$PG_BINDIR/pg_ctl" start -w -D "$work/data" -l "$work/pg.log" >/dev/null
url="postgresql://postgres@/bench?host=$work"
as_owner "$PG_BINDIR/createdb" -h "$work" -U postgres bench
unde-shard init --shard 0 --url "$url" >/dev/null 2>&1

# turns FILLED(0|1): JSON lines, one turn each, a fresh user per 50 turns
gen() {
	python3 - "$turns" "$1" <<'PY'
import json, sys, uuid
n, filled = int(sys.argv[1]), sys.argv[2] == "1"
texts = [l.split("\t", 1)[1].strip() for l in open(sys.argv[3] if len(sys.argv) > 3 else "t/fixtures/memory/labelled.tsv") if not l.startswith("#")]
user = None
for i in range(n):
    if i % 50 == 0:
        user = str(uuid.uuid4())
    u = {"id": str(uuid.uuid4()), "role": "user", "content": texts[i % len(texts)]}
    a = {"id": str(uuid.uuid4()), "role": "assistant", "content": "Вот что я нашла для вас"}
    if filled:
        u.update(is_embeddable=True, memory_type="general", memory_confidence=0.5,
                 reply_to_id=str(uuid.uuid4()))
        a.update(is_embeddable=False)
    print(json.dumps({"user_id": user, "messages": [u, a]}, ensure_ascii=False))
PY
}
cd "$top"
for filled in 1 0 1 0; do
	gen $filled >"$work/turns.jsonl"
	ms=$(unde-shard save --url "$url" <"$work/turns.jsonl" 2>&1 >/dev/null | jq -r 'select(.msg == "done") | .duration_ms')
	label=$([ $filled = 1 ] && echo "rules skipped (fields sent)" || echo "rules run                  ")
	awk -v ms="$ms" -v n="$turns" -v l="$label" 'BEGIN { printf "save, %s: %.3f ms/turn (%d turns)\n", l, ms / n, n }'
done
pending=$(psql -XAt "$url" -c "select count(*) from messages where is_embeddable and embedding is null")
ms=$(EMBEDDING_PROVIDER=local UNDE_COUNTERS_DIR=$work unde-embed --url "$url" --pending --limit 100000 2>&1 >/dev/null | jq -r 'select(.msg == "done") | .duration_ms')
awk -v ms="$ms" -v n="$pending" 'BEGIN { printf "unde-embed --pending, local: %d messages in %.0f ms = %.0f messages/s (one process, DB included)\n", n, ms, n / (ms / 1000) }'
