/*
 * notify.h — telling the real-time side that a transaction committed events.
 *
 * event_write() remembers (project, seq) on the calling thread while the transaction runs;
 * the services call notify_commit() after COMMIT succeeded (publishing every remembered
 * project once, with its highest seq) or notify_discard() after a rollback. Nothing is
 * published for work that did not commit. The sink (the event bus) is set once at start-up.
 */
#ifndef TANDEM_SERVICES_NOTIFY_H
#define TANDEM_SERVICES_NOTIFY_H

#include <stdint.h>

enum notify_kind { NOTIFY_EVENT, NOTIFY_PROJECT_DELETED };

typedef void (*notify_sink)(void *cls, const char *project_id, int64_t seq, enum notify_kind kind);

void notify_set_sink(notify_sink sink, void *cls);
void notify_pending(const char *project_id, int64_t seq, enum notify_kind kind);
void notify_commit(void);
void notify_discard(void);

struct db_conn;
struct error;

/*
 * End a write transaction: on rc == 0 commit it and publish what it wrote; otherwise (or when
 * COMMIT fails) roll it back and forget it. Returns rc, or COMMIT's error.
 */
int tx_finish(struct db_conn *c, int rc, struct error *err);

#endif
