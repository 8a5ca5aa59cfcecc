/*
 * tlsreg.h — a per-thread registry: each thread that asks gets its own value (a database or
 * Redis connection), made lazily by the caller and remembered here; the value is closed when
 * its thread exits, and tlsreg_free() closes those of the threads still alive.
 *
 * Threading: tlsreg_get() and tlsreg_set() touch only the calling thread's entry and take no
 * lock on the hot path (a lookup is one pthread_getspecific). Registering a thread, a thread
 * exit and tlsreg_free() serialise on one process-wide mutex, so a thread that exits while
 * the registry is freed neither leaks its value nor touches freed memory. tlsreg_free() is
 * called once no thread uses the registry any more (after the thread pools have stopped).
 */
#ifndef TANDEM_CORE_TLSREG_H
#define TANDEM_CORE_TLSREG_H

struct tlsreg;

/* Closes (and frees) one thread's value; never called with NULL. */
typedef void (*tlsreg_close_fn)(void *value);

struct tlsreg *tlsreg_create(tlsreg_close_fn close);

/* Close every value still registered (any thread's) and free the registry. NULL is a no-op. */
void tlsreg_free(struct tlsreg *reg);

/* The calling thread's value, or NULL when it has none yet. */
void *tlsreg_get(struct tlsreg *reg);

/*
 * Make `value` the calling thread's value; the registry closes it at thread exit or in
 * tlsreg_free(). A value already set is replaced without being closed (the caller closed it
 * or still holds it); NULL forgets the value the same way.
 */
void tlsreg_set(struct tlsreg *reg, void *value);

#endif
