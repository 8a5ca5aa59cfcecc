/*
 * stmtcache.h — a per-connection map from SQL text address to a prepared statement handle.
 * Both drivers cache by pointer identity: SQL given to db_query() lives for the process.
 * Not thread-safe (a connection is used by one thread at a time).
 */
#ifndef TANDEM_STORE_STMTCACHE_H
#define TANDEM_STORE_STMTCACHE_H

#include <stddef.h>

struct stmtcache_entry {
	const char *sql;
	void *handle;
};

struct stmtcache {
	struct stmtcache_entry *slots;
	size_t cap, count;
};

void *stmtcache_get(const struct stmtcache *c, const char *sql);
void stmtcache_put(struct stmtcache *c, const char *sql, void *handle);
/* Call fn on every handle, then empty the cache (keeps its memory). */
void stmtcache_clear(struct stmtcache *c, void (*fn)(void *handle));
void stmtcache_release(struct stmtcache *c, void (*fn)(void *handle));

#endif
