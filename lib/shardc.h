/* shardc.h — the shard client: how any command reaches a user's shard
 * (spec §14) and reads or writes it the way unde-shard does. unde-shard's
 * filters are thin wrappers over it; unde-llm, unde-persona, unde-mood and
 * unde-embed link the same code.
 *
 * Routing. struct shard_ctx picks a user's shard:
 *
 *   x->url        this shard database, no routing (tests, one-off repairs)
 *   x->shard = N  shard N: SHARD_<N>_DB_URL, else shards.conninfo
 *   otherwise     the routing table in PRODUCTION_DB_URL; without it, the
 *                 spec's MVP of one shard: SHARD_0_DB_URL.
 *
 * It caches the production connection and one connection per shard for
 * the life of the process (an online filter behind unde-httpd serves many
 * records on them). Nothing here keeps session state on a connection (no
 * named prepared statements, no SET): every query is PQexecParams, so
 * PgBouncer in transaction mode sits in front of every database.
 *
 * Writers take the route lock: sctx_for_user_write keeps the user's
 * routing_table row FOR SHARE on a production connection of its own until
 * sctx_write_done, so `unde-shard move` cannot switch the route while a
 * write is in flight. shard_save_turn, shard_replay and
 * shard_knowledge_put take and end it themselves.
 *
 * Errors are a struct shard_err (exit class + code + message); a filter
 * turns one into its error contract with sctx_fail. */
#ifndef UNDE_SHARDC_H
#define UNDE_SHARDC_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto.h"
#include "filter.h"

#define SHARD_MAX_CONNS 64

struct shard_replay_limit;

struct shard_conn {
	long id;
	PGconn *c;
	PGconn *side;       /* a second one, for a search's full-text branch (sctx_shard_side) */
	char *url;          /* what it was opened from (owned) */
	double reconnect_s; /* how long to wait for a writable member (failover) */
};

struct shard_ctx {
	const char *url;    /* --url: one shard, no routing */
	long shard;         /* --shard N, or -1 */
	PGconn *prod;       /* production, connected on first use */
	PGconn *hold;       /* production again: the route lock of sctx_for_user_write */
	int holding;        /* hold is inside that lock's transaction */
	int prod_missing;   /* PRODUCTION_DB_URL unset: single-shard mode */
	struct shard_conn conns[SHARD_MAX_CONNS];
	size_t nconns;
	const struct shard_replay_limit *replay_limit; /* NULL: replay unlimited (the CLI) */
};

/* Why a call failed, as the error contract's exit class and code. */
struct shard_err {
	int status;       /* EX_DATAERR, EX_UNAVAILABLE, EX_CONFIG, EX_TEMPFAIL, EX_SOFTWARE */
	const char *code; /* "unknown_user", "shard_unavailable", "invalid_field", … */
	char msg[256];
};

/* Fill e: the exit class, the code, the message. Returns -1, so that
 * `return shard_err_set(…)` ends a failing call. */
