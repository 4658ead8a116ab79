/* shardc_envelope.c — user knowledge (§14): facts about a user, encrypted
 * with AES-256-GCM under the user's DEK, the DEK wrapped by
 * MASTER_ENCRYPTION_KEY (lib/crypto.h). Reading and writing them for any
 * command (unde-shard knowledge put|get, unde-persona, unde-llm); the
 * admin forms (list, keys rotate) are in src/shard/keys.c.
 *
 * Associated data binds every ciphertext to its place: a knowledge row to
 * "uk1|user_id|row id|knowledge_type", a wrapped DEK to "dek1|user_id". A
 * row copied onto another row or user, a flipped byte, a wrong master key:
 * each fails authentication, is counted in user_knowledge_decrypt_errors
 * and fails the request — never garbage. Plaintext never reaches a log:
 * a failed put's record is logged with its "data" replaced. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "conf.h"
#include "counters.h"
#include "crypto.h"
#include "log.h"
#include "pg.h"
#include "shardc.h"
#include "util.h"


/* Master keys: MASTER_ENCRYPTION_KEY, and during a rotation
 * MASTER_ENCRYPTION_KEY_PREVIOUS (DEKs still wrapped by it open too). */
void shard_keys_load(struct shard_keys *s)
{
	if (crypto_key_from_base64(conf_require("MASTER_ENCRYPTION_KEY"), s->kek) != 0)
		conf_die("MASTER_ENCRYPTION_KEY",
			 "MASTER_ENCRYPTION_KEY is invalid: expected base64 of 32 bytes");
	crypto_key_id(s->kek, s->kid);
	const char *o = conf_str("MASTER_ENCRYPTION_KEY_PREVIOUS", NULL);
	if (o) {
		if (crypto_key_from_base64(o, s->old) != 0)
			conf_die("MASTER_ENCRYPTION_KEY_PREVIOUS",
				 "MASTER_ENCRYPTION_KEY_PREVIOUS is invalid: expected base64 of 32 bytes");
		crypto_key_id(s->old, s->oldkid);
		s->have_old = 1;
	}
}

void shard_keys_wipe(struct shard_keys *s)
{
	crypto_wipe(s->kek, sizeof s->kek);
	crypto_wipe(s->old, sizeof s->old);
	free(s->lat);
	s->lat = NULL;
}

/* bytea in text form ("\x…") ↔ bytes */
char *shard_bytea_hex(const unsigned char *b, size_t n)
{
	char *s = xmalloc(2 * n + 3);
	s[0] = '\\', s[1] = 'x';
	for (size_t i = 0; i < n; i++)
		snprintf(s + 2 + 2 * i, 3, "%02x", b[i]);
	return s;
}

unsigned char *shard_bytea_bytes(const char *hex, size_t *n)
{
	if (strncmp(hex, "\\x", 2) != 0)
		return NULL;
	hex += 2;
	size_t l = strlen(hex);
	if (l % 2)
		return NULL;
	unsigned char *b = xmalloc(l / 2 + 1);
	for (size_t i = 0; i < l / 2; i++) {
		unsigned v;
		if (sscanf(hex + 2 * i, "%2x", &v) != 1) {
			free(b);
			return NULL;
		}
		b[i] = (unsigned char)v;
	}
	*n = l / 2;
	return b;
}

/* Open a wrapped DEK with whichever master key its key id names. 0, -1. */
int shard_dek_aad(char *aad, size_t n, const char *user)
{
	return snprintf(aad, n, "dek1|%s", user);
}

int shard_dek_unwrap(const struct shard_keys *s, const char *user, const unsigned char *w,
		     size_t wl, unsigned char dek[CRYPTO_KEY_LEN])
{
	char aad[64];
	int al = shard_dek_aad(aad, sizeof aad, user);
	const unsigned char *kid = crypto_wrapped_kid(w, wl);
	if (!kid)
		return -1;
	if (!memcmp(kid, s->kid, CRYPTO_KID_LEN))
		return crypto_unwrap(s->kek, w, wl, aad, (size_t)al, dek) == 0 ? 0 : -1;
	if (s->have_old && !memcmp(kid, s->oldkid, CRYPTO_KID_LEN))
		return crypto_unwrap(s->old, w, wl, aad, (size_t)al, dek) == 0 ? 0 : -1;
	return -1;
}

