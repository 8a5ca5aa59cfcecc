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

#endif