int shard_err_set(struct shard_err *e, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* A failed query on c as an error: lost connection → 69 shard_unavailable,
 * a data exception → 65 invalid_field, serialization/deadlock → 75
 * conflict, anything else → 70 query_failed. Returns -1. */
int shard_err_query(struct shard_err *e, PGconn *c, const char *what);

/* ---- routing ---- */

void sctx_init(struct shard_ctx *x);
/* Ends a held route lock and closes every connection. */
void sctx_close(struct shard_ctx *x);
/* sctx_close, then a context as new but for its options (--url, --shard):
 * what a long-lived process does after losing a database. */
void sctx_reset(struct shard_ctx *x);
/* Parse the options every shard-reaching command shares (--shard, --url):
 * 1 when opt was one of them, 0 when not, -1 when its value is bad. */
int sctx_option(struct shard_ctx *x, int opt, const char *arg);
#define SCTX_OPT_URL 'u'
#define SCTX_OPT_SHARD 's'
/* The two entries of a lib/options table (struct filter_option) for them,
 * with these ids: the table's on_option passes them to sctx_option. */
#define SCTX_OPTIONS \
	{ "shard", 0, "N", "use shard N (SHARD_<N>_DB_URL), not the routing table", \
	  .id = SCTX_OPT_SHARD }, \
	{ "url", 0, "URL", "use this shard database directly", .id = SCTX_OPT_URL }

/* The production database, or NULL: when required, a missing
 * PRODUCTION_DB_URL or a failed connection fills err. */
PGconn *sctx_production(struct shard_ctx *x, int required, struct shard_err *err);
/* The connection URL of shard id (SHARD_<id>_DB_URL wins over the shards
 * table's conninfo; "$VAR" in conninfo names another variable). Returns a
 * pointer into the environment or a malloc'd string in *owned; var gets
 * the name of where it came from. */
const char *sctx_shard_url(struct shard_ctx *x, long id, char **owned, char *var, size_t varlen,
			   struct shard_err *err);
/* Shard id's cached connection, opened on first use. Failover (§14): a
 * URL naming several hosts (libpq multi-host with
 * target_session_attrs=read-write, the Patroni members) waits up to
 * SHARD_RECONNECT_TIMEOUT seconds (default 30; 0 for one host) for a
 * writable member, at connect and when a cached connection broke. */
PGconn *sctx_shard(struct shard_ctx *x, long id, struct shard_err *err);
/* A second connection to the shard whose cached connection is c, opened
 * on first use (one attempt, no failover wait), so that a search runs its
 * two branches at once. NULL when c is not a cached shard connection or the
 * second one cannot be had: the caller then does without. */
PGconn *sctx_shard_side(struct shard_ctx *x, PGconn *c);
/* After a write failed with shard_unavailable: get shard id's connection
 * to the current primary again (reset, or reopen one that is up but
 * read-only), within its reconnect budget. 0 when it is back; -1 when the
 * shard has no budget (one host) or the time ran out. */
int sctx_shard_reconnect(struct shard_ctx *x, long id);
/* The shard holding user_id. place: a user without a route gets one now
 * (hash(user_id) % N, stored). Without place an unknown user is
 * err->code "unknown_user". For readers (search, knowledge get). */
PGconn *sctx_for_user(struct shard_ctx *x, const char *user_id, int place, long *shard_id,
		      struct shard_err *err);
/* The same for a writer, under the route lock (see above). With place, a
 * user in deleted_users_registry is refused (err->code "user_erased"): an
 * erased user never comes back through a late save. Without routing
 * (--url, --shard, no PRODUCTION_DB_URL) it is sctx_for_user. The caller
 * runs its shard transaction, then calls sctx_write_done on every path. */
PGconn *sctx_for_user_write(struct shard_ctx *x, const char *user_id, int place, long *shard_id,
			    struct shard_err *err);
/* End the writer's route lock: after the shard transaction ended, on every
 * path. Harmless when none is held. */
void sctx_write_done(struct shard_ctx *x);
/* The shard holding conversation_id (routed by user_id when given, else
 * asked of each shard). write: through sctx_for_user_write. */
PGconn *sctx_for_conversation(struct shard_ctx *x, const char *conversation_id,
			      const char *user_id, int write, long *shard_id, struct shard_err *err);
/* The stored route of user_id, or (place) a new one: 0, 1 (no route, not
 * placed) or -1. placed tells whether this call placed the user. lock:
 * the row is read FOR SHARE (inside the caller's transaction). */
int route_lookup(PGconn *p, const char *user_id, int place, int lock, long *shard_id, int *placed);
/* Placement: the first 8 bytes (big-endian) of SHA-256 over the UUID. */
uint64_t shard_hash(const unsigned char uuid[16]);

/* A filter's record failed with e (EX_CONFIG is reported as 69). */
int sctx_fail(struct filter_run *run, const struct shard_err *err);
/* A filter's record failed on a query on c (shard_err_query's mapping). */
int sctx_query_fail(struct filter_run *run, PGconn *c, const char *what);

/* ---- small helpers every shard module needs ---- */

int shard_uuid_parse(const char *s, unsigned char out[16]);
int shard_uuid_valid(const char *s);
/* The member as a string, or NULL. */
const char *shard_jstr(const json_t *o, const char *key);
/* A result cell as a long, or def when absent or NULL. */
long shard_pg_long(PGresult *r, int row, int col, long def);

/* ---- chat history: saving a turn ---- */

#define SHARD_SAVE_MAX_MESSAGES 200

/* Save one turn, idempotent by the client's message UUIDs. rec is
 * {user_id, conversation_id?, messages:[{id, role, content, …}]}; on
 * success it gains "conversation_id" and "saved" {shard_id, inserted,
 * existing, erased} and 0 is returned. Messages tombstoned in production
 * are dropped (listed in erased). Takes and ends the route lock. -1 with e
 * on any failure (nothing is written then). */
int shard_save_turn(struct shard_ctx *x, json_t *rec, struct shard_err *e);
/* §14 verify-and-replay after a failover: rec {conversation_id, user_id?,
 * unconfirmed:[pairs], recent_confirmed_ids:[…]} gains "replay"
 * {shard_id, inserted, already_present, backfill, confirmed_present,
 * confirmed_missing, erased}; replayed rows are marked needs_enrichment.
 * Takes and ends the route lock. 0, or -1 with e. */
int shard_replay(struct shard_ctx *x, json_t *rec, struct shard_err *e);

/* §14's "rate-limit retry: 1 pair/s/user, max 3 tries", enforced by the
 * server (shardc_limit.c): a token bucket of burst pairs per user refilled
 * at rate pairs per second, and at most max_tries replays of a message.
 * State in the shard's replay_rate / replay_tries (0030). */
struct shard_replay_limit {
	double rate;   /* REPLAY_PAIRS_PER_SECOND, default 1 */
	double burst;  /* REPLAY_BURST_PAIRS, default 10 (the app's buffer) */
	long max_tries; /* REPLAY_MAX_TRIES, default 3 */
};
/* Read the three variables (bad values are configuration errors, exit 78). */
void shard_replay_limit_load(struct shard_replay_limit *l);
/* Inside the replay's open transaction on c: count one try of every id
 * (a JSON array of message UUIDs) and take pairs tokens from user's
 * bucket. 0 when admitted; -1 with e when not: 65 too_many_pairs (more
 * than the burst in one request), 65 too_many_tries, 75 rate_limited (with
 * the seconds to wait in the message), or the query's failure. The caller
 * rolls back on -1, so a refused request changes no state. */
int shard_replay_admit(const struct shard_replay_limit *l, PGconn *c, const char *user,
		       size_t pairs, const json_t *ids, struct shard_err *e);
/* The spec's template for an assistant artifact's response_description
 * (§13: SKU/item_id, brand, store). NULL when artifact is not an object
 * with items. Caller frees. */
char *shard_describe_artifact(const json_t *artifact);

/* ---- chat history: the SYNC rules of §13 (shardc_rules.c) ---- */

/* salience_check: is a message worth embedding? A user message of more
 * than 15 characters that is not only emoji, emoticons, punctuation and
 * fillers ("ок", "ага", "thanks"); never an assistant or system one.
 * shard_save_turn applies it unless the message sets is_embeddable. */
int shard_salience(const char *role, const char *content);
/* classify_memory: memory_type (emotion | preference | fact | event |
 * general) from Russian and English lexicons matched by Snowball stem,
 * and memory_confidence 0.1..0.95 (0.6 for a typed memory, 0.5 for
 * general; +0.1 per intensifier, capitals, elongation or "!!", −0.1 per
 * softener or "?", three of each at most). *type is a static string. 0, or
 * -1 (invalid UTF-8, no stemmer: "general", 0.5). */
int shard_classify_memory(const char *content, const char **type, double *confidence);
/* memory_snippet: a short episode card of at most max_chars characters
 * (80 in the spec) — the content without fillers and softeners, cut on a
 * word boundary, ending in "…" when cut. Caller frees. NULL for a message
 * with no content words. */
char *shard_memory_snippet(const char *content, size_t max_chars);

/* ---- chat history: hybrid search ---- */

struct shard_search_opts {
	int spec_plan;    /* 1: the spec's SQL as written (partition HNSW index) */
	int sql_plan;     /* 1: the prefilter in SQL even where the shard has unde_vector_topk */
	long top_k;       /* default episodes (RETRIEVAL_TOP_K, 15) */
	long candidates;  /* re-ranked candidates (RETRIEVAL_CANDIDATES, 300) */
	double threshold; /* SIMILARITY_THRESHOLD, 0.5 */
	long candidates_max; /* crowded neighbourhoods: at most (RETRIEVAL_CANDIDATES_MAX, 3000) */
};
/* The options from the environment (spec names and defaults); fields
 * already set (candidates > 0) are kept. */
void shard_search_defaults(struct shard_search_opts *o);
/* §14 hybrid search of user_id's history: text (or NULL) for FTS,
 * embedding (a JSON array of numbers, or NULL) for the vector branch;
 * top_k ≤ 0 takes o->top_k. Returns the "episodes" array, best first, at
 * most 3 per UTC day; an unknown user has none. NULL with e on failure. */
json_t *shard_search(struct shard_ctx *x, const struct shard_search_opts *o, const char *user_id,
		     const char *text, const json_t *embedding, long top_k, struct shard_err *e);
/* The same, with the model that embedded the query: the vector branch
 * compares it only with messages embedded by that model (NULL: only with
 * messages whose model is unknown). Vectors of two models are never
 * compared. */
json_t *shard_search_model(struct shard_ctx *x, const struct shard_search_opts *o,
			   const char *user_id, const char *text, const json_t *embedding,
			   const char *embedding_model, long top_k, struct shard_err *e);

/* ---- user knowledge: the envelope ---- */

/* The master keys (MASTER_ENCRYPTION_KEY and, during a rotation,
 * MASTER_ENCRYPTION_KEY_PREVIOUS) and this process's decryption counts. */
struct shard_keys {
	unsigned char kek[CRYPTO_KEY_LEN], kid[CRYPTO_KID_LEN];
	unsigned char old[CRYPTO_KEY_LEN], oldkid[CRYPTO_KID_LEN];
	int have_old;
	long decrypts, errors;
	double *lat;
	size_t nlat, caplat;
};
/* Load the master keys; exits 78 (conf_die) when missing or invalid. */
void shard_keys_load(struct shard_keys *k);
/* Wipe the keys and free the latencies. */
void shard_keys_wipe(struct shard_keys *k);
/* Add this process's counts to $UNDE_METRICS_DIR/unde-shard-knowledge.prom
 * (user_knowledge_decrypt_total, _errors, _latency_ms). */
void shard_keys_metrics(struct shard_keys *k);
/* The associated data of a user's wrapped DEK: "dek1|user_id". */
int shard_dek_aad(char *aad, size_t n, const char *user_id);
/* Open a wrapped DEK with whichever master key its key id names. 0, -1. */
int shard_dek_unwrap(const struct shard_keys *k, const char *user_id, const unsigned char *w,
		     size_t wl, unsigned char dek[CRYPTO_KEY_LEN]);
/* bytea in text form ("\x…") ↔ bytes; bytes_of returns NULL on bad hex. */
char *shard_bytea_hex(const unsigned char *b, size_t n);
unsigned char *shard_bytea_bytes(const char *hex, size_t *n);
/* The user's active facts on shard c (of one knowledge_type, or all when
 * type is NULL), decrypted: [{id, knowledge_type, data, version,
 * extracted_from?, source_message_id?, confidence?, updated_at}]. A row
 * or key that does not authenticate fails the whole read (counted, logged
 * without plaintext). NULL with e. */
json_t *shard_knowledge_read(struct shard_keys *k, PGconn *c, const char *user_id,
			     const char *type, struct shard_err *e);
/* Route and read: an unknown user has no knowledge ([]). */
json_t *shard_knowledge_get(struct shard_ctx *x, struct shard_keys *k, const char *user_id,
			    const char *type, struct shard_err *e);
/* Encrypt and store one fact: rec {user_id?, knowledge_type, data, id?,
 * confidence?, extracted_from?, source_message_id?} (user_id defaults to
 * user). An existing id gets a new version. rec gains "knowledge" {id,
 * version, shard_id}; its "data" is replaced by "[encrypted]" whatever
 * the outcome. Takes and ends the route lock. 0, or -1 with e. */
int shard_knowledge_put(struct shard_ctx *x, struct shard_keys *k, json_t *rec, const char *user,
			struct shard_err *e);

#endif
