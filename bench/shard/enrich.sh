#!/bin/bash
# bench/shard/enrich.sh — issue 13's benchmark, every figure a ratio
# against a baseline measured in the same run:
#
# 1. in process (enrich-bench.c, one core, the labelled set): the §13 SYNC
#    rules, the rule-based memory_snippet and the local embedder, per
#    message — and the rules as a share of a baseline save (part 2's);
# 2. save A/B on a throwaway PostgreSQL (fsync off, unix socket):
#    ROUNDS rounds alternating A and B, TURNS turns each (one user message
#    + one assistant reply), one `unde-shard save` process per round:
#      A  every field the rules would fill already sent, so the rules skip
#         (today's save before issue 13; same binary)
#      B  nothing sent: salience_check, classify_memory and the reply_to_id
#         query run
#    per turn: wall (the command's duration_ms) and CPU of the process
#    (user+sys); medians over the rounds, B/A and B−A;
# 3. `unde-embed --pending` with EMBEDDING_PROVIDER=local over the saved
#    user messages, alternating EMBED_STORE_BATCH=1 (one UPDATE per
#    message: unde-embed before the batched store) and the default 128,
#    the enrichment reset before each run: messages per second of wall and
#    per CPU-second of the unde-embed process (one core), and the ratio.
#
#   bench/shard/enrich.sh [TURNS [ROUNDS]]   (default 250 8; from a built tree)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
turns=${1:-250}
rounds=${2:-8}
export PATH=$top/src:$PATH UNDE_ENV_FILE=/dev/null
PG_BINDIR=${PG_BINDIR:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}
work=$(mktemp -d /tmp/unde-enrich-bench.XXXXXX)
as_owner() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" -eq 0 ] && chown postgres: "$work"
cleanup() { as_owner "$PG_BINDIR/pg_ctl" stop -D "$work/data" -m fast >/dev/null 2>&1 || true; rm -rf "$work"; }
[ -n "${KEEP:-}" ] || trap cleanup EXIT

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

echo "== $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
cc -O2 -I"$top" -I"$top/lib" $(pkg-config --cflags libpq jansson) -o "$work/enrich-bench" \
	"$here/enrich-bench.c" "$top/lib/libunde.a" $(pkg-config --libs libpq jansson libcurl libcrypto) \
	-lstemmer -lm -lpthread
"$work/enrich-bench" "$top/t/fixtures/memory/labelled.tsv" | tee "$work/inproc.txt"
rules_us=$(awk -F': *' '/^sync rules/ {print $2 + 0}' "$work/inproc.txt")
embed_rate=$(awk '/^local embedder/ {for (i = 1; i <= NF; i++) if ($i == "=") print $(i + 1)}' "$work/inproc.txt")

as_owner "$PG_BINDIR/initdb" -D "$work/data" --auth=trust -U postgres --no-sync >/dev/null
printf "listen_addresses = ''\nunix_socket_directories = '%s'\nfsync = off\nsynchronous_commit = off\n" "$work" >>"$work/data/postgresql.conf"
as_owner "$PG_BINDIR/pg_ctl" start -w -D "$work/data" -l "$work/pg.log" >/dev/null
url="postgresql://postgres@/bench?host=$work"
as_owner "$PG_BINDIR/createdb" -h "$work" -U postgres bench
unde-shard init --shard 0 --url "$url" >/dev/null 2>&1

