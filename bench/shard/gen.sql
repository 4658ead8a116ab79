-- gen.sql — fill a migrated shard database with a synthetic history for
-- bench/shard/run. psql variables: bg_users, bg_msgs (background users,
-- the issue's 200 × 3,000 with half embeddable), y1_users (≈6,000 messages
-- = 3,000 embeddable, one year), y5_users (≈30,000 = 15,000 embeddable,
-- five years), topics (global topic count), seed.
--
-- Vectors have topic structure, not pure noise: every user talks about 12
-- of the global topics (skewed: a few favourites), each topic has 8
-- subtopics, and a message's embedding is
--     l2_normalize(topic + 0.6·subtopic + noise)
-- where noise = N[i] ⊙ R[j] (a Gaussian pool vector times a random ±1
-- vector): 2048 × 2048 pairs give ~4M nearly orthogonal noise vectors from
-- two small pools, so no two messages share noise. A query drawn the same
-- way (fresh noise) has cosine ≈ 0.58 with same-subtopic messages, ≈ 0.42
-- with the rest of its topic and ≈ 0 elsewhere: SIMILARITY_THRESHOLD 0.5
-- separates them, and inside a subtopic the ranking is a near-tie decided
-- by the noise — what makes approximate search lose neighbours.
\set ON_ERROR_STOP on
SELECT setseed(:seed);

DROP SCHEMA IF EXISTS bench CASCADE;
CREATE SCHEMA bench;

CREATE FUNCTION bench.randvec(n int) RETURNS vector LANGUAGE sql VOLATILE AS $$
  SELECT l2_normalize(array_agg(sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()))::vector)
  FROM generate_series(1, n)
$$;
CREATE FUNCTION bench.const(x real) RETURNS vector LANGUAGE sql IMMUTABLE AS $$
  SELECT array_fill(x, ARRAY[1024])::vector
$$;

CREATE TABLE bench.topic AS SELECT t, bench.randvec(1024 + 0 * t) AS v FROM generate_series(0, :topics - 1) t;
CREATE TABLE bench.sub AS
  SELECT t, s, bench.randvec(1024 + 0 * t + 0 * s) * bench.const(0.6) AS v
  FROM generate_series(0, :topics - 1) t, generate_series(0, 7) s;
CREATE TABLE bench.noise AS SELECT i, bench.randvec(1024 + 0 * i) AS v FROM generate_series(0, 2047) i;
CREATE TABLE bench.sign AS
  SELECT j, (SELECT array_agg(CASE WHEN random() < 0.5 THEN -1 ELSE 1 END)::vector
             FROM generate_series(1, 1024 + 0 * j)) AS v
  FROM generate_series(0, 2047) j;
CREATE UNIQUE INDEX ON bench.topic (t);
CREATE UNIQUE INDEX ON bench.sub (t, s);
CREATE UNIQUE INDEX ON bench.noise (i);
CREATE UNIQUE INDEX ON bench.sign (j);

CREATE TABLE bench.users AS
  SELECT row_number() OVER () AS u, gen_random_uuid() AS user_id, gen_random_uuid() AS conversation_id,
         kind, n_msgs, days,
         (SELECT array_agg(x) FROM (SELECT floor(random() * :topics)::int + 0 * g AS x
                                    FROM generate_series(1, 12)) z) AS topics
  FROM (SELECT 'bg' AS kind, :bg_msgs AS n_msgs, 180 AS days, g FROM generate_series(1, :bg_users) g
        UNION ALL SELECT '1y', 6000, 365, g FROM generate_series(1, :y1_users) g
        UNION ALL SELECT '5y', 30000, 1825, g FROM generate_series(1, :y5_users) g) k;

INSERT INTO conversations (id, user_id, message_count, created_at)
  SELECT conversation_id, user_id, n_msgs, now() - make_interval(days => days) FROM bench.users;

