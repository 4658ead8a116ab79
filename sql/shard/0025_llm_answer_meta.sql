-- 0025_llm_answer_meta.sql — shard database (unde_shard), for unde-llm's
-- memory density cap (§13: at most MAX_MEMORY_DENSITY_ROLLING_10 of the
-- last 10 answers may use memories).
--
-- Not SQL from the spec, derived: the spec keeps the rolling window in the
-- orchestrator's memory; we record, per assistant message, how many episodes
-- its ContextPack carried, so every process of every host reads the same
-- window. No content is kept here: ids and counts only. A user's rows go
-- with the user (erase deletes by user_id).
-- Applied by `unde-db migrate shard` inside one transaction.

CREATE TABLE llm_answer_meta (
    message_id     UUID PRIMARY KEY,          -- the assistant message (messages.id)
    user_id        UUID NOT NULL,
    episodes_used  SMALLINT NOT NULL CHECK (episodes_used >= 0),
    episode_ids    UUID[] NOT NULL DEFAULT '{}',
    exchange_id    UUID,                      -- the persona feedback's exchange
    created_at     TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX idx_llm_answer_meta_user ON llm_answer_meta(user_id, created_at DESC);
