/*
 * tx.h — the one way a service's write transaction ends. A service function begins with
 * db_begin() (or access_begin()), works, and leaves through a single exit:
 *
 *	out:
 *		return tx_finish(c, rc, err);
 *
 * which commits when rc is 0 and rolls back otherwise. Events the transaction appended are
 * announced to subscribers (services/notify.h) only once COMMIT succeeded.
 */
#ifndef TANDEM_SERVICES_TX_H
#define TANDEM_SERVICES_TX_H

struct db_conn;
struct error;

/*
 * End the write transaction on c: on rc == 0 commit it and publish what it wrote; otherwise
 * (or when COMMIT fails) roll it back and forget it. Returns rc, or COMMIT's error.
 */
int tx_finish(struct db_conn *c, int rc, struct error *err);

/*
 * A held commit, for one more write that must commit with the change or not at all (the
 * stored answer of an Idempotency-Key, services/idempotency.h). After tx_hold(), the next
 * transaction on this thread that tx_finish() would commit stays open instead; tx_held()
 * returns its connection (NULL while none), where the caller adds its write; tx_release()
 * then commits it (rc == 0) or rolls it back, publishes or forgets its events like
 * tx_finish(), and ends the hold. Without a held transaction tx_release() only ends the hold
 * and returns rc. Per thread; every tx_hold() is paired with a tx_release().
 */
void tx_hold(void);
struct db_conn *tx_held(void);
int tx_release(int rc, struct error *err);

#endif
