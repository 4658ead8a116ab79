-- 0003_persona_state.sql — shard database (unde_shard), spec §14 (User
-- Knowledge schema block, "=== Persona Agent ===" part) for the Persona
-- Agent of §16: relationship_stage (persisted stage 0..3 and its counters),
-- persona_temp_blocks (temporary bans such as a rejected cultural
-- reference; max 20 per user, lazy + cron cleanup) and signal_daily_deltas
-- (per-day momentum of each profile field; 7-day TTL, cron cleanup 04:00,
-- §18). The spec's SQL unchanged.
-- Applied by `unde-db migrate shard` inside one transaction.

-- === Persona Agent: Relationship Stage (persisted state) ===
CREATE TABLE relationship_stage (
    user_id          UUID PRIMARY KEY,
    stage            INTEGER DEFAULT 0,         -- 0, 1, 2, 3
    stage_updated_at TIMESTAMPTZ DEFAULT NOW(),
    sessions_count   INTEGER DEFAULT 0,
    total_exchanges  INTEGER DEFAULT 0,
    positive_signals_count INTEGER DEFAULT 0,
    last_active_at   TIMESTAMPTZ DEFAULT NOW()
);
-- Stage upgrade: sessions + exchanges + positive signals
-- Stage downgrade: 45-90 дней без активности (stage-dependent)

-- === Persona Agent: Temp Blocks ===
CREATE TABLE persona_temp_blocks (
    id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     UUID NOT NULL,
    key         VARCHAR(50) NOT NULL,           -- 'cultural_ref', 'humor', etc.
    until       TIMESTAMPTZ NOT NULL,
    reason      VARCHAR(100) NOT NULL,          -- 'cultural_ref_rejected'
    signal_id   UUID,
    created_at  TIMESTAMPTZ DEFAULT NOW()
);
CREATE INDEX idx_temp_blocks_user ON persona_temp_blocks(user_id);
-- Max 20 per user, lazy + cron cleanup

-- === Persona Agent: Signal Daily Deltas (momentum tracking) ===
CREATE TABLE signal_daily_deltas (
    user_id     UUID NOT NULL,
    field       VARCHAR(50) NOT NULL,           -- canonical field name
    date        DATE NOT NULL DEFAULT CURRENT_DATE,
    total_delta FLOAT DEFAULT 0,
    PRIMARY KEY (user_id, field, date)
);
-- TTL: 7 дней (для отладки), cron cleanup