/* The user's DEK, created (and stored wrapped) on first use when create.
 * 0, 1 (no key and not created), -1 (database), -2 (cannot unwrap). */
static int kn_dek(struct shard_keys *s, PGconn *c, const char *user, int create,
		  unsigned char dek[CRYPTO_KEY_LEN])
{
	const char *pp[] = { user, NULL };
	for (int attempt = 0; attempt < 2; attempt++) {
		PGresult *r = pg_query(c, "SELECT encrypted_dek FROM user_keys WHERE user_id = $1", 1, pp);
		if (!r)
			return -1;
		if (PQntuples(r) == 1) {
			size_t wl;
			unsigned char *w = shard_bytea_bytes(PQgetvalue(r, 0, 0), &wl);
			PQclear(r);
			int rc = w ? shard_dek_unwrap(s, user, w, wl, dek) : -1;
			free(w);
			return rc == 0 ? 0 : -2;
		}
		PQclear(r);
		if (!create)
			return 1;
		unsigned char wrapped[CRYPTO_WRAPPED_LEN];
		char aad[64];
		int al = shard_dek_aad(aad, sizeof aad, user);
		if (util_random_bytes(dek, CRYPTO_KEY_LEN) != 0 ||
		    crypto_wrap(s->kek, dek, aad, (size_t)al, wrapped) != 0)
			return -1;
		crypto_wipe(dek, CRYPTO_KEY_LEN);
		char *hex = shard_bytea_hex(wrapped, sizeof wrapped);
		pp[1] = hex;
		int e = pg_exec(c, "INSERT INTO user_keys (user_id, encrypted_dek) VALUES ($1, $2)"
				   " ON CONFLICT (user_id) DO NOTHING", 2, pp);
		free(hex);
		if (e != 0)
			return -1;
		/* loop: read back whichever key won a race */
	}
	return -1;
}

static void kn_aad(char *aad, size_t n, int *len, const char *user, const char *id, const char *type)
{
	*len = snprintf(aad, n, "uk1|%s|%s|%s", user, id, type);
}

/* The metrics of decryption, added to counters shared by every process
 * (lib/counters.h: $UNDE_COUNTERS_DIR/unde-shard.counters, else next to
 * the textfile) and rendered to $UNDE_METRICS_DIR/unde-shard-knowledge.prom:
 * concurrent runs add up without a lock, and the textfile is replaced
 * through an exclusive temporary file. */
void shard_keys_metrics(struct shard_keys *s)
{
	static const struct counters_help help[] = {
		{ "user_knowledge_decrypt_total", "counter", "User knowledge rows decrypted (or tried)" },
		{ "user_knowledge_decrypt_errors", "counter",
		  "User knowledge rows that failed to decrypt (tampered, wrong key)" },
		{ "user_knowledge_decrypt_latency_seconds", "histogram", "Decryption latency per row" },
		{ NULL, NULL, NULL },
	};
	const char *dir = getenv("UNDE_METRICS_DIR");
	if (!dir || !*dir || (!s->decrypts && !s->errors))
		return;
	char path[4096], cpath[4096];
	const char *cdir = getenv("UNDE_COUNTERS_DIR");
	if (snprintf(path, sizeof path, "%s/unde-shard-knowledge.prom", dir) >= (int)sizeof path ||
	    snprintf(cpath, sizeof cpath, "%s/unde-shard.counters", cdir && *cdir ? cdir : dir) >=
		    (int)sizeof cpath)
		return;
	struct counters *k = counters_open(cpath);
	if (!k)
		return;
	counters_add(k, "user_knowledge_decrypt_total", NULL, (uint64_t)s->decrypts);
	counters_add(k, "user_knowledge_decrypt_errors", NULL, (uint64_t)s->errors);
	for (size_t i = 0; i < s->nlat; i++)
		counters_observe_ms(k, "user_knowledge_decrypt_latency_seconds", NULL, s->lat[i]);
	counters_write_textfile(k, help, path);
	counters_close(k);
}

