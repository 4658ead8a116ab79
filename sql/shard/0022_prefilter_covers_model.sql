-- 0022_prefilter_covers_model.sql — shard database (unde_shard), issue 9:
-- the vector prefilter index-only again.
--
-- 0006's covering index (conversation_id) INCLUDE (id, embedding_bq) made
-- the Hamming scan of a user's vectors index-only. Since 0007 the scan also
-- filters on embedding_model, which the index did not carry, so every one
-- of the user's rows was fetched from the heap — a heap row holds its 4 KB
-- vector inline (STORAGE MAIN), one page per row: 60,000 buffers and
-- 90–100 ms at five years (15,000 vectors) instead of a few ms. This index
-- carries the model too and replaces 0006's.
CREATE INDEX idx_messages_vector_prefilter_model
    ON messages (conversation_id) INCLUDE (id, embedding_model, embedding_bq)
    WHERE role = 'user' AND is_embeddable = TRUE
      AND is_forgotten = FALSE AND embedding IS NOT NULL;

DROP INDEX idx_messages_vector_prefilter;
