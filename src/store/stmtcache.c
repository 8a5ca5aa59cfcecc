/* stmtcache.c — open addressing with linear probing; grows at 50 % load. */
#include "store/stmtcache.h"
#include "core/xalloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static size_t hash(const char *sql, size_t cap)
{
	uintptr_t x = (uintptr_t)sql;
	x ^= x >> 17;
	x *= 0x9E3779B97F4A7C15ull;
	return (size_t)(x >> 7) & (cap - 1);
}

void *stmtcache_get(const struct stmtcache *c, const char *sql)
{
	if (!c->cap)
		return NULL;
	for (size_t i = hash(sql, c->cap);; i = (i + 1) & (c->cap - 1)) {
		if (c->slots[i].sql == sql)
			return c->slots[i].handle;
		if (!c->slots[i].sql)
			return NULL;
	}
}

static void insert(struct stmtcache_entry *slots, size_t cap, const char *sql, void *handle)
{
	size_t i = hash(sql, cap);
	while (slots[i].sql && slots[i].sql != sql)
		i = (i + 1) & (cap - 1);
	slots[i].sql = sql;
	slots[i].handle = handle;
}

void stmtcache_put(struct stmtcache *c, const char *sql, void *handle)
{
	if ((c->count + 1) * 2 > c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;
		struct stmtcache_entry *slots = xcalloc(cap, sizeof(*slots));
		for (size_t i = 0; i < c->cap; i++)
			if (c->slots[i].sql)
				insert(slots, cap, c->slots[i].sql, c->slots[i].handle);
		free(c->slots);
		c->slots = slots;
		c->cap = cap;
	}
	insert(c->slots, c->cap, sql, handle);
	c->count++;
}

void stmtcache_clear(struct stmtcache *c, void (*fn)(void *handle))
{
	for (size_t i = 0; i < c->cap; i++) {
		if (c->slots[i].sql && fn)
			fn(c->slots[i].handle);
		c->slots[i].sql = NULL;
		c->slots[i].handle = NULL;
	}
	c->count = 0;
}

void stmtcache_release(struct stmtcache *c, void (*fn)(void *handle))
{
	stmtcache_clear(c, fn);
	free(c->slots);
	memset(c, 0, sizeof(*c));
}
