/*
 * sqlite.c — the SQLite backend of db.h.
 *
 * One sqlite3 handle per connection (per worker thread), opened without SQLite's own
 * mutexes. WAL lets readers run beside the one writer; an acknowledged commit survives
 * power loss (its WAL frames are flushed before commit returns: group commit, writer.c);
 * write transactions take the lock up front (BEGIN IMMEDIATE) so they wait on the busy
 * timeout instead of failing at upgrade time.
 * `$N` placeholders are SQLite named parameters: they are bound by name, because their
 * index is their order of first appearance, not N.
 *
 * Writers of this process queue in arrival order before they touch SQLite's write lock
 * (the writer queue, writer.c), run on the queue's one shared writer connection whose page
 * cache stays warm (writer_enter), and flush the WAL together (group commit); readers never
 * queue. A connection enters the queue for a write transaction (begin with write=true) and
 * for a write statement outside one; it leaves when the connection is back in autocommit
 * mode: commit, rollback, an error that ended the transaction, or disconnect. Everything in
 * this file belongs to the connection's thread; what is shared lives in writer.c.
 */
#include "core/arena.h"
#include "core/error.h"
#include "core/xalloc.h"
#include "store/db.h"
#include "store/sqlite/writer.h"
#include "store/stmtcache.h"

#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SQLITE_BUSY_TIMEOUT_MS 10000
/*
 * Reads: map up to 256 MiB of the file, so pages come straight from the OS page cache
 * without a copy; such pages bypass SQLite's own page cache, which then mostly holds pages
 * read from the WAL and pages being written. 8 MiB of it per connection (the default is
 * 2 MiB) keeps that working set resident while bounding the total: there is one
 * connection per worker thread, 8 on two cores and up to 64 threads (512 MiB) on big hosts.
 */
#define SQLITE_MMAP_SIZE  "268435456"
#define SQLITE_CACHE_SIZE "-8192"

struct sqlite_conn;
static uint64_t writer_leave(struct sqlite_conn *c, bool changed);
static int open_db(const char *path, bool group_commit, sqlite3 **out, struct error *err);

struct sqlite_conn {
	struct db_conn base;
	sqlite3 *db; /* this connection's own handle: reads */
	struct stmtcache stmts;
	sqlite3 *cur; /* where statements run now: db, or the writer connection while writing */
	struct stmtcache *cur_stmts;
	struct writer_queue *queue; /* NULL: a private database (":memory:", temporary) */
	bool writing;		    /* holds queue */
	bool script;		    /* the write is a script: flush whatever it changed */
	int64_t changes_at_enter;   /* sqlite3_total_changes64 when the write began */
	uint64_t last_ticket;	    /* of this connection's last write that changed something */
};

/*
 * Take the connection's place as the writer: 0, or a negative error kind (the busy timeout
 * passed first, or the writer connection cannot be opened) with detail in *err.
 *
 * The writer then runs its statements on the queue's one writer connection (writer.h) instead of
 * its own. SQLite drops a connection's whole page cache whenever another connection has
 * written to the file; with every worker connection writing in turn, each write transaction
 * read the pages it touched again (pread from the WAL and the file: 18 % of the CPU of a
 * create). One connection that does all the writing keeps them cached. Its statements and
 * handle are used by one thread at a time: the holder of the queue. A connection already in
 * a read transaction of its own keeps writing on its own handle, inside that transaction.
 */
static int writer_enter(struct sqlite_conn *c, const char *what, struct error *err)
{
	struct writer_queue *q = c->queue;

	if (!q || c->writing)
		return 0;
	if (writer_queue_enter(q, SQLITE_BUSY_TIMEOUT_MS) < 0)
		return error_set(err, ERR_UNAVAILABLE, "sqlite %s: database is busy", what);
	c->writing = true;
	if (sqlite3_get_autocommit(c->db)) {
		struct writer_conn *w = writer_queue_conn(q);
		if (!w->db && open_db(writer_queue_path(q), true, &w->db, err) < 0) {
			writer_leave(c, false);
			return -ERR_UNAVAILABLE;
		}
		c->cur = w->db;
		c->cur_stmts = &w->stmts;
	}
	c->changes_at_enter = sqlite3_total_changes64(c->cur);
	return 0;
}

