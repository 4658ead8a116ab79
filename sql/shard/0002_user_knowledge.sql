-- 0002_user_knowledge.sql — shard database (unde_shard), spec §14
-- "Схема базы данных — User Knowledge (на том же шарде)": user_keys (each
-- user's data-encryption key, wrapped by MASTER_ENCRYPTION_KEY) and
-- user_knowledge (facts about the user, AES-256-GCM encrypted: data, iv,
-- auth_tag; type/version/source in clear for indexing and forget cascades),
-- with their two indexes. The spec's SQL unchanged.
-- Applied by `unde-db migrate shard` inside one transaction.

-- Ключи шифрования юзеров
CREATE TABLE user_keys (
    user_id UUID PRIMARY KEY,
    encrypted_dek BYTEA NOT NULL,      -- DEK зашифрованный мастер-ключом
    created_at TIMESTAMPTZ DEFAULT NOW(),
    rotated_at TIMESTAMPTZ
);

-- Знания о юзере (зашифрованы AES-256-GCM)
CREATE TABLE user_knowledge (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL REFERENCES user_keys(user_id),

    -- Зашифрованные данные
    encrypted_data BYTEA NOT NULL,
    iv BYTEA NOT NULL,                  -- Initialization vector
    auth_tag BYTEA NOT NULL,            -- Authentication tag

    -- Метаданные (НЕ зашифрованы, для индексации)
    knowledge_type VARCHAR(50) NOT NULL,
        -- 'style_profile', 'body_params', 'brand_preferences',
        -- 'budget', 'life_events', 'behavior_patterns',
        -- 'emotional_patterns', 'color_preferences'

    -- Версионирование
    version INTEGER DEFAULT 1,
    extracted_from VARCHAR(50),          -- 'chat_pipeline', 'onboarding', 'explicit_input'
    source_message_id UUID,             -- для каскадного soft/hard forget
    confidence DECIMAL(3,2),
    is_active BOOLEAN DEFAULT TRUE,     -- для soft forget

    created_at TIMESTAMPTZ DEFAULT NOW(),
    updated_at TIMESTAMPTZ DEFAULT NOW()
);

COMMENT ON COLUMN user_knowledge.knowledge_type IS
    'style_profile | body_params | brand_preferences | budget | life_events | behavior_patterns | emotional_patterns | color_preferences';
COMMENT ON COLUMN user_knowledge.extracted_from IS
    'chat_pipeline | onboarding | explicit_input';

CREATE INDEX idx_knowledge_user_type ON user_knowledge(user_id, knowledge_type);
CREATE INDEX idx_knowledge_updated ON user_knowledge(updated_at DESC);
