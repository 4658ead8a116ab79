/* crypto.c — AES-256-GCM envelope encryption; see crypto.h. */
#include "config.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "crypto.h"
#include "util.h"

int crypto_key_from_base64(const char *b64, unsigned char key[CRYPTO_KEY_LEN])
{
	size_t n = b64 ? strlen(b64) : 0;
	while (n && (b64[n - 1] == '\n' || b64[n - 1] == ' ' || b64[n - 1] == '\r'))
		n--;
	/* 32 bytes are 44 base64 characters, one '=' of padding */
	if (n != 44 || b64[43] != '=' || b64[42] == '=')
		return -1;
	unsigned char out[33];
	int len = EVP_DecodeBlock(out, (const unsigned char *)b64, (int)n);
	if (len != 33) { /* DecodeBlock counts the padding byte */
		crypto_wipe(out, sizeof out);
		return -1;
	}
	memcpy(key, out, CRYPTO_KEY_LEN);
	crypto_wipe(out, sizeof out);
	return 0;
}

void crypto_wipe(void *p, size_t n) { OPENSSL_cleanse(p, n); }

int crypto_seal(const unsigned char key[CRYPTO_KEY_LEN], const void *aad, size_t aadlen,
		const void *pt, size_t ptlen, unsigned char *ct, unsigned char iv[CRYPTO_IV_LEN],
		unsigned char tag[CRYPTO_TAG_LEN])
{
	if (ptlen > 0x7fffffff || aadlen > 0x7fffffff || util_random_bytes(iv, CRYPTO_IV_LEN) != 0)
		return -1;
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int ok = 0, len;
	if (c && EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, CRYPTO_IV_LEN, NULL) == 1 &&
	    EVP_EncryptInit_ex(c, NULL, NULL, key, iv) == 1 &&
	    (aadlen == 0 || EVP_EncryptUpdate(c, NULL, &len, aad, (int)aadlen) == 1) &&
	    EVP_EncryptUpdate(c, ct, &len, pt, (int)ptlen) == 1 &&
	    EVP_EncryptFinal_ex(c, ct + len, &len) == 1 &&
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, CRYPTO_TAG_LEN, tag) == 1)
		ok = 1;
	EVP_CIPHER_CTX_free(c);
	return ok ? 0 : -1;
}

int crypto_open(const unsigned char key[CRYPTO_KEY_LEN], const void *aad, size_t aadlen,
		const unsigned char *ct, size_t ctlen, const unsigned char *iv, size_t ivlen,
		const unsigned char *tag, size_t taglen, unsigned char *pt)
{
	if (ivlen != CRYPTO_IV_LEN || taglen != CRYPTO_TAG_LEN || ctlen > 0x7fffffff ||
	    aadlen > 0x7fffffff)
		return -1;
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int ok = 0, len;
	unsigned char t[CRYPTO_TAG_LEN];
	memcpy(t, tag, sizeof t);
	if (c && EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, CRYPTO_IV_LEN, NULL) == 1 &&
	    EVP_DecryptInit_ex(c, NULL, NULL, key, iv) == 1 &&
	    (aadlen == 0 || EVP_DecryptUpdate(c, NULL, &len, aad, (int)aadlen) == 1) &&
	    EVP_DecryptUpdate(c, pt, &len, ct, (int)ctlen) == 1 &&
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, CRYPTO_TAG_LEN, t) == 1 &&
	    EVP_DecryptFinal_ex(c, pt + len, &len) == 1)
		ok = 1;
	EVP_CIPHER_CTX_free(c);
	if (!ok && ctlen)
		crypto_wipe(pt, ctlen);
	return ok ? 0 : -1;
}

void crypto_key_id(const unsigned char kek[CRYPTO_KEY_LEN], unsigned char id[CRYPTO_KID_LEN])
{
	static const char label[] = "unde master key id v1";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	HMAC(EVP_sha256(), kek, CRYPTO_KEY_LEN, (const unsigned char *)label, sizeof label - 1, md, &n);
	memcpy(id, md, CRYPTO_KID_LEN);
}

int crypto_wrap(const unsigned char kek[CRYPTO_KEY_LEN], const unsigned char dek[CRYPTO_KEY_LEN],
		const void *aad, size_t aadlen, unsigned char out[CRYPTO_WRAPPED_LEN])
{
	out[0] = 1;
	crypto_key_id(kek, out + 1);
	unsigned char *iv = out + 1 + CRYPTO_KID_LEN, *ct = iv + CRYPTO_IV_LEN;
	return crypto_seal(kek, aad, aadlen, dek, CRYPTO_KEY_LEN, ct, iv, ct + CRYPTO_KEY_LEN);
}

const unsigned char *crypto_wrapped_kid(const unsigned char *in, size_t inlen)
{
	return inlen == CRYPTO_WRAPPED_LEN && in[0] == 1 ? in + 1 : NULL;
}

int crypto_unwrap(const unsigned char kek[CRYPTO_KEY_LEN], const unsigned char *in, size_t inlen,
		  const void *aad, size_t aadlen, unsigned char dek[CRYPTO_KEY_LEN])
{
	if (!crypto_wrapped_kid(in, inlen))
		return -2;
	const unsigned char *iv = in + 1 + CRYPTO_KID_LEN, *ct = iv + CRYPTO_IV_LEN;
	return crypto_open(kek, aad, aadlen, ct, CRYPTO_KEY_LEN, iv, CRYPTO_IV_LEN,
			   ct + CRYPTO_KEY_LEN, CRYPTO_TAG_LEN, dek);
}
