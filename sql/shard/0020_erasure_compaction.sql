-- 0020_erasure_compaction.sql — shard database (unde_shard), issue 9 /
-- spec §14 "Hard Delete" and §21 GDPR: erased bytes leave the disk.
--
-- An erase overwrites a message's content with '[deleted]' and a user's
-- erase deletes rows, but PostgreSQL's MVCC keeps the old row version in
-- the heap page, its TOAST chunks and its full-text (GIN) index entries;
-- VACUUM only marks that space reusable, the bytes stay in the relation
-- files until something happens to overwrite them (measured: the erased
-- text was still in the partition's heap, GIN index and TOAST after
-- VACUUM). Only rewriting the relation (VACUUM FULL, new files; the old
-- ones truncated at commit and unlinked at the next checkpoint) removes
-- them. `unde-shard compact` (cron/unde, nightly) rewrites each relation
-- named here and removes its row; erase, erase --user, apply-deletions and
-- move's clean-up add the relations they changed.
CREATE TABLE erasure_pending (
    relation TEXT PRIMARY KEY,             -- e.g. messages_p17, user_knowledge
    since TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);

COMMENT ON TABLE erasure_pending IS
    'relations holding erased bytes until `unde-shard compact` rewrites them (issue 9)';
