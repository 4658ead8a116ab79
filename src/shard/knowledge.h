/* knowledge.h — what knowledge.c shares with keys.c: the master keys and
 * the envelope's helpers. */
#ifndef UNDE_SHARD_KNOWLEDGE_H
#define UNDE_SHARD_KNOWLEDGE_H

#include <libpq-fe.h>

#include "crypto.h"
#include "shard.h"

struct kn_state {
	struct shard_ctx x;
	unsigned char kek[CRYPTO_KEY_LEN], kid[CRYPTO_KID_LEN];
	unsigned char old[CRYPTO_KEY_LEN], oldkid[CRYPTO_KID_LEN];
	int have_old;
	const char *user, *type;
	long decrypts, errors;
	double *lat;
	size_t nlat, caplat;
};

/* MASTER_ENCRYPTION_KEY (+ _PREVIOUS); exits 78 when missing or invalid. */
void kn_load_keys(struct kn_state *s);
void kn_wipe(struct kn_state *s);
void kn_metrics(struct kn_state *s);
char *hex_of(const unsigned char *b, size_t n);
unsigned char *bytes_of(const char *hex, size_t *n);
int kn_unwrap(struct kn_state *s, const char *user, const unsigned char *w, size_t wl,
	      unsigned char dek[CRYPTO_KEY_LEN]);
/* The user's active facts, decrypted; NULL with e filled on any failure. */
json_t *kn_read(struct kn_state *s, PGconn *c, const char *user, const char *type,
		struct shard_err *e);

int knowledge_has_user(int argc, char **argv);
int shard_cmd_knowledge_get_user(int argc, char **argv);
int shard_cmd_knowledge_list(int argc, char **argv);

#endif
