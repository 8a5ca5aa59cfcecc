/*
 * test_arena.c — the request arena: many and big allocations, alignment, zeroing, string
 * helpers, cleanups run once in reverse order, JSON ownership, and reuse after release.
 * Leaks and overruns are what the sanitizer build of this test is for.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"

static int setup(void **state)
{
	struct arena *a = malloc(sizeof(*a));
	if (!a)
		return -1;
	arena_init(a);
	*state = a;
	return 0;
}

static int teardown(void **state)
{
	arena_release(*state);
	free(*state);
	return 0;
}

static void test_many_small_allocations_are_distinct_and_keep_their_contents(void **state)
{
	struct arena *a = *state;
	enum { N = 100000 };
	uint32_t **p = malloc(sizeof(*p) * N);
	assert_non_null(p);
	for (uint32_t i = 0; i < N; i++) {
		p[i] = arena_alloc(a, sizeof(uint32_t) * (1 + i % 7));
		p[i][0] = i;
		p[i][i % 7] = ~i;
	}
	for (uint32_t i = 0; i < N; i++) {
		if (i % 7)
			assert_int_equal(p[i][0], i);
		assert_int_equal(p[i][i % 7], ~i);
	}
	free(p);
}

static void test_allocations_are_aligned_for_any_type(void **state)
{
	struct arena *a = *state;
	for (size_t n = 0; n < 300; n++) {
		void *p = arena_alloc(a, n);
		assert_non_null(p);
		assert_int_equal((uintptr_t)p % alignof(max_align_t), 0);
	}
	void *big = arena_alloc(a, 1 << 20);
	assert_int_equal((uintptr_t)big % alignof(max_align_t), 0);
	void *after = arena_alloc(a, 3);
	assert_int_equal((uintptr_t)after % alignof(max_align_t), 0);
}

static void test_allocations_are_zeroed(void **state)
{
	struct arena *a = *state;
	for (size_t n = 1; n < 5000; n += 97) {
		unsigned char *p = arena_alloc(a, n);
		for (size_t i = 0; i < n; i++)
			assert_int_equal(p[i], 0);
		memset(p, 0xa5, n); /* dirty it for the next round */
	}
}

static void test_zero_byte_allocation_is_not_null(void **state)
{
	struct arena *a = *state;
	assert_non_null(arena_alloc(a, 0));
}

static void test_big_allocations_are_usable_and_leave_earlier_data_intact(void **state)
{
	struct arena *a = *state;
	char *small = arena_strdup(a, "before");
	size_t sizes[] = {4096, 256 * 1024, 256 * 1024 + 1, 1 << 20, 16 << 20};
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		unsigned char *p = arena_alloc(a, sizes[i]);
		assert_int_equal(p[0], 0);
		assert_int_equal(p[sizes[i] - 1], 0);
		memset(p, (int)i + 1, sizes[i]);
		char *s = arena_strdup(a, "after");
		assert_string_equal(s, "after");
		assert_int_equal(p[sizes[i] - 1], i + 1); /* the small one did not land inside */
	}
	assert_string_equal(small, "before");
	assert_true(a->total >= (16u << 20) + (1u << 20));
}

static void test_strdup_and_strndup_copy(void **state)
{
	struct arena *a = *state;
	char src[] = "hello world";
	char *d = arena_strdup(a, src);
	char *n = arena_strndup(a, src, 5);
	src[0] = 'X';
	assert_string_equal(d, "hello world");
	assert_string_equal(n, "hello");
	assert_null(arena_strdup(a, NULL));
	assert_string_equal(arena_strndup(a, "abc", 0), "");
}

static void test_printf_formats_short_and_long_strings(void **state)
{
	struct arena *a = *state;
	assert_string_equal(arena_printf(a, "%s-%d-%05.1f", "x", 42, 3.14159), "x-42-003.1");
	char *big = arena_printf(a, "%*s|", 100000, "end");
	assert_int_equal(strlen(big), 100001);
	assert_string_equal(big + 99997, "end|");
}

static int order[16], norder;

static void record(void *p)
{
	order[norder++] = (int)(intptr_t)p;
}

static void test_cleanups_run_in_reverse_order_of_registration(void **state)
{
	struct arena *a = *state;
	norder = 0;
	for (int i = 1; i <= 5; i++) {
		arena_defer(a, record, (void *)(intptr_t)i);
		arena_alloc(a, 10000); /* spread the registrations over several chunks */
	}
	assert_int_equal(norder, 0);
	arena_release(a);
	assert_int_equal(norder, 5);
	for (int i = 0; i < 5; i++)
		assert_int_equal(order[i], 5 - i);
}

static void test_cleanups_run_once(void **state)
{
	struct arena *a = *state;
	norder = 0;
	arena_defer(a, record, (void *)1);
	arena_release(a);
	arena_release(a);
	assert_int_equal(norder, 1);
}

static void test_arena_json_decrefs_at_release(void **state)
{
	struct arena *a = *state;
	json_t *j = json_pack("{s:i}", "a", 1);
	json_incref(j); /* keep it alive to observe the count */
	assert_ptr_equal(arena_json(a, j), j);
	assert_int_equal(j->refcount, 2);
	arena_release(a);
	assert_int_equal(j->refcount, 1);
	json_decref(j);
	assert_null(arena_json(a, NULL));
}

static void test_arena_is_reusable_after_release(void **state)
{
	struct arena *a = *state;
	for (int round = 0; round < 3; round++) {
		norder = 0;
		for (int i = 0; i < 1000; i++)
			arena_printf(a, "round %d item %d", round, i);
		arena_defer(a, record, (void *)(intptr_t)(round + 1));
		char *s = arena_strdup(a, "still works");
		assert_string_equal(s, "still works");
		assert_true(a->total > 0);
		arena_release(a);
		assert_int_equal(a->total, 0);
		assert_null(a->chunk);
		assert_null(a->cleanups);
		assert_int_equal(norder, 1);
		assert_int_equal(order[0], round + 1);
	}
}

static void test_release_of_an_unused_arena_is_harmless(void **state)
{
	struct arena a;
	arena_init(&a);
	arena_release(&a);
	arena_release(&a);
	assert_int_equal(a.total, 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_many_small_allocations_are_distinct_and_keep_their_contents),
	    T(test_allocations_are_aligned_for_any_type),
	    T(test_allocations_are_zeroed),
	    T(test_zero_byte_allocation_is_not_null),
	    T(test_big_allocations_are_usable_and_leave_earlier_data_intact),
	    T(test_strdup_and_strndup_copy),
	    T(test_printf_formats_short_and_long_strings),
	    T(test_cleanups_run_in_reverse_order_of_registration),
	    T(test_cleanups_run_once),
	    T(test_arena_json_decrefs_at_release),
	    T(test_arena_is_reusable_after_release),
	    T(test_release_of_an_unused_arena_is_harmless),
	};
#undef T
	return cmocka_run_group_tests_name("core/arena", tests, NULL, NULL);
}
