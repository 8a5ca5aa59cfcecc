/*
 * notify.h — telling the real-time side that a transaction committed events.
 *
 * events_append() remembers (project, seq) on the calling thread while the transaction runs;
 * tx_finish() calls notify_commit() after COMMIT succeeded (publishing every remembered
 * project once, with its highest seq) or notify_discard() after a rollback. Nothing is
 * published for work that did not commit. The sink (the event bus) is set once at start-up.
 */
#ifndef TANDEM_SERVICES_NOTIFY_H
#define TANDEM_SERVICES_NOTIFY_H

#include <stdint.h>

/*
 * What a committed transaction tells the real-time side (the bus relays it between
 * instances): a project has events up to `seq`, or was deleted, or
 * (EVENT_NOTE_RESYNC, from the bus after an outage) anything may have been missed, or
 * (EVENT_NOTE_USER_REVOKED, with a user id in place of the project id) some of that user's
 * tokens stopped being valid (password change, deactivation, logout, refresh reuse): every
 * live channel of the user re-checks its token at once.
 */
enum event_note {
	EVENT_NOTE_APPENDED,
	EVENT_NOTE_PROJECT_DELETED,
	EVENT_NOTE_RESYNC,
	EVENT_NOTE_USER_REVOKED
};

typedef void (*notify_sink)(void *cls, const char *project_id, int64_t seq, enum event_note note);

void notify_set_sink(notify_sink sink, void *cls);
void notify_pending(const char *project_id, int64_t seq, enum event_note note);
void notify_commit(void);
void notify_discard(void);

#endif
