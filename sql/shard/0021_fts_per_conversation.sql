-- 0021_fts_per_conversation.sql — shard database (unde_shard), issue 9 /
-- spec §14 "Hybrid Search": the full-text branch's index.
--
-- idx_messages_tsv (0001) indexes tsv alone, and each partition holds ~25
-- users' messages: a word common in the partition was fetched from the
-- heap for every user and then filtered by conversation_id. This GIN index
-- keys the conversation too (btree_gin, a trusted extension), so
-- `conversation_id = $2 AND tsv @@ q` intersects the two posting lists in
-- the index and reads only the user's own matching rows. unde-shard search
-- counts each query term's matches in the user's history with it (the
-- weight of rare terms over common ones) and takes the newest matches of
-- each term. It replaces 0001's idx_messages_tsv: a multicolumn GIN serves a
-- condition on tsv alone as well, so the spec's SQL (--plan spec) runs
-- unchanged on it, and with both indexes the planner picked the smaller
-- tsv-only one and fetched every user's rows again (measured).
CREATE EXTENSION IF NOT EXISTS btree_gin;

CREATE INDEX idx_messages_conversation_tsv
    ON messages USING gin (conversation_id, tsv);

DROP INDEX idx_messages_tsv;
