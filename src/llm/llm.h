/* llm.h — unde-llm, the dialogue orchestrator of spec §13: one turn of
 * the avatar's conversation, split into rooms:
 *
 *   main.c       the filter: options, config, metrics, the turn's order of
 *                steps, the save and the output line
 *   gather.c     what the ContextPack is made of: the user's turn lock, the
 *                shard reads (the search on query.c's worker meanwhile),
 *                the referenced artifact, the catalog, both filters
 *   sensors.c    mood / context / persona frames the pipe did not bring,
 *                fetched in parallel under CONTEXT_PACK_TIMEOUT, defaults
 *                on failure
 *   memory.c     the shard's side: recent messages, episode moods, the
 *                emotional filter, the density cap and its per-answer record
 *   pack.c       the ContextPack, blocks A–G, bounded in tokens
 *   providers.c  the LLM chain deepseek → gemini, claude, qwen → local
 *   stream.c     the same chain streamed: delta lines before the answer
 *   responder.c  the local responder, intent
 *   catalog.c    the catalog context: products matching the message
 *   query.c      the message embedded as a search query (Cohere, else
 *                local) and searched, on a worker thread of its own
 *   stylist.c    a stylist turn's outfits from Intelistyle, SKUs checked
 *
 * A turn is a struct turn: everything read for one user message, owned by
 * main.c's on_record and freed by turn_free. What every turn of the
 * process shares is a struct llm_proc. */
#ifndef UNDE_LLM_H
#define UNDE_LLM_H

#include <jansson.h>
#include <libpq-fe.h>

#include "counters.h"
#include "deadline.h"
#include "provider.h"
#include "shardc.h"

/* The process-wide configuration, read once in on_start. */
struct llm_conf {
	long context_pack_timeout_ms; /* CONTEXT_PACK_TIMEOUT (s) × 1000 */
	long llm_timeout_ms;          /* LLM_TIMEOUT (s) × 1000 */
	long top_k;                   /* RETRIEVAL_TOP_K */
	long max_episodes;            /* MAX_EPISODES_PER_RESPONSE */
	double max_density;           /* MAX_MEMORY_DENSITY_ROLLING_10 */
	long max_tokens;              /* LLM_CONTEXT_MAX_TOKENS: the ContextPack's bound */
	long recent_limit;            /* the last N messages (10) */
	int have_keys;                /* MASTER_ENCRYPTION_KEY set: knowledge is read */
};

/* Where a turn's ContextPack time went (ms), for the log line and
 * bench/llm. embed and search ran on the worker, meanwhile the main
 * thread did route … density; wait is how long it then waited for the
 * worker. */
struct turn_times {
	double lock, route, knowledge, recent, catalog, density, wait, filters;
	double embed, search;
};

struct turn {
	const char *user_id, *message, *input_type, *request_id;
	json_t *mood, *context, *persona;  /* owned: the frames used */
	json_t *sensors;                   /* owned: {mood:"pipe"|"agent"|"default", …} */
	json_t *knowledge;                 /* owned: decrypted facts [] */
	json_t *episodes;                  /* owned: after the filters */
	json_t *episodes_dropped;          /* owned: [{id, reason}] */
	json_t *recent;                    /* owned: [{id, role, content}] oldest first */
	json_t *catalog;                   /* owned: matching products [] */
	json_t *artifact;                  /* owned: referenced artifact, or NULL */
	json_t *recognition;               /* owned: {status, items?} of a photo turn, or NULL */
	json_t *pack;                      /* owned: the ContextPack */
	json_t *query;                     /* owned: {provider, model, providers_skipped?} of the query embedding */
	json_t *stylist;                   /* owned: a stylist turn's {status, outfits, …}, or NULL */
	const char *intent;                /* static string */
	int memory_allowed;                /* the density cap left room for memories */
	long answers_with_memory;          /* of the previous 9 answers */
	char conv[37];                     /* the user's conversation, or "" (none yet) */
	char locked_at[40];                /* the user message's created_at: its turn got the lock */
	char prev_exchange[37];            /* the previous answer's exchange, or "" */
	int prev_used_memory;              /* it recalled episodes */
	struct turn_times times;
};

struct recall;

/* The process: what every turn of one unde-llm shares (main.c owns it). */
struct llm_proc {
	struct shard_ctx x;     /* the main thread's shard and production connections */
	struct shard_keys keys; /* MASTER_ENCRYPTION_KEY, when have_keys */
	struct llm_conf cf;
	struct counters *k;
	struct recall *recall;  /* the search worker (query.c) */
	PGconn *order;          /* the per-user turn lock's connection (gather.c) */
};

void turn_free(struct turn *t);

/* ---- sensors.c ---- */
/* Fetch what rec lacks of mood_frame and context_frame (in parallel),
 * into t->mood / t->context, defaults on failure, under dl. */
void sensors_frames(struct turn *t, const json_t *rec, struct deadline dl, struct counters *k);
/* Start fetching the persona (when rec has none) in a thread; join it with
 * sensors_persona_join, which fills t->persona (a default on failure). */
