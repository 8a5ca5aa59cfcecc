/* tx.c — see tx.h. */
#include "services/tx.h"
#include "services/notify.h"
#include "store/db.h"

#include <stdbool.h>
#include <stddef.h>

/* The hold of this thread (tx_hold): armed, and the transaction it keeps open, if any. */
static __thread struct {
	bool armed;
	struct db_conn *held;
} hold;

static int finish(struct db_conn *c, int rc, struct error *err)
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

int tx_finish(struct db_conn *c, int rc, struct error *err)
{
	if (rc == 0 && hold.armed && !hold.held) {
		hold.held = c; /* committed (or not) by tx_release() */
		return 0;
	}
	return finish(c, rc, err);
}

void tx_hold(void)
{
	hold.armed = true;
	hold.held = NULL;
}

struct db_conn *tx_held(void)
{
	return hold.held;
}

int tx_release(int rc, struct error *err)
{
	struct db_conn *c = hold.held;
	hold.armed = false;
	hold.held = NULL;
	return c ? finish(c, rc, err) : rc;
}
