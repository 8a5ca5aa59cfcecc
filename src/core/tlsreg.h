/*
 * tlsreg.h — a per-thread registry: each thread that asks gets its own value (a database or
 * Redis connection), made lazily by the caller and remembered here; the value is closed when
 * its thread exits, and tlsreg_free() closes those of the threads still alive.
 *
 * Threading: tlsreg_get() and tlsreg_set() touch only the calling thread's entry and take no
 * lock on the hot path (a lookup is one pthread_getspecific). Registering a thread and a
 * thread exit take the registry's lock. tlsreg_free() is called once no thread uses the
 * registry any more: threads that used it may still be alive (idle), but none may be running
 * a call on it or exiting at that moment (stop and join the thread pools first).
 */
#ifndef TANDEM_CORE_TLSREG_H
#define TANDEM_CORE_TLSREG_H

struct tlsreg;

/* Closes (and frees) one thread's value; never called with NULL. */
typedef void (*tlsreg_close_fn)(void *value);

struct tlsreg *tlsreg_create(tlsreg_close_fn close);

/* Close every value still registered (any thread's, once each) and free the registry; a
 * thread that exits afterwards closes nothing. NULL is a no-op. */
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
