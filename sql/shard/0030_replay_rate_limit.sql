-- 0030_replay_rate_limit.sql — shard database (unde_shard), for the
-- server side of §14's verify-and-replay rate limit ("Rate-limit retry:
-- 1 пара/сек/юзер, max 3 попытки").
--
-- Not SQL from the spec, derived: the spec states the limit for the app;
-- POST /verify-and-replay enforces it too, so that a looping or hostile
-- client cannot replay faster. unde-httpd starts one process per
-- connection and a shard has several app servers in front of it, so the
-- state lives here, next to the rows it protects, and is updated in the
-- replay's own transaction (a refused or failed replay leaves it as it was).
-- Ids and counters only, no content. A user's rows go with the user
-- (erase deletes by user_id).
-- Applied by `unde-db migrate shard` inside one transaction.

-- A token bucket per user: `tokens` pairs were available at `updated_at`;
-- one pair's worth comes back every 1/REPLAY_PAIRS_PER_SECOND seconds, up to
-- REPLAY_BURST_PAIRS (the app's buffer of 10 pairs).
CREATE TABLE replay_rate (
    user_id     UUID PRIMARY KEY,
    tokens      DOUBLE PRECISION NOT NULL CHECK (tokens >= 0),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);

-- How many times each replayed message was sent (at most REPLAY_MAX_TRIES);
-- rows older than an hour are pruned by the next replay of the same user.
CREATE TABLE replay_tries (
    user_id     UUID NOT NULL,
    message_id  UUID NOT NULL,
    tries       INTEGER NOT NULL DEFAULT 1 CHECK (tries > 0),
    last_at     TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (user_id, message_id)
);
