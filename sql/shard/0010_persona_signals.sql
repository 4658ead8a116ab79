-- 0010_persona_signals.sql — shard database (unde_shard), for the Persona
-- Agent's feedback loop (§16: SignalBuffer, idempotency "TTL 72h").
--
-- Not SQL from the spec, derived: the spec keeps the signal buffer and the
-- idempotency keys in Redis; we keep both in the user's shard, so that every
-- process of every host sees the same buffer and the same keys, and a
-- feedback line is buffered exactly once across restarts.
--   persona_signal_ids     one row per signal_id seen in the last 72 h
--                          (a replay answers duplicate:true); cron cleanup.
--   persona_signal_buffer  signals waiting for their exchange's flush;
--                          buffers older than 10 min are flushed as stale.
-- Applied by `unde-db migrate shard` inside one transaction.

CREATE TABLE persona_signal_ids (
    signal_id    UUID PRIMARY KEY,
    user_id      UUID NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX idx_persona_signal_ids_received ON persona_signal_ids(received_at);

CREATE TABLE persona_signal_buffer (
    signal_id    UUID PRIMARY KEY,
    user_id      UUID NOT NULL,
    exchange_id  VARCHAR(100) NOT NULL,
    signal_type  VARCHAR(50) NOT NULL,
    signal_data  JSONB,
    received_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX idx_persona_signal_buffer_user ON persona_signal_buffer(user_id, exchange_id);
CREATE INDEX idx_persona_signal_buffer_received ON persona_signal_buffer(received_at);
