-- 0002_recognition_requests.sql — production database (unde_main), spec §8
-- "Таблица в Production DB": the log of every fashion-recognition request
-- (one row per photo, filled step by step: detection, tagging, visual
-- search, visual rerank), and its two indexes. The spec's SQL unchanged.
-- Applied by `unde-db migrate production` inside one transaction.

CREATE TABLE recognition_requests (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID,
    photo_url TEXT NOT NULL,

    -- Step 1: Detection (Ximilar Gateway)
    detected_items JSONB,
    detection_time_ms INTEGER,

    -- Step 2: Tagging (Ximilar Gateway + LLM Reranker)
    tags JSONB,
    tagging_time_ms INTEGER,

    -- Step 3: Visual Search (Ximilar Gateway)
    search_results JSONB,
    search_time_ms INTEGER,

    -- Step 4: Visual Rerank (LLM Reranker)
    final_matches JSONB,
    rerank_time_ms INTEGER,

    -- Totals
    total_time_ms INTEGER,
    items_detected INTEGER,
    items_matched INTEGER,

    user_feedback JSONB,

    created_at TIMESTAMPTZ DEFAULT NOW()
);

CREATE INDEX idx_recognition_user ON recognition_requests(user_id);
CREATE INDEX idx_recognition_created ON recognition_requests(created_at DESC);
