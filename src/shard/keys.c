/* keys.c — the admin side of user knowledge: `knowledge get --user U`
 * and `knowledge list --user U` (one JSON line per fact), and `keys rotate`,
 * which re-wraps the users' DEKs under MASTER_ENCRYPTION_KEY without
 * touching a byte of user_knowledge. The envelope itself (keys, DEKs,
 * decryption) is lib/shardc.h's, shared with the filters in knowledge.c. */
#include "config.h"

#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "conf.h"
#include "crypto.h"
#include "log.h"
#include "pg.h"
#include "shard.h"
#include "util.h"

enum { OPT_USER = 1 };

/* The admin forms' state: the keys, the shard context and the options. */
struct kn_state {
	struct shard_ctx x;
	struct shard_keys k;
	const char *user, *type;
};

/* --user must be a UUID (the table stores it). */
static int kadmin_option(void *data, int id, const char *arg)
{
	(void)data;
	return id == OPT_USER && !shard_uuid_valid(arg) ? -1 : 0;
}

/* Start s and parse --user/--type/--all/--shard/--url/--env-file for the
 * admin forms: keys rotate (all not NULL) takes --all; the knowledge forms
 * (all NULL) need --user. Returns -1 to go on, else an exit status. */
static int kadmin_opts(struct kn_state *s, int argc, char **argv, const char *name,
		       const char *usage, int *all)
{
	memset(s, 0, sizeof *s);
	sctx_init(&s->x);
	const struct filter_option o[] = {
		{ "user", 0, "U", "the user (a UUID)", .id = OPT_USER, .string = &s->user },
		{ "type", 0, "T", "only this knowledge_type", .string = &s->type },
		{ all ? "all" : NULL, 0, NULL, "every user of each shard (--user is ignored)", .flag = all },
		{ 0 } };
	struct admin_opts a = { .name = name, .usage = usage, .options = o, .own = kadmin_option,
				.x = &s->x, .no_operands = 1 };
	int rc = admin_options(&a, argc, argv);
	if (rc < 0 && !all && !s->user)
		return admin_usage_error(usage, "--user is required");
	return rc;
}

static const char get_usage[] =
	"unde-shard knowledge get --user U [--type T] [--shard N | --url URL]\n"
	"Print the user's active facts, decrypted, one JSON line each.\n";

int shard_cmd_knowledge_get_user(int argc, char **argv)
{
	struct kn_state s;
	int rc = kadmin_opts(&s, argc, argv, "unde-shard knowledge get", get_usage, NULL);
	if (rc >= 0)
		return rc;
	shard_keys_load(&s.k);
	struct shard_err e;
	long sid;
	rc = 0;
	PGconn *c = sctx_for_user(&s.x, s.user, 0, &sid, &e);
	if (!c) {
		if (!(e.code && !strcmp(e.code, "unknown_user"))) {
			log_event(LOG_ERROR, e.msg, json_pack("{s:s}", "code", e.code));
			rc = e.status;
		}
	} else {
		json_t *k = shard_knowledge_read(&s.k, c, s.user, s.type, &e);
		if (!k) {
			log_event(LOG_ERROR, e.msg, json_pack("{s:s}", "code", e.code));
			rc = e.status;
		} else {
			size_t i;
			json_t *f;
			json_array_foreach(k, i, f)
			{
				json_object_set_new(f, "user_id", json_string(s.user));
				shard_print(json_incref(f));
			}
			json_decref(k);
		}
	}
	shard_keys_metrics(&s.k);
	sctx_close(&s.x);
	shard_keys_wipe(&s.k);
	return rc;
}

static const char list_usage[] =
	"unde-shard knowledge list --user U [--shard N | --url URL]\n"
	"List the user's facts without decrypting them (metadata, active or not).\n";

