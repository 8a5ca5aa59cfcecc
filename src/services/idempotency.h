/*
 * idempotency.h — the Idempotency-Key mechanism of API.md, shared by every POST that
 * creates something. The first request with a key claims it and its answer is stored; a
 * repeat with the same body within the TTL (TANDEM_IDEMPOTENCY_TTL, 24 h) gets that answer again,
 * byte for byte; a repeat with another body is refused; a repeat while the first still runs gets
 * 409.
 */
#ifndef TANDEM_SERVICES_IDEMPOTENCY_H
#define TANDEM_SERVICES_IDEMPOTENCY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct arena;
struct error;
struct store;

/* A claim whose request never completed (its instance died) is abandoned after this long. */
#define IDEMPOTENCY_STALE_MS (60LL * 1000)

enum idem_outcome {
	IDEM_PROCEED, /* claimed: run the request, then idem_finish() */
	IDEM_REPLAY,  /* answer with the stored response */
};

struct idem_response {
	int status;
	const char *headers; /* JSON object text {name: value} */
	const char *body;
};

/* True when key is 1–255 printable ASCII characters. */
bool idem_key_valid(const char *key);

/*
 * Claim `key` for this user and request (method, path and body are hashed). Returns 0 with
 * *outcome, or -ERR_IDEMPOTENCY_KEY_REUSED (another request used the key) or -ERR_CONFLICT
 * (the first request with the key is still running).
 */
int idem_begin(struct store *st, struct arena *a, const char *user_id, const char *key,
	       const char *method, const char *path, const char *body, size_t body_len,
	       int64_t ttl_ms, enum idem_outcome *outcome, struct idem_response *stored,
	       struct error *err);

/*
 * Call just before running the request: its write transaction is then held open (tx.h) so
 * that idem_finish() stores the answer in it, and the change and its stored answer commit
 * together. (A crash between two commits would leave a change whose key a retry could run
 * again.)
 */
void idem_run_begin(void);

/*
 * Store a success (status < 400), or release the key so the client may retry; then commit
 * the request's held transaction, if any. Returns 0, or a negative error kind with *undone
 * set when the request's change was rolled back with it (the answer it gave is void: answer
 * the error instead). The key is then released, so a retry runs.
 */
int idem_finish(struct store *st, const char *user_id, const char *key,
		const struct idem_response *resp, bool *undone, struct error *err);

#endif
