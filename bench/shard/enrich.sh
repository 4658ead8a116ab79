#!/bin/bash
# bench/shard/enrich.sh — issue 13's benchmark, every figure a ratio
# against a baseline measured in the same run:
#
# 1. save A/B on a throwaway PostgreSQL (fsync off, unix socket), first
#    line of the report: 200 users with a year of history each (500
#    messages, every sixth an assistant artifact) in the 64 partitions;
#    ROUNDS rounds alternating A and B, TURNS turns each (one user message
#    + one assistant reply, every third reply an artifact; ten turns in a
#    row per user), one `unde-shard save` process per round:
#      A  every field the rules would fill already sent, so the rules skip
#         (today's save before issue 13; same binary)
#      B  nothing sent: salience_check, classify_memory and the reply_to_id
#         query run
#    per turn: wall (the command's duration_ms), CPU of the process
#    (user+sys) and, when pg_stat_statements loads, the server's plan +
#    execution time of the round's statements; p50, p95 and mean over the
#    rounds, B/A and B−A;
# 2. in process (enrich-bench.c, one core, the labelled set): the §13 SYNC
#    rules, the rule-based memory_snippet and the local embedder, per
#    message — and the rules as a share of part 1's baseline save;
# 3. `unde-embed --pending` with EMBEDDING_PROVIDER=local over the saved
#    user messages, alternating EMBED_STORE_BATCH=1 (one UPDATE per
#    message: unde-embed before the batched store) and the default 128,
#    the enrichment reset before each run: messages per second of wall and
#    per CPU-second of the unde-embed process (one core), and the ratio.
#
#   bench/shard/enrich.sh [TURNS [ROUNDS]]   (default 250 16; from a built tree;
#   unattended: 80 s in all on a quiet 2-core machine, the save A/B first)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
turns=${1:-250}
rounds=${2:-16}
export PATH=$top/src:$PATH UNDE_ENV_FILE=/dev/null
PG_BINDIR=${PG_BINDIR:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}
work=$(mktemp -d /tmp/unde-enrich-bench.XXXXXX)
as_owner() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" -eq 0 ] && chown postgres: "$work"
cleanup() { as_owner "$PG_BINDIR/pg_ctl" stop -D "$work/data" -m fast >/dev/null 2>&1 || true; rm -rf "$work"; }
[ -n "${KEEP:-}" ] || trap cleanup EXIT

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
# stats: "p50 p95 mean" of a column of numbers (p95 the nearest rank)
stats() { sort -g | awk '{a[NR]=$1; s+=$1} END {k=int(NR*0.95+0.999); if (k > NR) k = NR; printf "%.4f %.4f %.4f", (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2, a[k], s / NR}'; }

echo "== $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
cc -O2 -I"$top" -I"$top/lib" $(pkg-config --cflags libpq jansson) -o "$work/enrich-bench" \
	"$here/enrich-bench.c" "$top/lib/libunde.a" $(pkg-config --libs libpq jansson libcurl libcrypto) \
	-lstemmer -lm -lpthread

as_owner "$PG_BINDIR/initdb" -D "$work/data" --auth=trust -U postgres --no-sync >/dev/null
printf "listen_addresses = ''\nunix_socket_directories = '%s'\nfsync = off\nsynchronous_commit = off\n" "$work" >>"$work/data/postgresql.conf"
pgss=0
if [ -e "$("$PG_BINDIR/pg_config" --pkglibdir 2>/dev/null || echo /nonexistent)/pg_stat_statements.so" ] ||
	[ -e "$PG_BINDIR/../lib/pg_stat_statements.so" ]; then
	printf "shared_preload_libraries = 'pg_stat_statements'\npg_stat_statements.track_planning = on\n" >>"$work/data/postgresql.conf"
	pgss=1
fi
as_owner "$PG_BINDIR/pg_ctl" start -w -D "$work/data" -l "$work/pg.log" >/dev/null
url="postgresql://postgres@/bench?host=$work"
as_owner "$PG_BINDIR/createdb" -h "$work" -U postgres bench
unde-shard init --shard 0 --url "$url" >/dev/null 2>&1
[ $pgss = 0 ] || psql -XAtq "$url" -c "create extension pg_stat_statements"
# the history: 200 users, a year of 500 messages each, every sixth an artifact
psql -XAtq "$url" >/dev/null <<'SQL'
INSERT INTO conversations (id, user_id, message_count) SELECT gen_random_uuid(), gen_random_uuid(), 500 FROM generate_series(1, 200);
INSERT INTO messages (id, conversation_id, role, content, response_description, created_at)
SELECT gen_random_uuid(), c.id, CASE WHEN g % 2 = 0 THEN 'user' ELSE 'assistant' END,
       'сообщение из истории ' || g, CASE WHEN g % 6 = 1 THEN 'look: Zara coat, SKU Z-' || g || ', store Mega' END,
       now() - interval '365 days' + g * interval '17 hours'
  FROM conversations c, generate_series(1, 500) g;
VACUUM ANALYZE;
SQL
psql -XAt "$url" -c "select user_id from conversations" >"$work/users"

