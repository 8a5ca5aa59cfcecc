/*
 * sqlite.c — the SQLite backend of db.h.
 *
 * One sqlite3 handle per connection (per worker thread), opened without SQLite's own
 * mutexes. WAL lets readers run beside the one writer; synchronous=FULL makes an
 * acknowledged commit survive power loss; write transactions take the lock up front
 * (BEGIN IMMEDIATE) so they wait on the busy timeout instead of failing at upgrade time.
 * `$N` placeholders are SQLite named parameters: they are bound by name, because their
 * index is their order of first appearance, not N.
 */
#include "core/arena.h"
#include "core/error.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "store/db.h"
#include "store/stmtcache.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SQLITE_BUSY_TIMEOUT_MS 10000

struct sqlite_conn {
	struct db_conn base;
	sqlite3 *db;
	struct stmtcache stmts;
};

static int fail(struct sqlite_conn *c, int rc, const char *what, struct error *err)
{
	const char *msg = sqlite3_errmsg(c->db);
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
	stmtcache_release(&c->stmts, finalize);
	sqlite3_close_v2(c->db);
	free(c);
}

static int connect(const char *path, struct db_conn **out, struct error *err)
{
	struct sqlite_conn *c = xcalloc(1, sizeof(*c));
	c->base.driver = &db_sqlite_driver;
	c->base.dialect = DB_SQLITE;
	int rc = sqlite3_open_v2(path, &c->db,
				 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
				     SQLITE_OPEN_EXRESCODE,
				 NULL);
	if (rc != SQLITE_OK) {
		error_set(err, ERR_UNAVAILABLE, "cannot open sqlite database \"%s\": %s", path,
			  c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
		sqlite3_close_v2(c->db);
		free(c);
		return -ERR_UNAVAILABLE;
	}
	sqlite3_busy_timeout(c->db, SQLITE_BUSY_TIMEOUT_MS);
	char *msg = NULL;
	/* Switching a new file to WAL takes a lock the busy handler does not wait for: when two
	 * processes open a new database at once, retry for a while. */
	for (int tries = 0; tries < 100; tries++) {
		sqlite3_free(msg);
		msg = NULL;
		rc = sqlite3_exec(c->db,
				  "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; "
				  "PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY;",
				  NULL, NULL, &msg);
		if ((rc & 0xff) != SQLITE_BUSY && (rc & 0xff) != SQLITE_LOCKED)
			break;
		sqlite3_sleep(50);
	}
	if (rc != SQLITE_OK) {
		error_set(err, ERR_UNAVAILABLE, "cannot configure sqlite database \"%s\": %s", path,
			  msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		sqlite3_close_v2(c->db);
		free(c);
		return -ERR_UNAVAILABLE;
	}
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

static int query(struct db_conn *base, struct arena *a, const char *sql, const struct db_param *p,
		 int np, struct db_rows *out, struct error *err)
{
	struct sqlite_conn *c = (struct sqlite_conn *)base;
	sqlite3_stmt *st = stmtcache_get(&c->stmts, sql);
	int rc;

	if (!st) {
		rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
		if (rc != SQLITE_OK)
			return fail(c, rc, "prepare", err);
		stmtcache_put(&c->stmts, sql, st);
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
		out->affected = sqlite3_changes64(c->db);
	}
out:
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc;
}

static int exec_script(struct db_conn *base, const char *sql, struct error *err)
{
	struct sqlite_conn *c = (struct sqlite_conn *)base;
	char *msg = NULL;
	int rc = sqlite3_exec(c->db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		error_set(err, ERR_INTERNAL, "%s", msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return -ERR_INTERNAL;
	}
	return 0;
}

static int simple(struct sqlite_conn *c, const char *sql, struct error *err)
{
	int rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : fail(c, rc, sql, err);
}

static int begin(struct db_conn *base, bool write, struct error *err)
{
	int rc = simple((struct sqlite_conn *)base, write ? "BEGIN IMMEDIATE" : "BEGIN", err);
	if (rc == 0)
		base->tx_depth = 1;
	return rc;
}

static int commit(struct db_conn *base, struct error *err)
{
	struct sqlite_conn *c = (struct sqlite_conn *)base;
	int rc = simple(c, "COMMIT", err);
	if (rc < 0) {
		sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
	}
	base->tx_depth = 0;
	return rc;
}

static void rollback(struct db_conn *base)
{
	struct sqlite_conn *c = (struct sqlite_conn *)base;
	if (!sqlite3_get_autocommit(c->db))
		sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
	base->tx_depth = 0;
}

static int migration_lock(struct db_conn *base, bool lock, struct error *err)
{
	/* BEGIN IMMEDIATE around each migration already serialises processes on one file. */
	(void)base;
	(void)lock;
	(void)err;
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
};
