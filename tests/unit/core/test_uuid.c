/*
 * test_uuid.c — UUIDv7 generation (layout, version and variant bits, monotonic order within
 * and across threads), validation, normalisation and timestamp extraction.
 *
 * The generator keeps per-process state (the last millisecond used), so the test that feeds
 * it a time in the future runs last: every id made after it would carry that time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/timeutil.h"
#include "core/uuid.h"

#define MANY	   10000
#define THREADS	   4
#define PER_THREAD 5000
#define FUTURE_MS  INT64_C(4102444800000) /* 2100-01-01T00:00:00Z */

static void assert_v7_layout(const char *s)
{
	assert_int_equal(strlen(s), 36);
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23)
			assert_int_equal(s[i], '-');
		else
			assert_non_null(strchr("0123456789abcdef", s[i]));
	}
	assert_int_equal(s[14], '7');		/* version nibble */
	assert_non_null(strchr("89ab", s[19])); /* variant 10xx */
}

static void test_v7_has_canonical_lowercase_layout(void **state)
{
	char id[UUID_STR_LEN];
	for (int i = 0; i < 100; i++) {
		uuid_v7(id);
		assert_v7_layout(id);
	}
}

static void test_v7_is_accepted_by_uuid_valid(void **state)
{
	char id[UUID_STR_LEN];
	uuid_v7(id);
	assert_true(uuid_valid(id));
}

static void test_v7_ids_in_a_tight_loop_sort_in_creation_order(void **state)
{
	char(*ids)[UUID_STR_LEN] = malloc(sizeof(*ids) * MANY);
	assert_non_null(ids);
	for (int i = 0; i < MANY; i++)
		uuid_v7(ids[i]);
	for (int i = 1; i < MANY; i++) {
		if (strcmp(ids[i - 1], ids[i]) >= 0)
			fail_msg("id %d \"%s\" does not sort after id %d \"%s\"", i, ids[i], i - 1,
				 ids[i - 1]);
		assert_v7_layout(ids[i]);
	}
	free(ids);
}

struct batch {
	char (*ids)[UUID_STR_LEN];
};

static void *make_batch(void *p)
{
	struct batch *b = p;
	for (int i = 0; i < PER_THREAD; i++)
		uuid_v7(b->ids[i]);
	return NULL;
}

static int cmp_id(const void *x, const void *y)
{
	return strcmp(x, y);
}

static void test_v7_ids_from_several_threads_are_unique_and_ordered_per_thread(void **state)
{
	pthread_t t[THREADS];
	struct batch b[THREADS];
	char(*all)[UUID_STR_LEN] = malloc(sizeof(*all) * THREADS * PER_THREAD);
	assert_non_null(all);
	for (int i = 0; i < THREADS; i++) {
		b[i].ids = all + i * PER_THREAD;
		assert_int_equal(pthread_create(&t[i], NULL, make_batch, &b[i]), 0);
	}
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	for (int i = 0; i < THREADS; i++)
		for (int j = 1; j < PER_THREAD; j++)
			assert_true(strcmp(b[i].ids[j - 1], b[i].ids[j]) < 0);
	qsort(all, THREADS * PER_THREAD, sizeof(*all), cmp_id);
	for (int i = 1; i < THREADS * PER_THREAD; i++)
		if (strcmp(all[i - 1], all[i]) == 0)
			fail_msg("duplicate id %s", all[i]);
	free(all);
}

static void test_v7_time_is_the_creation_millisecond(void **state)
{
	char id[UUID_STR_LEN];
	int64_t before = time_now_ms();
	uuid_v7(id);
	int64_t after = time_now_ms();
	int64_t t = uuid_v7_time(id);
	assert_true(t >= before);
	/* One millisecond of slack: the counter may roll over into the next millisecond. */
	assert_true(t <= after + 1);
}

static void test_v7_time_reads_the_48_bit_prefix(void **state)
{
	assert_int_equal(uuid_v7_time("01890a5d-ac96-774b-bcce-b302099a8057"),
			 INT64_C(1688096058518));
	assert_int_equal(uuid_v7_time("00000000-0000-7000-8000-000000000000"), 0);
	assert_int_equal(uuid_v7_time("FFFFFFFF-FFFF-7FFF-BFFF-FFFFFFFFFFFF"),
			 INT64_C(0xffffffffffff));
}

