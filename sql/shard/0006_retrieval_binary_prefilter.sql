-- 0006_retrieval_binary_prefilter.sql — shard database (unde_shard), spec
-- §14 "Hybrid Search": the vector branch's plan.
--
-- Why (measured, bench/shard/README.md): the spec's vector branch,
--   WHERE conversation_id = $2 … ORDER BY embedding <=> $1 LIMIT 20,
-- walks the partition's HNSW graph, which is shared by every conversation
-- hashed to that partition, and filters afterwards. On the synthetic shard
-- (190 users × 3,000 messages + 5 one-year + 5 five-year users, 1024-dim
-- topic-structured vectors, 500 queries against an exact scan) it gave
-- recall@20 0.87–0.97 for one-year users depending on the graph build, and
-- some queries got NO neighbour at all (all ef_search candidates belonged
-- to other users). With ~25 users per partition, as on a production shard,
-- even pgvector 0.8 iterative scans stayed at 0.93–0.98 with empty results.
-- An exact scan of the user's own rows is right by construction but reads
-- every 4 KB vector: 29 ms p50 at 15,000 embeddable rows (5 years).
--
-- The plan: an exact Hamming scan of the user's own binary-quantized
-- vectors (128 bytes each, read from a covering B-tree, index-only), the
-- best 400 candidates re-ranked by the exact cosine distance of their full
-- vectors. Its cost depends only on the user's own history, never on how
-- many users share the partition, and a history of up to 400 embeddable
-- messages is searched exactly. Measured: recall@20 1.000 (1 year) and
-- 0.9995 (5 years); vector branch p95 2.8 ms and 6.3 ms; whole hybrid
-- search through unde-shard p95 3.9 ms and 9.4 ms.
--
-- embedding_bq is a stored generated column, so it can never disagree
-- with embedding: forget and erase, which set embedding to NULL, clear it
-- in the same statement. Adding it rewrites the messages partitions once
-- (2.5 min for 750,000 messages on the 2-core bench machine).
--
-- embedding's storage becomes MAIN (inline in the heap row instead of
-- pgvector's default EXTERNAL, i.e. TOAST): re-ranking fetches each
-- candidate's full vector, and an inline vector is one heap page instead of
-- a TOAST index probe plus two chunks — 5-year p95 of the vector branch
-- 11.2 → 9.0 ms. The same rewrite moves existing vectors inline.
-- The HNSW index of 0001 stays (the spec's SQL and the benchmark use it).
ALTER TABLE messages ALTER COLUMN embedding SET STORAGE MAIN;
ALTER TABLE messages
    ADD COLUMN embedding_bq bit(1024)
    GENERATED ALWAYS AS (binary_quantize(embedding)::bit(1024)) STORED;

CREATE INDEX idx_messages_vector_prefilter
    ON messages (conversation_id) INCLUDE (id, embedding_bq)
    WHERE role = 'user' AND is_embeddable = TRUE
      AND is_forgotten = FALSE AND embedding IS NOT NULL;