# gen FILLED(0|1): TURNS JSON lines, one turn each, a fresh user per 50 turns
gen() {
	python3 - "$turns" "$1" "$top/t/fixtures/memory/labelled.tsv" <<'PY'
import json, sys, uuid
n, filled = int(sys.argv[1]), sys.argv[2] == "1"
texts = [l.split("\t", 1)[1].strip() for l in open(sys.argv[3]) if not l.startswith("#") and "\t" in l]
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

# run_timed OUTVAR-PREFIX CMD…: the command's "done" duration_ms and its CPU
# seconds (user+sys, /usr/bin/time) in ${prefix}_ms and ${prefix}_cpu
run_timed() {
	local prefix=$1
	shift
	/usr/bin/time -f '%U %S' -o "$work/time" "$@" 2>"$work/err" >/dev/null || {
		echo "failed: $*" >&2
		tail -5 "$work/err" >&2
		exit 1
	}
	printf -v "${prefix}_ms" '%s' "$(jq -r 'select(.msg == "done") | .duration_ms' "$work/err")"
	printf -v "${prefix}_cpu" '%s' "$(awk '{print $1 + $2}' "$work/time")"
}

echo "== save A/B: $rounds rounds of $turns turns, alternating A (rules skip) and B (rules run)"
: >"$work/A" && : >"$work/B"
for ((r = 0; r < rounds; r++)); do
	for filled in 1 0; do
		gen $filled >"$work/turns.jsonl"
		run_timed t unde-shard save --url "$url" <"$work/turns.jsonl"
		ab=$([ $filled = 1 ] && echo A || echo B)
		awk -v ms="$t_ms" -v cpu="$t_cpu" -v n="$turns" 'BEGIN { printf "%.4f %.4f\n", ms / n, cpu * 1000 / n }' >>"$work/$ab"
		printf '  round %d %s: %s ms/turn wall, %s ms/turn CPU\n' "$r" "$ab" $(tail -1 "$work/$ab")
	done
done
aw=$(cut -d' ' -f1 "$work/A" | median) ac=$(cut -d' ' -f2 "$work/A" | median)
bw=$(cut -d' ' -f1 "$work/B" | median) bc=$(cut -d' ' -f2 "$work/B" | median)
awk -v aw="$aw" -v bw="$bw" -v ac="$ac" -v bc="$bc" -v rus="$rules_us" 'BEGIN {
	printf "save, median per turn: A %.3f ms wall / %.3f ms CPU; B %.3f ms wall / %.3f ms CPU\n", aw, ac, bw, bc
	printf "  B/A: wall %.3f, CPU %.3f; B-A: wall %+.3f ms/turn, CPU %+.3f ms/turn\n", bw / aw, bc / ac, bw - aw, bc - ac
	printf "  in-process rules (1 user message/turn): %.1f us = %.4f of A'"'"'s wall per turn\n", rus, rus / 1000 / aw
}'

echo "== unde-embed --pending, local embedder: EMBED_STORE_BATCH=1 (baseline) vs 128, alternating"
pending=$(psql -XAt "$url" -c "select count(*) from messages where is_embeddable and embedding is null")
: >"$work/E1" && : >"$work/E128"
for run in 1 2 3; do
	for batch in 1 128; do
		psql -XAtq "$url" -c "update messages set embedding = null, embedding_model = null, memory_snippet = null where is_embeddable" \
			-c "vacuum messages" >/dev/null
		run_timed e env EMBEDDING_PROVIDER=local EMBED_STORE_BATCH=$batch UNDE_COUNTERS_DIR=$work \
			unde-embed --url "$url" --pending --limit 100000
		awk -v ms="$e_ms" -v cpu="$e_cpu" -v n="$pending" 'BEGIN { printf "%.1f %.1f\n", n / (ms / 1000), n / cpu }' >>"$work/E$batch"
		printf '  run %d, batch %3d: %s messages/s wall, %s messages per CPU-second\n' "$run" "$batch" $(tail -1 "$work/E$batch")
	done
done
w1=$(cut -d' ' -f1 "$work/E1" | median) c1=$(cut -d' ' -f2 "$work/E1" | median)
w128=$(cut -d' ' -f1 "$work/E128" | median) c128=$(cut -d' ' -f2 "$work/E128" | median)
awk -v n="$pending" -v w1="$w1" -v c1="$c1" -v w="$w128" -v c="$c128" -v er="$embed_rate" 'BEGIN {
	printf "unde-embed, %d messages, median of 3: batch 1 %.0f msg/s wall, %.0f msg/CPU-s; batch 128 %.0f msg/s wall, %.0f msg/CPU-s\n", n, w1, c1, w, c
	printf "  128/1: wall %.2f, CPU %.2f; end to end (batch 128, wall) = %.4f of the bare local embedder (%s msg/s)\n", w / w1, c / c1, w / er, er
}'
echo "== $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg)"
