/*
 * arena.h — a bump allocator that owns everything one request (or one task) allocates.
 *
 * Memory comes from chunks that are freed together by arena_release(). Non-memory
 * resources (a json_t, a PGresult) register a cleanup that runs, last registered first,
 * at release. An arena is used by one thread at a time.
 */
#ifndef TANDEM_CORE_ARENA_H
#define TANDEM_CORE_ARENA_H

#include <stdarg.h>
#include <stddef.h>

struct arena_chunk;
struct arena_cleanup;

struct arena {
	struct arena_chunk *chunk;
	struct arena_cleanup *cleanups;
	size_t total;
};

typedef void (*arena_cleanup_fn)(void *);

void arena_init(struct arena *a);
/* Run the cleanups and free every chunk; the arena can be used again afterwards. */
void arena_release(struct arena *a);

/* Zeroed memory, aligned for any type, owned by the arena. Never NULL. */
void *arena_alloc(struct arena *a, size_t n);
char *arena_strdup(struct arena *a, const char *s);
char *arena_strndup(struct arena *a, const char *s, size_t n);
/* A copy of s with ASCII letters lower-cased (logins, e-mail addresses, search words). */
char *arena_strdup_lower(struct arena *a, const char *s);
char *arena_printf(struct arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *arena_vprintf(struct arena *a, const char *fmt, va_list ap);

/* Call fn(p) at release. */
void arena_defer(struct arena *a, arena_cleanup_fn fn, void *p);

/* Take ownership of a new json_t: it is decref'd at release. Returns j. */
struct json_t;
struct json_t *arena_json(struct arena *a, struct json_t *j);

#endif
