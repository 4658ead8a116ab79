-- 0004_persona_profiles.sql — shard database (unde_shard), for the Persona
-- Agent (§16) and the LLM orchestrator (§13): persona_profiles, each user's
-- persona profile (the canonical persona_contract fields that feedback
-- signals adjust within momentum caps).
--
-- Not SQL from the spec, derived: §13 reads the profile from the user's shard
-- ("persona_profile = shard_conn.get_persona_profile(user_id)"), §16's
-- FeedbackProcessor applies signals to it and GET /persona/profile returns
-- it, but the spec defines no table for it. One JSON document per user,
-- stamped with the persona_contract version that wrote it
-- (PERSONA_CONTRACT_VERSION, "major version check").
-- Applied by `unde-db migrate shard` inside one transaction.

CREATE TABLE persona_profiles (
    user_id          UUID PRIMARY KEY,
    profile          JSONB NOT NULL DEFAULT '{}'::jsonb,
    contract_version VARCHAR(20),               -- '0.7.0'
    created_at       TIMESTAMPTZ DEFAULT NOW(),
    updated_at       TIMESTAMPTZ DEFAULT NOW()
);