static void test_valid_accepts_canonical_uuids_of_any_version_and_case(void **state)
{
	assert_true(uuid_valid("01890a5d-ac96-774b-bcce-b302099a8057"));
	assert_true(uuid_valid("01890A5D-AC96-774B-BCCE-B302099A8057"));
	assert_true(uuid_valid("123e4567-e89b-12d3-a456-426614174000"));
	assert_true(uuid_valid("00000000-0000-0000-0000-000000000000"));
}

static void test_valid_rejects_malformed_uuids(void **state)
{
	static const char *const bad[] = {
	    "",
	    "01890a5d",
	    "01890a5d-ac96-774b-bcce-b302099a805",   /* 35 characters */
	    "01890a5d-ac96-774b-bcce-b302099a80571", /* 37 characters */
	    "01890a5dac96774bbccdb302099a8057",	     /* no hyphens */
	    "01890a5d-ac96-774b-bcceb-302099a8057",  /* hyphen misplaced */
	    "01890a5d0ac96-774b-bcce-b302099a8057",  /* digit where a hyphen goes */
	    "01890a5g-ac96-774b-bcce-b302099a8057",  /* not hex */
	    "{01890a5d-ac96-774b-bcce-b302099a8057}",
	    " 01890a5d-ac96-774b-bcce-b302099a8057",
	    "01890a5d-ac96-774b-bcce-b302099a8057 ",
	    "01890a5d-ac96-774b-bcce-b302099a8057\n",
	    "urn:uuid:01890a5d-ac96-774b-bcce-b302099a8057",
	    "01890a5d_ac96_774b_bcce_b302099a8057",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (uuid_valid(bad[i]))
			fail_msg("uuid_valid accepted \"%s\"", bad[i]);
	assert_false(uuid_valid(NULL));
}

static void test_normalize_lowercases_a_valid_uuid(void **state)
{
	char out[UUID_STR_LEN];
	assert_true(uuid_normalize("01890A5D-AC96-774B-BCCE-B302099A8057", out));
	assert_string_equal(out, "01890a5d-ac96-774b-bcce-b302099a8057");
}

static void test_normalize_rejects_an_invalid_uuid(void **state)
{
	char out[UUID_STR_LEN] = "unchanged";
	assert_false(uuid_normalize("01890a5d-ac96-774b-bcce-b302099a80", out));
	assert_false(uuid_normalize(NULL, out));
	assert_string_equal(out, "unchanged");
}

/* Runs last: it moves the generator's clock to FUTURE_MS. */
static void test_v7_at_counts_past_4096_ids_in_one_millisecond_without_going_back(void **state)
{
	char prev[UUID_STR_LEN], id[UUID_STR_LEN];
	uuid_v7_at(FUTURE_MS, prev);
	assert_v7_layout(prev);
	assert_int_equal(uuid_v7_time(prev), FUTURE_MS);
	for (int i = 0; i < MANY; i++) {
		uuid_v7_at(FUTURE_MS, id);
		assert_v7_layout(id);
		if (strcmp(prev, id) >= 0)
			fail_msg("id %d \"%s\" does not sort after \"%s\"", i, id, prev);
		memcpy(prev, id, sizeof(id));
	}
	/* At least 2048 ids fit in each millisecond, so 10,000 spill into at most 5 more. */
	int64_t t = uuid_v7_time(prev);
	assert_true(t > FUTURE_MS);
	assert_true(t <= FUTURE_MS + 5);
	/* A clock that steps back does not make ids go back either. */
	uuid_v7_at(FUTURE_MS - 1000, id);
	assert_true(strcmp(prev, id) < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_v7_has_canonical_lowercase_layout),
	    cmocka_unit_test(test_v7_is_accepted_by_uuid_valid),
	    cmocka_unit_test(test_v7_ids_in_a_tight_loop_sort_in_creation_order),
	    cmocka_unit_test(test_v7_ids_from_several_threads_are_unique_and_ordered_per_thread),
	    cmocka_unit_test(test_v7_time_is_the_creation_millisecond),
	    cmocka_unit_test(test_v7_time_reads_the_48_bit_prefix),
	    cmocka_unit_test(test_valid_accepts_canonical_uuids_of_any_version_and_case),
	    cmocka_unit_test(test_valid_rejects_malformed_uuids),
	    cmocka_unit_test(test_normalize_lowercases_a_valid_uuid),
	    cmocka_unit_test(test_normalize_rejects_an_invalid_uuid),
	    cmocka_unit_test(test_v7_at_counts_past_4096_ids_in_one_millisecond_without_going_back),
	};
	return cmocka_run_group_tests_name("core/uuid", tests, NULL, NULL);
}
