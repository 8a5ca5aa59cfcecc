/* notify.c — see notify.h. The pending list is per thread: a transaction runs on one. */
#include "services/notify.h"
#include "core/uuid.h"

#include <stdio.h>
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

void notify_set_sink(notify_sink fn, void *cls)
{
	sink = fn;
	sink_cls = cls;
}

void notify_pending(const char *project_id, int64_t seq, enum event_note note)
{
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
}

void notify_discard(void)
{
	npending = 0;
}
