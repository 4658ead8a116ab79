#!/bin/bash
# build.sh — create the synthetic shard database "shardbench" in the bench
# cluster: migrations (unde-db migrate shard), gen.sql, then the spec's
# HNSW and GIN indexes built once over the loaded data (faster than
# maintaining them row by row), ANALYZE; then dense.sql (the same vectors
# in 8 partitions, for the density measurement). Sizes come from the environment:
# BG_USERS (190) × BG_MSGS (3000), Y1_USERS (5), Y5_USERS (5), TOPICS (400).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
. "$here/cluster.sh"
bench_up
db=${BENCH_DB:-shardbench}
t0=$(date +%s)
dropdb --if-exists "$db"
createdb "$db"
"$top/src/unde-db" migrate shard --url "postgresql://postgres@127.0.0.1:$BENCH_PORT/$db" >/dev/null 2>&1
echo "build: migrated $db" >&2
psql -X -q -d "$db" -v bg_users="${BG_USERS:-190}" -v bg_msgs="${BG_MSGS:-3000}" \
	-v y1_users="${Y1_USERS:-5}" -v y5_users="${Y5_USERS:-5}" -v topics="${TOPICS:-400}" \
	-v seed=0.42 -f "$here/gen.sql" 2>&1 | grep -v NOTICE || true
echo "build: loaded in $(( $(date +%s) - t0 )) s" >&2
psql -X -q -d "$db" -v ON_ERROR_STOP=1 <<'SQL'
SET maintenance_work_mem = '6GB';
-- the spec's indexes, as in sql/shard/0001_chat_history.sql
CREATE INDEX IF NOT EXISTS idx_messages_embedding
    ON messages USING hnsw (embedding vector_cosine_ops)
    WITH (m = 16, ef_construction = 64)
    WHERE role = 'user' AND is_embeddable = TRUE
      AND is_forgotten = FALSE AND embedding IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_messages_tsv ON messages USING gin (tsv);
VACUUM ANALYZE;
SQL
echo "build: shard ready in $(( $(date +%s) - t0 )) s; now the 8-partition copy (dense.sql)" >&2
psql -X -q -d "$db" -f "$here/dense.sql" 2>&1 | grep -v NOTICE || true
echo "build: done in $(( $(date +%s) - t0 )) s" >&2
