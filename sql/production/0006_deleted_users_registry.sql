-- 0006_deleted_users_registry.sql — production database (unde_main), spec
-- §14 "Hard Delete (GDPR erase)" and §21 "Post-restore: apply_deletions".
--
-- deleted_messages_registry (0004) tombstones single messages. A GDPR
-- erase of a whole user (`unde-shard erase --user`) removes more than
-- messages: the conversation, user_knowledge, the user's DEK, the persona
-- state. A shard restored from a backup taken before such an erase must
-- lose all of it again, so the user is tombstoned too. Not in the spec's
-- SQL; derived, with the same columns and copy-out path as 0004:
--   * user_id is the key: a user is erased once; retries DO NOTHING.
--   * id / exported_at: the cursor and the mark of the copy (§21: registry
--     in Production DB + a copy elsewhere), written before erase reports.
--   * shard_id: the shard the user lived on.
CREATE TABLE deleted_users_registry (
    id BIGSERIAL NOT NULL UNIQUE,
    user_id UUID PRIMARY KEY,
    deleted_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    shard_id INTEGER,
    exported_at TIMESTAMPTZ
);

COMMENT ON TABLE deleted_users_registry IS
    'Tombstones of users erased whole (GDPR); re-applied to a shard after any restore';

CREATE INDEX idx_deleted_users_shard ON deleted_users_registry(shard_id);
CREATE INDEX idx_deleted_users_unexported
    ON deleted_users_registry(id) WHERE exported_at IS NULL;
