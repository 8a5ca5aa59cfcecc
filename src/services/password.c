/* password.c — see password.h. */
#include "services/password.h"
#include "core/error.h"
#include "core/random.h"

#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void prehash(const char *password, char out[64])
{
	unsigned char digest[SHA256_DIGEST_LENGTH];
	SHA256((const unsigned char *)password, strlen(password), digest);
	EVP_EncodeBlock((unsigned char *)out, digest, sizeof(digest));
	OPENSSL_cleanse(digest, sizeof(digest));
}

int password_hash(const char *password, int cost, char out[PASSWORD_HASH_MAX])
{
	char salt[CRYPT_GENSALT_OUTPUT_SIZE], pre[64];
	unsigned char rnd[16];
	struct crypt_data *cd = calloc(1, sizeof(*cd));
	int rc = 0;

	if (!cd)
		abort();
	random_bytes(rnd, sizeof(rnd));
	if (!crypt_gensalt_rn("$2b$", (unsigned long)cost, (const char *)rnd, sizeof(rnd), salt,
			      sizeof(salt))) {
		rc = error_set(NULL, ERR_INTERNAL, "bcrypt salt");
		goto out;
	}
	prehash(password, pre);
	const char *h = crypt_rn(pre, salt, cd, sizeof(*cd));
	if (!h || h[0] == '*' || strlen(h) >= PASSWORD_HASH_MAX) {
		rc = error_set(NULL, ERR_INTERNAL, "bcrypt");
		goto out;
	}
	memcpy(out, h, strlen(h) + 1);
out:
	OPENSSL_cleanse(pre, sizeof(pre));
	OPENSSL_cleanse(cd, sizeof(*cd));
	free(cd);
	return rc;
}

bool password_verify(const char *password, const char *hash)
{
	char pre[64];
	struct crypt_data *cd = calloc(1, sizeof(*cd));
	bool ok = false;

	if (!cd)
		abort();
	prehash(password, pre);
	const char *h = crypt_rn(pre, hash, cd, sizeof(*cd));
	size_t n = strlen(hash);
	if (h && h[0] != '*' && strlen(h) == n)
		ok = CRYPTO_memcmp(h, hash, n) == 0;
	OPENSSL_cleanse(pre, sizeof(pre));
	OPENSSL_cleanse(cd, sizeof(*cd));
	free(cd);
	return ok;
}

int password_hash_cost(const char *hash)
{
	int cost = 0;
	if (strncmp(hash, "$2b$", 4) != 0 || sscanf(hash + 4, "%2d", &cost) != 1)
		return 0;
	return cost;
}
