/*
 * store.c — the store object: picks the backend from the URL, hands each thread its own
 * connection (core/tlsreg: made on first use, closed when the thread exits or, for threads
 * still alive, by store_free()), pings and migrates.
 */
#include "store/store.h"
#include "core/arena.h"
#include "core/error.h"
#include "core/log.h"
#include "core/redact.h"
#include "core/timeutil.h"
#include "core/tlsreg.h"
#include "core/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct store {
	const struct db_driver *driver;
	char *url;
	struct tlsreg *conns; /* each thread's struct db_conn */
	struct db_backoff backoff;
};

static void conn_close(void *conn)
{
	struct db_conn *c = conn;
	c->driver->disconnect(c);
}

int store_create(const char *url, struct store **out, struct error *err)
{
	const struct db_driver *driver;
	const char *target = url;
	char shown[512];

	if (!strncmp(url, "sqlite://", 9)) {
		driver = &db_sqlite_driver;
		target = url + 9;
	} else if (!strncmp(url, "sqlite:", 7)) {
		driver = &db_sqlite_driver;
		target = url + 7;
	} else if (!strncmp(url, "postgres://", 11) || !strncmp(url, "postgresql://", 13) ||
		   strchr(url, '=')) {
		driver = &db_postgres_driver;
	} else {
		redact_url(url, shown, sizeof(shown)); /* errors reach logs: no password */
		return error_set(err, ERR_BAD_REQUEST, "unsupported database url \"%s\"", shown);
	}
	if (!*target) {
		redact_url(url, shown, sizeof(shown));
		return error_set(err, ERR_BAD_REQUEST, "database url \"%s\" names no database",
				 shown);
	}

	struct store *s = xcalloc(1, sizeof(*s));
	s->driver = driver;
	s->url = xstrdup(target);
	s->conns = tlsreg_create(conn_close);
	*out = s;
	return 0;
}

void store_free(struct store *s)
{
	if (!s)
		return;
	tlsreg_free(s->conns);
	free(s->url);
	free(s);
}

enum db_dialect store_dialect(const struct store *s)
{
	return s->driver->dialect;
}

const char *store_backend_name(const struct store *s)
{
	return s->driver->name;
}

struct db_conn *store_conn(struct store *s, struct error *err)
{
	struct db_conn *c = tlsreg_get(s->conns);
	if (c)
		return c;
	if (s->driver->connect(s->url, &s->backoff, &c, err) < 0)
		return NULL;
	tlsreg_set(s->conns, c);
	return c;
}

int store_ping(struct store *s, struct error *err)
{
	struct arena a;
	struct db_rows rows;
	struct db_conn *c = store_conn(s, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	arena_init(&a);
	int rc = db_query(c, &a, "SELECT 1", NULL, 0, &rows, err);
	arena_release(&a);
	if (rc < 0) {
		/* Keep the driver's detail as it is: formatting err->detail into itself would
		 * overlap source and destination. */
		if (err)
			err->kind = ERR_UNAVAILABLE;
		return -ERR_UNAVAILABLE;
	}
	return 0;
}

static const char *MIGRATIONS_TABLE =
    "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, "
    "name TEXT NOT NULL, applied_at BIGINT NOT NULL)";

int store_migrate(struct store *s, int *applied, struct error *err)
{
	struct arena a;
	struct db_rows rows;
	int rc, count, done = 0;
	const struct migration *m = migrations_for(s->driver->dialect, &count);
	struct db_conn *c = store_conn(s, err);

	if (!c)
		return -ERR_UNAVAILABLE;
	arena_init(&a);
	if ((rc = s->driver->migration_lock(c, true, err)) < 0)
		goto out;
	if ((rc = db_exec(c, MIGRATIONS_TABLE, NULL, 0, err)) < 0)
		goto unlock;
	for (int i = 0; i < count; i++) {
		struct db_param p[] = {DB_INT(m[i].version)};
		/* Checked inside the write transaction: another process may have just applied it.
		 */
		if ((rc = db_begin(c, true, err)) < 0)
			goto unlock;
		if ((rc = db_query(c, &a, "SELECT 1 FROM schema_migrations WHERE version = $1", p,
				   1, &rows, err)) < 0) {
			db_rollback(c);
			goto unlock;
		}
		if (rows.nrows > 0) {
			db_rollback(c);
			continue;
		}
		if ((rc = c->driver->exec_script(c, m[i].sql, err)) < 0) {
			/* A copy: err->detail cannot be both the source and the destination. */
			char why[sizeof(err->detail)] = "";
			if (err)
				snprintf(why, sizeof(why), "%s", err->detail);
			db_rollback(c);
			error_set(err, -rc, "migration %04d_%s failed: %s", m[i].version, m[i].name,
				  why);
			goto unlock;
		}
		struct db_param ins[] = {DB_INT(m[i].version), DB_TEXT(m[i].name),
					 DB_INT(time_now_ms())};
		if ((rc = db_exec(c,
				  "INSERT INTO schema_migrations (version, name, applied_at) "
				  "VALUES ($1, $2, $3)",
				  ins, 3, err)) < 0) {
			db_rollback(c);
			goto unlock;
		}
		if ((rc = db_commit(c, err)) < 0)
			goto unlock;
		log_info("applied migration %04d_%s", m[i].version, m[i].name);
		done++;
	}
unlock:
	s->driver->migration_lock(c, false, NULL);
out:
	arena_release(&a);
	if (applied)
		*applied = done;
	return rc < 0 ? rc : 0;
}
