/*
 * postgres.c — the PostgreSQL backend of db.h on libpq.
 *
 * One PGconn per connection (per worker thread). Every statement is prepared once per
 * connection (named "s<N>") and executed with text parameters; results are not copied:
 * the PGresult is handed to the caller's arena, which clears it at release.
 *
 * A lost server is survived without a restart and without a 500. A connection whose session
 * died (a server crash, restart or failover; an error without SQLSTATE, which libpq makes
 * up when the socket fails) is marked broken and answers -ERR_UNAVAILABLE (503). The next
 * statement outside a transaction first checks that the idle session still exists (it reads
 * what the server sent meanwhile: a shutdown notice, then EOF) and, when it does not,
 * reconnects before sending anything, forgetting the prepared statements that died with
 * the session. A statement whose session dies under it is retried once on a fresh session
 * only when running it twice cannot change anything: BEGIN, and a SELECT outside a
 * transaction. Reconnects back off (PG_BACKOFF_MIN_MS doubling to PG_BACKOFF_MAX_MS) while
 * the server stays unreachable, shared by every connection of the store: meanwhile one
 * thread per back-off window tries and the others answer 503 at once, and the first success
 * lets every thread reconnect at once.
 *
 * Each connection keeps at most STMTCACHE_MAX prepared statements; the least recently used
 * one is deallocated on the server when a new one needs room.
 */
#include "core/arena.h"
#include "core/error.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "core/xalloc.h"
#include "store/db.h"
#include "store/stmtcache.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdatomic.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PG_MAX_PARAMS	      64
#define PG_MIGRATION_LOCK_KEY "7310412352063"
#define PG_BACKOFF_MIN_MS     50
#define PG_BACKOFF_MAX_MS     1000

struct pg_conn {
	struct db_conn base;
	PGconn *pg;
	struct stmtcache stmts; /* sql -> (void *)(uintptr_t)statement number */
	unsigned next_stmt;
	bool broken; /* the session is gone (or unusable): reconnect before the next statement */
	struct db_backoff *backoff; /* the store's, shared by every connection to the database */
};

static int conn_fail(struct pg_conn *c, const char *what, struct error *err)
{
	char msg[256];
	snprintf(msg, sizeof(msg), "%s", PQerrorMessage(c->pg));
	msg[strcspn(msg, "\n")] = '\0';
	return error_set(err, ERR_UNAVAILABLE, "postgres %s: %s", what, msg);
}

static void notice(void *cls, const char *message)
{
	char line[512];
	(void)cls;
	snprintf(line, sizeof(line), "%s", message);
	line[strcspn(line, "\n")] = '\0';
	log_json(LOG_DEBUG, "postgres notice", json_pack("{s:s}", "notice", line));
}

static int open_pg(const char *url, PGconn **out, struct error *err)
{
	/* Defaults first: a value in the URL overrides them (expand_dbname processes it last). */
	const char *keys[] = {"connect_timeout", "application_name", "dbname", NULL};
	const char *vals[] = {"5", "tandem", url, NULL};
	PGconn *pg = PQconnectdbParams(keys, vals, 1);
	if (!pg)
		return error_set(err, ERR_UNAVAILABLE, "postgres connect: out of memory");
	if (PQstatus(pg) != CONNECTION_OK) {
		char msg[256];
		snprintf(msg, sizeof(msg), "%s", PQerrorMessage(pg));
		msg[strcspn(msg, "\n")] = '\0';
		PQfinish(pg);
		return error_set(err, ERR_UNAVAILABLE, "postgres connect: %s", msg);
	}
	/* Server notices (e.g. "already exists, skipping") go to our log, not raw to stderr. */
	PQsetNoticeProcessor(pg, notice, NULL);
	*out = pg;
	return 0;
}

static int backing_off(struct error *err)
{
	return error_set(err, ERR_UNAVAILABLE,
			 "postgres connect: the server was unreachable moments ago (backing off)");
}

/*
 * May this thread try to connect now? While the server is known to be unreachable, one
 * thread per back-off window tries (it claims the window) and the others answer at once.
 */
static bool may_connect(struct db_backoff *bo)
{
	int64_t now = time_now_ms(), until = atomic_load(&bo->not_before_ms);
	int64_t b = atomic_load(&bo->delay_ms);
	if (b == 0)
		return true;
	if (now < until)
		return false;
	int64_t next = b * 2 > PG_BACKOFF_MAX_MS ? PG_BACKOFF_MAX_MS : b * 2;
	return atomic_compare_exchange_strong(&bo->not_before_ms, &until, now + next);
}