/* Decrypt the user's knowledge rows (active ones unless all) into an
 * array. NULL after failing the record (loudly: tamper, wrong key). */
json_t *shard_knowledge_read(struct shard_keys *s, PGconn *c, const char *user, const char *type,
			     struct shard_err *e)
{
	unsigned char dek[CRYPTO_KEY_LEN];
	int d = kn_dek(s, c, user, 0, dek);
	if (d == 1)
		return json_array(); /* no key: no knowledge yet */
	if (d != 0) {
		if (d == -2) {
			s->errors++;
			s->decrypts++;
			shard_err_set(e, EX_DATAERR, "decrypt_failed",
			     "user %s: the data key does not open with MASTER_ENCRYPTION_KEY "
			     "(wrong key or tampered user_keys row)", user);
			log_event(LOG_ERROR, "user key unwrap failed", json_pack("{s:s}", "user_id", user));
		} else {
			shard_err_set(e, pg_connection_lost(c) ? EX_UNAVAILABLE : EX_SOFTWARE, "query_failed",
			     "cannot read the user's key: %s", pg_last_error(c));
		}
		return NULL;
	}
	const char *pp[] = { user, type };
	PGresult *r = pg_query(c,
			       "SELECT id, knowledge_type, encrypted_data, iv, auth_tag, version,"
			       " extracted_from, source_message_id, confidence::float8,"
			       " to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
			       " FROM user_knowledge WHERE user_id = $1 AND is_active"
			       " AND ($2::text IS NULL OR knowledge_type = $2) ORDER BY knowledge_type, created_at, id",
			       2, pp);
	if (!r) {
		crypto_wipe(dek, sizeof dek);
		shard_err_set(e, pg_connection_lost(c) ? EX_UNAVAILABLE : EX_SOFTWARE, "query_failed",
		     "cannot read user knowledge: %s", pg_last_error(c));
		return NULL;
	}
	json_t *out = json_array();
	for (int i = 0; i < PQntuples(r); i++) {
		size_t cl = 0, il = 0, tl = 0;
		unsigned char *ct = shard_bytea_bytes(PQgetvalue(r, i, 2), &cl);
		unsigned char *iv = shard_bytea_bytes(PQgetvalue(r, i, 3), &il);
		unsigned char *tag = shard_bytea_bytes(PQgetvalue(r, i, 4), &tl);
		char aad[200];
		int al;
		kn_aad(aad, sizeof aad, &al, user, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1));
		unsigned char *pt = xmalloc(cl + 1);
		double t0 = util_now_ms();
		int ok = ct && iv && tag &&
			 crypto_open(dek, aad, (size_t)al, ct, cl, iv, il, tag, tl, pt) == 0;
		double dt = util_now_ms() - t0;
		s->decrypts++;
		if (s->nlat == s->caplat) {
			s->caplat = s->caplat ? 2 * s->caplat : 64;
			s->lat = xrealloc(s->lat, s->caplat * sizeof *s->lat);
		}
		s->lat[s->nlat++] = dt;
		json_t *data = NULL;
		if (ok) {
			pt[cl] = '\0';
			data = json_loadb((const char *)pt, cl, JSON_DECODE_ANY, NULL);
		}
		crypto_wipe(pt, cl + 1);
		free(pt);
		free(ct);
		free(iv);
		free(tag);
		if (!data) {
			s->errors++;
			shard_err_set(e, EX_DATAERR, "decrypt_failed",
			     "user_knowledge row %s does not authenticate (tampered or wrong key)",
			     PQgetvalue(r, i, 0));
			log_event(LOG_ERROR, "user knowledge decrypt failed",
				  json_pack("{s:s, s:s}", "user_id", user, "row_id", PQgetvalue(r, i, 0)));
			json_decref(out);
			PQclear(r);
			crypto_wipe(dek, sizeof dek);
			return NULL;
		}
		json_t *o = json_pack("{s:s, s:s, s:o, s:I}", "id", PQgetvalue(r, i, 0), "knowledge_type",
				      PQgetvalue(r, i, 1), "data", data, "version",
				      (json_int_t)shard_pg_long(r, i, 5, 1));
		if (!PQgetisnull(r, i, 6))
			json_object_set_new(o, "extracted_from", json_string(PQgetvalue(r, i, 6)));
		if (!PQgetisnull(r, i, 7))
			json_object_set_new(o, "source_message_id", json_string(PQgetvalue(r, i, 7)));
		if (!PQgetisnull(r, i, 8))
			json_object_set_new(o, "confidence", json_real(strtod(PQgetvalue(r, i, 8), NULL)));
		json_object_set_new(o, "updated_at", json_string(PQgetvalue(r, i, 9)));
		json_array_append_new(out, o);
	}
	PQclear(r);
	crypto_wipe(dek, sizeof dek);
	return out;
}