/* Give up the writer's place (see writer_queue_leave) and go back to the own handle. */
static uint64_t writer_leave(struct sqlite_conn *c, bool changed)
{
	uint64_t ticket;
	if (!c->writing)
		return 0;
	ticket = writer_queue_leave(c->queue, changed);
	if (ticket)
		c->last_ticket = ticket;
	c->writing = false;
	c->script = false;
	c->cur = c->db;
	c->cur_stmts = &c->stmts;
	return ticket;
}

/*
 * A write ended (or failed before it began): leave the queue unless a transaction is open,
 * then wait for the WAL flush that makes it durable. -1 only when that flush failed.
 */
static int writer_done(struct sqlite_conn *c)
{
	if (!c->writing || !sqlite3_get_autocommit(c->cur))
		return 0;
	uint64_t ticket =
	    writer_leave(c, c->script || sqlite3_total_changes64(c->cur) != c->changes_at_enter);
	return ticket ? writer_queue_sync(c->queue, ticket) : 0;
}

static int not_durable(const char *what, struct error *err)
{
	return error_set(err, ERR_UNAVAILABLE,
			 "sqlite %s: the write-ahead log could not be flushed to disk", what);
}

static int fail(struct sqlite_conn *c, int rc, const char *what, struct error *err)
{
	const char *msg = sqlite3_errmsg(c->cur);
	switch (rc & 0xff) {
	case SQLITE_CONSTRAINT:
		if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY ||
		    rc == SQLITE_CONSTRAINT_FOREIGNKEY)
			return error_set(err, ERR_CONFLICT, "%s", msg);
		return error_set(err, ERR_INTERNAL, "sqlite %s: %s", what, msg);
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return error_set(err, ERR_UNAVAILABLE, "sqlite %s: database is busy", what);
	case SQLITE_FULL:
	case SQLITE_IOERR:
	case SQLITE_CANTOPEN:
	case SQLITE_READONLY:
		return error_set(err, ERR_UNAVAILABLE, "sqlite %s: %s", what, msg);
	default:
		return error_set(err, ERR_INTERNAL, "sqlite %s: %s", what, msg);
	}
}

static void finalize(void *st)
{
	sqlite3_finalize(st);
}

static void disconnect(struct db_conn *base)
{
	struct sqlite_conn *c = (struct sqlite_conn *)base;
	/* A write transaction open on the writer connection ends here; only then may the next
	 * writer go. (Closing our own handle rolls back one open on it.) */
	if (c->writing && c->cur != c->db && !sqlite3_get_autocommit(c->cur))
		sqlite3_exec(c->cur, "ROLLBACK", NULL, NULL, NULL);
	stmtcache_release(&c->stmts, finalize);
	sqlite3_close_v2(c->db);
	writer_leave(c, false);
	writer_queue_unref(c->queue);
	free(c);
}

/*
 * Open and configure a handle. With group_commit, synchronous=NORMAL: COMMIT no longer
 * flushes on its own, writer_done() does (group commit, above); a private database (no
 * writer queue) keeps FULL.
 */