int shard_cmd_knowledge_list(int argc, char **argv)
{
	struct kn_state s;
	int rc = kadmin_opts(&s, argc, argv, "unde-shard knowledge list", list_usage, NULL);
	if (rc >= 0)
		return rc;
	struct shard_err e;
	long sid;
	PGconn *c = sctx_for_user(&s.x, s.user, 0, &sid, &e);
	if (!c) {
		sctx_close(&s.x);
		if (e.code && !strcmp(e.code, "unknown_user"))
			return 0;
		log_event(LOG_ERROR, e.msg, json_pack("{s:s}", "code", e.code));
		return e.status;
	}
	const char *pp[] = { s.user };
	PGresult *r = pg_query(c,
			       "SELECT id, knowledge_type, version, is_active, extracted_from,"
			       " source_message_id, confidence::float8, length(encrypted_data),"
			       " to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
			       " FROM user_knowledge WHERE user_id = $1 ORDER BY knowledge_type, created_at, id",
			       1, pp);
	if (!r) {
		sctx_close(&s.x);
		return EX_SOFTWARE;
	}
	for (int i = 0; i < PQntuples(r); i++) {
		json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:b, s:I, s:s}", "user_id", s.user, "id",
				      PQgetvalue(r, i, 0), "knowledge_type", PQgetvalue(r, i, 1),
				      "version", (json_int_t)shard_pg_long(r, i, 2, 1), "is_active",
				      PQgetvalue(r, i, 3)[0] == 't', "encrypted_bytes",
				      (json_int_t)shard_pg_long(r, i, 7, 0), "updated_at", PQgetvalue(r, i, 8));
		if (!PQgetisnull(r, i, 4))
			json_object_set_new(o, "extracted_from", json_string(PQgetvalue(r, i, 4)));
		if (!PQgetisnull(r, i, 5))
			json_object_set_new(o, "source_message_id", json_string(PQgetvalue(r, i, 5)));
		if (!PQgetisnull(r, i, 6))
			json_object_set_new(o, "confidence", json_real(strtod(PQgetvalue(r, i, 6), NULL)));
		shard_print(o);
	}
	PQclear(r);
	sctx_close(&s.x);
	return 0;
}

/* Re-wrap the DEKs of one shard (all users, or one) under the current
 * master key, each in its own short transaction with the row locked.
 * Keys already under the current master key are counted, not rewritten
 * (so a rotation can be resumed). A DEK that no configured master key
 * opens is an error, loudly, and is left as it was. */
static int rotate_shard(struct kn_state *s, PGconn *c, long sid, int *worst)
{
	const char *pp[2] = { s->user, NULL };
	PGresult *ids = pg_query(c, "SELECT user_id FROM user_keys WHERE ($1::uuid IS NULL OR user_id = $1)"
				    " ORDER BY user_id", 1, pp);
	if (!ids) {
		*worst = EX_SOFTWARE;
		return -1;
	}
	long rotated = 0, current = 0, failed = 0;
	for (int i = 0; i < PQntuples(ids); i++) {
		const char *user = PQgetvalue(ids, i, 0);
		pp[0] = user;
		if (pg_begin(c) != 0)
			break;
		PGresult *r = pg_query(c, "SELECT encrypted_dek FROM user_keys WHERE user_id = $1 FOR UPDATE", 1, pp);
		size_t wl = 0;
		unsigned char *w = r && PQntuples(r) == 1 ? shard_bytea_bytes(PQgetvalue(r, 0, 0), &wl) : NULL;
		PQclear(r);
		const unsigned char *kid = w ? crypto_wrapped_kid(w, wl) : NULL;
		unsigned char dek[CRYPTO_KEY_LEN], out[CRYPTO_WRAPPED_LEN];
		char aad[64];
		int al = shard_dek_aad(aad, sizeof aad, user);
		if (kid && !memcmp(kid, s->k.kid, CRYPTO_KID_LEN) &&
		    crypto_unwrap(s->k.kek, w, wl, aad, (size_t)al, dek) == 0) {
			current++;
			pg_rollback(c);
		} else if (w && shard_dek_unwrap(&s->k, user, w, wl, dek) == 0 &&
			   crypto_wrap(s->k.kek, dek, aad, (size_t)al, out) == 0) {
			char *hex = shard_bytea_hex(out, sizeof out);
			pp[1] = hex;
			if (pg_exec(c, "UPDATE user_keys SET encrypted_dek = $2, rotated_at = now()"
				       " WHERE user_id = $1", 2, pp) == 0 && pg_commit(c) == 0) {
				rotated++;
			} else {
				pg_rollback(c);
				failed++;
			}
			free(hex);
		} else {
			pg_rollback(c);
			failed++;
			log_event(LOG_ERROR, "cannot unwrap the user's data key with any master key",
				  json_pack("{s:s, s:i}", "user_id", user, "shard_id", (int)sid));
		}
		crypto_wipe(dek, sizeof dek);
		free(w);
	}
	PQclear(ids);
	if (failed)
		*worst = EX_DATAERR;
	shard_print(json_pack("{s:i, s:I, s:I, s:I}", "shard_id", (int)sid, "rotated",
			      (json_int_t)rotated, "already_current", (json_int_t)current, "failed",
			      (json_int_t)failed));
	return 0;
}

