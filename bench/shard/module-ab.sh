#!/bin/bash
# module-ab.sh — two builds of unde_vector.so (src/shard/pg/unde_vector.c)
# alternated on the crowded database, for a change to the module measured
# against its baseline in one session:
#
#   git show REV:src/shard/pg/unde_vector.c >/tmp/base.c
#   cc $(sed -n 's/^PGMOD_CFLAGS = //p' Makefile) -shared -o /tmp/base.so /tmp/base.c
#   flock /tmp/unde-bench.lock bench/shard/module-ab.sh /tmp/base.so src/shard/pg/unde_vector.so [ROUNDS]
#
# Each round installs A, then B, as shardcrowd's unde_vector_topk and runs
# crowded.sql's bench.recall_all with the default rule (every query twice,
# p50/p95 over all runs): one line per build, round and query kind, sorted
# so that each build's rounds sit together. The build tree's module is
# installed again at the end. Needs `crowded.sh build` and one `crowded.sh
# measure` (which creates bench.recall_all).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
. "$here/cluster.sh"
[ $# -ge 2 ] || { echo "usage: $0 A.so B.so [ROUNDS]" >&2; exit 64; }
a=$(realpath "$1") b=$(realpath "$2") rounds=${3:-5}
url="postgresql://postgres@127.0.0.1:$BENCH_PORT/shardcrowd"
bench_up
install() { psql -X -q -At -d "$url" -c "SELECT unde_vector_install('$1')" | grep . && exit 1 || true; }
trap 'install "$top/src/shard/pg/unde_vector.so"' EXIT
echo "== $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg): A $a, B $b, $rounds rounds"
echo "build | round | kind | recall | worst | p50_ms | p95_ms"
for ((r = 1; r <= rounds; r++)); do
	for which in A B; do
		lib=$a
		[ $which = B ] && lib=$b
		install "$lib"
		psql -X -q -At -d "$url" -c "SELECT '$which', $r, * FROM bench.recall_all(
		  'SELECT id FROM unde_vector_topk(''messages'', \$2, \$1, NULL, 300, 3000, 341, ''hamming'', 20)')"
	done
done | sort -t'|' -k1,1 -k3,3 -k2,2n
