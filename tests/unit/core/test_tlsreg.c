/*
 * test_tlsreg.c — the per-thread registry under the store's and Redis's connections: each
 * thread sees only its own value, a value is closed exactly once — when its thread exits, or
 * by tlsreg_free() for threads still alive (and the calling thread) — and a thread that
 * exits after the registry was freed closes nothing twice.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "core/tlsreg.h"

#define NVALUES 8

/* A value is an index into closes[]: how many times it was closed. */
static atomic_int closes[NVALUES];
static int values[NVALUES] = {0, 1, 2, 3, 4, 5, 6, 7};

static void close_value(void *v)
{
	atomic_fetch_add(&closes[*(int *)v], 1);
}

static int reset(void **state)
{
	for (int i = 0; i < NVALUES; i++)
		atomic_store(&closes[i], 0);
	return 0;
}

struct worker {
	struct tlsreg *reg;
	int value;
	pthread_barrier_t *set, *go; /* NULL: do not wait */
	void *seen_before, *seen_after;
};

static void *work(void *p)
{
	struct worker *w = p;
	w->seen_before = tlsreg_get(w->reg);
	tlsreg_set(w->reg, &values[w->value]);
	w->seen_after = tlsreg_get(w->reg);
	if (w->set)
		pthread_barrier_wait(w->set);
	if (w->go)
		pthread_barrier_wait(w->go);
	return NULL;
}

static void each_thread_sees_its_own_value(void **state)
{
	struct tlsreg *reg = tlsreg_create(close_value);
	pthread_barrier_t set;
	pthread_barrier_init(&set, NULL, 4);
	struct worker w[3];
	pthread_t t[3];
	assert_null(tlsreg_get(reg));
	tlsreg_set(reg, &values[0]);
	for (int i = 0; i < 3; i++) {
		w[i] = (struct worker){.reg = reg, .value = i + 1, .set = &set};
		assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
	}
	pthread_barrier_wait(&set); /* every worker has set its value and still runs */
	assert_ptr_equal(tlsreg_get(reg), &values[0]);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < 3; i++) {
		assert_null(w[i].seen_before);
		assert_ptr_equal(w[i].seen_after, &values[i + 1]);
	}
	pthread_barrier_destroy(&set);
	tlsreg_free(reg);
}

static void value_is_closed_when_its_thread_exits(void **state)
{
	struct tlsreg *reg = tlsreg_create(close_value);
	struct worker w = {.reg = reg, .value = 1};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, work, &w), 0);
	pthread_join(t, NULL);
	assert_int_equal(atomic_load(&closes[1]), 1);
	tlsreg_free(reg);
	assert_int_equal(atomic_load(&closes[1]), 1); /* not twice */
}

static void free_closes_the_values_of_live_threads_once(void **state)
{
	struct tlsreg *reg = tlsreg_create(close_value);
	pthread_barrier_t set, go;
	pthread_barrier_init(&set, NULL, 3);
	pthread_barrier_init(&go, NULL, 3);
	struct worker w[2];
	pthread_t t[2];
	for (int i = 0; i < 2; i++) {
		w[i] = (struct worker){.reg = reg, .value = i + 1, .set = &set, .go = &go};
		assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
	}
	pthread_barrier_wait(&set);
	tlsreg_set(reg, &values[0]);
	tlsreg_free(reg); /* both workers are alive, waiting on `go` */
	for (int i = 0; i < 3; i++)
		assert_int_equal(atomic_load(&closes[i]), 1);
	pthread_barrier_wait(&go); /* now they exit: nothing is closed again */
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < 3; i++)
		assert_int_equal(atomic_load(&closes[i]), 1);
	pthread_barrier_destroy(&set);
	pthread_barrier_destroy(&go);
}

static void set_replaces_without_closing(void **state)
{
	struct tlsreg *reg = tlsreg_create(close_value);
	tlsreg_set(reg, &values[1]);
	tlsreg_set(reg, &values[2]);
	assert_ptr_equal(tlsreg_get(reg), &values[2]);
	assert_int_equal(atomic_load(&closes[1]), 0);
	tlsreg_set(reg, NULL);
	assert_null(tlsreg_get(reg));
	tlsreg_free(reg);
	assert_int_equal(atomic_load(&closes[1]), 0);
	assert_int_equal(atomic_load(&closes[2]), 0);
}

static void registries_are_independent(void **state)
{
	struct tlsreg *a = tlsreg_create(close_value), *b = tlsreg_create(close_value);
	tlsreg_set(a, &values[1]);
	assert_null(tlsreg_get(b));
	tlsreg_set(b, &values[2]);
	tlsreg_free(a);
	assert_int_equal(atomic_load(&closes[1]), 1);
	assert_int_equal(atomic_load(&closes[2]), 0);
	assert_ptr_equal(tlsreg_get(b), &values[2]);
	tlsreg_free(b);
	assert_int_equal(atomic_load(&closes[2]), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(each_thread_sees_its_own_value, reset),
	    cmocka_unit_test_setup(value_is_closed_when_its_thread_exits, reset),
	    cmocka_unit_test_setup(free_closes_the_values_of_live_threads_once, reset),
	    cmocka_unit_test_setup(set_replaces_without_closing, reset),
	    cmocka_unit_test_setup(registries_are_independent, reset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
