/* cursor.c — see cursor.h. */
#include "core/cursor.h"
#include "core/arena.h"
#include "core/base64url.h"
#include "core/error.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/random.h"

#define CURSOR_MAX_LEN	 2048
#define CURSOR_MAC_LEN	 16
#define CURSOR_QUERY_LEN 12

/*
 * Cursors are signed: base64url(document) "." base64url(HMAC-SHA256(key, document)[:16]).
 * An edited cursor is refused instead of silently positioning a page somewhere else. The key
 * is derived from the server's secret (cursor_set_key) so that every instance sharing that
 * secret accepts every other's cursors; without one it is random per process.
 */
static unsigned char mac_key[32];
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static int key_set;

static void random_key(void)
{
	if (!key_set)
		random_bytes(mac_key, sizeof(mac_key));
}

void cursor_set_key(const void *secret, size_t len)
{
	unsigned int n = 0;
	static const char label[] = "tandem cursor v1";
	HMAC(EVP_sha256(), secret, (int)len, (const unsigned char *)label, sizeof(label) - 1,
	     mac_key, &n);
	key_set = 1;
}

static void mac(const void *data, size_t len, unsigned char out[32])
{
	unsigned int n = 0;
	pthread_once(&key_once, random_key);
	HMAC(EVP_sha256(), mac_key, sizeof(mac_key), data, len, out, &n);
}

/* The query's digest as the cursor carries it: SHA-256, first 12 bytes, base64url. Cursors
 * stay short (they travel in URLs) whatever the filters; the HMAC covers it like the rest. */
static char *query_digest(struct arena *a, const char *query)
{
	unsigned char d[32];
	unsigned int n = 0;
	EVP_Digest(query, strlen(query), d, &n, EVP_sha256(), NULL);
	return base64url_encode(a, d, CURSOR_QUERY_LEN);
}

char *cursor_encode(struct arena *a, const char *list, const char *query, json_t *keys)
{
	json_t *doc = json_pack("{s:i, s:s, s:s, s:O}", "v", 2, "l", list, "q",
				query_digest(a, query), "k", keys);
	char *s = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	unsigned char tag[32];
	mac(s, strlen(s), tag);
	char *body = base64url_encode(a, s, strlen(s));
	char *sig = base64url_encode(a, tag, CURSOR_MAC_LEN);
	free(s);
	return arena_printf(a, "%s.%s", body, sig);
}

int cursor_decode(struct arena *a, const char *cursor, const char *list, const char *query,
		  size_t nkeys, json_t **out_keys, struct error *err)
{
	size_t n;
	if (strlen(cursor) > CURSOR_MAX_LEN)
		return error_set(err, ERR_BAD_REQUEST, "cursor is too long");
	const char *dot = strrchr(cursor, '.');
	if (!dot)
		return error_set(err, ERR_BAD_REQUEST, "cursor is not valid");
	size_t sn;
	unsigned char *raw =
	    base64url_decode(a, arena_strndup(a, cursor, (size_t)(dot - cursor)), &n);
	unsigned char *sig = base64url_decode(a, dot + 1, &sn);
	unsigned char tag[32];
	if (!raw || !sig || sn != CURSOR_MAC_LEN)
		return error_set(err, ERR_BAD_REQUEST, "cursor is not valid");
	mac(raw, n, tag);
	if (CRYPTO_memcmp(tag, sig, CURSOR_MAC_LEN) != 0)
		return error_set(err, ERR_BAD_REQUEST, "cursor is not valid");
	json_t *doc = arena_json(a, json_loadb((const char *)raw, n, JSON_REJECT_DUPLICATES, NULL));
	json_t *v = json_object_get(doc, "v"), *l = json_object_get(doc, "l");
	json_t *q = json_object_get(doc, "q"), *k = json_object_get(doc, "k");
	/* Version 1 (bound to the sort only) was signed with the same key: say what to do. */
	if (json_is_integer(v) && json_integer_value(v) == 1)
		return error_set(err, ERR_BAD_REQUEST,
				 "cursor was made by an earlier version of the server; start again "
				 "from the first page");
	if (!json_is_integer(v) || json_integer_value(v) != 2 || !json_is_string(l) ||
	    !json_is_string(q) || !json_is_array(k))
		return error_set(err, ERR_BAD_REQUEST, "cursor is not valid");
	if (strcmp(json_string_value(l), list) != 0)
		return error_set(err, ERR_BAD_REQUEST, "cursor was made for another list");
	if (strcmp(json_string_value(q), query_digest(a, query)) != 0)
		return error_set(
		    err, ERR_BAD_REQUEST,
		    "cursor was made for another query: keep the filters and the sort "
		    "of the first page (only limit may change), or start again without "
		    "a cursor");
	if (json_array_size(k) != nkeys)
		return error_set(err, ERR_BAD_REQUEST, "cursor is not valid");
	size_t i;
	json_t *e;
	json_array_foreach(k, i, e)
	{
		if (!json_is_string(e) && !json_is_integer(e) && !json_is_null(e))
			return error_set(err, ERR_BAD_REQUEST, "cursor is not valid");
	}
	*out_keys = k;
	return 0;
}
