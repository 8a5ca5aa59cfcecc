/*
 * writer.c — the writer queue and group commit of the SQLite driver (see writer.h for the
 * interface; sqlite.c decides when a connection enters and leaves).
 *
 * Threading: every queue of the process is in one list guarded by `queues_lock`, which
 * also guards each queue's holder flag, waiters, reference count and write counter. Group
 * commit has a lock per queue (sync_lock) so that a thread flushing the WAL never holds up
 * the queue; when both are taken, sync_lock comes first. A waiter sleeps on a condition
 * variable of its own, on its own stack, until the leaving holder hands it the queue. The
 * writer connection is not locked at all: only the holder uses it; nor is the WAL's
 * descriptor: only the one thread that set `syncing` uses it.
 *
 * The writer queue (issue 7). SQLite admits one writer per database file; the others wait
 * in the busy handler, which sleeps and polls with a growing back-off, so under contention
 * a newcomer polling every millisecond often beats a writer that has been sleeping 100 ms at
 * a time for seconds: p99 of 3-4 s and maxima of 6 s with 1,000 concurrent writers. So the
 * connections of this process to one file first queue here, and the lock passes directly to
 * the longest waiter: first come, first served, and SQLite's own lock is free by the time
 * BEGIN IMMEDIATE runs. A writer gives up after the busy timeout, as it would in SQLite.
 * The busy handler stays for other processes (`tandem migrate` beside a server).
 *
 * Group commit. Each connection runs synchronous=NORMAL: COMMIT writes the transaction's
 * frames to the WAL but does not wait for them to reach the disk. A writer then gives up its
 * place in the queue at once, and only afterwards waits until the WAL has been flushed
 * (fdatasync) past its commit; one flush covers every commit written before it started. So
 * the next writer works while the previous one's frames go to disk, and N commits cost one
 * disk flush instead of N, with the same guarantee as synchronous=FULL: commit returns only
 * once the transaction is on stable storage. (SQLite itself still flushes the WAL before
 * each checkpoint and the database after it, as in NORMAL mode.)
 */
#include "store/sqlite/writer.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "core/xalloc.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct writer_waiter {
	struct writer_waiter *next;
	pthread_cond_t cond;
	bool granted; /* the queue was handed to this waiter */
};

struct writer_queue {
	struct writer_queue *next; /* in `queues` */
	dev_t dev;		   /* the database file */
	ino_t ino;
	int refs; /* connections */
	bool held;
	struct writer_waiter *head, *tail;
	int waiting;	  /* waiters in the list */
	uint64_t waits;	  /* writers that ever had to wait */
	uint64_t written; /* writes ended (under queues_lock, by the holder) */
	/* group commit: its own lock, so flushing never holds up the writer queue */
	pthread_mutex_t sync_lock;
	pthread_cond_t synced_cond;
	uint64_t synced;  /* writes known to be on stable storage */
	bool syncing;	  /* a thread is flushing the WAL now */
	uint64_t flushes; /* fdatasync calls that succeeded */
	int wal_fd;	  /* -1 until the first flush */
	char *wal_path;
	char *path;
	struct writer_conn conn; /* used only by the holder */
};

static pthread_mutex_t queues_lock = PTHREAD_MUTEX_INITIALIZER;
static struct writer_queue *queues;
static pthread_condattr_t cond_attr; /* CLOCK_MONOTONIC: deadlines ignore clock changes */
static pthread_once_t cond_attr_once = PTHREAD_ONCE_INIT;

static void cond_attr_init(void)
{
	pthread_condattr_init(&cond_attr);
	pthread_condattr_setclock(&cond_attr, CLOCK_MONOTONIC);
}

static void finalize(void *st)
{
	sqlite3_finalize(st);
}

struct writer_queue *writer_queue_ref(sqlite3 *db)
{
	const char *path = sqlite3_db_filename(db, "main");
	struct stat sb;
	struct writer_queue *q;
	if (!path || !*path || stat(path, &sb) != 0)
		return NULL;
	pthread_mutex_lock(&queues_lock);
	for (q = queues; q; q = q->next)
		if (q->dev == sb.st_dev && q->ino == sb.st_ino)
			break;
	if (!q) {
		q = xcalloc(1, sizeof(*q));
		q->dev = sb.st_dev;
		q->ino = sb.st_ino;
		pthread_mutex_init(&q->sync_lock, NULL);
		pthread_cond_init(&q->synced_cond, NULL);
		q->wal_fd = -1;
		q->wal_path = xstrdup(sqlite3_filename_wal(path));
		q->path = xstrdup(path);
		q->next = queues;
		queues = q;
	}
	q->refs++;
	pthread_mutex_unlock(&queues_lock);
	return q;
}

