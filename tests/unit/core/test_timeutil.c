/*
 * test_timeutil.c — RFC 3339 formatting and parsing of millisecond timestamps: offsets,
 * fractions, calendar rules, rejection of malformed text, and round trips across the whole
 * representable range (years 0001–9999), checked against glibc's timegm as an oracle.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/timeutil.h"

#define MIN_MS INT64_C(-62135596800000) /* 0001-01-01T00:00:00.000Z */
#define MAX_MS INT64_C(253402300799999) /* 9999-12-31T23:59:59.999Z */

static int64_t parse_ok(const char *s)
{
	int64_t ms = INT64_MIN;
	if (time_parse_rfc3339(s, &ms) != 0)
		fail_msg("time_parse_rfc3339 rejected \"%s\"", s);
	return ms;
}

static void assert_rejected(const char *s)
{
	int64_t ms = 12345;
	if (time_parse_rfc3339(s, &ms) != -1)
		fail_msg("time_parse_rfc3339 accepted \"%s\" as %" PRId64, s ? s : "(null)", ms);
	assert_int_equal(ms, 12345); /* out untouched on failure */
}

static void assert_formats_as(int64_t ms, const char *want)
{
	char out[TIME_RFC3339_LEN];
	time_format_ms(ms, out);
	assert_string_equal(out, want);
}