struct persona_call;
struct persona_call *sensors_persona_start(struct turn *t, const json_t *rec, struct deadline dl);
void sensors_persona_join(struct persona_call *pc, struct turn *t, struct counters *k);
/* The default frames (new objects) and the persona's. */
json_t *default_mood_frame(void);
json_t *default_context_frame(void);
json_t *default_persona(void);

/* ---- memory.c ---- */
/* A lower-case copy of UTF-8 text: ASCII and the Russian alphabet's
 * two-byte forms (Ё included); other bytes as they are. Caller frees. */
char *llm_lower(const char *s);
/* The user's conversation id into conv ("" when none yet): every later
 * query names it, so PostgreSQL prunes messages' hash partitions to one
 * (a join on conversations plans all of them: 22 ms at five years). */
int memory_conversation(PGconn *c, const char *user_id, char conv[37], struct shard_err *e);
/* Last n messages of the user (not forgotten), oldest first; [] for an
 * unknown user. NULL with e on failure. */
json_t *memory_recent(PGconn *c, const char *conv, long n, struct shard_err *e);
/* Is the mood negative or fragile (the emotional filter's trigger)? */
int mood_is_fragile(const json_t *mood);
/* Drop painful episodes when the mood is fragile, forgotten ones always,
 * those already in recent (no point citing what is on screen). Reads the
 * episodes' saved moods from c. Returns 0 or -1 with e. */
int memory_filter(PGconn *c, struct turn *t, struct shard_err *e);
/* The density cap's window: how many of the user's previous 9 answers
 * used memories (t->answers_with_memory) and the last one's exchange
 * (t->prev_exchange); nothing read when c is NULL. 0, or -1 with e. */
int memory_density_window(PGconn *c, struct turn *t, struct shard_err *e);
/* The cap itself, after the filters: t->memory_allowed, and the episodes
 * cut to max_episodes (or none). */
void memory_density_cut(struct turn *t, const struct llm_conf *cf);
/* Record how many episodes the answer message used. 0, or -1 with e. */
int memory_record(PGconn *c, const char *user_id, const char *message_id, const json_t *used,
		  const char *exchange_id, struct shard_err *e);

/* ---- feedback.c ---- */
/* The behavioural signals the message carries about the previous answer
 * (a JSON array of signal types, maybe empty). */
json_t *feedback_signals(const char *message, int prev_used_memory);
/* POST each to PERSONA_AGENT_URL/persona/feedback, then /persona/flush of
 * that exchange. Failures are logged, never returned. */
void feedback_send(const char *user_id, const char *exchange_id, const char *message_id,
		   const json_t *signals, struct deadline dl);

/* ---- pack.c ---- */
/* The ContextPack of t: {system_prompt, blocks{A..G}, text, tokens,
 * max_tokens, cut[]}. New object. */
json_t *pack_build(const struct turn *t, const struct llm_conf *cf);
/* The token estimate the bound uses (UTF-8 characters / 3, rounded up). */
long pack_tokens(const char *s);

/* ---- providers.c ---- */
/* Build the chain from LLM_PRIMARY_PROVIDER and LLM_FALLBACK_PROVIDERS.
 * 0, or -1 with why (an unknown provider name). */
int llm_chain_init(const struct llm_conf *cf, char *why, size_t whylen);
/* Ask the chain: input {system, messages:[{role, content}], pack, turn}.
 * res->answer is {text, model, tokens_in, tokens_out}. */
int llm_ask(struct turn *t, struct deadline dl, struct chain_result *res);
/* The chain's providers in order (NULL-terminated), for stream.c. */
const struct provider *const *llm_chain_providers(void);

/* ---- stream.c ---- */
/* Where the streamed turn's progress lines go (a new object, stolen). */
typedef void (*llm_emit_fn)(void *ud, json_t *line);
/* llm_ask, each provider asked for a streamed answer: its text leaves
 * through emit as {"stage":"delta"} lines while it arrives, a provider that
 * fails after some is followed by a {"stage":"discard"} line, the local
 * responder's text leaves as deltas too. res as llm_ask's; always 0. */
int llm_ask_stream(struct turn *t, struct deadline dl, struct chain_result *res, llm_emit_fn emit,
		   void *emit_ud);
/* USD for a provider's tokens (the price table in providers.c). */
double llm_cost_usd(const char *provider, long tokens_in, long tokens_out);

/* ---- responder.c ---- */
/* The local responder's answer from the ContextPack: a new {text, model,
 * tokens_in, tokens_out}. */
json_t *responder_answer(const struct turn *t);
/* chat | stylist | recognition | catalog (static strings). */
const char *intent_classify(const char *message, const json_t *rec);
/* A photo turn's recognition (§13 step 6): POST {photo_url, user_id} to
 * RECOGNITION_URL/recognize (unde-recognize behind unde-httpd) under dl and
 * at most 15 s; {status: "done", items} from its done line, or {status:
 * "unavailable", error}; NULL when RECOGNITION_URL is not set. */