/* An attempt failed: the next one waits longer. One worked: every thread may try at once. */
static void connect_result(struct db_backoff *bo, bool ok)
{
	if (ok) {
		atomic_store(&bo->delay_ms, 0);
		atomic_store(&bo->not_before_ms, 0);
		return;
	}
	int64_t b = atomic_load(&bo->delay_ms);
	b = b ? (b * 2 > PG_BACKOFF_MAX_MS ? PG_BACKOFF_MAX_MS : b * 2) : PG_BACKOFF_MIN_MS;
	atomic_store(&bo->delay_ms, b);
	atomic_store(&bo->not_before_ms, time_now_ms() + b);
}

static int connect(const char *url, struct db_backoff *backoff, struct db_conn **out,
		   struct error *err)
{
	PGconn *pg;
	if (!may_connect(backoff))
		return backing_off(err);
	int rc = open_pg(url, &pg, err);
	connect_result(backoff, rc == 0);
	if (rc < 0)
		return rc;
	struct pg_conn *c = xcalloc(1, sizeof(*c));
	c->base.driver = &db_postgres_driver;
	c->base.dialect = DB_POSTGRES;
	c->pg = pg;
	c->backoff = backoff;
	*out = &c->base;
	return 0;
}

static void disconnect(struct db_conn *base)
{
	struct pg_conn *c = (struct pg_conn *)base;
	stmtcache_release(&c->stmts, NULL);
	PQfinish(c->pg);
	free(c);
}

/* Re-establish a broken session. Prepared statements died with it. */
static int reset(struct pg_conn *c, struct error *err)
{
	stmtcache_clear(&c->stmts, NULL);
	c->base.tx_depth = 0;
	c->broken = true;
	if (!may_connect(c->backoff))
		return backing_off(err);
	PQreset(c->pg);
	connect_result(c->backoff, PQstatus(c->pg) == CONNECTION_OK);
	if (PQstatus(c->pg) != CONNECTION_OK)
		return conn_fail(c, "reconnect", err);
	c->broken = false;
	log_info("postgres connection re-established");
	return 0;
}

/*
 * Outside a transaction, before sending: does the idle session still exist? A server that
 * shut down or crashed sent a notice and closed the socket; reading it (non-blocking, one
 * recv) turns the connection's status bad, so nothing is sent into a dead session.
 */
static bool alive(struct pg_conn *c)
{
	if (c->broken || PQstatus(c->pg) != CONNECTION_OK)
		return false;
	return PQconsumeInput(c->pg) && PQstatus(c->pg) == CONNECTION_OK;
}

static int result_fail(struct pg_conn *c, PGresult *res, const char *what, struct error *err)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(c->pg);
	char line[384];
	snprintf(line, sizeof(line), "%s", msg ? msg : "");
	line[strcspn(line, "\n")] = '\0';

	/* No SQLSTATE: libpq's own error (the socket failed, the server closed it), which can
	 * come before the status turns bad. The session is lost either way. */
	if (PQstatus(c->pg) != CONNECTION_OK || !state) {
		c->broken = true;
		return error_set(err, ERR_UNAVAILABLE, "postgres %s: %s", what, line);
	}
	/* The server ends the session: shutdown, crash of another backend, terminated. */
	if (!strncmp(state, "57P0", 4) || (!strncmp(state, "08", 2) && strcmp(state, "08P01")))
		c->broken = true;
	if (!strcmp(state, "23505") || !strcmp(state, "23503")) {
		const char *cons = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);
		return error_set(err, ERR_CONFLICT, "constraint %s: %s", cons ? cons : "?", line);
	}
	if ((!strncmp(state, "08", 2) && strcmp(state, "08P01")) || !strncmp(state, "57P", 3) ||
	    !strcmp(state, "53300") || !strcmp(state, "40001") || !strcmp(state, "40P01"))
		return error_set(err, ERR_UNAVAILABLE, "postgres %s: %s (%s)", what, line, state);
	return error_set(err, ERR_INTERNAL, "postgres %s: %s (%s)", what, line, state);
}

static void pqclear(void *p)
{
	PQclear(p);
}

/*
 * Make room for a statement: the least recently used one goes, on the server too. A failure
 * here (the session died) shows in the PQprepare that follows.
 */
static void deallocate(struct pg_conn *c, uintptr_t id)
{
	char sql[32];
	snprintf(sql, sizeof(sql), "DEALLOCATE s%u", (unsigned)id);
	PQclear(PQexec(c->pg, sql));
}

