#!/bin/bash
# crowded.sh — issue 9's retrieval bench, short: five-year users queried on
# their own favourite topics (crowded neighbourhoods: hundreds of the user's
# vectors above SIMILARITY_THRESHOLD) as well as uniformly, and full-text
# queries on the user's most common words.
#
#   bench/shard/crowded.sh build     # the database "shardcrowd" (≈2–4 min on 2 cores)
#   bench/shard/crowded.sh measure   # recall@20 and latency (≈3–5 min)
#   bench/shard/crowded.sh measure search   # only the end-to-end part (≈1 min)
#
# UNDE_SHARD names the unde-shard binary the end-to-end part runs (default:
# this tree's), so that a baseline build and a change are measured in the
# same session, e.g. under one flock:
#   UNDE_SHARD=/tmp/base/unde-shard bench/shard/crowded.sh measure search
#
# Data: gen.sql with 4 five-year users (30,000 messages, 15,000 embeddable
# each) and 20 background users; the prefilter plan's cost and recall depend
# only on the user's own rows, so other users only make the partitions real.
# Uses bench/shard's private cluster (cluster.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
. "$here/cluster.sh"
export PATH=$top/src:$PATH UNDE_ENV_FILE=/dev/null
db=shardcrowd
url="postgresql://postgres@127.0.0.1:$BENCH_PORT/$db"
shard_bin=${UNDE_SHARD:-$top/src/unde-shard}

pct() { # p50 and p95 of the numbers on stdin (every run, not the best of several)
	sort -n | awk '{a[NR]=$1} END {i50=int((NR-1)*0.5)+1; i95=int((NR-1)*0.95)+1; printf "p50 %.2f ms  p95 %.2f ms  (n=%d)\n", a[i50], a[i95], NR}'
}

build() {
	bench_up
	t0=$(date +%s)
	dropdb --if-exists "$db"
	createdb "$db"
	unde-db migrate shard --url "$url" >/dev/null 2>&1
	psql -X -q -d "$db" -v bg_users=20 -v bg_msgs=3000 -v y1_users=0 -v y5_users=4 -v topics=400 \
		-v seed=0.42 -f "$here/gen.sql" 2>&1 | grep -v NOTICE || true
	# the HNSW index gen.sql drops for the load is not rebuilt: the prefilter
	# plan never reads it (so --plan spec is compared on the text-only set)
	psql -X -q -d "$db" -c "VACUUM ANALYZE" 
	echo "build: $db ready in $(( $(date +%s) - t0 )) s" >&2
}

measure() {
	bench_up
	local started; started=$(date +%s)
	echo "== $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
	bench_vacuum "$db"
	if [ "${2:-}" != search ]; then
		echo "== vector branch in the server: recall@20 vs exact, every run's latency"
		psql -X -q -d "$db" -f "$here/crowded.sql" 2>&1 | grep -v NOTICE
	fi
	work=$(mktemp -d /tmp/unde-shard-crowd.XXXXXX)
	trap 'rm -rf "$work"' EXIT
	echo "== whole hybrid search through $shard_bin search (server: hybrid_search_latency_ms; e2e: wall time / queries)"
	# vector + text queries on the favourite topic; text-only common words
	psql -X -At -d "$db" -c "SELECT json_build_object('user_id', user_id, 'query', 'topic' || t || ' sub' || s,
		'query_embedding', v::text::json) FROM bench.crowd ORDER BY q" >"$work/q-crowded"
	psql -X -At -d "$db" -c "SELECT json_build_object('user_id', user_id, 'query', 'topic' || t || ' sub' || s,
		'query_embedding', v::text::json) FROM bench.queries WHERE kind = '5y' ORDER BY q LIMIT 200" >"$work/q-uniform"
	psql -X -At -d "$db" -c "SELECT json_build_object('user_id', user_id, 'query', w) FROM bench.users u,
		unnest(ARRAY['zara', 'topic' || u.topics[1], 'zara word7', 'где я видела то платье от zara и mango',
		'word3', 'gucci topic' || u.topics[2]]) w, generate_series(1, 8) WHERE kind = '5y'" >"$work/q-words"
	for set in crowded uniform words; do
		# the spec plan's vector branch needs the HNSW index, which this
		# database lacks: it is compared on the text-only set alone
		# sql and prefilter alternate: the vector branch in SQL, then in
		# the shard's unde_vector_topk (what prefilter runs where it is
		# installed; the log's "plan" says which ran)
		plans="sql prefilter sql prefilter"
		[ "$set" = words ] && plans="spec prefilter"
		for plan in $plans; do
			"$shard_bin" search --plan "$plan" --url "$url" <"$work/q-$set" >/dev/null 2>&1 # warm-up
			n=$(wc -l <"$work/q-$set")
			t0=$(date +%s.%N)
			UNDE_LOG_LEVEL=debug "$shard_bin" search --plan "$plan" --url "$url" <"$work/q-$set" \
				>"$work/out-$set-$plan" 2>"$work/log-$set-$plan"
			t1=$(date +%s.%N)
			ran=$(jq -r 'select(.msg == "hybrid search") | .plan' "$work/log-$set-$plan" | sort -u | paste -sd/)
			printf '%-8s %-9s server ' "$set" "$ran"
			jq -r 'select(.msg == "hybrid search") | .hybrid_search_latency_ms' "$work/log-$set-$plan" | pct
			awk -v a="$t0" -v b="$t1" -v n="$n" -v s="$set" -v p="$ran" \
				'BEGIN {printf "%-8s %-9s e2e mean %.2f ms per query (one process, loopback TCP)\n", s, p, (b - a) * 1000 / n}'
		done
		if [ "$set" != words ]; then
			same=$(paste -d'\t' <(jq -c '[.episodes[] | [.id, (.vec_score * 1e9 | round)]]' "$work/out-$set-sql") \
				<(jq -c '[.episodes[] | [.id, (.vec_score * 1e9 | round)]]' "$work/out-$set-prefilter") |
				awk -F'\t' '$1 == $2' | wc -l)
			echo "$set: prefilter's episodes the same as sql's (ids and vec_score to 1e-9) on $same of $n queries"
		fi
		[ "$set" = words ] || continue
		paste <(jq -c '[.episodes[] | select(.fts_score > 0)] | length' "$work/out-$set-spec") \
			<(jq -c '[.episodes[] | select(.fts_score > 0)] | length' "$work/out-$set-prefilter") |
			awk -v s="$set" '{a+=$1; b+=$2; if ($1 == 0) za++; if ($2 == 0) zb++} END {printf "%-8s episodes with fts_score > 0 per query: spec %.1f (none on %d of %d), prefilter %.1f (none on %d)\n", s, a/NR, za, NR, b/NR, zb}'
	done
	echo "== done in $(( $(date +%s) - started )) s, load average $(cut -d' ' -f1-3 /proc/loadavg)"
}

case ${1:-measure} in
build) build ;;
measure) measure "$@" ;;
*) echo "usage: $0 [build|measure]" >&2; exit 64 ;;
esac
