/*
 * token.h — access tokens (HS256 JWT through libjwt) and opaque refresh tokens.
 *
 * Verification pins HS256 twice: the header is read and must say {"alg":"HS256"} before
 * libjwt sees the token, and the algorithm libjwt decoded is checked again afterwards, so
 * "none" and every other algorithm are refused whatever libjwt would do with them.
 * The signature is compared in constant time: Debian's libjwt 1.10.2 checks HS256 with its
 * jwt_strcmp(), which runs over the whole string without an early exit (checked in its
 * source and in the shipped binary's disassembly), so this file does not redo the HMAC.
 * Thread-safe; the key is read-only after start-up. Each thread keeps a small cache of the
 * tokens it verified (exact text, key and claims), so a client's next request with the same
 * token skips the decode and the HMAC; expiry is checked on every call all the same, and a
 * hit compares the token text with CRYPTO_memcmp (a cached token is a secret too).
 */
#ifndef TANDEM_SERVICES_TOKEN_H
#define TANDEM_SERVICES_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/uuid.h"

struct arena;
struct error;

#define TOKEN_ISSUER   "tandem"
#define TOKEN_AUDIENCE "tandem-api"

struct token_key {
	unsigned char secret[256];
	size_t len;
};

struct access_claims {
	char sub[UUID_STR_LEN];
	char jti[UUID_STR_LEN];
	char sid[UUID_STR_LEN]; /* the session: the refresh-token family it was issued with */
	int64_t iat, exp;
	int64_t ver; /* the user's token version when issued */
};

/*
 * Issue a token for `user_id` at `ver` in session `sid` (a refresh family id), valid `ttl_s`
 * seconds from now (arena string).
 */
char *token_issue(struct arena *a, const struct token_key *key, const char *user_id, int64_t ver,
		  const char *sid, int64_t ttl_s);

/*
 * The same with every claim given: `jti`, issued at `iat` and expiring at `exp` (Unix
 * seconds). Deterministic: the same arguments and key give the same token, byte for byte,
 * which is how a refresh inside the grace window answers with the pair it answered before.
 */
char *token_issue_at(struct arena *a, const struct token_key *key, const char *user_id, int64_t ver,
		     const char *sid, const char *jti, int64_t iat, int64_t exp);

/*
 * Verify signature, algorithm, issuer, audience and expiry. Returns 0 and fills *out, or
 * -ERR_TOKEN_EXPIRED for an expired but otherwise valid token, or -ERR_UNAUTHENTICATED.
 */
int token_verify(struct arena *a, const struct token_key *key, const char *token,
		 struct access_claims *out, struct error *err);

/*
 * Device tokens (OWASP "device cookies", sent in JSON here): proof that a client has logged in
 * to an account before, so that its next login is not refused for failures made elsewhere.
 * "<user id>.<nonce>.<issued at, Unix seconds>.<signature>": the nonce is 128 random bits
 * (base64url) and names the device's own failure bucket; the signature is base64url
 * HMAC-SHA256 over the first three parts under a key derived from the JWT key with its own
 * label, so that nothing else signed with that key (a JWT, a cursor) can pass for one.
 * Stateless: any instance sharing the key accepts any other's tokens.
 */
#define TOKEN_DEVICE_NONCE_LEN 22 /* base64url of 16 bytes */

struct device_claims {
	char sub[UUID_STR_LEN];
	char nonce[TOKEN_DEVICE_NONCE_LEN + 1];
	int64_t iat; /* Unix seconds */
};

/* A new device token for `user_id`, issued now (arena string). */
char *token_device_issue(struct arena *a, const struct token_key *key, const char *user_id);
/*
 * 0 and *out for a well-formed token signed with `key`, issued at most ttl_s seconds before
 * now_s (and not after it, give or take five minutes of clock skew); -1 otherwise, with no
 * detail: a token that does not verify is treated as absent, never reported.
 */
int token_device_verify(struct arena *a, const struct token_key *key, const char *token,
			int64_t ttl_s, int64_t now_s, struct device_claims *out);

/* 32 random bytes as base64url (43 characters): a new refresh token. */
char *token_refresh_new(struct arena *a);
/*
 * The refresh token that rotating `presented` issues: base64url of
 * HMAC-SHA256(key, "refresh-rotate" || presented), 43 characters. Only a holder of the
 * presented token (and the server) can compute it, so the server can find the successor of a
 * token again from its SHA-256 alone, without storing any token in plain text.
 */
char *token_refresh_next(struct arena *a, const struct token_key *key, const char *presented);
/* Lower-case hex SHA-256 of a token: what the database stores. */
char *token_hash(struct arena *a, const char *token);

#endif
