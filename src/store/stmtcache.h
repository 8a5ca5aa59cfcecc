/*
 * stmtcache.h — a per-connection map from SQL text address to a prepared statement handle,
 * bounded: at most STMTCACHE_MAX entries, the least recently used one evicted to make room
 * (handed back to the caller, who finalizes or deallocates it). Both drivers cache by pointer
 * identity: SQL given to db_query() lives for the process. A zeroed struct is an empty cache.
 * Not thread-safe (a connection is used by one thread at a time).
 */
#ifndef TANDEM_STORE_STMTCACHE_H
#define TANDEM_STORE_STMTCACHE_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Statements kept per connection. The server's own statements are about 80 (each SQL literal
 * of store/), list queries add their shapes (store/query.h): the working set fits, and a
 * client cycling through filter and sort combinations costs evictions, not memory (on
 * PostgreSQL every cached statement also lives in the server's backend).
 */
#define STMTCACHE_MAX 128

struct stmtcache_entry {
	const char *sql;
	void *handle;
	int chain;	/* next entry in the same hash bucket, -1 at the end */
	int prev, next; /* recency list: prev is more recent */
};

struct stmtcache {
	struct stmtcache_entry *entries; /* STMTCACHE_MAX, the first `count` in use */
	int *buckets;			 /* STMTCACHE_BUCKETS heads, -1 when empty */
	int count;
	int head, tail; /* most and least recently used */
};

/* The handle cached for sql (and it becomes the most recently used), or NULL. */
void *stmtcache_get(struct stmtcache *c, const char *sql);
/*
 * Cache handle for sql (not cached yet). When the cache is full the least recently used entry
 * makes room: returns true and sets *evicted to its handle, for the caller to release.
 */
bool stmtcache_put(struct stmtcache *c, const char *sql, void *handle, void **evicted);
/* Number of cached statements. */
int stmtcache_count(const struct stmtcache *c);
/* Call fn (may be NULL) on every handle, then empty the cache (keeps its memory). */
void stmtcache_clear(struct stmtcache *c, void (*fn)(void *handle));
void stmtcache_release(struct stmtcache *c, void (*fn)(void *handle));

#endif
