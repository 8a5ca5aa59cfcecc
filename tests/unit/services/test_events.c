/*
 * test_events.c — the pure part of services/events.h: events_seq_parse, the one reading of
 * an event seq a client sends (?after= of the feed and the long poll, the SSE Last-Event-ID).
 * Plain decimal digits within int64, nothing else: no sign, no space, no overflow that would
 * quietly become another number. (fuzz_query checks the same property on any input.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "services/events.h"

static void plain_digits_are_read(void **state)
{
	int64_t v = -1;
	(void)state;
	assert_true(events_seq_parse("0", &v));
	assert_int_equal(v, 0);
	assert_true(events_seq_parse("42", &v));
	assert_int_equal(v, 42);
	assert_true(events_seq_parse("007", &v));
	assert_int_equal(v, 7);
	assert_true(events_seq_parse("9223372036854775807", &v));
	assert_true(v == INT64_MAX);
}

static void anything_else_is_refused(void **state)
{
	static const char *const bad[] = {
	    "",
	    " 5",
	    "5 ",
	    "+5",
	    "-0",
	    "-1",
	    "0x10",
	    "1e3",
	    "5.0",
	    "١",
	    "9223372036854775808",
	    "99999999999999999999999",
	};
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int64_t v = 123;
		assert_false(events_seq_parse(bad[i], &v));
		assert_int_equal(v, 123); /* untouched */
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(plain_digits_are_read),
	    cmocka_unit_test(anything_else_is_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