-- one row per message: its place in the history and the random choices
CREATE UNLOGGED TABLE bench.plan AS
  SELECT u.u, u.conversation_id, k,
         CASE WHEN k % 2 = 1 THEN 'user' ELSE 'assistant' END AS role,
         u.topics[1 + floor(random() ^ 2 * 12)::int] AS t,
         floor(random() * 8)::int AS s,
         floor(random() * 2048)::int AS i,
         floor(random() * 2048)::int AS j,
         (ARRAY['emotion','event','general','preference','fact'])[1 + floor(random() * 5)::int] AS mtype,
         round(random()::numeric, 2)::float AS conf,
         random() < 0.2 AS artifact,
         (ARRAY['zara','massimo','mango','cos','uniqlo','hm','gucci','prada','nike','adidas'])[1 + floor(random() * 10)::int] AS brand,
         now() - make_interval(secs => u.days * 86400.0 * (1 - k::float / u.n_msgs)) AS created_at
  FROM bench.users u, generate_series(1, u.n_msgs) k;

DROP INDEX IF EXISTS idx_messages_embedding;
DROP INDEX IF EXISTS idx_messages_tsv;

INSERT INTO messages (conversation_id, role, content, embedding, is_embeddable, memory_type,
                      memory_confidence, memory_snippet, response_description, created_at)
  SELECT p.conversation_id, p.role,
         CASE WHEN p.role = 'user' THEN 'topic' || p.t || ' sub' || p.s || ' word' || (p.i % 50) || ' ' || p.brand
              ELSE 'vot chto ya nashla' END,
         CASE WHEN p.role = 'user' THEN l2_normalize(tp.v + sb.v + nz.v * sg.v) END,
         p.role = 'user', p.mtype, p.conf,
         CASE WHEN p.role = 'user' THEN 'snippet topic' || p.t END,
         CASE WHEN p.role = 'assistant' AND p.artifact THEN 'outfit ' || p.brand || ' sku' || p.i || ' store dubai' END,
         p.created_at
  FROM bench.plan p
  JOIN bench.topic tp ON tp.t = p.t
  JOIN bench.sub sb ON sb.t = p.t AND sb.s = p.s
  JOIN bench.noise nz ON nz.i = p.i
  JOIN bench.sign sg ON sg.j = p.j;

-- 500+ queries: a user's topic/subtopic with fresh noise (pool indices are
-- drawn independently, so the exact pair is never a stored message's)
CREATE TABLE bench.queries AS
  SELECT q, u.u, u.user_id, u.conversation_id, u.kind, x.t, x.s,
         l2_normalize(tp.v + sb.v + nz.v * sg.v) AS v
  FROM (SELECT q, 1 + floor(random() * (SELECT count(*) FROM bench.users))::int AS u,
               floor(random() * 12)::int AS ti, floor(random() * 8)::int AS s,
               floor(random() * 2048)::int AS i, floor(random() * 2048)::int AS j
        FROM generate_series(1, 1000) q) x0
  JOIN bench.users u ON u.u = x0.u
  CROSS JOIN LATERAL (SELECT u.topics[1 + x0.ti] AS t, x0.s AS s) x
  JOIN bench.topic tp ON tp.t = x.t
  JOIN bench.sub sb ON sb.t = x.t AND sb.s = x.s
  JOIN bench.noise nz ON nz.i = x0.i
  JOIN bench.sign sg ON sg.j = (x0.j + 1013) % 2048;
-- and queries aimed at the long-history users, so each kind has its own set
INSERT INTO bench.queries
  SELECT 1000 + row_number() OVER (), u.u, u.user_id, u.conversation_id, u.kind, x.t, x.s,
         l2_normalize(tp.v + sb.v + nz.v * sg.v)
  FROM bench.users u
  CROSS JOIN LATERAL (SELECT g, u.topics[1 + floor(random() * 12)::int + 0 * g] AS t,
                             floor(random() * 8 + 0 * g)::int AS s,
                             floor(random() * 2048 + 0 * g)::int AS i,
                             floor(random() * 2048 + 0 * g)::int AS j
                      FROM generate_series(1, 100) g) x
  JOIN bench.topic tp ON tp.t = x.t
  JOIN bench.sub sb ON sb.t = x.t AND sb.s = x.s
  JOIN bench.noise nz ON nz.i = x.i
  JOIN bench.sign sg ON sg.j = (x.j + 517) % 2048
  WHERE u.kind <> 'bg';
DROP TABLE bench.plan;
