/* token.c — see token.h. */
#include "services/token.h"
#include "core/arena.h"
#include "core/base64url.h"
#include "core/error.h"
#include "core/random.h"
#include "core/timeutil.h"

#include <jansson.h>
#include <errno.h>
#include <jwt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

char *token_issue(struct arena *a, const struct token_key *key, const char *user_id, int64_t ver,
		  const char *sid, int64_t ttl_s)
{
	char jti[UUID_STR_LEN];
	int64_t now = time_now_ms() / 1000;

	uuid_v7(jti);
	return token_issue_at(a, key, user_id, ver, sid, jti, now, now + ttl_s);
}

char *token_issue_at(struct arena *a, const struct token_key *key, const char *user_id, int64_t ver,
		     const char *sid, const char *jti, int64_t iat, int64_t exp)
{
	jwt_t *jwt = NULL;

	if (jwt_new(&jwt) != 0)
		abort();
	int rc = jwt_add_grant(jwt, "iss", TOKEN_ISSUER) |
		 jwt_add_grant(jwt, "aud", TOKEN_AUDIENCE) | jwt_add_grant(jwt, "sub", user_id) |
		 jwt_add_grant(jwt, "jti", jti) | jwt_add_grant(jwt, "sid", sid) |
		 jwt_add_grant_int(jwt, "iat", iat) | jwt_add_grant_int(jwt, "exp", exp) |
		 jwt_add_grant_int(jwt, "ver", ver) |
		 jwt_set_alg(jwt, JWT_ALG_HS256, key->secret, (int)key->len);
	char *s = rc == 0 ? jwt_encode_str(jwt) : NULL;
	jwt_free(jwt);
	if (!s)
		abort(); /* only on allocation failure */
	char *out = arena_strdup(a, s);
	free(s);
	return out;
}

/* The header must be exactly a JSON object whose alg is HS256 (typ JWT if present). */
static int header_is_hs256(struct arena *a, const char *token)
{
	const char *dot = strchr(token, '.');
	size_t n;
	if (!dot || dot == token || dot - token > 512)
		return 0;
	char *b64 = arena_strndup(a, token, (size_t)(dot - token));
	unsigned char *raw = base64url_decode(a, b64, &n);
	if (!raw)
		return 0;
	json_t *h = json_loadb((const char *)raw, n, JSON_REJECT_DUPLICATES, NULL);
	json_t *alg = json_object_get(h, "alg"), *typ = json_object_get(h, "typ");
	int ok = json_is_string(alg) && !strcmp(json_string_value(alg), "HS256") &&
		 (!typ || (json_is_string(typ) && !strcmp(json_string_value(typ), "JWT"))) &&
		 !json_object_get(h, "crit");
	json_decref(h);
	return ok;
}

/*
 * An integer claim. jwt_get_grant_int() reads a string, a real or a boolean as 0 without
 * setting errno, so the type is checked on the claim's JSON text instead.
 */
static int int_grant(jwt_t *jwt, const char *name, long *out)
{
	char *js = jwt_get_grants_json(jwt, name), *end;
	int ok = 0;
	if (js && (js[0] == '-' || (js[0] >= '0' && js[0] <= '9'))) {
		errno = 0;
		long v = strtol(js, &end, 10);
		if (errno == 0 && *end == '\0') {
			*out = v;
			ok = 1;
		}
	}
	free(js);
	return ok;
}

/*
 * A per-thread cache of tokens that passed verification. Every authenticated request
 * verifies its bearer token, and a client sends the same token for its whole lifetime
 * (15 minutes by default): decoding it, parsing its JSON twice and computing the HMAC again
 * was a seventh of the CPU a read costs. An entry holds the exact token text and the claims
 * it verified to, under the key it was verified with; a hit compares the whole text, so
 * only a byte-identical, already-verified token is taken from here, and the expiry is still
 * checked against the clock on every use. Direct-mapped and fixed-size: no locks, no
 * allocation, bounded memory (VERIFIED_SLOTS * ~600 bytes per worker thread).
 */
#define VERIFIED_SLOTS	   64
#define VERIFIED_TOKEN_MAX 512

struct verified {
	uint64_t key_id; /* 0: empty */
	size_t len;
	char token[VERIFIED_TOKEN_MAX];
	struct access_claims claims;
};

