/*
 * stmtcache.c — a fixed array of STMTCACHE_MAX entries, found through hash chains of entry
 * indexes and kept in a doubly linked recency list; allocated on first use. Eviction reuses
 * the least recently used entry's slot, so nothing is allocated after the cache is full.
 */
#include "store/stmtcache.h"
#include "core/xalloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define STMTCACHE_BUCKETS 256 /* a power of two, twice STMTCACHE_MAX */

static size_t hash(const char *sql)
{
	uintptr_t x = (uintptr_t)sql;
	x ^= x >> 17;
	x *= 0x9E3779B97F4A7C15ull;
	return (size_t)(x >> 7) & (STMTCACHE_BUCKETS - 1);
}

static void unlink_recent(struct stmtcache *c, int i)
{
	struct stmtcache_entry *e = &c->entries[i];
	if (e->prev >= 0)
		c->entries[e->prev].next = e->next;
	else
		c->head = e->next;
	if (e->next >= 0)
		c->entries[e->next].prev = e->prev;
	else
		c->tail = e->prev;
}

static void push_recent(struct stmtcache *c, int i)
{
	struct stmtcache_entry *e = &c->entries[i];
	e->prev = -1;
	e->next = c->head;
	if (c->head >= 0)
		c->entries[c->head].prev = i;
	c->head = i;
	if (c->tail < 0)
		c->tail = i;
}

static void unlink_chain(struct stmtcache *c, int i)
{
	int *p = &c->buckets[hash(c->entries[i].sql)];
	while (*p != i)
		p = &c->entries[*p].chain;
	*p = c->entries[i].chain;
}

void *stmtcache_get(struct stmtcache *c, const char *sql)
{
	if (!c->entries)
		return NULL;
	for (int i = c->buckets[hash(sql)]; i >= 0; i = c->entries[i].chain) {
		if (c->entries[i].sql == sql) {
			if (c->head != i) {
				unlink_recent(c, i);
				push_recent(c, i);
			}
			return c->entries[i].handle;
		}
	}
	return NULL;
}

static void empty(struct stmtcache *c)
{
	memset(c->buckets, 0xff, sizeof(int) * STMTCACHE_BUCKETS); /* every head -1 */
	c->count = 0;
	c->head = c->tail = -1;
}

bool stmtcache_put(struct stmtcache *c, const char *sql, void *handle, void **evicted)
{
	bool full = false;
	int i;

	if (!c->entries) {
		c->entries = xcalloc(STMTCACHE_MAX, sizeof(*c->entries));
		c->buckets = xcalloc(STMTCACHE_BUCKETS, sizeof(*c->buckets));
		empty(c);
	}
	if (c->count < STMTCACHE_MAX) {
		i = c->count++;
	} else {
		i = c->tail;
		unlink_recent(c, i);
		unlink_chain(c, i);
		*evicted = c->entries[i].handle;
		full = true;
	}
	size_t b = hash(sql);
	c->entries[i].sql = sql;
	c->entries[i].handle = handle;
	c->entries[i].chain = c->buckets[b];
	c->buckets[b] = i;
	push_recent(c, i);
	return full;
}

int stmtcache_count(const struct stmtcache *c)
{
	return c->count;
}

void stmtcache_clear(struct stmtcache *c, void (*fn)(void *handle))
{
	if (!c->entries)
		return;
	for (int i = 0; i < c->count; i++)
		if (fn)
			fn(c->entries[i].handle);
	empty(c);
}

void stmtcache_release(struct stmtcache *c, void (*fn)(void *handle))
{
	stmtcache_clear(c, fn);
	free(c->entries);
	free(c->buckets);
	memset(c, 0, sizeof(*c));
}
