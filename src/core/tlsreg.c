/*
 * tlsreg.c — see tlsreg.h. Each thread's entry is a slot on a doubly linked list of the
 * registry; the slot is the pthread key's value, so the key destructor finds it at thread
 * exit. tlsreg_free() closes the values and detaches the slots of threads still alive
 * without freeing them: such a thread may be running its key destructor at that very moment,
 * and the destructor frees its own detached slot.
 */
#include "core/tlsreg.h"
#include "core/xalloc.h"

#include <pthread.h>
#include <stdlib.h>

struct slot {
	struct slot *next, *prev;
	struct tlsreg *reg; /* NULL once detached by tlsreg_free() */
	void *value;
};

struct tlsreg {
	pthread_key_t key;
	tlsreg_close_fn close;
	struct slot *slots;
};

/* Guards every registry's list and every slot's reg: registering, thread exit and free are
 * rare (once per thread), so one lock for all costs nothing and makes the exit/free race
 * simple to reason about. */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;

static void unlink_locked(struct slot *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		s->reg->slots = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->next = s->prev = NULL;
	s->reg = NULL;
}

static void thread_exit(void *p)
{
	struct slot *s = p;
	tlsreg_close_fn close = NULL;
	void *value = NULL;

	pthread_mutex_lock(&registry_lock);
	if (s->reg) {
		close = s->reg->close;
		value = s->value;
		unlink_locked(s);
	}
	s->value = NULL;
	pthread_mutex_unlock(&registry_lock);
	if (value)
		close(value);
	free(s);
}

struct tlsreg *tlsreg_create(tlsreg_close_fn close)
{
	struct tlsreg *reg = xcalloc(1, sizeof(*reg));
	reg->close = close;
	if (pthread_key_create(&reg->key, thread_exit) != 0)
		abort();
	return reg;
}

void tlsreg_free(struct tlsreg *reg)
{
	if (!reg)
		return;
	/* The calling thread's slot is freed here: after pthread_key_delete() no destructor
	 * will run for it. */
	struct slot *mine = pthread_getspecific(reg->key);
	pthread_setspecific(reg->key, NULL);
	pthread_mutex_lock(&registry_lock);
	while (reg->slots) {
		struct slot *s = reg->slots;
		if (s->value)
			reg->close(s->value);
		s->value = NULL;
		unlink_locked(s);
	}
	pthread_key_delete(reg->key);
	pthread_mutex_unlock(&registry_lock);
	free(mine);
	free(reg);
}

void *tlsreg_get(struct tlsreg *reg)
{
	struct slot *s = pthread_getspecific(reg->key);
	return s ? s->value : NULL;
}

void tlsreg_set(struct tlsreg *reg, void *value)
{
	struct slot *s = pthread_getspecific(reg->key);
	if (s) {
		/* Only tlsreg_free() reads another thread's value, and it runs when no thread
		 * uses the registry: no lock needed to change our own. */
		s->value = value;
		return;
	}
	if (!value)
		return;
	s = xcalloc(1, sizeof(*s));
	s->value = value;
	pthread_mutex_lock(&registry_lock);
	s->reg = reg;
	s->next = reg->slots;
	if (reg->slots)
		reg->slots->prev = s;
	reg->slots = s;
	pthread_mutex_unlock(&registry_lock);
	pthread_setspecific(reg->key, s);
}