static _Thread_local struct verified verified_cache[VERIFIED_SLOTS];

static uint64_t fnv1a(const void *p, size_t n, uint64_t h)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ULL;
	return h;
}

/* Never 0, so that 0 can mean an empty slot. */
static uint64_t key_id(const struct token_key *key)
{
	return fnv1a(key->secret, key->len, 0xcbf29ce484222325ULL) | 1;
}

static struct verified *verified_slot(const char *token, size_t len)
{
	/* The signature (the text after the last dot) is an HMAC: uniformly spread. */
	uint64_t h =
	    fnv1a(token + (len > 16 ? len - 16 : 0), len > 16 ? 16 : len, 0xcbf29ce484222325ULL);
	return &verified_cache[h % VERIFIED_SLOTS];
}

static int verify_uncached(struct arena *a, const struct token_key *key, const char *token,
			   struct access_claims *out, struct error *err);

int token_verify(struct arena *a, const struct token_key *key, const char *token,
		 struct access_claims *out, struct error *err)
{
	size_t len = strnlen(token, VERIFIED_TOKEN_MAX);
	uint64_t kid = key_id(key);
	struct verified *v = len < VERIFIED_TOKEN_MAX ? verified_slot(token, len) : NULL;

	/* Not memcmp: how far an early-exit compare got would tell a prober how much of a
	 * cached token it has guessed. */
	if (v && v->key_id == kid && v->len == len && CRYPTO_memcmp(v->token, token, len) == 0) {
		if (v->claims.exp <= time_now_ms() / 1000) {
			v->key_id = 0;
			return error_set(err, ERR_TOKEN_EXPIRED, "the access token has expired");
		}
		*out = v->claims;
		return 0;
	}
	int rc = verify_uncached(a, key, token, out, err);
	if (rc == 0 && v) {
		v->key_id = kid;
		v->len = len;
		memcpy(v->token, token, len);
		v->claims = *out;
	}
	return rc;
}

static int verify_uncached(struct arena *a, const struct token_key *key, const char *token,
			   struct access_claims *out, struct error *err)
{
	jwt_t *jwt = NULL;
	int rc = -ERR_UNAUTHENTICATED;

	if (strlen(token) > 4096 || !header_is_hs256(a, token))
		return error_set(err, ERR_UNAUTHENTICATED, "the access token is not valid");
	if (jwt_decode(&jwt, token, key->secret, (int)key->len) != 0 || !jwt ||
	    jwt_get_alg(jwt) != JWT_ALG_HS256) {
		error_set(err, ERR_UNAUTHENTICATED, "the access token is not valid");
		goto out;
	}
	const char *iss = jwt_get_grant(jwt, "iss"), *aud = jwt_get_grant(jwt, "aud");
	const char *sub = jwt_get_grant(jwt, "sub"), *jti = jwt_get_grant(jwt, "jti");
	const char *sid = jwt_get_grant(jwt, "sid");
	long exp = 0, iat = 0, ver = 0;
	int exp_ok = int_grant(jwt, "exp", &exp), iat_ok = int_grant(jwt, "iat", &iat),
	    ver_ok = int_grant(jwt, "ver", &ver);
	if (!iss || strcmp(iss, TOKEN_ISSUER) || !aud || strcmp(aud, TOKEN_AUDIENCE) || !sub ||
	    !uuid_normalize(sub, out->sub) || !sid || !uuid_normalize(sid, out->sid) || !jti ||
	    strlen(jti) >= sizeof(out->jti) || !exp_ok || !iat_ok || !ver_ok) {
		error_set(err, ERR_UNAUTHENTICATED, "the access token is not valid");
		goto out;
	}
	if ((int64_t)exp <= time_now_ms() / 1000) {
		rc = error_set(err, ERR_TOKEN_EXPIRED, "the access token has expired");
		goto out;
	}
	memcpy(out->jti, jti, strlen(jti) + 1);
	out->exp = exp;
	out->iat = iat;
	out->ver = ver;
	rc = 0;
out:
	jwt_free(jwt);
	return rc;
}

/* HMAC-SHA256 of `data` under the device-token key derived from `key`. */
static void device_mac(const struct token_key *key, const char *data, size_t len,
		       unsigned char out[32])
{
	static const char label[] = "tandem device token v1";
	unsigned char k[32];
	unsigned int n = 0;
	HMAC(EVP_sha256(), key->secret, (int)key->len, (const unsigned char *)label,
	     sizeof(label) - 1, k, &n);
	HMAC(EVP_sha256(), k, sizeof(k), (const unsigned char *)data, len, out, &n);
	OPENSSL_cleanse(k, sizeof(k));
}

