/* idempotency.c — see idempotency.h. */
#include "services/idempotency.h"
#include "core/arena.h"
#include "core/error.h"
#include "core/timeutil.h"
#include "services/tx.h"
#include "store/idempotency.h"
#include "store/store.h"

#include <openssl/evp.h>
#include <string.h>

bool idem_key_valid(const char *key)
{
	size_t n = 0;
	for (; key[n]; n++)
		if ((unsigned char)key[n] < 0x20 || (unsigned char)key[n] > 0x7e || n >= 255)
			return false;
	return n > 0;
}

static const char *request_hash(struct arena *a, const char *method, const char *path,
				const char *body, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int dl = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	EVP_DigestUpdate(ctx, method, strlen(method) + 1);
	EVP_DigestUpdate(ctx, path, strlen(path) + 1);
	if (len)
		EVP_DigestUpdate(ctx, body, len);
	EVP_DigestFinal_ex(ctx, d, &dl);
	EVP_MD_CTX_free(ctx);
	char *out = arena_alloc(a, 2 * dl + 1);
	for (unsigned i = 0; i < dl; i++) {
		out[2 * i] = hex[d[i] >> 4];
		out[2 * i + 1] = hex[d[i] & 15];
	}
	return out;
}

int idem_begin(struct store *st, struct arena *a, const char *user_id, const char *key,
	       const char *method, const char *path, const char *body, size_t body_len,
	       int64_t ttl_ms, enum idem_outcome *outcome, struct idem_response *stored,
	       struct error *err)
{
	struct idem_record rec, existing;
	bool claimed;
	int rc;
	int64_t now = time_now_ms();
	struct db_conn *c = store_conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;

	rec = (struct idem_record){.method = method,
				   .path = path,
				   .request_hash = request_hash(a, method, path, body, body_len),
				   .created_at = now,
				   .expires_at = now + ttl_ms};
	if ((rc = store_idem_purge(c, user_id, key, now, now - IDEMPOTENCY_STALE_MS, err)) < 0 ||
	    (rc = store_idem_claim(c, a, user_id, key, &rec, &claimed, &existing, err)) < 0)
		return rc;
	if (claimed) {
		*outcome = IDEM_PROCEED;
		return 0;
	}
	if (strcmp(existing.request_hash, rec.request_hash) != 0)
		return error_set(err, ERR_IDEMPOTENCY_KEY_REUSED,
				 "this Idempotency-Key was used for a different request");
	if (existing.status == 0)
		return error_set(err, ERR_CONFLICT,
				 "a request with this Idempotency-Key is still being processed");
	*outcome = IDEM_REPLAY;
	stored->status = existing.status;
	stored->headers = existing.headers;
	stored->body = existing.body ? existing.body : "";
	return 0;
}

void idem_run_begin(void)
{
	tx_hold();
}

int idem_finish(struct store *st, const char *user_id, const char *key,
		const struct idem_response *resp, bool *undone, struct error *err)
{
	struct db_conn *held = tx_held(), *c = held ? held : store_conn(st, err);
	int rc;
	*undone = false;
	if (!c)
		return tx_release(-ERR_UNAVAILABLE, err);
	/* An error answer (4xx or 5xx) is not kept: the client corrects the body, its role or
	 * its membership and retries under the same key, and that retry runs. */
	if (resp->status >= 400)
		rc = store_idem_release(c, user_id, key, err);
	else
		rc = store_idem_complete(c, user_id, key, resp->status, resp->headers, resp->body,
					 err);
	rc = tx_release(rc, err);
	if (rc < 0 && held) {
		/* The change went with its answer: free the key (outside the rolled-back
		 * transaction) so that the client's retry runs instead of waiting for it. */
		struct error ignored = ERROR_INIT;
		struct db_conn *fresh = store_conn(st, &ignored);
		if (fresh)
			store_idem_release(fresh, user_id, key, &ignored);
		error_release(&ignored);
		*undone = true;
	}
	return rc;
}
