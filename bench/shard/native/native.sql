-- native.sql — bench/shard/native/run's part in the bench cluster: the
-- design candidate unde_bench_topk against the SQL plan (crowded.sql's
-- adaptive variant, which is lib/shardc_search.c's), same queries, same
-- truth, alternated; then the two compared row for row on rows that are
-- not all-visible (a tenth of a user's vectors forgotten, new ones saved,
-- in one transaction rolled back at the end).
\set ON_ERROR_STOP on
CREATE OR REPLACE FUNCTION unde_bench_topk(regclass, regclass, uuid, real[], text, int, int, int, int)
  RETURNS TABLE(id uuid, distance float8) AS 'unde_bench_topk' LANGUAGE C STABLE;
-- each query's partition and its covering index, looked up once (a real
-- implementation would find them itself: not timed here)
DROP TABLE IF EXISTS bench.conv_part;
CREATE TABLE bench.conv_part AS
  SELECT DISTINCT ON (m.conversation_id) m.conversation_id, m.tableoid::regclass AS part,
    (SELECT i.indexrelid::regclass FROM pg_index i WHERE i.indrelid = m.tableoid
      AND pg_get_indexdef(i.indexrelid) LIKE '%INCLUDE (id, embedding_model, embedding_bq)%') AS idx
  FROM messages m WHERE m.conversation_id IN (SELECT conversation_id FROM bench.truth);
\set where 'conversation_id = $2 AND role = ''user'' AND is_embeddable AND NOT is_forgotten AND embedding IS NOT NULL AND embedding_model IS NOT DISTINCT FROM NULL::text'
\set rerank ' SELECT id FROM (SELECT id, embedding <=> $1 AS d FROM messages WHERE conversation_id = $2 AND id IN (SELECT id FROM cand) OFFSET 0) r ORDER BY d LIMIT 20'
\set fixed300 'WITH cand AS MATERIALIZED (SELECT id FROM (SELECT id, embedding_bq <~> (SELECT binary_quantize($1)::bit(1024)) AS h FROM messages WHERE ' :where ' OFFSET 0) s ORDER BY h LIMIT 300)' :rerank
\set fixed1000 'WITH cand AS MATERIALIZED (SELECT id FROM (SELECT id, embedding_bq <~> (SELECT binary_quantize($1)::bit(1024)) AS h FROM messages WHERE ' :where ' OFFSET 0) s ORDER BY h LIMIT 1000)' :rerank
\set adaptive 'WITH ham AS MATERIALIZED (SELECT id, embedding_bq <~> (SELECT binary_quantize($1)::bit(1024)) AS h FROM messages WHERE ' :where '), cand AS MATERIALIZED (SELECT id FROM ham ORDER BY h LIMIT (SELECT GREATEST(300, LEAST(3000, count(*) + 150)) FROM ham WHERE h <= 341))' :rerank
-- the SQL plan's defaults: 300 candidates at least, 3000 at most, h <= 341
\set native 'SELECT n.id FROM bench.conv_part p, unde_bench_topk(p.part, p.idx, p.conversation_id, $1::real[], NULL, 300, 3000, 341, 20) n WHERE p.conversation_id = $2'
\pset footer off
SELECT 'warm-up' AS variant, * FROM bench.recall_all(:'native') LIMIT 0;
SELECT 'SQL plan (adaptive), 1' AS variant, * FROM bench.recall_all(:'adaptive');
SELECT 'native, 1' AS variant, * FROM bench.recall_all(:'native');
SELECT 'SQL plan (adaptive), 2' AS variant, * FROM bench.recall_all(:'adaptive');
SELECT 'native, 2' AS variant, * FROM bench.recall_all(:'native');

-- the same answers where the visibility map cannot vouch for the rows
BEGIN;
UPDATE messages SET is_forgotten = TRUE, embedding = NULL
  WHERE conversation_id = (SELECT conversation_id FROM bench.truth ORDER BY q LIMIT 1)
    AND role = 'user' AND is_embeddable AND random() < 0.1;
INSERT INTO messages (conversation_id, role, content, embedding, is_embeddable, created_at)
  SELECT t.conversation_id, 'user', 'native check ' || t.q, t.v, TRUE, now()
  FROM bench.truth t WHERE t.q % 7 = 0;
CREATE TEMP TABLE native_diff AS
  SELECT t.q,
    ARRAY(SELECT id FROM (SELECT id, embedding <=> t.v AS d FROM messages m
           WHERE m.conversation_id = t.conversation_id AND role = 'user' AND is_embeddable
             AND NOT is_forgotten AND embedding IS NOT NULL ORDER BY d LIMIT 20) e ORDER BY id) AS exact,
    ARRAY(SELECT n.id FROM bench.conv_part p,
           unde_bench_topk(p.part, p.idx, p.conversation_id, t.v::real[], NULL, 300, 3000, 341, 20) n
           WHERE p.conversation_id = t.conversation_id ORDER BY n.id) AS native
  FROM bench.truth t;
SELECT count(*) AS queries,
  count(*) FILTER (WHERE cardinality(ARRAY(SELECT unnest(exact) INTERSECT SELECT unnest(native))) < 20) AS with_a_miss,
  round(avg(cardinality(ARRAY(SELECT unnest(exact) INTERSECT SELECT unnest(native))))::numeric / 20, 4) AS recall
  FROM native_diff;
ROLLBACK;
