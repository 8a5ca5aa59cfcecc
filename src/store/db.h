/*
 * db.h — the small SQL driver interface that the SQLite and PostgreSQL backends implement.
 *
 * Store code (users.c, projects.c, ...) is written once on top of this: `$1`-style
 * placeholders, parameters as text or 64-bit integers, results copied into the caller's
 * arena as text. Where the dialects disagree the store picks the SQL by `db->dialect`.
 *
 * A struct db_conn belongs to one thread at a time (the store hands each worker thread its
 * own). Statements are prepared once per connection and cached by the address of their SQL
 * text, so SQL must be a string literal or otherwise live for the whole process; the cache
 * keeps the STMTCACHE_MAX most recently used (store/stmtcache.h).
 */
#ifndef TANDEM_STORE_DB_H
#define TANDEM_STORE_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct arena;
struct error;

enum db_dialect { DB_SQLITE, DB_POSTGRES };

enum db_type { DB_NULL, DB_TEXT, DB_INT };

struct db_param {
	enum db_type type;
	const char *text;
	int64_t i;
};

#define DB_TEXT(s) ((struct db_param){.type = (s) ? DB_TEXT : DB_NULL, .text = (s)})
#define DB_INT(v)  ((struct db_param){.type = DB_INT, .i = (int64_t)(v)})
#define DB_NULLP   ((struct db_param){.type = DB_NULL})
#define DB_BOOL(b) DB_INT((b) ? 1 : 0)

/* Rows of a result, as text; a SQL NULL is a NULL pointer. Owned by the arena. */
struct db_rows {
	int nrows, ncols;
	char **vals;	  /* nrows * ncols */
	int64_t affected; /* rows changed by INSERT/UPDATE/DELETE */
};

/*
 * Reconnect back-off, shared by every connection to one database (struct store has one):
 * while the server is unreachable, connection attempts are spaced out (drivers that connect
 * over a network use it; SQLite does not).
 */
struct db_backoff {
	_Atomic int64_t delay_ms;      /* 0: the last attempt worked (or none failed) */
	_Atomic int64_t not_before_ms; /* no attempt before this while delay_ms > 0 */
};

struct db_conn {
	const struct db_driver *driver;
	enum db_dialect dialect;
	int tx_depth; /* 0 outside a transaction */
};

struct db_driver {
	const char *name;
	enum db_dialect dialect;
	/* Open a connection for `url`. On failure returns -ERR_UNAVAILABLE with a detail. The
	 * connection keeps `backoff` (shared, lives as long as the connection) for reconnects. */
	int (*connect)(const char *url, struct db_backoff *backoff, struct db_conn **out,
		       struct error *err);
	void (*disconnect)(struct db_conn *c);
	/*
	 * Run one statement. Errors: -ERR_CONFLICT for a unique or foreign-key violation (the
	 * detail names the constraint), -ERR_UNAVAILABLE when the server cannot be reached or
	 * stays busy, -ERR_INTERNAL otherwise. A lost connection is re-established on the next
	 * call made outside a transaction.
	 */
	int (*query)(struct db_conn *c, struct arena *a, const char *sql, const struct db_param *p,
		     int np, struct db_rows *out, struct error *err);
	/* Run a script of several statements without parameters (migrations). */
	int (*exec_script)(struct db_conn *c, const char *sql, struct error *err);
	/* begin: write=true takes the write lock at once (SQLite BEGIN IMMEDIATE). */
	int (*begin)(struct db_conn *c, bool write, struct error *err);
	int (*commit)(struct db_conn *c, struct error *err);
	void (*rollback)(struct db_conn *c);
	/* Take/release the process-crossing lock that serialises migrations. */
	int (*migration_lock)(struct db_conn *c, bool lock, struct error *err);
	/* How many prepared statements the connection keeps (at most STMTCACHE_MAX). */
	int (*cached_statements)(struct db_conn *c);
};

extern const struct db_driver db_sqlite_driver;

/*
 * SQLite group commit, for tests: the ticket of the connection's last write that changed
 * something, how many writes to its file are known to be on stable storage, and how many WAL
 * flushes it took. Once a write returns, *synced >= *last_ticket. -1 for another driver or a
 * private (in-memory) database.
 */
int db_sqlite_sync_state(struct db_conn *c, uint64_t *last_ticket, uint64_t *synced,
			 uint64_t *flushes);
/* SQLite writer queue, for tests: writers waiting now, and how many ever had to wait. -1 for
 * another driver or a private database. */
int db_sqlite_queue_state(struct db_conn *c, int *waiting, uint64_t *waits);
extern const struct db_driver db_postgres_driver;

/* Convenience wrappers over c->driver. */
int db_query(struct db_conn *c, struct arena *a, const char *sql, const struct db_param *p, int np,
	     struct db_rows *out, struct error *err);
int db_exec(struct db_conn *c, const char *sql, const struct db_param *p, int np,
	    struct error *err);
/* db_exec, and the number of rows the statement changed in *affected (0 on failure). */
int db_exec_affected(struct db_conn *c, const char *sql, const struct db_param *p, int np,
		     int64_t *affected, struct error *err);
int db_begin(struct db_conn *c, bool write, struct error *err);
int db_commit(struct db_conn *c, struct error *err);
void db_rollback(struct db_conn *c);
/* Prepared statements the connection keeps now, for tests. */
int db_cached_statements(struct db_conn *c);

/* Field access on a result; row and column must be in range. */
static inline const char *db_val(const struct db_rows *r, int row, int col)
{
	return r->vals[row * r->ncols + col];
}
int64_t db_int(const struct db_rows *r, int row, int col);
/* Accepts 1/0 (SQLite) and t/f (PostgreSQL). */
bool db_bool(const struct db_rows *r, int row, int col);

#define DB_NPARAMS(arr) ((int)(sizeof(arr) / sizeof((arr)[0])))

#endif
