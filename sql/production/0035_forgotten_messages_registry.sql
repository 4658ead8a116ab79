-- 0035_forgotten_messages_registry.sql — production database (unde_main),
-- issue 9 / spec §14 "Soft Forget" and §21 "after any restore of a shard,
-- apply_deletions": the forget registry, beside the tombstone registry.
--
-- A soft forget ("Забудь это") changes only the shard: restored from a
-- backup taken before it, the shard would bring every forgotten message back
-- as remembered (its embedding, snippet and extracted knowledge active).
-- `unde-shard forget` therefore records each forgotten message here (and in
-- the tombstone copy file, type "forget") before changing the shard, and
-- `unde-shard apply-deletions` re-applies these rows as it re-applies
-- deleted_messages_registry's. Same shape as that registry:
--   * PRIMARY KEY (conversation_id, message_id): a message is forgotten once;
--     forget_description only ever turns on (ON CONFLICT … OR).
--   * id: the copy's cursor; exported_at: when the row reached the copy.
--   * shard_id: so a restored shard replays only its own rows.
-- Applied by `unde-db migrate production` inside one transaction.

CREATE TABLE forgotten_messages_registry (
    id BIGSERIAL NOT NULL UNIQUE,
    conversation_id UUID NOT NULL,
    message_id UUID NOT NULL,
    forget_description BOOLEAN NOT NULL DEFAULT FALSE,
    forgotten_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    shard_id INTEGER,
    exported_at TIMESTAMPTZ,
    PRIMARY KEY (conversation_id, message_id)
);

COMMENT ON TABLE forgotten_messages_registry IS
    'Soft-forgotten messages (§14), re-applied to a shard after any restore, like the tombstones';

CREATE INDEX idx_forgotten_messages_shard ON forgotten_messages_registry(shard_id);
CREATE INDEX idx_forgotten_messages_unexported
    ON forgotten_messages_registry(id) WHERE exported_at IS NULL;