static int open_db(const char *path, bool group_commit, sqlite3 **out, struct error *err)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(path, &db,
				 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
				     SQLITE_OPEN_EXRESCODE,
				 NULL);
	if (rc != SQLITE_OK) {
		error_set(err, ERR_UNAVAILABLE, "cannot open sqlite database \"%s\": %s", path,
			  db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close_v2(db);
		return -ERR_UNAVAILABLE;
	}
	sqlite3_busy_timeout(db, SQLITE_BUSY_TIMEOUT_MS);
	char *msg = NULL;
	/* Switching a new file to WAL takes a lock the busy handler does not wait for: when two
	 * processes open a new database at once, retry for a while. */
	for (int tries = 0; tries < 100; tries++) {
		sqlite3_free(msg);
		msg = NULL;
		rc = sqlite3_exec(db,
				  "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; "
				  "PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY; "
				  "PRAGMA mmap_size=" SQLITE_MMAP_SIZE "; "
				  "PRAGMA cache_size=" SQLITE_CACHE_SIZE ";",
				  NULL, NULL, &msg);
		if ((rc & 0xff) != SQLITE_BUSY && (rc & 0xff) != SQLITE_LOCKED)
			break;
		sqlite3_sleep(50);
	}
	if (rc == SQLITE_OK && group_commit)
		rc = sqlite3_exec(db, "PRAGMA synchronous=NORMAL;", NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		error_set(err, ERR_UNAVAILABLE, "cannot configure sqlite database \"%s\": %s", path,
			  msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		sqlite3_close_v2(db);
		return -ERR_UNAVAILABLE;
	}
	*out = db;
	return 0;
}

static int connect(const char *path, struct db_backoff *backoff, struct db_conn **out,
		   struct error *err)
{
	(void)backoff; /* a file: nothing to wait for */
	struct sqlite_conn *c = xcalloc(1, sizeof(*c));
	c->base.driver = &db_sqlite_driver;
	c->base.dialect = DB_SQLITE;
	int rc = open_db(path, false, &c->db, err);
	if (rc < 0) {
		free(c);
		return rc;
	}
	c->queue = writer_queue_ref(c->db);
	if (c->queue &&
	    sqlite3_exec(c->db, "PRAGMA synchronous=NORMAL;", NULL, NULL, NULL) != SQLITE_OK) {
		error_set(err, ERR_UNAVAILABLE, "cannot configure sqlite database \"%s\": %s", path,
			  sqlite3_errmsg(c->db));
		sqlite3_close_v2(c->db);
		writer_queue_unref(c->queue);
		free(c);
		return -ERR_UNAVAILABLE;
	}
	c->cur = c->db;
	c->cur_stmts = &c->stmts;
	*out = &c->base;
	return 0;
}

static int bind(struct sqlite_conn *c, sqlite3_stmt *st, const struct db_param *p, int np,
		struct error *err)
{
	char name[16];
	for (int i = 0; i < np; i++) {
		snprintf(name, sizeof(name), "$%d", i + 1);
		int idx = sqlite3_bind_parameter_index(st, name);
		if (idx == 0)
			continue; /* a parameter the statement does not use */
		int rc;
		switch (p[i].type) {
		case DB_TEXT:
			rc = sqlite3_bind_text(st, idx, p[i].text, -1, SQLITE_STATIC);
			break;
		case DB_INT:
			rc = sqlite3_bind_int64(st, idx, p[i].i);
			break;
		default:
			rc = sqlite3_bind_null(st, idx);
		}
		if (rc != SQLITE_OK)
			return fail(c, rc, "bind", err);
	}
	return 0;
}

/* The statement for sql on the handle in use, prepared on first use there. */
static int statement(struct sqlite_conn *c, const char *sql, sqlite3_stmt **out, struct error *err)
{
	sqlite3_stmt *st = stmtcache_get(c->cur_stmts, sql);
	if (!st) {
		int rc = sqlite3_prepare_v3(c->cur, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
		if (rc != SQLITE_OK)
			return fail(c, rc, "prepare", err);
		void *old;
		/* Not the statement in use: one runs at a time, and it was looked up just now. */
		if (stmtcache_put(c->cur_stmts, sql, st, &old))
			sqlite3_finalize(old);
	}
	*out = st;
	return 0;
}

static int query(struct db_conn *base, struct arena *a, const char *sql, const struct db_param *p,
		 int np, struct db_rows *out, struct error *err)
{
	struct sqlite_conn *c = (struct sqlite_conn *)base;
	sqlite3_stmt *st = NULL;
	int rc;

	if ((rc = statement(c, sql, &st, err)) < 0)
		return rc;
	if (!c->writing && !sqlite3_stmt_readonly(st)) {
		/* a write outside a write transaction: queue, and run it where writers run */
		if ((rc = writer_enter(c, "step", err)) < 0)
			return rc;
		if ((rc = statement(c, sql, &st, err)) < 0) {
			writer_done(c);
			return rc;
		}
	}
	if ((rc = bind(c, st, p, np, err)) < 0)
		goto out;

	int ncols = sqlite3_column_count(st), cap = 0, n = 0;
	char **vals = NULL;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (!out)
			continue;
		if (n == cap) {
			int ncap = cap ? cap * 2 : 8;
			char **nv = arena_alloc(a, sizeof(char *) * (size_t)(ncap * ncols + 1));
			if (vals)
				memcpy(nv, vals, sizeof(char *) * (size_t)(n * ncols));
			vals = nv;
			cap = ncap;
		}
		for (int j = 0; j < ncols; j++) {
			const unsigned char *t = sqlite3_column_text(st, j);
			vals[n * ncols + j] = t ? arena_strndup(a, (const char *)t,
								(size_t)sqlite3_column_bytes(st, j))
						: NULL;
		}
		n++;
	}
	if (rc != SQLITE_DONE) {
		rc = fail(c, rc, "step", err);
		goto out;
	}
	rc = 0;
	if (out) {
		out->nrows = n;
		out->ncols = ncols;
		out->vals = vals;
		out->affected = sqlite3_changes64(c->cur);
	}
out:
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (writer_done(c) < 0 && rc == 0)
		rc = not_durable("step", err);
	return rc;
}

static int exec_script(struct db_conn *base, const char *sql, struct error *err)
{
	struct sqlite_conn *c = (struct sqlite_conn *)base;
	char *msg = NULL;
	/* A script may write anything: it queues like a write statement. */
	int rc = writer_enter(c, "script", err);
	if (rc < 0)
		return rc;
	c->script = true;
	rc = sqlite3_exec(c->cur, sql, NULL, NULL, &msg);
	if (writer_done(c) < 0 && rc == SQLITE_OK)
		return not_durable("script", err);
	if (rc != SQLITE_OK) {
		error_set(err, ERR_INTERNAL, "%s", msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return -ERR_INTERNAL;
	}
	return 0;
}

static int simple(struct sqlite_conn *c, const char *sql, struct error *err)
{
	int rc = sqlite3_exec(c->cur, sql, NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : fail(c, rc, sql, err);
}

static int begin(struct db_conn *base, bool write, struct error *err)
{
	struct sqlite_conn *c = (struct sqlite_conn *)base;
	int rc;
	if (write && (rc = writer_enter(c, "BEGIN IMMEDIATE", err)) < 0)
		return rc;
	rc = simple(c, write ? "BEGIN IMMEDIATE" : "BEGIN", err);
	if (rc == 0)
		base->tx_depth = 1;
	else
		writer_done(c);
	return rc;
}

static int commit(struct db_conn *base, struct error *err)
{
	struct sqlite_conn *c = (struct sqlite_conn *)base;
	int rc = simple(c, "COMMIT", err);
	if (rc < 0) {
		sqlite3_exec(c->cur, "ROLLBACK", NULL, NULL, NULL);
	}
	base->tx_depth = 0;
	if (writer_done(c) < 0 && rc == 0)
		rc = not_durable("COMMIT", err);
	return rc;
}

static void rollback(struct db_conn *base)
{
	struct sqlite_conn *c = (struct sqlite_conn *)base;
	if (!sqlite3_get_autocommit(c->cur))
		sqlite3_exec(c->cur, "ROLLBACK", NULL, NULL, NULL);
	base->tx_depth = 0;
	writer_done(c);
}

static int cached_statements(struct db_conn *base)
{
	return stmtcache_count(&((struct sqlite_conn *)base)->stmts);
}

static int migration_lock(struct db_conn *base, bool lock, struct error *err)
{
	/* BEGIN IMMEDIATE around each migration already serialises processes on one file. */
	(void)base;
	(void)lock;
	(void)err;
	return 0;
}

int db_sqlite_sync_state(struct db_conn *base, uint64_t *last_ticket, uint64_t *synced,
			 uint64_t *flushes)
{
	struct sqlite_conn *c = (struct sqlite_conn *)base;
	if (base->driver != &db_sqlite_driver || !c->queue)
		return -1;
	*last_ticket = c->last_ticket;
	writer_queue_sync_state(c->queue, synced, flushes);
	return 0;
}

int db_sqlite_queue_state(struct db_conn *base, int *waiting, uint64_t *waits)
{
	struct sqlite_conn *c = (struct sqlite_conn *)base;
	if (base->driver != &db_sqlite_driver || !c->queue)
		return -1;
	writer_queue_wait_state(c->queue, waiting, waits);
	return 0;
}

const struct db_driver db_sqlite_driver = {
    .name = "sqlite",
    .dialect = DB_SQLITE,
    .connect = connect,
    .disconnect = disconnect,
    .query = query,
    .exec_script = exec_script,
    .begin = begin,
    .commit = commit,
    .rollback = rollback,
    .migration_lock = migration_lock,
    .cached_statements = cached_statements,
};
