/* tx.c — see tx.h. */
#include "services/tx.h"
#include "services/notify.h"
#include "store/db.h"

int tx_finish(struct db_conn *c, int rc, struct error *err)
{
	if (rc < 0) {
		db_rollback(c);
		notify_discard();
		return rc;
	}
	rc = db_commit(c, err);
	if (rc < 0)
		notify_discard();
	else
		notify_commit(); /* only committed events reach subscribers */
	return rc;
}
