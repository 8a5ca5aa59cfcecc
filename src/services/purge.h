/*
 * purge.h — housekeeping: expired idempotency keys, dead refresh tokens and expired stream
 * tickets are deleted periodically (the tables would grow forever). A background thread wakes
 * every `interval_s` and deletes in batches of PURGE_BATCH rows, one short write transaction
 * each, so it never holds the SQLite writer (or PostgreSQL row locks) for long. Several instances
 * may purge one database at once: each batch deletes what is still there.
 */
#ifndef TANDEM_SERVICES_PURGE_H
#define TANDEM_SERVICES_PURGE_H

#include <stdint.h>

struct error;
struct purger;
struct store;

#define PURGE_BATCH 500

struct purge_policy {
	unsigned interval_s;
	/*
	 * A refresh token is deleted once expired or revoked for longer than this (the access
	 * token lifetime): until then an access token of its family may still be checked
	 * against it.
	 */
	int64_t refresh_grace_ms;
};

struct purge_counts {
	int64_t idempotency_keys, refresh_tokens, stream_tickets;
};

/* One purge now, in batches; adds what went to *out. 0 or a negative error kind. */
int purge_run(struct store *st, const struct purge_policy *p, int64_t now_ms,
	      struct purge_counts *out, struct error *err);

/* Start the purge thread (NULL when it cannot start: logged). */
struct purger *purger_start(struct store *st, const struct purge_policy *p);
/* Stop it (wakes it at once) and free it. NULL is fine. */
void purger_stop(struct purger *pg);

#endif