static const char keys_usage[] =
	"unde-shard keys rotate [--user U] [--shard N | --url URL]\n"
	"Re-wrap data keys under MASTER_ENCRYPTION_KEY; keys wrapped by\n"
	"MASTER_ENCRYPTION_KEY_PREVIOUS are opened with it. Data is not touched.\n"
	"Without --user/--shard/--url: every shard in production's shards table.\n";

/* keys rotate; argv[0] is "rotate". */
int shard_cmd_keys_rotate(int argc, char **argv)
{
	struct kn_state s;
	int all = 0;
	int rc = kadmin_opts(&s, argc, argv, "unde-shard keys rotate", keys_usage, &all);
	if (rc >= 0)
		return rc;
	shard_keys_load(&s.k);
	int worst = 0;
	struct shard_err e;
	if (s.user && !all) {
		long sid;
		PGconn *c = sctx_for_user_write(&s.x, s.user, 0, &sid, &e);
		if (!c) {
			log_event(LOG_ERROR, e.msg, json_pack("{s:s}", "code", e.code));
			worst = e.status;
		} else {
			rotate_shard(&s, c, sid, &worst);
			sctx_write_done(&s.x);
		}
	} else if (s.x.url || s.x.shard >= 0 || !sctx_production(&s.x, 0, &e)) {
		if (!s.x.url && s.x.shard < 0 && !s.x.prod_missing) {
			log_event(LOG_ERROR, e.msg, NULL);
			sctx_close(&s.x);
			shard_keys_wipe(&s.k);
			return e.status;
		}
		long sid = s.x.shard >= 0 ? s.x.shard : 0;
		PGconn *c = sctx_shard(&s.x, sid, &e);
		if (!c) {
			log_event(LOG_ERROR, e.msg, json_pack("{s:s}", "code", e.code));
			worst = e.status;
		} else {
			rotate_shard(&s, c, sid, &worst);
		}
	} else {
		PGconn *p = s.x.prod;
		PGresult *r = p ? pg_query(p, "SELECT shard_id FROM shards ORDER BY shard_id", 0, NULL) : NULL;
		if (!r) {
			log_event(LOG_ERROR, p ? "cannot list shards" : e.msg, NULL);
			worst = EX_UNAVAILABLE;
		}
		for (int i = 0; r && i < PQntuples(r); i++) {
			long sid = shard_pg_long(r, i, 0, 0);
			PGconn *c = sctx_shard(&s.x, sid, &e);
			if (!c) {
				log_event(LOG_ERROR, e.msg, json_pack("{s:s}", "code", e.code));
				worst = e.status;
				continue;
			}
			rotate_shard(&s, c, sid, &worst);
		}
		PQclear(r);
	}
	sctx_close(&s.x);
	shard_keys_wipe(&s.k);
	return worst;
}
