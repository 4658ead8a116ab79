-- 0040_store_enrichment.sql — shard database (unde_shard), for unde-embed's
-- batched store (issue 13).
--
-- Not SQL from the spec, derived. unde-embed stores a batch of embeddings
-- and snippets with one statement. An UPDATE … FROM a recordset of the
-- batch is planned as a hash join over every partition of messages (a
-- sequential scan of the whole table per batch: seen on 200,000 rows,
-- and worse as a shard grows); this function updates the batch's rows one
-- by one by primary key instead, each UPDATE pruned to its partition, in
-- the one statement the client sends. It returns the rows it stored; a
-- row forgotten or erased meanwhile is left alone and not returned. An
-- error on any row fails the whole call: the client then sends each row
-- alone, so the bad one fails by itself.
-- Applied by `unde-db migrate shard` inside one transaction.

CREATE FUNCTION store_enrichment(batch jsonb)
RETURNS TABLE (stored_conversation_id uuid, stored_id uuid, snippet_null boolean)
LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT * FROM jsonb_to_recordset(batch)
             AS x(conversation_id uuid, id uuid, embedding text, model text, snippet text)
    LOOP
        UPDATE messages m
           SET embedding = COALESCE(r.embedding::vector, m.embedding),
               embedding_model = CASE WHEN r.embedding IS NULL THEN m.embedding_model ELSE r.model END,
               memory_snippet = COALESCE(m.memory_snippet, r.snippet),
               needs_enrichment = false
         WHERE m.conversation_id = r.conversation_id AND m.id = r.id
           AND NOT m.is_forgotten AND m.deleted_at IS NULL
        RETURNING m.conversation_id, m.id, m.memory_snippet IS NULL
             INTO stored_conversation_id, stored_id, snippet_null;
        IF FOUND THEN
            RETURN NEXT;
        END IF;
    END LOOP;
END
$$;
