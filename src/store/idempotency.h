/*
 * idempotency.h — stored answers to POST requests that carried an Idempotency-Key.
 * A row is claimed (status NULL) before the request runs and completed with the answer
 * afterwards; the primary key (user, key) makes the claim atomic across instances.
 */
#ifndef TANDEM_STORE_IDEMPOTENCY_H
#define TANDEM_STORE_IDEMPOTENCY_H

#include <stdbool.h>
#include <stdint.h>

struct arena;
struct db_conn;
struct error;

struct idem_record {
	const char *method, *path, *request_hash;
	int status;		    /* 0 while the first request is still running */
	const char *headers, *body; /* headers: JSON object text */
	int64_t created_at, expires_at;
};

/* Try to claim (user, key). *claimed false means a row exists: *existing is filled. */
int store_idem_claim(struct db_conn *c, struct arena *a, const char *user_id, const char *key,
		     const struct idem_record *rec, bool *claimed, struct idem_record *existing,
		     struct error *err);
int store_idem_complete(struct db_conn *c, const char *user_id, const char *key, int status,
			const char *headers, const char *body, struct error *err);
/* Forget a claim (the request failed in a way that must not be replayed). */
int store_idem_release(struct db_conn *c, const char *user_id, const char *key, struct error *err);
/* Delete expired rows, and a claim older than `stale_before` that never completed. */
int store_idem_purge(struct db_conn *c, const char *user_id, const char *key, int64_t now,
		     int64_t stale_before, struct error *err);

/*
 * Delete at most `limit` rows that expired by `now` or are claims older than `stale_before`
 * that never completed, whoever's; *deleted says how many went.
 */
int store_idem_purge_expired(struct db_conn *c, int64_t now, int64_t stale_before, int limit,
			     int64_t *deleted, struct error *err);

#endif