static int run(struct pg_conn *c, struct arena *a, const char *sql, const struct db_param *p,
	       int np, struct db_rows *out, struct error *err)
{
	char name[16], nums[PG_MAX_PARAMS][24];
	const char *values[PG_MAX_PARAMS];
	uintptr_t id = (uintptr_t)stmtcache_get(&c->stmts, sql);

	if (np > PG_MAX_PARAMS)
		return error_set(err, ERR_INTERNAL, "too many parameters (%d)", np);
	if (!id) {
		id = ++c->next_stmt;
		snprintf(name, sizeof(name), "s%u", (unsigned)id);
		PGresult *res = PQprepare(c->pg, name, sql, 0, NULL);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			int rc = result_fail(c, res, "prepare", err);
			PQclear(res);
			return rc;
		}
		PQclear(res);
		void *old;
		if (stmtcache_put(&c->stmts, sql, (void *)id, &old))
			deallocate(c, (uintptr_t)old);
	}
	snprintf(name, sizeof(name), "s%u", (unsigned)id);
	for (int i = 0; i < np; i++) {
		switch (p[i].type) {
		case DB_TEXT:
			values[i] = p[i].text;
			break;
		case DB_INT:
			snprintf(nums[i], sizeof(nums[i]), "%" PRId64, p[i].i);
			values[i] = nums[i];
			break;
		default:
			values[i] = NULL;
		}
	}
	PGresult *res = PQexecPrepared(c->pg, name, np, values, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(res);
	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
		int rc = result_fail(c, res, "query", err);
		PQclear(res);
		return rc;
	}
	if (!out) {
		PQclear(res);
		return 0;
	}
	/* Hand the result to the arena; values point into it. */
	arena_defer(a, pqclear, res);
	int nrows = PQntuples(res), ncols = PQnfields(res);
	out->nrows = nrows;
	out->ncols = ncols;
	out->vals = arena_alloc(a, sizeof(char *) * (size_t)(nrows * ncols + 1));
	for (int r = 0; r < nrows; r++)
		for (int j = 0; j < ncols; j++)
			out->vals[r * ncols + j] =
			    PQgetisnull(res, r, j) ? NULL : PQgetvalue(res, r, j);
	const char *aff = PQcmdTuples(res);
	out->affected = aff && *aff ? strtoll(aff, NULL, 10) : 0;
	return 0;
}

/* A statement that may run twice: BEGIN, or a read (issued outside a transaction). */
static bool retryable(const char *sql)
{
	return !strcmp(sql, "BEGIN") || !strncmp(sql, "SELECT ", 7);
}

static int query(struct db_conn *base, struct arena *a, const char *sql, const struct db_param *p,
		 int np, struct db_rows *out, struct error *err)
{
	struct pg_conn *c = (struct pg_conn *)base;
	int rc;

	if (base->tx_depth > 0) {
		/* The transaction died with its session: nothing to retry here. */
		if (c->broken || PQstatus(c->pg) != CONNECTION_OK) {
			c->broken = true;
			return error_set(
			    err, ERR_UNAVAILABLE,
			    "postgres query: the connection was lost in a transaction");
		}
		return run(c, a, sql, p, np, out, err);
	}
	if (!alive(c) && (rc = reset(c, err)) < 0)
		return rc;
	rc = run(c, a, sql, p, np, out, err);
	/*
	 * The session died while the statement was on its way (the server went down just now).
	 * Run again on a fresh session only what cannot change anything twice.
	 */
	if (rc == -ERR_UNAVAILABLE && c->broken && retryable(sql)) {
		if ((rc = reset(c, err)) < 0)
			return rc;
		rc = run(c, a, sql, p, np, out, err);
	}
	return rc;
}

static int exec_script(struct db_conn *base, const char *sql, struct error *err)
{
	struct pg_conn *c = (struct pg_conn *)base;
	PGresult *res = PQexec(c->pg, sql);
	int rc = 0;
	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
		rc = result_fail(c, res, "script", err);
	PQclear(res);
	return rc;
}

static int begin(struct db_conn *base, bool write, struct error *err)
{
	(void)write; /* row locks taken by the statements themselves serialise writers */
	int rc = query(base, NULL, "BEGIN", NULL, 0, NULL, err);
	if (rc == 0)
		base->tx_depth = 1;
	return rc;
}

static int commit(struct db_conn *base, struct error *err)
{
	int rc = query(base, NULL, "COMMIT", NULL, 0, NULL, err);
	base->tx_depth = 0;
	return rc;
}

static void rollback(struct db_conn *base)
{
	struct pg_conn *c = (struct pg_conn *)base;
	if (!c->broken && PQstatus(c->pg) == CONNECTION_OK &&
	    PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
		PGresult *res = PQexec(c->pg, "ROLLBACK");
		PQclear(res);
	}
	base->tx_depth = 0;
}

static int cached_statements(struct db_conn *base)
{
	return stmtcache_count(&((struct pg_conn *)base)->stmts);
}

static int migration_lock(struct db_conn *base, bool lock, struct error *err)
{
	return query(base, NULL,
		     lock ? "SELECT pg_advisory_lock(" PG_MIGRATION_LOCK_KEY ")"
			  : "SELECT pg_advisory_unlock(" PG_MIGRATION_LOCK_KEY ")",
		     NULL, 0, NULL, err);
}

const struct db_driver db_postgres_driver = {
    .name = "postgres",
    .dialect = DB_POSTGRES,
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
