-- dense.sql — the same vectors, 8 partitions instead of 64: ~25 users share
-- each partition's HNSW graph (≈47,000 vectors), as ~40 users per partition
-- would on a production shard of 2,500 users (§14: 64 partitions, "800+
-- users per shard", year 1 ≈ 2,500). Filtering one conversation inside a
-- shared graph is what the issue suspects; this measures it at that density.
\set ON_ERROR_STOP on
SET maintenance_work_mem = '6GB';
DROP TABLE IF EXISTS bench.m8;
CREATE TABLE bench.m8 (
    id uuid NOT NULL, conversation_id uuid NOT NULL, role varchar(20) NOT NULL,
    is_embeddable boolean, is_forgotten boolean, embedding vector(1024),
    embedding_bq bit(1024), PRIMARY KEY (conversation_id, id)
) PARTITION BY HASH (conversation_id);
DO $$ BEGIN FOR i IN 0..7 LOOP
  EXECUTE format('CREATE TABLE bench.m8_p%s PARTITION OF bench.m8 FOR VALUES WITH (MODULUS 8, REMAINDER %s)', i, i);
END LOOP; END $$;
ALTER TABLE bench.m8 ALTER COLUMN embedding SET STORAGE MAIN;
INSERT INTO bench.m8 SELECT id, conversation_id, role, is_embeddable, is_forgotten, embedding, embedding_bq
  FROM messages WHERE embedding IS NOT NULL;
CREATE INDEX ON bench.m8 USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)
  WHERE role = 'user' AND is_embeddable = TRUE AND is_forgotten = FALSE AND embedding IS NOT NULL;
CREATE INDEX ON bench.m8 (conversation_id) INCLUDE (id, embedding_bq)
  WHERE role = 'user' AND is_embeddable = TRUE AND is_forgotten = FALSE AND embedding IS NOT NULL;
VACUUM ANALYZE bench.m8;
