-- 0005_enrichment_backfill.sql — shard database (unde_shard), spec §14
-- "Client-Side Verify-and-Replay": rows stored by `unde-shard replay` after
-- a failover missed the synchronous steps of a normal save (salience check,
-- memory classification, embedding, snippet), so the spec asks for an
-- "enrichment backfill" of them (and §19 alerts on enrichment_backfill_rate).
-- The spec gives no column for "this row still needs enrichment"; derived:
-- needs_enrichment, set by replay, cleared by the enrichment job, with a
-- partial index so the job's queue query reads only the marked rows.
-- Adding a column with a constant default is a catalog-only change (no
-- rewrite of the 64 partitions).
ALTER TABLE messages ADD COLUMN needs_enrichment BOOLEAN NOT NULL DEFAULT FALSE;

CREATE INDEX idx_messages_needs_enrichment
    ON messages (conversation_id, created_at)
    WHERE needs_enrichment;