int shard_knowledge_put(struct shard_ctx *x, struct shard_keys *s, json_t *rec, const char *default_user,
			struct shard_err *err)
{
	const char *user = shard_jstr(rec, "user_id") ? shard_jstr(rec, "user_id") : default_user;
	const char *type = shard_jstr(rec, "knowledge_type"), *id = shard_jstr(rec, "id");
	const char *from = shard_jstr(rec, "extracted_from"), *src = shard_jstr(rec, "source_message_id");
	json_t *data = json_object_get(rec, "data"), *conf = json_object_get(rec, "confidence");
	int rc = 0;
	char idbuf[37], cbuf[32];
	/* present but not a string is an error, never silently dropped */
	static const char *const optional_strings[] = { "id", "source_message_id", "extracted_from" };
	const char *bad = NULL;
	for (size_t i = 0; i < sizeof optional_strings / sizeof *optional_strings && !bad; i++) {
		const json_t *v = json_object_get(rec, optional_strings[i]);
		if (v && !json_is_null(v) && !json_is_string(v))
			bad = optional_strings[i];
	}
	if (bad)
		rc = shard_err_set(err, EX_DATAERR, "invalid_field", "%s must be a string", bad);
	else if (!user || !shard_uuid_valid(user))
		rc = shard_err_set(err, EX_DATAERR, "invalid_field", "user_id must be a UUID");
	else if (!type || !*type || strlen(type) > 50)
		rc = shard_err_set(err, EX_DATAERR, "invalid_field", "knowledge_type must be a string of 1 to 50 characters");
	else if (!data)
		rc = shard_err_set(err, EX_DATAERR, "invalid_field", "data is missing");
	else if ((id && !shard_uuid_valid(id)) || (src && !shard_uuid_valid(src)))
		rc = shard_err_set(err, EX_DATAERR, "invalid_field", "id and source_message_id must be UUIDs");
	else if (conf && !json_is_null(conf) && (!json_is_number(conf) || json_number_value(conf) < 0 || json_number_value(conf) > 1))
		rc = shard_err_set(err, EX_DATAERR, "invalid_field", "confidence must be a number from 0 to 1");
	if (rc)
		goto out;
	if (!id) {
		util_uuid4(idbuf);
		id = idbuf;
	}
	snprintf(cbuf, sizeof cbuf, "%.2f", conf && json_is_number(conf) ? json_number_value(conf) : 0);
	long sid;
	PGconn *c = sctx_for_user_write(x, user, 1, &sid, err);
	if (!c) {
		rc = -1;
		goto out;
	}
	unsigned char dek[CRYPTO_KEY_LEN];
	if (pg_begin(c) != 0) {
		rc = shard_err_query(err, c, "cannot begin");
		goto out;
	}
	if (src) {
		/* the fact must come from one of the user's own messages (issue 9):
		 * forget and erase find knowledge by its source message, within
		 * the user */
		const char *ps[] = { user, src };
		PGresult *o = pg_query(c, "SELECT EXISTS (SELECT 1 FROM messages WHERE id = $2 AND conversation_id ="
					  " (SELECT id FROM conversations WHERE user_id = $1))", 2, ps);
		int mine = o && PQgetvalue(o, 0, 0)[0] == 't';
		PQclear(o);
		if (!mine) {
			rc = o ? shard_err_set(err, EX_DATAERR, "source_mismatch",
					       "source_message_id %s is not a message of user %s", src, user)
			       : shard_err_query(err, c, "cannot check the source message");
			pg_rollback(c);
			goto out;
		}
	}
	int d = kn_dek(s, c, user, 1, dek);
	if (d != 0) {
		pg_rollback(c);
		rc = d == -2 ? shard_err_set(err, EX_DATAERR, "decrypt_failed",
					   "user %s: the data key does not open with MASTER_ENCRYPTION_KEY", user)
			     : shard_err_query(err, c, "cannot get the user's key");
		goto out;
	}
	char *pt = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
	size_t pl = strlen(pt);
	unsigned char *ct = xmalloc(pl + 1), iv[CRYPTO_IV_LEN], tag[CRYPTO_TAG_LEN];
	char aad[200];
	int al;
	kn_aad(aad, sizeof aad, &al, user, id, type);
	int sealed = crypto_seal(dek, aad, (size_t)al, pt, pl, ct, iv, tag);
	crypto_wipe(dek, sizeof dek);
	crypto_wipe(pt, pl);
	free(pt);
	char *hct = shard_bytea_hex(ct, pl), *hiv = shard_bytea_hex(iv, sizeof iv), *htag = shard_bytea_hex(tag, sizeof tag);
	free(ct);
	const char *pp[] = { id, user, hct, hiv, htag, type, from, src,
			     conf && json_is_number(conf) ? cbuf : NULL };
	PGresult *r = sealed ? NULL
			     : pg_query(c,
					"INSERT INTO user_knowledge (id, user_id, encrypted_data, iv, auth_tag,"
					" knowledge_type, extracted_from, source_message_id, confidence)"
					" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
					" ON CONFLICT (id) DO UPDATE SET encrypted_data = EXCLUDED.encrypted_data,"
					" iv = EXCLUDED.iv, auth_tag = EXCLUDED.auth_tag,"
					" version = user_knowledge.version + 1, is_active = TRUE,"
					" extracted_from = COALESCE(EXCLUDED.extracted_from, user_knowledge.extracted_from),"
					" source_message_id = COALESCE(EXCLUDED.source_message_id, user_knowledge.source_message_id),"
					" confidence = COALESCE(EXCLUDED.confidence, user_knowledge.confidence),"
					" updated_at = now()"
					" WHERE user_knowledge.user_id = EXCLUDED.user_id"
					" AND user_knowledge.knowledge_type = EXCLUDED.knowledge_type"
					" RETURNING version",
					9, pp);
	free(hct);
	free(hiv);
	free(htag);
	if (sealed)
		rc = shard_err_set(err, EX_SOFTWARE, "encrypt_failed", "encryption failed");
	else if (!r)
		rc = shard_err_query(err, c, "cannot store user knowledge");
	else if (PQntuples(r) != 1)
		rc = shard_err_set(err, EX_DATAERR, "id_conflict",
				 "knowledge row %s belongs to another user or type", id);
	else if (pg_commit(c) != 0)
		rc = shard_err_query(err, c, "cannot commit");
	if (rc)
		pg_rollback(c);
	else
		json_object_set_new(rec, "knowledge", json_pack("{s:s, s:I, s:i}", "id", id, "version",
								(json_int_t)shard_pg_long(r, 0, 0, 1),
								"shard_id", (int)sid));
	PQclear(r);
out:
	/* the plaintext leaves with neither the output nor the error log */
	if (json_object_get(rec, "data"))
		json_object_set_new(rec, "data", json_string("[encrypted]"));
	sctx_write_done(x);
	return rc ? -1 : 0;
}

json_t *shard_knowledge_get(struct shard_ctx *x, struct shard_keys *k, const char *user,
			    const char *type, struct shard_err *e)
{
	if (!shard_uuid_valid(user)) {
		shard_err_set(e, EX_DATAERR, "invalid_field", "user_id must be a UUID");
		return NULL;
	}
	long sid;
	PGconn *c = sctx_for_user(x, user, 0, &sid, e);
	if (!c)
		return e->code && !strcmp(e->code, "unknown_user") ? json_array() : NULL;
	return shard_knowledge_read(k, c, user, type, e);
}

