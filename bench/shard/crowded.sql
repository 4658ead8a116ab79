-- crowded.sql — issue 9: recall@20 and in-server latency of the vector
-- branch on five-year users' crowded queries (their favourite topic, so
-- hundreds of their own vectors lie above cosine 0.5) and on uniform ones.
-- Truth: an exact scan of the user's rows. Latency: every run of every
-- query (2 runs each), p50/p95 — not the best of several.
\set ON_ERROR_STOP on
SELECT setseed(0.9);
DROP TABLE IF EXISTS bench.crowd;
-- 60 queries per five-year user on topics[1], the most frequent of the
-- user's 12 topics (gen.sql draws topics[1 + floor(random()^2 * 12)]: 29 %
-- of the user's messages, ≈540 per subtopic)
CREATE TABLE bench.crowd AS
  SELECT row_number() OVER () AS q, u.user_id, u.conversation_id, x.t, x.s,
         l2_normalize(tp.v + sb.v + nz.v * sg.v) AS v
  FROM bench.users u
  CROSS JOIN LATERAL (SELECT g, u.topics[1] AS t, floor(random() * 8 + 0 * g)::int AS s,
                             floor(random() * 2048 + 0 * g)::int AS i,
                             floor(random() * 2048 + 0 * g)::int AS j
                      FROM generate_series(1, 60) g) x
  JOIN bench.topic tp ON tp.t = x.t
  JOIN bench.sub sb ON sb.t = x.t AND sb.s = x.s
  JOIN bench.noise nz ON nz.i = x.i
  JOIN bench.sign sg ON sg.j = (x.j + 731) % 2048
  WHERE u.kind = '5y';

DROP TABLE IF EXISTS bench.truth;
CREATE TABLE bench.truth AS
SELECT q.q, q.kind, q.conversation_id, q.v,
  (SELECT count(*) FROM messages m WHERE m.conversation_id = q.conversation_id AND role = 'user'
      AND is_embeddable AND NOT is_forgotten AND embedding IS NOT NULL AND embedding <=> q.v < 0.5) AS near,
  (SELECT array_agg(id ORDER BY d) FROM (SELECT id, d FROM (SELECT id, embedding <=> q.v AS d FROM messages m
      WHERE m.conversation_id = q.conversation_id AND role = 'user' AND is_embeddable
      AND NOT is_forgotten AND embedding IS NOT NULL OFFSET 0) s ORDER BY d LIMIT 20) e) AS exact
FROM ((SELECT q, '5y crowded' AS kind, conversation_id, v FROM bench.crowd)
      UNION ALL (SELECT q, '5y uniform', conversation_id, v FROM bench.queries WHERE kind = '5y' ORDER BY q LIMIT 100)) q;
UPDATE bench.truth SET kind = kind || ' (>=400 near)' WHERE near >= 400 AND kind = '5y crowded';
SELECT kind, count(*) AS queries, round(avg(near)) AS avg_near_above_05, max(near) FROM bench.truth GROUP BY 1 ORDER BY 1;

CREATE OR REPLACE FUNCTION bench.recall_all(sql text)
RETURNS TABLE(kind text, recall numeric, worst int, p50_ms numeric, p95_ms numeric)
LANGUAGE plpgsql AS $$
DECLARE t record; got uuid[]; t0 timestamptz; k int; hit int;
BEGIN
  CREATE TEMP TABLE IF NOT EXISTS rr (kind text, hit int, n int, ms float);
  TRUNCATE rr;
  FOR t IN SELECT * FROM bench.truth ORDER BY q LOOP
    FOR k IN 1..2 LOOP
      t0 := clock_timestamp();
      EXECUTE 'SELECT array_agg(id) FROM (' || sql || ') z' INTO got USING t.v, t.conversation_id;
      hit := (SELECT count(*) FROM unnest(t.exact) x WHERE x = ANY(got));
      INSERT INTO rr VALUES (t.kind, CASE WHEN k = 1 THEN hit END, CASE WHEN k = 1 THEN cardinality(t.exact) END,
                             extract(epoch FROM clock_timestamp() - t0) * 1000);
    END LOOP;
  END LOOP;
  RETURN QUERY SELECT rr.kind, round(sum(rr.hit)::numeric / sum(rr.n), 4), min(rr.hit),
    round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2),
    round(percentile_cont(0.95) WITHIN GROUP (ORDER BY ms)::numeric, 2)
  FROM rr GROUP BY rr.kind ORDER BY 1;
END $$;

-- the filters of lib/shardc_search.c, the query model included (unknown: NULL)
\set where 'conversation_id = $2 AND role = ''user'' AND is_embeddable AND NOT is_forgotten AND embedding IS NOT NULL AND embedding_model IS NOT DISTINCT FROM NULL::text'
\set rerank ' SELECT id FROM (SELECT id, embedding <=> $1 AS d FROM messages WHERE conversation_id = $2 AND id IN (SELECT id FROM cand) OFFSET 0) r ORDER BY d LIMIT 20'
\set fixed300 'WITH cand AS MATERIALIZED (SELECT id FROM (SELECT id, embedding_bq <~> (SELECT binary_quantize($1)::bit(1024)) AS h FROM messages WHERE ' :where ' OFFSET 0) s ORDER BY h LIMIT 300)' :rerank
\set fixed1000 'WITH cand AS MATERIALIZED (SELECT id FROM (SELECT id, embedding_bq <~> (SELECT binary_quantize($1)::bit(1024)) AS h FROM messages WHERE ' :where ' OFFSET 0) s ORDER BY h LIMIT 1000)' :rerank
-- adaptive, as lib/shardc_search.c: 300, or the user's vectors whose Hamming
-- distance says cosine > 0.5 (h <= 1024·acos(0.5)/π = 341) plus 150, at most 3000
\set adaptive 'WITH ham AS MATERIALIZED (SELECT id, embedding_bq <~> (SELECT binary_quantize($1)::bit(1024)) AS h FROM messages WHERE ' :where '), cand AS MATERIALIZED (SELECT id FROM ham ORDER BY h LIMIT (SELECT GREATEST(300, LEAST(3000, count(*) + 150)) FROM ham WHERE h <= 341))' :rerank
-- the same rule in the shard's unde_vector_topk (src/shard/pg/unde_vector.c)
\set native 'SELECT id FROM unde_vector_topk(''messages'', $2, $1, NULL, 300, 3000, 341, ''hamming'', 20)'
\set exact 'SELECT id FROM (SELECT id, embedding <=> $1 AS d FROM messages WHERE ' :where ' OFFSET 0) s ORDER BY d LIMIT 20'
\pset footer off
SELECT 'warm-up' AS variant, * FROM bench.recall_all(:'fixed300') LIMIT 0;
-- the default plan, alternated with its SQL form: the figures issue 9 asks for
SELECT 'adaptive in SQL (--plan sql)' AS variant, * FROM bench.recall_all(:'adaptive');
SELECT 'adaptive in unde_vector_topk (default)' AS variant, * FROM bench.recall_all(:'native');
SELECT 'adaptive in SQL, again' AS variant, * FROM bench.recall_all(:'adaptive');
SELECT 'adaptive in unde_vector_topk, again' AS variant, * FROM bench.recall_all(:'native');
SELECT 'prefilter 300 (before issue 9)' AS variant, * FROM bench.recall_all(:'fixed300');
SELECT 'prefilter 1000' AS variant, * FROM bench.recall_all(:'fixed1000');
SELECT 'exact scan' AS variant, * FROM bench.recall_all(:'exact');