/* Deterministic pseudo-random numbers (splitmix64). */
static uint64_t next_rand(uint64_t *x)
{
	uint64_t z = (*x += UINT64_C(0x9E3779B97F4A7C15));
	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

static void test_format_epoch(void **state)
{
	assert_formats_as(0, "1970-01-01T00:00:00.000Z");
}

static void test_format_known_instant_with_milliseconds(void **state)
{
	assert_formats_as(INT64_C(1705329000000), "2024-01-15T14:30:00.000Z");
	assert_formats_as(INT64_C(1705329000007), "2024-01-15T14:30:00.007Z");
	assert_formats_as(INT64_C(951782400000), "2000-02-29T00:00:00.000Z");
}

static void test_format_before_1970(void **state)
{
	assert_formats_as(-1, "1969-12-31T23:59:59.999Z");
	assert_formats_as(-86400000, "1969-12-31T00:00:00.000Z");
	assert_formats_as(-86400001, "1969-12-30T23:59:59.999Z");
	assert_formats_as(MIN_MS, "0001-01-01T00:00:00.000Z");
}

static void test_format_end_of_range(void **state)
{
	assert_formats_as(MAX_MS, "9999-12-31T23:59:59.999Z");
}

static void test_format_clamps_instants_past_year_9999(void **state)
{
	assert_formats_as(MAX_MS + 1, "9999-12-31T23:59:59.999Z");
	assert_formats_as(INT64_MAX / 2, "9999-12-31T23:59:59.999Z");
}

static void test_format_clamps_instants_before_year_0(void **state)
{
	assert_formats_as(INT64_C(-62167219200001), "0000-01-01T00:00:00.000Z");
	assert_formats_as(INT64_MIN / 2, "0000-01-01T00:00:00.000Z");
	assert_formats_as(INT64_MIN, "0000-01-01T00:00:00.000Z"); /* no overflow on the way */
	assert_formats_as(INT64_MAX, "9999-12-31T23:59:59.999Z");
}

static void test_parse_utc(void **state)
{
	assert_int_equal(parse_ok("2024-01-15T14:30:00Z"), INT64_C(1705329000000));
	assert_int_equal(parse_ok("1970-01-01T00:00:00Z"), 0);
	assert_int_equal(parse_ok("1970-01-01T00:00:00.000Z"), 0);
}

static void test_parse_positive_offset_is_normalised_to_utc(void **state)
{
	assert_int_equal(parse_ok("2024-01-15T20:00:00+05:30"), parse_ok("2024-01-15T14:30:00Z"));
}

static void test_parse_negative_offset_is_normalised_to_utc(void **state)
{
	assert_int_equal(parse_ok("2024-01-15T06:30:00-08:00"), parse_ok("2024-01-15T14:30:00Z"));
}

static void test_parse_offset_crossing_midnight_and_year(void **state)
{
	assert_int_equal(parse_ok("2024-01-01T01:00:00+02:00"), parse_ok("2023-12-31T23:00:00Z"));
	assert_int_equal(parse_ok("2023-12-31T23:30:00-01:00"), parse_ok("2024-01-01T00:30:00Z"));
}

static void test_parse_zero_offsets_equal_z(void **state)
{
	int64_t z = parse_ok("2024-06-01T12:00:00Z");
	assert_int_equal(parse_ok("2024-06-01T12:00:00+00:00"), z);
	assert_int_equal(parse_ok("2024-06-01T12:00:00-00:00"), z);
}

static void test_parse_fraction_digits_scale_to_milliseconds(void **state)
{
	assert_int_equal(parse_ok("1970-01-01T00:00:00.1Z"), 100);
	assert_int_equal(parse_ok("1970-01-01T00:00:00.12Z"), 120);
	assert_int_equal(parse_ok("1970-01-01T00:00:00.123Z"), 123);
	assert_int_equal(parse_ok("1970-01-01T00:00:00.007Z"), 7);
}

static void test_parse_fraction_beyond_milliseconds_is_truncated(void **state)
{
	assert_int_equal(parse_ok("1970-01-01T00:00:00.123456789Z"), 123);
	assert_int_equal(parse_ok("1970-01-01T00:00:00.9999Z"), 999);
	assert_int_equal(parse_ok("1970-01-01T00:00:01.0009+00:00"), 1000);
}

static void test_parse_fraction_with_offset(void **state)
{
	assert_int_equal(parse_ok("2024-01-15T20:00:00.250+05:30"),
			 parse_ok("2024-01-15T14:30:00.250Z"));
}

static void test_parse_accepts_lowercase_t_and_z_and_space(void **state)
{
	int64_t want = parse_ok("2024-01-15T14:30:00Z");
	assert_int_equal(parse_ok("2024-01-15t14:30:00z"), want);
	assert_int_equal(parse_ok("2024-01-15 14:30:00Z"), want);
}

static void test_parse_leap_day_in_leap_years(void **state)
{
	assert_int_equal(parse_ok("2024-02-29T00:00:00Z"), INT64_C(1709164800000));
	assert_int_equal(parse_ok("2000-02-29T00:00:00Z"), INT64_C(951782400000));
}

static void test_parse_rejects_leap_day_in_common_years(void **state)
{
	assert_rejected("2023-02-29T00:00:00Z");
	assert_rejected("1900-02-29T00:00:00Z"); /* divisible by 100, not by 400 */
	assert_rejected("2100-02-29T00:00:00Z");
}

static void test_parse_rejects_impossible_dates(void **state)
{
	assert_rejected("2024-02-30T00:00:00Z");
	assert_rejected("2024-04-31T00:00:00Z");
	assert_rejected("2024-13-01T00:00:00Z");
	assert_rejected("2024-00-10T00:00:00Z");
	assert_rejected("2024-01-00T00:00:00Z");
	assert_rejected("2024-01-32T00:00:00Z");
	assert_rejected("0000-01-01T00:00:00Z");
}

static void test_parse_rejects_impossible_times(void **state)
{
	assert_rejected("2024-01-01T24:00:00Z");
	assert_rejected("2024-01-01T23:60:00Z");
	assert_rejected("2024-01-01T23:59:61Z");
}

static void test_parse_reads_a_leap_second_as_the_second_before(void **state)
{
	assert_int_equal(parse_ok("2016-12-31T23:59:60Z"), parse_ok("2016-12-31T23:59:59Z"));
}

static void test_parse_rejects_missing_zone(void **state)
{
	assert_rejected("2024-01-15T14:30:00");
	assert_rejected("2024-01-15T14:30:00.123");
}

static void test_parse_rejects_malformed_offsets(void **state)
{
	assert_rejected("2024-01-15T14:30:00+0530");
	assert_rejected("2024-01-15T14:30:00+5:30");
	assert_rejected("2024-01-15T14:30:00+05");
	assert_rejected("2024-01-15T14:30:00+24:00");
	assert_rejected("2024-01-15T14:30:00+05:60");
	assert_rejected("2024-01-15T14:30:00UTC");
}

static void test_parse_rejects_trailing_garbage(void **state)
{
	assert_rejected("2024-01-15T14:30:00Zjunk");
	assert_rejected("2024-01-15T14:30:00Z ");
	assert_rejected("2024-01-15T14:30:00+05:30x");
	assert_rejected("2024-01-15T14:30:00.Z"); /* a dot needs digits */
}

static void test_parse_rejects_empty_and_truncated_text(void **state)
{
	assert_rejected("");
	assert_rejected("2024");
	assert_rejected("2024-01-15");
	assert_rejected("2024-01-15T");
	assert_rejected("2024-01-15T14:30");
	assert_rejected("2024-01-15T14:30:0Z");
	assert_rejected(NULL);
}

static void test_parse_rejects_non_digits_and_wrong_separators(void **state)
{
	assert_rejected("2024-1-15T14:30:00Z");
	assert_rejected("24-01-15T14:30:00Z");
	assert_rejected("2024/01/15T14:30:00Z");
	assert_rejected("2024-01-15X14:30:00Z");
	assert_rejected("2024-01-15T14.30.00Z");
	assert_rejected(" 2024-01-15T14:30:00Z");
	assert_rejected("+2024-01-15T14:30:00Z");
	assert_rejected("2024-0a-15T14:30:00Z");
}

static void test_format_then_parse_round_trips_over_the_whole_range(void **state)
{
	uint64_t seed = 42;
	char out[TIME_RFC3339_LEN];
	const uint64_t span = (uint64_t)(MAX_MS - MIN_MS) + 1;
	for (int i = 0; i < 200000; i++) {
		int64_t ms = MIN_MS + (int64_t)(next_rand(&seed) % span);
		time_format_ms(ms, out);
		int64_t back = parse_ok(out);
		if (back != ms)
			fail_msg("%" PRId64 " formats as %s which parses as %" PRId64, ms, out,
				 back);
	}
}

static void test_format_then_parse_round_trips_around_interesting_instants(void **state)
{
	static const int64_t anchors[] = {
	    MIN_MS,
	    0,
	    INT64_C(951782400000) /* 2000-02-29 */,
	    INT64_C(-2208988800000) /* 1900-01-01 */,
	    INT64_C(-12219292800000) /* 1582-10-15 */,
	    INT64_C(4107542400000) /* 2100-03-01 */,
	    MAX_MS - 1000,
	};
	char out[TIME_RFC3339_LEN];
	for (size_t a = 0; a < sizeof(anchors) / sizeof(anchors[0]); a++) {
		for (int64_t d = -3000; d <= 3000; d += 7) {
			int64_t ms = anchors[a] + d;
			if (ms < MIN_MS || ms > MAX_MS)
				continue;
			time_format_ms(ms, out);
			assert_int_equal(parse_ok(out), ms);
		}
	}
}

static void test_parse_agrees_with_timegm(void **state)
{
	uint64_t seed = 7;
	char text[64];
	for (int i = 0; i < 100000; i++) {
		struct tm tm = {0};
		tm.tm_year = (int)(next_rand(&seed) % 9999) + 1 - 1900;
		tm.tm_mon = (int)(next_rand(&seed) % 12);
		tm.tm_mday = (int)(next_rand(&seed) % 28) + 1;
		tm.tm_hour = (int)(next_rand(&seed) % 24);
		tm.tm_min = (int)(next_rand(&seed) % 60);
		tm.tm_sec = (int)(next_rand(&seed) % 60);
		int off = (int)(next_rand(&seed) % (24 * 60 * 2 - 1)) - (24 * 60 - 1);
		snprintf(text, sizeof(text), "%04d-%02d-%02dT%02d:%02d:%02d%c%02d:%02d",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			 tm.tm_sec, off < 0 ? '-' : '+', (off < 0 ? -off : off) / 60,
			 (off < 0 ? -off : off) % 60);
		int64_t want = ((int64_t)timegm(&tm) - (int64_t)off * 60) * 1000;
		int64_t got = parse_ok(text);
		if (got != want)
			fail_msg("\"%s\" parsed as %" PRId64 ", timegm says %" PRId64, text, got,
				 want);
	}
}

static void test_now_is_after_2020(void **state)
{
	assert_true(time_now_ms() > INT64_C(1577836800000));
}

static void test_monotonic_clock_never_goes_back(void **state)
{
	int64_t prev = time_mono_us();
	for (int i = 0; i < 10000; i++) {
		int64_t t = time_mono_us();
		assert_true(t >= prev);
		prev = t;
	}
}

static void test_a_monotonic_deadline_is_normalised_and_that_far_ahead(void **state)
{
	(void)state;
	for (int64_t ms = 0; ms <= 2999; ms += 37) {
		int64_t before = time_mono_us();
		struct timespec t = time_mono_after_ms(ms);
		int64_t after = time_mono_us();
		assert_true(t.tv_nsec >= 0 && t.tv_nsec < 1000000000L);
		int64_t at = (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
		assert_true(at >= before + ms * 1000 && at <= after + ms * 1000);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_format_epoch),
	    cmocka_unit_test(test_format_known_instant_with_milliseconds),
	    cmocka_unit_test(test_format_before_1970),
	    cmocka_unit_test(test_format_end_of_range),
	    cmocka_unit_test(test_format_clamps_instants_past_year_9999),
	    cmocka_unit_test(test_format_clamps_instants_before_year_0),
	    cmocka_unit_test(test_parse_utc),
	    cmocka_unit_test(test_parse_positive_offset_is_normalised_to_utc),
	    cmocka_unit_test(test_parse_negative_offset_is_normalised_to_utc),
	    cmocka_unit_test(test_parse_offset_crossing_midnight_and_year),
	    cmocka_unit_test(test_parse_zero_offsets_equal_z),
	    cmocka_unit_test(test_parse_fraction_digits_scale_to_milliseconds),
	    cmocka_unit_test(test_parse_fraction_beyond_milliseconds_is_truncated),
	    cmocka_unit_test(test_parse_fraction_with_offset),
	    cmocka_unit_test(test_parse_accepts_lowercase_t_and_z_and_space),
	    cmocka_unit_test(test_parse_leap_day_in_leap_years),
	    cmocka_unit_test(test_parse_rejects_leap_day_in_common_years),
	    cmocka_unit_test(test_parse_rejects_impossible_dates),
	    cmocka_unit_test(test_parse_rejects_impossible_times),
	    cmocka_unit_test(test_parse_reads_a_leap_second_as_the_second_before),
	    cmocka_unit_test(test_parse_rejects_missing_zone),
	    cmocka_unit_test(test_parse_rejects_malformed_offsets),
	    cmocka_unit_test(test_parse_rejects_trailing_garbage),
	    cmocka_unit_test(test_parse_rejects_empty_and_truncated_text),
	    cmocka_unit_test(test_parse_rejects_non_digits_and_wrong_separators),
	    cmocka_unit_test(test_format_then_parse_round_trips_over_the_whole_range),
	    cmocka_unit_test(test_format_then_parse_round_trips_around_interesting_instants),
	    cmocka_unit_test(test_parse_agrees_with_timegm),
	    cmocka_unit_test(test_now_is_after_2020),
	    cmocka_unit_test(test_monotonic_clock_never_goes_back),
	    cmocka_unit_test(test_a_monotonic_deadline_is_normalised_and_that_far_ahead),
	};
	return cmocka_run_group_tests_name("core/timeutil", tests, NULL, NULL);
}
