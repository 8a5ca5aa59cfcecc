/*
 * store.h — the storage interface the services use. It knows nothing of HTTP.
 *
 * A struct store is created once per process for one database URL and shared by every
 * thread. Each thread that uses it gets its own connection, opened lazily on first use and
 * closed when the thread exits or the store is freed, so requests never wait on a pool lock.
 */
#ifndef TANDEM_STORE_STORE_H
#define TANDEM_STORE_STORE_H

#include <stdbool.h>

#include "store/db.h"

struct error;
struct store;

/*
 * Create a store for `url`: "sqlite:PATH" (or "sqlite://PATH") selects SQLite; "postgres://",
 * "postgresql://" or a libpq key=value string selects PostgreSQL. Nothing is connected yet.
 * Returns 0 or -ERR_BAD_REQUEST for an unusable URL.
 */
int store_create(const char *url, struct store **out, struct error *err);
/* Close every connection and free the store. Call after all worker threads stopped. */
void store_free(struct store *s);

enum db_dialect store_dialect(const struct store *s);
const char *store_backend_name(const struct store *s);

/*
 * The calling thread's connection, connecting on first use. Returns NULL with
 * -ERR_UNAVAILABLE in err when the database cannot be reached.
 */
struct db_conn *store_conn(struct store *s, struct error *err);

/* A cheap round trip (SELECT 1); 0 or -ERR_UNAVAILABLE. Reconnects when it must. */
int store_ping(struct store *s, struct error *err);

/*
 * Apply pending migrations in order, each in its own transaction, recorded in
 * schema_migrations. Safe when several processes start at once: they serialise on a lock
 * and the later ones find nothing left to do. *applied (may be NULL) counts what ran.
 */
int store_migrate(struct store *s, int *applied, struct error *err);

/* One embedded migration: its number, name and SQL for a dialect. */
struct migration {
	int version;
	const char *name;
	const char *sql;
};
/* The migrations built into the binary for a dialect, ascending by version. */
const struct migration *migrations_for(enum db_dialect d, int *count);

#endif
