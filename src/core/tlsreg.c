/*
 * tlsreg.c — see tlsreg.h. Each thread's entry is a slot on a doubly linked list of the
 * registry; the slot is the pthread key's value, so the key destructor finds it at thread
 * exit and unlinks it. tlsreg_free() closes and frees every slot still listed: after
 * pthread_key_delete() no destructor runs for them, so threads still alive leave nothing
 * behind.
 */
#include "core/tlsreg.h"
#include "core/xalloc.h"

#include <pthread.h>
#include <stdlib.h>

struct slot {
	struct slot *next, *prev;
	struct tlsreg *reg;
	void *value;
};

struct tlsreg {
	pthread_key_t key;
	tlsreg_close_fn close;
	pthread_mutex_t lock; /* slots, and every slot's next/prev */
	struct slot *slots;
};

static void unlink_locked(struct tlsreg *reg, struct slot *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		reg->slots = s->next;
	if (s->next)
		s->next->prev = s->prev;
}

static void thread_exit(void *p)
{
	struct slot *s = p;
	struct tlsreg *reg = s->reg;

	pthread_mutex_lock(&reg->lock);
	unlink_locked(reg, s);
	pthread_mutex_unlock(&reg->lock);
	if (s->value)
		reg->close(s->value);
	free(s);
}

struct tlsreg *tlsreg_create(tlsreg_close_fn close)
{
	struct tlsreg *reg = xcalloc(1, sizeof(*reg));
	reg->close = close;
	pthread_mutex_init(&reg->lock, NULL);
	if (pthread_key_create(&reg->key, thread_exit) != 0)
		abort();
	return reg;
}

void tlsreg_free(struct tlsreg *reg)
{
	if (!reg)
		return;
	pthread_key_delete(reg->key);
	/* No thread uses the registry now (see tlsreg.h): no lock needed to empty it. */
	while (reg->slots) {
		struct slot *s = reg->slots;
		reg->slots = s->next;
		if (s->value)
			reg->close(s->value);
		free(s);
	}
	pthread_mutex_destroy(&reg->lock);
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
		/* Only this thread and tlsreg_free() (when no thread uses the registry) read it. */
		s->value = value;
		return;
	}
	if (!value)
		return;
	s = xcalloc(1, sizeof(*s));
	s->reg = reg;
	s->value = value;
	pthread_mutex_lock(&reg->lock);
	s->next = reg->slots;
	if (reg->slots)
		reg->slots->prev = s;
	reg->slots = s;
	pthread_mutex_unlock(&reg->lock);
	pthread_setspecific(reg->key, s);
}