char *token_device_issue(struct arena *a, const struct token_key *key, const char *user_id)
{
	unsigned char nonce[16], mac[32];
	random_bytes(nonce, sizeof(nonce));
	char *payload =
	    arena_printf(a, "%s.%s.%lld", user_id, base64url_encode(a, nonce, sizeof(nonce)),
			 (long long)(time_now_ms() / 1000));
	device_mac(key, payload, strlen(payload), mac);
	return arena_printf(a, "%s.%s", payload, base64url_encode(a, mac, sizeof(mac)));
}

static bool b64url_chars(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_'))
			return false;
	return true;
}

int token_device_verify(struct arena *a, const struct token_key *key, const char *token,
			int64_t ttl_s, int64_t now_s, struct device_claims *out)
{
	/* <36-character uuid>.<22>.<1..19 digits>.<43>: the shape is checked first, so the MAC
	 * only ever runs over a short, well-formed text. */
	const size_t uid = UUID_STR_LEN - 1, sig = 43,
		     fixed = uid + TOKEN_DEVICE_NONCE_LEN + sig + 3;
	size_t n = strlen(token);
	if (n < fixed + 1 || n > fixed + 19)
		return -1;
	const char *nonce = token + uid + 1, *iat = nonce + TOKEN_DEVICE_NONCE_LEN + 1;
	const char *mac_text = token + n - sig;
	size_t iat_len = (size_t)(mac_text - 1 - iat);
	if (token[uid] != '.' || nonce[TOKEN_DEVICE_NONCE_LEN] != '.' || mac_text[-1] != '.' ||
	    !b64url_chars(nonce, TOKEN_DEVICE_NONCE_LEN) || !b64url_chars(mac_text, sig) ||
	    strspn(iat, "0123456789") != iat_len || (iat_len > 1 && *iat == '0'))
		return -1;
	memcpy(out->sub, token, uid);
	out->sub[uid] = '\0';
	if (!uuid_valid(out->sub))
		return -1;
	/* base64url without padding is canonical (the spare bits are zero), so comparing the
	 * text compares the MAC, and an altered spelling of the same bytes is refused too. */
	unsigned char mac[32];
	device_mac(key, token, (size_t)(mac_text - 1 - token), mac);
	if (CRYPTO_memcmp(base64url_encode(a, mac, sizeof(mac)), mac_text, sig) != 0)
		return -1;
	memcpy(out->nonce, nonce, TOKEN_DEVICE_NONCE_LEN);
	out->nonce[TOKEN_DEVICE_NONCE_LEN] = '\0';
	out->iat = strtoll(iat, NULL, 10);
	if (out->iat > now_s + 300 || now_s - out->iat > ttl_s)
		return -1;
	return 0;
}

char *token_refresh_new(struct arena *a)
{
	unsigned char b[32];
	random_bytes(b, sizeof(b));
	return base64url_encode(a, b, sizeof(b));
}

char *token_refresh_next(struct arena *a, const struct token_key *key, const char *presented)
{
	static const char label[] = "refresh-rotate";
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	size_t plen = strlen(presented), len = sizeof(label) - 1 + plen;
	/* The label keeps this use of the key apart from the JWT signatures made with it. */
	unsigned char *msg = arena_alloc(a, len);
	memcpy(msg, label, sizeof(label) - 1);
	memcpy(msg + sizeof(label) - 1, presented, plen);
	if (!HMAC(EVP_sha256(), key->secret, (int)key->len, msg, len, mac, &n) || n != 32)
		abort(); /* only on allocation failure */
	return base64url_encode(a, mac, n);
}

char *token_hash(struct arena *a, const char *token)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char d[SHA256_DIGEST_LENGTH];
	SHA256((const unsigned char *)token, strlen(token), d);
	char *out = arena_alloc(a, 2 * sizeof(d) + 1);
	for (size_t i = 0; i < sizeof(d); i++) {
		out[2 * i] = hex[d[i] >> 4];
		out[2 * i + 1] = hex[d[i] & 15];
	}
	return out;
}
