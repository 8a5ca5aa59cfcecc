/*
 * test_stmtcache.c — the per-connection statement cache: bounded at STMTCACHE_MAX, the least
 * recently used entry evicted and handed back, lookups by SQL text address.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>

#include "store/stmtcache.h"

/* Distinct addresses stand for distinct SQL texts. */
static char sql[3 * STMTCACHE_MAX];

static void *handle(int i)
{
	return (void *)(uintptr_t)(i + 1);
}

static void test_holds_up_to_its_bound_without_evicting(void **state)
{
	(void)state;
	struct stmtcache c = {0};
	void *evicted = NULL;
	assert_null(stmtcache_get(&c, &sql[0]));
	for (int i = 0; i < STMTCACHE_MAX; i++)
		assert_false(stmtcache_put(&c, &sql[i], handle(i), &evicted));
	assert_int_equal(stmtcache_count(&c), STMTCACHE_MAX);
	for (int i = 0; i < STMTCACHE_MAX; i++)
		assert_ptr_equal(stmtcache_get(&c, &sql[i]), handle(i));
	stmtcache_release(&c, NULL);
}

static void test_evicts_the_least_recently_used(void **state)
{
	(void)state;
	struct stmtcache c = {0};
	void *evicted = NULL;
	for (int i = 0; i < STMTCACHE_MAX; i++)
		stmtcache_put(&c, &sql[i], handle(i), &evicted);
	/* Using entry 0 makes entry 1 the least recently used. */
	assert_ptr_equal(stmtcache_get(&c, &sql[0]), handle(0));
	assert_true(stmtcache_put(&c, &sql[STMTCACHE_MAX], handle(STMTCACHE_MAX), &evicted));
	assert_ptr_equal(evicted, handle(1));
	assert_null(stmtcache_get(&c, &sql[1]));
	assert_ptr_equal(stmtcache_get(&c, &sql[0]), handle(0));
	assert_ptr_equal(stmtcache_get(&c, &sql[STMTCACHE_MAX]), handle(STMTCACHE_MAX));
	assert_int_equal(stmtcache_count(&c), STMTCACHE_MAX);
	stmtcache_release(&c, NULL);
}

static int released;
static void count_release(void *h)
{
	(void)h;
	released++;
}

static void test_many_more_texts_than_the_bound_stay_bounded(void **state)
{
	(void)state;
	struct stmtcache c = {0};
	int evictions = 0;
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 3 * STMTCACHE_MAX; i++) {
			void *evicted = NULL;
			if (stmtcache_get(&c, &sql[i]))
				continue;
			if (stmtcache_put(&c, &sql[i], handle(i), &evicted)) {
				evictions++;
				assert_non_null(evicted);
			}
			assert_true(stmtcache_count(&c) <= STMTCACHE_MAX);
		}
	}
	/* Cycling through three times the bound: every put after the first STMTCACHE_MAX
	 * evicts (the cycle always misses). */
	assert_int_equal(evictions, 6 * STMTCACHE_MAX - STMTCACHE_MAX);
	released = 0;
	stmtcache_clear(&c, count_release);
	assert_int_equal(released, STMTCACHE_MAX);
	assert_int_equal(stmtcache_count(&c), 0);
	assert_null(stmtcache_get(&c, &sql[3 * STMTCACHE_MAX - 1]));
	stmtcache_release(&c, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_holds_up_to_its_bound_without_evicting),
	    cmocka_unit_test(test_evicts_the_least_recently_used),
	    cmocka_unit_test(test_many_more_texts_than_the_bound_stay_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
