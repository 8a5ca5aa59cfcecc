/* events.c — see events.h. */
#include "services/events.h"
#include "core/arena.h"
#include "core/error.h"
#include "core/timeutil.h"
#include "services/access.h"
#include "services/notify.h"
#include "services/paging.h"
#include "store/store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

json_t *event_json(const struct event *e)
{
	char created[TIME_RFC3339_LEN];
	time_format_ms(e->created_at, created);
	json_t *data = json_loads(e->data, 0, NULL);
	return json_pack("{s:I, s:s, s:s, s:s?, s:s, s:o}", "seq", (json_int_t)e->seq, "type",
			 e->type, "project_id", e->project_id, "actor_id", e->actor_id,
			 "created_at", created, "data", data ? data : json_null());
}

int events_append(struct db_conn *c, struct arena *a, const char *project_id, const char *type,
		  const char *actor_id, json_t *data, struct error *err)
{
	int64_t seq;
	char *text = json_dumps(data, JSON_COMPACT);
	const char *copy = arena_strdup(a, text);
	free(text);
	int rc = store_event_append(c, project_id, type, actor_id, copy, time_now_ms(), &seq, err);
	if (rc == 0)
		notify_pending(project_id, seq, EVENT_NOTE_APPENDED);
	return rc;
}

void events_project_deleted(const char *project_id)
{
	notify_pending(project_id, 0, EVENT_NOTE_PROJECT_DELETED);
}

int events_head(struct store *st, struct arena *a, const char *user_id, const char *project_id,
		int64_t *seq, struct error *err)
{
	int rc;
	struct db_conn *c = store_conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	/*
	 * The head first, then the access check: a removal that commits between them has a
	 * seq above *seq, so real-time delivery (which ends what was admitted before a removal
	 * of its user) ends what this admits. The other order could admit at a head that already
	 * holds the removal, and nothing would end it.
	 */
	rc = store_project_seq(c, a, project_id, seq, err);
	if (rc == -ERR_NOT_FOUND) {
		error_release(err); /* the access check says "not found" its own way */
		*seq = 0;
	} else if (rc < 0)
		return rc;
	if ((rc = access_project(c, a, project_id, user_id, ACCESS_READ, NULL, err)) < 0)
		return rc;
	return 0;
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
	/* Events cascade with their project: an empty read may mean it is gone. */
	if (*count == 0)
		return store_project_seq(c, a, project_id, &head, err);
	return 0;
}

bool events_seq_parse(const char *s, int64_t *out)
{
	char *end;
	if (!*s || strspn(s, "0123456789") != strlen(s))
		return false;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno == ERANGE)
		return false;
	*out = v;
	return true;
}

int events_feed(struct store *st, struct arena *a, const struct user *me, const char *project_id,
		const char *after_s, const char *limit_s, json_t **out, struct error *err)
{
	struct event *items;
	int limit, count, rc;
	int64_t after = 0;

	if ((rc = paging_limit(limit_s, &limit, err)) < 0)
		return rc;
	if (after_s) {
		if (!events_seq_parse(after_s, &after)) {
			char qb[200];
			error_field(err, "after", "invalid",
				    "'%s' is not an event seq (a whole number >= 0)",
				    error_quote(qb, sizeof(qb), after_s, 40));
			return -ERR_VALIDATION_FAILED;
		}
	}
	struct db_conn *c = store_conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	if ((rc = access_project(c, a, project_id, me->id, ACCESS_READ, NULL, err)) < 0)
		return rc;
	if ((rc = store_event_list(c, a, project_id, after, limit + 1, &items, &count, err)) < 0)
		return rc;
	json_t *data = json_array();
	int64_t next = after;
	for (int i = 0; i < count && i < limit; i++) {
		json_array_append_new(data, event_json(&items[i]));
		next = items[i].seq;
	}
	*out = arena_json(a, json_pack("{s:o, s:I, s:b}", "data", data, "next_after",
				       (json_int_t)next, "has_more", count > limit));
	return 0;
}
