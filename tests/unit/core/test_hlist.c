/*
 * test_hlist.c — the header-list walker: elements in order, trimmed of spaces and tabs, empty
 * ones skipped (RFC 9110 §5.6.1), NULL as an empty list, and the stop a callback asks for.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "core/hlist.h"

struct seen {
	char joined[256];
	int n, stop_after;
};

static bool collect(const char *s, size_t len, void *cls)
{
	struct seen *w = cls;
	size_t used = strlen(w->joined);
	snprintf(w->joined + used, sizeof(w->joined) - used, "[%.*s]", (int)len, s);
	return ++w->n != w->stop_after;
}

static const char *walk(const char *h, struct seen *w)
{
	memset(w->joined, 0, sizeof(w->joined));
	w->n = 0;
	hlist_each(h, collect, w);
	return w->joined;
}

static void test_elements_are_trimmed_and_empty_ones_skipped(void **state)
{
	(void)state;
	struct seen w = {.stop_after = -1};
	assert_string_equal(walk("\"1\", W/\"2\"", &w), "[\"1\"][W/\"2\"]");
	assert_string_equal(walk(" \t a ,\t b\t, , ,c,", &w), "[a][b][c]");
	assert_string_equal(walk("keep-alive, Upgrade", &w), "[keep-alive][Upgrade]");
	assert_string_equal(walk("a b, c", &w), "[a b][c]"); /* spaces inside an element stay */
	assert_string_equal(walk("", &w), "");
	assert_string_equal(walk(" , ,\t", &w), "");
	assert_string_equal(walk(NULL, &w), "");
}

static void test_a_callback_stops_the_walk(void **state)
{
	(void)state;
	struct seen w = {.stop_after = 2};
	memset(w.joined, 0, sizeof(w.joined));
	assert_false(hlist_each("a, b, c", collect, &w));
	assert_string_equal(w.joined, "[a][b]");
	w = (struct seen){.stop_after = -1};
	assert_true(hlist_each("a, b, c", collect, &w));
	assert_int_equal(w.n, 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_elements_are_trimmed_and_empty_ones_skipped),
	    cmocka_unit_test(test_a_callback_stops_the_walk),
	};
	return cmocka_run_group_tests_name("core/hlist", tests, NULL, NULL);
}
