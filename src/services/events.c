/* events.c — STAND-IN, see events.h. */
#include "services/events.h"
#include "core/error.h"
#include "services/access.h"
#include "store/store.h"

int events_head(struct store *st, struct arena *a, const char *user_id, const char *project_id,
		int64_t *seq, struct error *err)
{
	int rc;
	struct db_conn *c = store_conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	if ((rc = access_project(c, a, project_id, user_id, ACCESS_READ, NULL, err)) < 0)
		return rc;
	return store_project_seq(c, a, project_id, seq, err);
}

int events_after(struct store *st, struct arena *a, const char *project_id, int64_t after,
		 int limit, struct event **out, int *count, struct error *err)
{
	int64_t head;
	int rc;
	struct db_conn *c = store_conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	if ((rc = store_event_list(c, a, project_id, after, limit, out, count, err)) < 0)
		return rc;
	/* A deletion leaves no event behind: an empty read checks that the project is there. */
	if (*count == 0 && (rc = store_project_seq(c, a, project_id, &head, err)) < 0)
		return rc;
	return 0;
}
