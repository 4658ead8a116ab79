-- 0004_deleted_messages_registry.sql — production database (unde_main),
-- spec §14 "Soft / Hard Forget" and §21 "Tombstone Registry":
-- deleted_messages_registry, the tombstone registry of hard-deleted (GDPR
-- erase) messages, and deleted_messages_export, its copy-out path.
--
-- From the spec: every hard delete on a shard is followed by
--   INSERT INTO deleted_messages_registry (conversation_id, message_id, deleted_at)
--   VALUES ($1, $2, NOW());
-- messages are always named by the pair (conversation_id, message_id); the
-- registry lives in Production DB (primary) + Object Storage (copy), and after
-- any restore of a shard apply_deletions.sql re-applies it.
-- Added beyond the spec's three columns, for those two uses:
--   * PRIMARY KEY (conversation_id, message_id): a message is erased once;
--     a retried erase can use ON CONFLICT DO NOTHING.
--   * id: a monotonic cursor, so the copy to Object Storage can be written
--     incrementally and in order (WHERE id > last exported id).
--   * exported_at: when the row's copy reached Object Storage (NULL = not
--     yet). The exporter reads deleted_messages_export, writes the batch,
--     then sets exported_at; the partial index keeps that cheap.
--   * shard_id: the shard the message lived on, so a restored shard replays
--     only its own tombstones (nullable: the spec's INSERT omits it).
-- Applied by `unde-db migrate production` inside one transaction.

CREATE TABLE deleted_messages_registry (
    id BIGSERIAL NOT NULL UNIQUE,
    conversation_id UUID NOT NULL,
    message_id UUID NOT NULL,
    deleted_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    shard_id INTEGER,
    exported_at TIMESTAMPTZ,
    PRIMARY KEY (conversation_id, message_id)
);

COMMENT ON TABLE deleted_messages_registry IS
    'Tombstone registry (§14): hard-deleted messages, re-applied to a shard after any restore';
COMMENT ON COLUMN deleted_messages_registry.exported_at IS
    'when this row was copied to Object Storage; NULL = copy pending';

CREATE INDEX idx_deleted_messages_deleted_at ON deleted_messages_registry(deleted_at);
CREATE INDEX idx_deleted_messages_shard ON deleted_messages_registry(shard_id);
CREATE INDEX idx_deleted_messages_unexported
    ON deleted_messages_registry(id) WHERE exported_at IS NULL;

-- Copy-out path: the rows not yet copied to Object Storage, oldest first.
CREATE VIEW deleted_messages_export AS
    SELECT id, conversation_id, message_id, deleted_at, shard_id
    FROM deleted_messages_registry
    WHERE exported_at IS NULL
    ORDER BY id;

COMMENT ON VIEW deleted_messages_export IS
    'Tombstones awaiting copy to Object Storage; set exported_at after writing them';
