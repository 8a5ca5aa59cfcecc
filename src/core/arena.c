/* arena.c — see arena.h. Chunks grow geometrically; large requests get a chunk of their own. */
#include "core/arena.h"
#include "core/xalloc.h"

#include <jansson.h>
#include <stdalign.h>
#include <stdio.h>
#include <string.h>

#define ARENA_FIRST_CHUNK 4096
#define ARENA_MAX_CHUNK	  (256 * 1024)

struct arena_chunk {
	struct arena_chunk *next;
	size_t size, used;
	alignas(max_align_t) unsigned char data[];
};

struct arena_cleanup {
	struct arena_cleanup *next;
	arena_cleanup_fn fn;
	void *p;
};

void arena_init(struct arena *a)
{
	memset(a, 0, sizeof(*a));
}

void arena_release(struct arena *a)
{
	while (a->cleanups) {
		struct arena_cleanup *c = a->cleanups;
		a->cleanups = c->next;
		c->fn(c->p);
	}
	while (a->chunk) {
		struct arena_chunk *c = a->chunk;
		a->chunk = c->next;
		free(c);
	}
	a->total = 0;
}

void *arena_alloc(struct arena *a, size_t n)
{
	const size_t align = alignof(max_align_t);
	size_t need = (n + align - 1) & ~(align - 1);
	struct arena_chunk *c = a->chunk;

	if (!c || c->size - c->used < need) {
		size_t size = c ? c->size * 2 : ARENA_FIRST_CHUNK;
		if (size > ARENA_MAX_CHUNK)
			size = ARENA_MAX_CHUNK;
		if (size < need)
			size = need;
		struct arena_chunk *nc = xmalloc(sizeof(*nc) + size);
		nc->size = size;
		nc->used = 0;
		/* A chunk made for one big object goes behind the current one, which keeps room. */
		if (c && size == need && c->size - c->used > 256) {
			nc->next = c->next;
			c->next = nc;
		} else {
			nc->next = c;
			a->chunk = nc;
		}
		a->total += size;
		c = nc;
	}
	void *p = c->data + c->used;
	c->used += need;
	memset(p, 0, n);
	return p;
}

char *arena_strndup(struct arena *a, const char *s, size_t n)
{
	char *p = arena_alloc(a, n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *arena_strdup(struct arena *a, const char *s)
{
	return s ? arena_strndup(a, s, strlen(s)) : NULL;
}

char *arena_vprintf(struct arena *a, const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	/* gcc's UBSan build cannot prove fmt is not NULL and fails -Wformat-truncation. */
	if (!fmt)
		fmt = "";
	int n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		n = 0;
	char *p = arena_alloc(a, (size_t)n + 1);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	return p;
}

char *arena_printf(struct arena *a, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *p = arena_vprintf(a, fmt, ap);
	va_end(ap);
	return p;
}

void arena_defer(struct arena *a, arena_cleanup_fn fn, void *p)
{
	struct arena_cleanup *c = arena_alloc(a, sizeof(*c));
	c->fn = fn;
	c->p = p;
	c->next = a->cleanups;
	a->cleanups = c;
}

static void json_cleanup(void *p)
{
	json_decref(p);
}

struct json_t *arena_json(struct arena *a, struct json_t *j)
{
	if (j)
		arena_defer(a, json_cleanup, j);
	return j;
}

char *arena_strdup_lower(struct arena *a, const char *s)
{
	char *out = arena_strdup(a, s);
	for (char *p = out; p && *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return out;
}