json_t *recognition_call(const struct turn *t, const json_t *rec, struct deadline dl);

/* ---- catalog.c ---- */
/* Products of production matching the message, in stock, with store and
 * price ([] when production is not configured). NULL on a query error.
 * Main thread only (one stemmer). */
json_t *catalog_context(PGconn *prod, const char *message, const char *mall_id);
/* Does the message name a garment ("юбку", "skirts")? A catalog intent. */
int catalog_names_garment(const char *message);
/* The answer's artifact (§13 step 8): the catalog products its text names
 * by name or SKU, as {type: "products" | "look", items: [{sku, brand, name,
 * category, color, store, price, currency}]}; NULL for a plain answer.
 * The shard turns it into the message's response_description. */
json_t *catalog_artifact(const json_t *catalog, const char *intent, const char *text);
/* Free the stemmer and the stemmed lexicon (on_finish). */
void catalog_done(void);

/* ---- gather.c ---- */
/* Everything the ContextPack needs from the shard and production, under
 * the user's turn lock (taken here, held until gather_unlock): the route,
 * the conversation, the knowledge, the recent messages, the artifact, the
 * catalog and the density window on this thread while the worker
 * searches (recall_start must have posted the turn), then the emotional
 * filter and the density cap over the episodes found. 0, or -1 with e. */
int gather_turn(struct llm_proc *p, struct turn *t, const json_t *rec, struct deadline dl,
		struct shard_err *e);
/* End the turn lock's transaction, whatever became of the turn. */
void gather_unlock(struct llm_proc *p);
/* After a turn failed for want of a database (69): close every connection
 * of the process, the worker's too, so the next turn opens new ones
 * instead of finding the dead ones one per turn (a restarted server cuts
 * them all at once). */
void gather_reset(struct llm_proc *p);
/* Now (plus offset_ms) as the shard stores it: UTC with milliseconds. */
void llm_iso_now(char out[40], long offset_ms);

/* ---- query.c ---- */
/* The search worker: a thread with connections of its own (to the shards
 * like's options name, and production), kept for the life of the process.
 * top_k: RETRIEVAL_TOP_K. Never NULL: without a thread the jobs run in
 * recall_join. */
struct recall *recall_open(const struct shard_ctx *like, long top_k, struct counters *k);
/* Stop the thread, close its connections. */
void recall_close(struct recall *w);
/* Close the worker's connections (between turns): its next search opens
 * new ones. */
void recall_reset(struct recall *w);
/* Post t's message: the worker embeds it at once as a search query (the
 * chain of lib/embed_cohere.h: EMBEDDING_PROVIDER, EMBEDDING_MODEL; Cohere,
 * then the local embedder) under dl, then waits for recall_go. t's
 * user_id, message and request_id must live until recall_join. */
void recall_start(struct recall *w, const struct turn *t, struct deadline dl);
/* Open the gate: search (the turn holds its lock), or not (it failed). */
void recall_go(struct recall *w, int search);
/* Wait for the job: t->episodes (best first; [] for a user with no
 * history), t->query {provider, model, providers_skipped?} (who embedded
 * the query: the search compares only vectors of that model), the times.
 * -1 with e when the search failed; 0 otherwise (also when not gated). */
int recall_join(struct recall *w, struct turn *t, struct shard_err *e, double *embed_ms,
		double *search_ms);
/* Record in t->query which episodes the vector branch scored (vec_score >
 * 0): "vector_hits" [{id, vec_score}], so a test or an operator sees that
 * a query met only vectors of its own model. */
void query_note_hits(struct turn *t);

/* ---- stylist.c ---- */
struct buf;
/* A stylist turn's outfits (§13 step 6): Intelistyle (INTELISTYLE_API_URL,
 * _KEY, INTELISTYLE_TIMEOUT; the contract in unde-llm(1)) asked with the
 * message, its occasion, the user's gender and the catalog items, under
 * dl. Every SKU it names is looked up in production (available, with
 * store and price): unknown ones are dropped, never shown. {status:
 * "done", outfits: [{reason, items: [product]}], unknown_skus: [...]}, or
 * {status: "unavailable", reason, error} (no key, failure, timeout,
 * garbage: counted, the turn goes on without it). */
json_t *stylist_call(const struct turn *t, struct shard_ctx *x, const json_t *rec, struct deadline dl,
		     struct counters *k);
/* The ContextPack's lines about the outfits (block E), appended to lines. */
void stylist_pack_lines(const struct turn *t, json_t *lines);
/* The local responder's sentences about the outfits, appended to b; 1
 * when it said something, 0 when there is nothing to say. */
int stylist_answer(const struct turn *t, struct buf *b);
/* The products an answer may name as an artifact: the catalog context
 * and the outfits' items (a new array). */
json_t *stylist_artifact_pool(const struct turn *t);

#endif