void writer_queue_unref(struct writer_queue *q)
{
	if (!q)
		return;
	pthread_mutex_lock(&queues_lock);
	if (--q->refs == 0) {
		assert(!q->held && !q->head);
		struct writer_queue **pp = &queues;
		while (*pp != q)
			pp = &(*pp)->next;
		*pp = q->next;
		if (q->wal_fd >= 0)
			close(q->wal_fd);
		stmtcache_release(&q->conn.stmts, finalize);
		sqlite3_close_v2(q->conn.db);
		free(q->path);
		pthread_mutex_destroy(&q->sync_lock);
		pthread_cond_destroy(&q->synced_cond);
		free(q->wal_path);
		free(q);
	}
	pthread_mutex_unlock(&queues_lock);
}

int writer_queue_enter(struct writer_queue *q, int timeout_ms)
{
	int rc = 0;
	pthread_once(&cond_attr_once, cond_attr_init);
	pthread_mutex_lock(&queues_lock);
	if (!q->held && !q->head) {
		q->held = true;
	} else {
		struct writer_waiter w = {.next = NULL, .granted = false};
		struct timespec deadline;
		pthread_cond_init(&w.cond, &cond_attr);
		if (q->tail)
			q->tail->next = &w;
		else
			q->head = &w;
		q->tail = &w;
		q->waiting++;
		q->waits++;
		deadline = time_mono_after_ms(timeout_ms);
		while (!w.granted) {
			if (pthread_cond_timedwait(&w.cond, &queues_lock, &deadline) == ETIMEDOUT &&
			    !w.granted) {
				/* Leave the queue: nobody else may hand the lock to us now. */
				struct writer_waiter **pp = &q->head, *prev = NULL;
				while (*pp != &w) {
					prev = *pp;
					pp = &(*pp)->next;
				}
				*pp = w.next;
				if (q->tail == &w)
					q->tail = prev;
				q->waiting--;
				rc = -1;
				break;
			}
		}
		pthread_cond_destroy(&w.cond);
	}
	pthread_mutex_unlock(&queues_lock);
	return rc;
}

uint64_t writer_queue_leave(struct writer_queue *q, bool changed)
{
	uint64_t ticket = 0;
	pthread_mutex_lock(&queues_lock);
	if (changed)
		ticket = ++q->written;
	struct writer_waiter *w = q->head;
	if (w) {
		q->head = w->next;
		if (!q->head)
			q->tail = NULL;
		q->waiting--;
		w->granted = true; /* q->held stays true: the lock changes hands without a gap */
		pthread_cond_signal(&w->cond);
	} else {
		q->held = false;
	}
	pthread_mutex_unlock(&queues_lock);
	return ticket;
}

/* The WAL's descriptor, (re)opened when missing or when the file was removed (SQLite deletes
 * it when the last connection to the database closes; a new one is another file). */
static int wal_fd(struct writer_queue *q)
{
	struct stat sb;
	if (q->wal_fd >= 0 && fstat(q->wal_fd, &sb) == 0 && sb.st_nlink > 0)
		return q->wal_fd;
	if (q->wal_fd >= 0)
		close(q->wal_fd);
	q->wal_fd = open(q->wal_path, O_RDONLY | O_CLOEXEC);
	return q->wal_fd;
}

int writer_queue_sync(struct writer_queue *q, uint64_t ticket)
{
	int rc = 0;
	pthread_mutex_lock(&q->sync_lock);
	while (q->synced < ticket) {
		if (q->syncing) {
			pthread_cond_wait(&q->synced_cond, &q->sync_lock);
			continue;
		}
		q->syncing = true;
		/* every write with a ticket up to `upto` has ended: its frames are in the WAL */
		pthread_mutex_lock(&queues_lock);
		uint64_t upto = q->written;
		pthread_mutex_unlock(&queues_lock);
		pthread_mutex_unlock(&q->sync_lock);
		int fd = wal_fd(q);
		int ok = fd >= 0 && fdatasync(fd) == 0;
		int saved = errno;
		pthread_mutex_lock(&q->sync_lock);
		q->syncing = false;
		if (ok && upto > q->synced)
			q->synced = upto;
		q->flushes += ok;
		pthread_cond_broadcast(&q->synced_cond);
		if (!ok) {
			log_error("sqlite: cannot flush the write-ahead log %s: %s", q->wal_path,
				  strerror(saved));
			rc = -1;
			break;
		}
	}
	pthread_mutex_unlock(&q->sync_lock);
	return rc;
}

struct writer_conn *writer_queue_conn(struct writer_queue *q)
{
	return &q->conn;
}

const char *writer_queue_path(const struct writer_queue *q)
{
	return q->path;
}

void writer_queue_sync_state(struct writer_queue *q, uint64_t *synced, uint64_t *flushes)
{
	pthread_mutex_lock(&q->sync_lock);
	*synced = q->synced;
	*flushes = q->flushes;
	pthread_mutex_unlock(&q->sync_lock);
}

void writer_queue_wait_state(struct writer_queue *q, int *waiting, uint64_t *waits)
{
	pthread_mutex_lock(&queues_lock);
	*waiting = q->waiting;
	*waits = q->waits;
	pthread_mutex_unlock(&queues_lock);
}
