/*
 * notify.c — see notify.h. The pending lists are per thread: a transaction runs on one.
 * Project notes are hints (the hub's sweep finds what a dropped one would have said), so at
 * most NOTIFY_MAX_PENDING are kept; user notes (EVENT_NOTE_USER_REVOKED) end live channels
 * nothing else would end before their token expires, so none is ever dropped: they go in a
 * list of their own that grows as needed and is freed when the transaction ends.
 */
#include "services/notify.h"
#include "core/uuid.h"
#include "core/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOTIFY_MAX_PENDING 16

static notify_sink sink;
static void *sink_cls;

static __thread struct {
	char project_id[UUID_STR_LEN];
	int64_t seq;
	enum event_note note;
} pending[NOTIFY_MAX_PENDING];
static __thread int npending;

static __thread char (*users)[UUID_STR_LEN]; /* malloc'd; NULL when empty */
static __thread int nusers, users_cap;

static void user_pending(const char *user_id)
{
	for (int i = 0; i < nusers; i++)
		if (!strcmp(users[i], user_id))
			return;
	if (nusers == users_cap) {
		users_cap = users_cap ? users_cap * 2 : 4;
		users = xrealloc(users, sizeof(*users) * (size_t)users_cap);
	}
	snprintf(users[nusers++], UUID_STR_LEN, "%s", user_id);
}

static void users_clear(void)
{
	free(users);
	users = NULL;
	nusers = users_cap = 0;
}

void notify_set_sink(notify_sink fn, void *cls)
{
	sink = fn;
	sink_cls = cls;
}

void notify_pending(const char *project_id, int64_t seq, enum event_note note)
{
	if (note == EVENT_NOTE_USER_REVOKED) {
		user_pending(project_id);
		return;
	}
	for (int i = 0; i < npending; i++) {
		if (!strcmp(pending[i].project_id, project_id) && pending[i].note == note) {
			if (seq > pending[i].seq)
				pending[i].seq = seq;
			return;
		}
	}
	if (npending == NOTIFY_MAX_PENDING) {
		/* More projects than fit: the hub's periodic sweep delivers the rest. */
		return;
	}
	snprintf(pending[npending].project_id, UUID_STR_LEN, "%s", project_id);
	pending[npending].seq = seq;
	pending[npending].note = note;
	npending++;
}

void notify_commit(void)
{
	int n = npending;
	npending = 0;
	for (int i = 0; i < n && sink; i++)
		sink(sink_cls, pending[i].project_id, pending[i].seq, pending[i].note);
	for (int i = 0; i < nusers && sink; i++)
		sink(sink_cls, users[i], 0, EVENT_NOTE_USER_REVOKED);
	users_clear();
}

void notify_discard(void)
{
	npending = 0;
	users_clear();
}
