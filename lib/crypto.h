/* crypto.h — AES-256-GCM and the envelope that protects user knowledge.
 *
 * Spec §14/§21: user knowledge is encrypted per user with AES-256-GCM under
 * a data-encryption key (DEK), and each DEK is stored wrapped by the master
 * key MASTER_ENCRYPTION_KEY (base64 of 32 bytes). Every encryption draws a
 * fresh random 96-bit IV; the 128-bit tag authenticates the ciphertext and
 * the caller's associated data (AAD), which binds a ciphertext to where it
 * belongs (user, row), so a row copied onto another fails to open. A wrong
 * key, a flipped bit or a swapped row is an authentication failure, never
 * garbage. Keys are wiped from memory after use by the callers that hold
 * them (crypto_wipe). Built on OpenSSL EVP; used by unde-shard and by the
 * LLM orchestrator that reads knowledge into the ContextPack. */
#ifndef UNDE_CRYPTO_H
#define UNDE_CRYPTO_H

#include <stddef.h>

#define CRYPTO_KEY_LEN 32
#define CRYPTO_IV_LEN 12
#define CRYPTO_TAG_LEN 16
#define CRYPTO_KID_LEN 4
/* A wrapped DEK: version byte 1, key id of the master key (4), IV (12),
 * the encrypted DEK (32), tag (16). */
#define CRYPTO_WRAPPED_LEN (1 + CRYPTO_KID_LEN + CRYPTO_IV_LEN + CRYPTO_KEY_LEN + CRYPTO_TAG_LEN)

/* Decode a base64 key of exactly 32 bytes. 0, or -1 when it is not. */
int crypto_key_from_base64(const char *b64, unsigned char key[CRYPTO_KEY_LEN]);

/* Encrypt ptlen bytes into ct (ptlen bytes); a fresh random IV goes to iv,
 * the tag to tag. 0 or -1. */
int crypto_seal(const unsigned char key[CRYPTO_KEY_LEN], const void *aad, size_t aadlen,
		const void *pt, size_t ptlen, unsigned char *ct, unsigned char iv[CRYPTO_IV_LEN],
		unsigned char tag[CRYPTO_TAG_LEN]);

/* Decrypt and authenticate; pt gets ctlen bytes. 0, or -1 when the key,
 * IV, tag, AAD or ciphertext do not match (nothing usable is in pt then:
 * it is zeroed). */
int crypto_open(const unsigned char key[CRYPTO_KEY_LEN], const void *aad, size_t aadlen,
		const unsigned char *ct, size_t ctlen, const unsigned char *iv, size_t ivlen,
		const unsigned char *tag, size_t taglen, unsigned char *pt);

/* A short public id of a master key (HMAC-SHA256 of a fixed label), so a
 * wrapped DEK names which master key opens it without revealing it. */
void crypto_key_id(const unsigned char kek[CRYPTO_KEY_LEN], unsigned char id[CRYPTO_KID_LEN]);

/* Wrap a DEK under the master key kek; aad binds it to its owner. */
int crypto_wrap(const unsigned char kek[CRYPTO_KEY_LEN], const unsigned char dek[CRYPTO_KEY_LEN],
		const void *aad, size_t aadlen, unsigned char out[CRYPTO_WRAPPED_LEN]);

/* Unwrap: 0, -1 wrong key or tampered, -2 not a wrapped key of this
 * format. The key id in a wrapped DEK: crypto_wrapped_kid (NULL if
 * malformed). */
int crypto_unwrap(const unsigned char kek[CRYPTO_KEY_LEN], const unsigned char *in, size_t inlen,
		  const void *aad, size_t aadlen, unsigned char dek[CRYPTO_KEY_LEN]);
const unsigned char *crypto_wrapped_kid(const unsigned char *in, size_t inlen);

void crypto_wipe(void *p, size_t n);

#endif