# gen FILLED(0|1) K: TURNS JSON lines, one turn each, ten turns per history user
# from user K·TURNS/10 on (so A and B of a round have users of the same history)
gen() {
	python3 - "$turns" "$1" "$top/t/fixtures/memory/labelled.tsv" "$work/users" "$2" <<'PY'
import json, sys, uuid
n, filled = int(sys.argv[1]), sys.argv[2] == "1"
texts = [l.split("\t", 1)[1].strip() for l in open(sys.argv[3]) if not l.startswith("#") and "\t" in l]
users, first = open(sys.argv[4]).read().split(), int(sys.argv[5]) * n // 10
for i in range(n):
    user = users[(first + i // 10) % len(users)]
    u = {"id": str(uuid.uuid4()), "role": "user", "content": texts[i % len(texts)]}
    a = {"id": str(uuid.uuid4()), "role": "assistant", "content": "Вот что я нашла для вас"}
    if i % 3 == 0:
        a["artifact"] = {"type": "look", "items": [{"brand": "Zara", "name": "coat", "sku": "Z-%d" % i, "store": "Mega"}]}
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
# server ms of the statements since the last reset (plan + execution), 0 without pg_stat_statements
server_ms() {
	[ $pgss = 1 ] || { echo 0; return; }
	psql -XAt "$url" -c "select coalesce(sum(total_plan_time + total_exec_time), 0) from pg_stat_statements
		where dbid = (select oid from pg_database where datname = current_database()) and query not like '%pg_stat_statements%'"
}
: >"$work/A" && : >"$work/B"
for ((r = 0; r < rounds; r++)); do
	for filled in 1 0; do
		gen $filled $r >"$work/turns.jsonl"
		[ $pgss = 0 ] || psql -XAtq "$url" -c "select pg_stat_statements_reset()" >/dev/null
		run_timed t unde-shard save --url "$url" <"$work/turns.jsonl"
		ab=$([ $filled = 1 ] && echo A || echo B)
		awk -v ms="$t_ms" -v cpu="$t_cpu" -v srv="$(server_ms)" -v n="$turns" \
			'BEGIN { printf "%.4f %.4f %.4f\n", ms / n, cpu * 1000 / n, srv / n }' >>"$work/$ab"
		printf '  round %d %s: %s ms/turn wall, %s ms/turn CPU, %s ms/turn server\n' "$r" "$ab" $(tail -1 "$work/$ab")
	done
done
for ab in A B; do
	for col in 1 2 3; do printf -v "s${ab}${col}" '%s' "$(cut -d' ' -f$col "$work/$ab" | stats)"; done
done
awk -v aw="$sA1" -v bw="$sB1" -v ac="$sA2" -v bc="$sB2" -v as="$sA3" -v bs="$sB3" -v pgss=$pgss 'BEGIN {
	split(aw, a1); split(bw, b1); split(ac, a2); split(bc, b2); split(as, a3); split(bs, b3)
	printf "save, the rules against today'"'"'s save, per turn over the rounds (p50 / p95 / mean):\n"
	printf "  wall   A %.3f / %.3f / %.3f ms, B %.3f / %.3f / %.3f ms; B/A %.3f / %.3f / %.3f; B-A %+.3f / %+.3f / %+.3f ms\n",
		a1[1], a1[2], a1[3], b1[1], b1[2], b1[3], b1[1] / a1[1], b1[2] / a1[2], b1[3] / a1[3], b1[1] - a1[1], b1[2] - a1[2], b1[3] - a1[3]
	printf "  CPU    A %.3f / %.3f / %.3f ms, B %.3f / %.3f / %.3f ms; B-A %+.3f / %+.3f / %+.3f ms (the unde-shard process)\n",
		a2[1], a2[2], a2[3], b2[1], b2[2], b2[3], b2[1] - a2[1], b2[2] - a2[2], b2[3] - a2[3]
	if (pgss)
		printf "  server A %.3f / %.3f / %.3f ms, B %.3f / %.3f / %.3f ms; B-A %+.3f / %+.3f / %+.3f ms (plan + execution, pg_stat_statements)\n",
			a3[1], a3[2], a3[3], b3[1], b3[2], b3[3], b3[1] - a3[1], b3[2] - a3[2], b3[3] - a3[3]
}'
[ $pgss = 0 ] || psql -XAt "$url" -F ' ' -c "select calls, round((mean_plan_time + mean_exec_time)::numeric, 4),
	left(regexp_replace(query, '\s+', ' ', 'g'), 60) from pg_stat_statements where query not like '%pg_stat_statements%'
	and dbid = (select oid from pg_database where datname = current_database()) order by calls desc, 2 desc limit 6" |
	sed 's/^/    last B round: calls, plan+exec ms: /'

echo "== in process, one core, the labelled set"
"$work/enrich-bench" "$top/t/fixtures/memory/labelled.tsv" | tee "$work/inproc.txt"
rules_us=$(awk -F': *' '/^sync rules/ {print $2 + 0}' "$work/inproc.txt")
embed_rate=$(awk '/^local embedder/ {for (i = 1; i <= NF; i++) if ($i == "=") print $(i + 1)}' "$work/inproc.txt")
aw=$(cut -d' ' -f1 "$work/A" | median)
awk -v aw="$aw" -v rus="$rules_us" 'BEGIN {
	printf "  in-process rules (1 user message/turn): %.1f us = %.4f of A'"'"'s median wall per turn\n", rus, rus / 1000 / aw
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
