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

#include "services/events.h" /* enum event_note */

typedef void (*notify_sink)(void *cls, const char *project_id, int64_t seq, enum event_note note);

void notify_set_sink(notify_sink sink, void *cls);
void notify_pending(const char *project_id, int64_t seq, enum event_note note);
void notify_commit(void);
void notify_discard(void);

#endif
