-- 0003_routing_table.sql — production database (unde_main), spec §14
-- "Шардирование (application-level по user_id)": routing_table (user → shard),
-- and shards, the list of shards the routing picks from.
--
-- The spec gives the rule, not the SQL:
--   user_id → hash(user_id) % N_shards → shard_id → connection string,
-- kept "в Redis / Production DB" (this design has no Redis). Derived here:
--   * shards holds N (= number of rows) and, optionally, each shard's
--     connection string without secrets; the spec's SHARD_<id>_DB_URL
--     environment variable (§13) supplies or overrides it.
--   * routing_table pins each user to the shard chosen at first contact, so
--     adding a shard (N → N+1) never moves an existing user's history.
-- Shard 0 is registered here: the spec starts with one shard (dubai-shard-0).
-- Applied by `unde-db migrate production` inside one transaction.

CREATE TABLE shards (
    shard_id INTEGER PRIMARY KEY CHECK (shard_id >= 0),
    name VARCHAR(100) NOT NULL UNIQUE,      -- 'dubai-shard-0'
    conninfo TEXT,                          -- no password; NULL = use SHARD_<id>_DB_URL
    created_at TIMESTAMPTZ DEFAULT NOW()
);

INSERT INTO shards (shard_id, name) VALUES (0, 'dubai-shard-0');

CREATE TABLE routing_table (
    user_id UUID PRIMARY KEY,
    shard_id INTEGER NOT NULL REFERENCES shards(shard_id),
    created_at TIMESTAMPTZ DEFAULT NOW(),
    updated_at TIMESTAMPTZ DEFAULT NOW()
);

CREATE INDEX idx_routing_shard ON routing_table(shard_id);
