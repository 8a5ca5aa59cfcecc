/*
 * writer.h — the SQLite driver's writer queue and group commit (writer.c), used by
 * sqlite.c only.
 *
 * One struct writer_queue per database file (by device and inode), shared by every
 * connection of this process to that file and counted by reference. Threading: any thread
 * may call every function here; the queue, its waiters and its counters are protected by
 * one process-wide mutex, group commit by a mutex of the queue's own (so flushing never
 * holds up the queue). The writer connection (writer_queue_conn) is the exception: only the
 * thread that holds the queue — between writer_queue_enter() returning 0 and its
 * writer_queue_leave() — may touch it, and that alone serialises its use.
 */
#ifndef TANDEM_STORE_SQLITE_WRITER_H
#define TANDEM_STORE_SQLITE_WRITER_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/stmtcache.h"

struct writer_queue;

/* The connection every holder of the queue writes on, so its page cache stays warm. */
struct writer_conn {
	sqlite3 *db; /* NULL until the first holder opens it (sqlite.c) */
	struct stmtcache stmts;
};

/*
 * The queue of the file behind `db` (created on first use), with one more reference; NULL
 * for a private database (":memory:", temporary) or a file that cannot be stat'ed.
 */
struct writer_queue *writer_queue_ref(sqlite3 *db);
/* Drop a reference (NULL is fine). The last one closes the writer connection. */
void writer_queue_unref(struct writer_queue *q);

/*
 * Wait for the queue, first come first served: 0 once this thread holds it, -1 when
 * `timeout_ms` passed first (the caller then does not hold it).
 */
int writer_queue_enter(struct writer_queue *q, int timeout_ms);
/*
 * Hand the queue to the longest waiter, or free it. `changed`: the write changed something
 * that must reach the disk. Returns the write's ticket for writer_queue_sync(), or 0.
 */
uint64_t writer_queue_leave(struct writer_queue *q, bool changed);
/*
 * Group commit: wait until the writes up to `ticket` are on stable storage, flushing the
 * WAL (fdatasync) if no other thread is. 0, or -1 when the flush failed (logged).
 */
int writer_queue_sync(struct writer_queue *q, uint64_t ticket);

/* The writer connection: for the holder of the queue only. */
struct writer_conn *writer_queue_conn(struct writer_queue *q);
/* The database file's path (lives as long as the queue). */
const char *writer_queue_path(const struct writer_queue *q);

/* For tests: writes on stable storage and WAL flushes so far. */
void writer_queue_sync_state(struct writer_queue *q, uint64_t *synced, uint64_t *flushes);
/* For tests: writers waiting now, and how many ever had to wait. */
void writer_queue_wait_state(struct writer_queue *q, int *waiting, uint64_t *waits);

#endif
