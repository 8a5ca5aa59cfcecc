/*
 * test_base64url.c — unpadded base64url: RFC 4648 vectors, the URL-safe alphabet, round
 * trips for every length 0..64, and rejection of anything that is not base64url.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/base64url.h"

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

static void assert_encodes_as(struct arena *a, const char *in, const char *want)
{
	assert_string_equal(base64url_encode(a, in, strlen(in)), want);
	size_t n = 999;
	unsigned char *back = base64url_decode(a, want, &n);
	assert_non_null(back);
	assert_int_equal(n, strlen(in));
	assert_memory_equal(back, in, n);
}

static void assert_decode_rejects(struct arena *a, const char *s)
{
	size_t n = 999;
	if (base64url_decode(a, s, &n) != NULL)
		fail_msg("base64url_decode accepted \"%s\"", s);
}

static void test_rfc4648_vectors(void **state)
{
	struct arena *a = *state;
	assert_encodes_as(a, "", "");
	assert_encodes_as(a, "f", "Zg");
	assert_encodes_as(a, "fo", "Zm8");
	assert_encodes_as(a, "foo", "Zm9v");
	assert_encodes_as(a, "foob", "Zm9vYg");
	assert_encodes_as(a, "fooba", "Zm9vYmE");
	assert_encodes_as(a, "foobar", "Zm9vYmFy");
}

static void test_encode_uses_the_url_safe_alphabet(void **state)
{
	struct arena *a = *state;
	const unsigned char in[] = {0xfb, 0xff, 0xbf};
	assert_string_equal(base64url_encode(a, in, 2), "-_8");
	assert_string_equal(base64url_encode(a, in, 3), "-_-_");
}

static void test_round_trip_every_length_up_to_64(void **state)
{
	struct arena *a = *state;
	unsigned char in[64];
	for (size_t len = 0; len <= 64; len++) {
		for (int pattern = 0; pattern < 3; pattern++) {
			for (size_t i = 0; i < len; i++)
				in[i] = pattern == 0   ? (unsigned char)(i * 37 + len)
					: pattern == 1 ? 0xff
						       : 0x00;
			char *enc = base64url_encode(a, in, len);
			assert_int_equal(strlen(enc), (len * 4 + 2) / 3); /* no padding */
			assert_int_equal(strspn(enc,
						"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstu"
						"vwxyz0123456789-_"),
					 strlen(enc));
			size_t n = 999;
			unsigned char *out = base64url_decode(a, enc, &n);
			assert_non_null(out);
			assert_int_equal(n, len);
			assert_memory_equal(out, in, len);
			assert_int_equal(out[n], '\0');
		}
	}
}

static void test_round_trip_every_byte_value(void **state)
{
	struct arena *a = *state;
	unsigned char in[256];
	for (int i = 0; i < 256; i++)
		in[i] = (unsigned char)i;
	size_t n;
	unsigned char *out = base64url_decode(a, base64url_encode(a, in, sizeof(in)), &n);
	assert_non_null(out);
	assert_int_equal(n, sizeof(in));
	assert_memory_equal(out, in, sizeof(in));
}

static void test_decode_rejects_standard_base64_characters(void **state)
{
	struct arena *a = *state;
	assert_decode_rejects(a, "-_8+");
	assert_decode_rejects(a, "ab/c");
	assert_decode_rejects(a, "Zg==");
	assert_decode_rejects(a, "Zm8=");
}

static void test_decode_rejects_whitespace_and_punctuation(void **state)
{
	struct arena *a = *state;
	assert_decode_rejects(a, "Zm9v Yg");
	assert_decode_rejects(a, " Zm9v");
	assert_decode_rejects(a, "Zm9v\n");
	assert_decode_rejects(a, "Zm9v.Yg");
	assert_decode_rejects(a, "Zm9v!");
	assert_decode_rejects(a, "Zm9v\x80");
	assert_decode_rejects(a, "\xc3\xa9Zm9");
}

static void test_decode_rejects_an_impossible_length(void **state)
{
	struct arena *a = *state;
	assert_decode_rejects(a, "Z");
	assert_decode_rejects(a, "Zm9vY");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_rfc4648_vectors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_encode_uses_the_url_safe_alphabet, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_round_trip_every_length_up_to_64, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_round_trip_every_byte_value, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_decode_rejects_standard_base64_characters, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_decode_rejects_whitespace_and_punctuation, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_decode_rejects_an_impossible_length, setup,
					    teardown),
	};
	return cmocka_run_group_tests_name("core/base64url", tests, NULL, NULL);
}
