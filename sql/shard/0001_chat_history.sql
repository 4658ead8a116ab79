-- 0001_chat_history.sql — shard database (unde_shard), spec §14
-- "Схема базы данных — Chat History (обновлённая, pgvector + FTS +
-- партиционирование)": the vector extension, conversations (one continuous
-- dialogue per user), messages hash-partitioned by conversation_id into 64
-- partitions messages_p00 … messages_p63 (created by the spec's DO block),
-- with the pgvector embedding column, the generated tsv column, the partial
-- HNSW index, the GIN (FTS) index and the other indexes of §14.
--
-- The spec's SQL unchanged. Notes for readers:
--   * CREATE EXTENSION vector needs a superuser (pgvector 0.8 is not a
--     trusted extension); the migration tool runs as the database owner.
--   * Indexes created on the partitioned table are created on every
--     partition (one HNSW graph per partition, as §14 intends).
--   * §14's shard trigger names the HNSW index 'idx_embeddings_hnsw'; its
--     name here is the one in §14's CREATE INDEX, idx_messages_embedding.
--     Being partitioned, its size is the sum over the partitions' indexes
--     (pg_partition_tree), not pg_relation_size of the parent.
-- Applied by `unde-db migrate shard` inside one transaction.

-- Расширения
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE conversations (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL,
    created_at TIMESTAMPTZ DEFAULT NOW(),
    updated_at TIMESTAMPTZ DEFAULT NOW(),
    message_count INTEGER DEFAULT 0,
    UNIQUE(user_id)  -- один диалог на юзера
);

-- Партиционированная таблица сообщений
CREATE TABLE messages (
    id UUID NOT NULL DEFAULT gen_random_uuid(),
    conversation_id UUID NOT NULL,

    role VARCHAR(20) NOT NULL,       -- 'user', 'assistant', 'system'
    content TEXT NOT NULL,

    -- Semantic search (pgvector)
    -- NB: dim (1024) соответствует Cohere/Voyage. При смене провайдера:
    -- ALTER TABLE messages ALTER COLUMN embedding TYPE vector(NEW_DIM) + re-embed all.
    embedding vector(1024),
    is_embeddable BOOLEAN DEFAULT FALSE,
    is_forgotten BOOLEAN DEFAULT FALSE,

    -- Memory classification (тип + уверенность → скорость затухания)
    memory_type VARCHAR(20) DEFAULT 'general',
        -- emotion | preference | fact | event | general
    memory_confidence FLOAT DEFAULT 0.5,
        -- 0.0..1.0, определяется по intensifiers/softeners

    -- Precomputed snippet (0ms в рантайме вместо 400ms LLM-компрессии)
    memory_snippet TEXT,
        -- "В IMAX было холодно от кондиционера → брать тёплый слой"

    -- Consultant Response Description Layer
    -- Backend-only текстовое описание артефакта консультанта.
    -- В UI не показывается. Генерируется SYNC template-based при INSERT (~0.1ms).
    -- NULL для обычных текстовых ответов без артефакта.
    response_description TEXT,

    -- Ссылка на assistant message, к которому относится реакция юзера.
    -- Заполняется у user-сообщений. Не FK (из-за партиционирования).
    -- Серверная эвристика: последний артефакт за 10 мин, если клиент не указал явно.
    -- Защита от неоднозначности: если 2+ артефакта за <60 сек — reply_to_id = NULL (LLM уточнит).
    reply_to_id UUID,

    -- Full-text search
    -- NB: 'simple' config = точные токены без морфологии.
    -- FTS отвечает за имена/бренды/цифры, семантика — через embeddings.
    -- Включает response_description для поиска по атрибутам артефактов.
    tsv tsvector GENERATED ALWAYS AS (
        to_tsvector('simple', content || ' ' || COALESCE(response_description, ''))
    ) STORED,

    -- Метаданные
    media_urls JSONB,
    mood_frame JSONB,
    input_type VARCHAR(20),          -- 'voice', 'text'
    duration_ms INTEGER,
    model_used VARCHAR(100),

    -- GDPR
    deleted_at TIMESTAMPTZ,

    created_at TIMESTAMPTZ DEFAULT NOW(),

    PRIMARY KEY (conversation_id, id)
) PARTITION BY HASH (conversation_id);

COMMENT ON COLUMN messages.role IS 'user | assistant | system';
COMMENT ON COLUMN messages.memory_type IS 'emotion | preference | fact | event | general';
COMMENT ON COLUMN messages.input_type IS 'voice | text';

-- 64 партиции (достаточно для 800+ юзеров на шард)
DO $$
BEGIN
    FOR i IN 0..63 LOOP
        EXECUTE format(
            'CREATE TABLE messages_p%s PARTITION OF messages 
             FOR VALUES WITH (MODULUS 64, REMAINDER %s)',
            lpad(i::text, 2, '0'), i
        );
    END LOOP;
END $$;

-- HNSW: partial index только для embeddable, не-forgotten сообщений
CREATE INDEX idx_messages_embedding 
    ON messages USING hnsw (embedding vector_cosine_ops)
    WITH (m = 16, ef_construction = 64)
    WHERE role = 'user' AND is_embeddable = TRUE 
      AND is_forgotten = FALSE AND embedding IS NOT NULL;

CREATE INDEX idx_messages_tsv 
    ON messages USING gin (tsv);

CREATE INDEX idx_messages_conversation_time 
    ON messages(conversation_id, created_at DESC);

CREATE INDEX idx_messages_retrieval
    ON messages(conversation_id, role, is_embeddable, is_forgotten)
    WHERE role = 'user' AND is_embeddable = TRUE AND is_forgotten = FALSE;

CREATE INDEX idx_conversations_user ON conversations(user_id);
