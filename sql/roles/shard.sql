-- sql/roles/shard.sql — a Dubai user-data shard's roles and grants, spec §14.
--
--   psql -v ON_ERROR_STOP=1 -d unde_shard_0 -f sql/roles/shard.sql
--
-- Run as the owner of the tables (whoever ran `unde-db migrate shard`),
-- after every migration. Idempotent: roles are created when missing, every
-- table privilege of these roles is revoked and granted again. Passwords
-- are set on the host (ALTER ROLE … PASSWORD, scram-sha-256).
--
--   app_rw        App Server, LLM Orchestrator (unde-shard save, replay,
--                 search, forget, erase, knowledge, keys, move,
--                 apply-deletions): READ/WRITE all rows of every table.
--   knowledge_rw  the local knowledge pipeline (unde-shard knowledge, keys):
--                 READ/WRITE user_knowledge and user_keys, nothing else.
--   persona_rw    the Persona Agent: READ/WRITE relationship_stage,
--                 persona_temp_blocks, signal_daily_deltas and its own
--                 persona_profiles (§16); READ user_knowledge, and user_keys
--                 because a knowledge row is only readable with its user's
--                 wrapped key.
--   replicator    the Hetzner replica's streaming replication: REPLICATION
--                 and no table at all.

DO $$
DECLARE r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['app_rw', 'knowledge_rw', 'persona_rw', 'replicator'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I LOGIN', r);
        END IF;
        EXECUTE format('ALTER ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE %s', r,
                       CASE WHEN r = 'replicator' THEN 'REPLICATION' ELSE 'NOREPLICATION' END);
        EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA public FROM %I', r);
        EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM %I', r);
        IF r <> 'replicator' THEN
            EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), r);
            EXECUTE format('GRANT USAGE ON SCHEMA public TO %I', r);
        END IF;
    END LOOP;
END $$;

-- app_rw: every row of every table (partitions are reached through their
-- parent, whose privileges PostgreSQL checks)
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO app_rw;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO app_rw;
REVOKE ALL ON schema_migrations FROM app_rw;
GRANT SELECT ON schema_migrations TO app_rw;

-- knowledge_rw
GRANT SELECT, INSERT, UPDATE, DELETE ON user_knowledge, user_keys TO knowledge_rw;

-- persona_rw
GRANT SELECT, INSERT, UPDATE, DELETE
    ON relationship_stage, persona_temp_blocks, signal_daily_deltas, persona_profiles
    TO persona_rw;
GRANT SELECT ON user_knowledge, user_keys TO persona_rw;
