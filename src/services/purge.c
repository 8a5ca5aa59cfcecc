/*
 * purge.c — see purge.h. The thread sleeps on a condition variable so that purger_stop()
 * ends it at once; it has its own store connection (store_conn is per thread).
 */
#include "services/purge.h"
#include "core/error.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "core/xalloc.h"
#include "services/idempotency.h"
#include "services/tx.h"
#include "store/db.h"
#include "store/idempotency.h"
#include "store/store.h"
#include "store/tickets.h"
#include "store/users.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

struct purger {
	struct store *st;
	struct purge_policy policy;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stop;
};

enum what { IDEMPOTENCY_KEYS, REFRESH_TOKENS, STREAM_TICKETS };

/* One batch in its own write transaction; *n says how many rows went. */
static int batch(struct db_conn *c, enum what w, const struct purge_policy *p, int64_t now,
		 int64_t *n, struct error *err)
{
	int rc;
	*n = 0;
	if ((rc = db_begin(c, true, err)) < 0)
		return rc;
	if (w == IDEMPOTENCY_KEYS)
		rc = store_idem_purge_expired(c, now, now - IDEMPOTENCY_STALE_MS, PURGE_BATCH, n,
					      err);
	else if (w == REFRESH_TOKENS)
		rc = store_refresh_purge(c, now - p->refresh_grace_ms, PURGE_BATCH, n, err);
	else
		rc = store_ticket_purge(c, now, PURGE_BATCH, n, err);
	return tx_finish(c, rc, err);
}

int purge_run(struct store *st, const struct purge_policy *p, int64_t now_ms,
	      struct purge_counts *out, struct error *err)
{
	struct db_conn *c = store_conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	for (int w = IDEMPOTENCY_KEYS; w <= STREAM_TICKETS; w++) {
		int64_t n;
		do {
			int rc = batch(c, (enum what)w, p, now_ms, &n, err);
			if (rc < 0)
				return rc;
			if (w == IDEMPOTENCY_KEYS)
				out->idempotency_keys += n;
			else if (w == REFRESH_TOKENS)
				out->refresh_tokens += n;
			else
				out->stream_tickets += n;
		} while (n == PURGE_BATCH);
	}
	return 0;
}

static void *purger_main(void *arg)
{
	struct purger *pg = arg;
	pthread_mutex_lock(&pg->lock);
	while (!pg->stop) {
		struct timespec until = time_mono_after_ms((int64_t)pg->policy.interval_s * 1000);
		while (!pg->stop &&
		       pthread_cond_timedwait(&pg->wake, &pg->lock, &until) != ETIMEDOUT)
			;
		if (pg->stop)
			break;
		pthread_mutex_unlock(&pg->lock);
		struct purge_counts n = {0, 0, 0};
		struct error err = ERROR_INIT;
		if (purge_run(pg->st, &pg->policy, time_now_ms(), &n, &err) < 0)
			log_warn("purge of expired rows failed: %s", err.detail);
		else if (n.idempotency_keys || n.refresh_tokens || n.stream_tickets)
			log_json(LOG_DEBUG, "purged",
				 json_pack("{s:I, s:I, s:I}", "idempotency_keys",
					   (json_int_t)n.idempotency_keys, "refresh_tokens",
					   (json_int_t)n.refresh_tokens, "stream_tickets",
					   (json_int_t)n.stream_tickets));
		error_release(&err);
		pthread_mutex_lock(&pg->lock);
	}
	pthread_mutex_unlock(&pg->lock);
	return NULL;
}

struct purger *purger_start(struct store *st, const struct purge_policy *p)
{
	struct purger *pg = xcalloc(1, sizeof(*pg));
	pthread_condattr_t attr;
	pg->st = st;
	pg->policy = *p;
	pthread_mutex_init(&pg->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&pg->wake, &attr);
	pthread_condattr_destroy(&attr);
	if (pthread_create(&pg->thread, NULL, purger_main, pg) != 0) {
		log_error("cannot start the purge thread");
		pthread_cond_destroy(&pg->wake);
		pthread_mutex_destroy(&pg->lock);
		free(pg);
		return NULL;
	}
	return pg;
}

void purger_stop(struct purger *pg)
{
	if (!pg)
		return;
	pthread_mutex_lock(&pg->lock);
	pg->stop = true;
	pthread_cond_signal(&pg->wake);
	pthread_mutex_unlock(&pg->lock);
	pthread_join(pg->thread, NULL);
	pthread_cond_destroy(&pg->wake);
	pthread_mutex_destroy(&pg->lock);
	free(pg);
}
