-- 0007_embedding_model.sql — shard database (unde_shard), issue 13 / spec §14:
-- vectors of two embedding models are never compared. Each message records
-- the model that embedded it (NULL: unknown, as for every row embedded before
-- this column); `unde-shard search` compares a query only with messages of
-- the query's model, and `unde-embed --reembed --model M` moves a user over.
-- A nullable column without a default is a catalog-only change (no rewrite
-- of the 64 partitions).
ALTER TABLE messages ADD COLUMN embedding_model TEXT;

COMMENT ON COLUMN messages.embedding_model IS
    'the model that computed embedding (e.g. embed-multilingual-v3.0, local-ngram-v1); NULL unknown';

-- unde-embed's queue: embeddable, not forgotten, not erased, not yet embedded.
CREATE INDEX idx_messages_embed_pending
    ON messages (conversation_id, created_at)
    WHERE embedding IS NULL AND is_embeddable AND NOT is_forgotten AND deleted_at IS NULL;
