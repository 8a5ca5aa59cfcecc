/*
 * test_jsonw.c — the direct JSON writer: exact text for escapes (every control character,
 * quote, backslash, '/', UTF-8), commas in nested objects and arrays, integers at the ends
 * of int64_t, buffers that grow, embedded fragments, and that jansson reads every output
 * back as the value that was written.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jsonw.h"

/* The writer's text, checked to be as long as it says and NUL-terminated. Caller frees. */
static char *finish(struct jsonw *w)
{
	size_t len;
	char *s = jsonw_finish(w, &len);
	assert_non_null(s);
	assert_int_equal(strlen(s), len);
	return s;
}

/* The text of one string value written with jsonw_string_len. */
static char *string_text(const char *s, size_t len)
{
	struct jsonw w;
	jsonw_init(&w, 0);
	jsonw_string_len(&w, s, len);
	return finish(&w);
}

/* jansson's reading of text; fails the test when it is not one valid JSON value. */
static json_t *parse(const char *text)
{
	json_error_t e;
	json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &e);
	if (!v)
		fail_msg("jansson rejects %s: %s", text, e.text);
	return v;
}

static void short_escapes_for_quote_backslash_and_whitespace(void **state)
{
	const char in[] = "\"\\\b\f\n\r\t";
	char *s = string_text(in, strlen(in));
	assert_string_equal(s, "\"\\\"\\\\\\b\\f\\n\\r\\t\"");
	free(s);
}

static void every_control_character_is_escaped(void **state)
{
	static const char *const short_form[0x20] = {
	    ['\b'] = "\\b", ['\t'] = "\\t", ['\n'] = "\\n", ['\f'] = "\\f", ['\r'] = "\\r"};
	for (unsigned c = 0; c < 0x20; c++) {
		char in = (char)c, want[16];
		if (short_form[c])
			snprintf(want, sizeof(want), "\"%s\"", short_form[c]);
		else
			snprintf(want, sizeof(want), "\"\\u%04X\"", c);
		char *s = string_text(&in, 1);
		assert_string_equal(s, want);
		/* And jansson reads it back as that one character. */
		json_t *v = parse(s);
		assert_int_equal(json_string_length(v), 1);
		assert_int_equal((unsigned char)json_string_value(v)[0], c);
		json_decref(v);
		free(s);
	}
}

static void delete_and_slash_are_not_escaped(void **state)
{
	char *s = string_text("a/b\x7f", 4);
	assert_string_equal(s, "\"a/b\x7f\"");
	free(s);
}

static void utf8_passes_through_unchanged(void **state)
{
	/* 2-, 3- and 4-byte sequences, and U+2028 which JSON allows unescaped. */
	const char in[] = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xe2\x80\xa8";
	char *s = string_text(in, strlen(in));
	char want[64];
	snprintf(want, sizeof(want), "\"%s\"", in);
	assert_string_equal(s, want);
	json_t *v = parse(s);
	assert_string_equal(json_string_value(v), in);
	json_decref(v);
	free(s);
}

static void empty_string_and_empty_containers(void **state)
{
	struct jsonw w;
	jsonw_init(&w, 0);
	jsonw_array_begin(&w);
	jsonw_string(&w, "");
	jsonw_object_begin(&w);
	jsonw_object_end(&w);
	jsonw_array_begin(&w);
	jsonw_array_end(&w);
	jsonw_array_end(&w);
	char *s = finish(&w);
	assert_string_equal(s, "[\"\",{},[]]");
	free(s);
}

static void embedded_nul_is_escaped(void **state)
{
	char *s = string_text("a\0b", 3);
	assert_string_equal(s, "\"a\\u0000b\"");
	free(s);
}

static void keys_are_escaped(void **state)
{
	struct jsonw w;
	jsonw_init(&w, 0);
	jsonw_object_begin(&w);
	jsonw_key(&w, "a\"b\n");
	jsonw_int(&w, 1);
	jsonw_object_end(&w);
	char *s = finish(&w);
	assert_string_equal(s, "{\"a\\\"b\\n\":1}");
	free(s);
}

static void nesting_places_commas_and_colons(void **state)
{
	struct jsonw w;
	jsonw_init(&w, 0);
	jsonw_object_begin(&w);
	jsonw_key(&w, "a");
	jsonw_array_begin(&w);
	jsonw_int(&w, 1);
	jsonw_object_begin(&w);
	jsonw_key(&w, "x");
	jsonw_null(&w);
	jsonw_key(&w, "y");
	jsonw_bool(&w, true);
	jsonw_object_end(&w);
	jsonw_object_begin(&w);
	jsonw_object_end(&w);
	jsonw_array_begin(&w);
	jsonw_array_begin(&w);
	jsonw_array_end(&w);
	jsonw_array_end(&w);
	jsonw_bool(&w, false);
	jsonw_array_end(&w);
	jsonw_key(&w, "b");
	jsonw_string_or_null(&w, NULL);
	jsonw_key(&w, "c");
	jsonw_string_or_null(&w, "c");
	jsonw_object_end(&w);
	char *s = finish(&w);
	assert_string_equal(
	    s, "{\"a\":[1,{\"x\":null,\"y\":true},{},[[]],false],\"b\":null,\"c\":\"c\"}");
	free(s);
}

static void integers_at_the_ends_of_int64(void **state)
{
	static const int64_t values[] = {0, 1, -1, 9, 10, -10, 1234567890123, INT64_MAX, INT64_MIN};
	static const char *const texts[] = {"0",
					    "1",
					    "-1",
					    "9",
					    "10",
					    "-10",
					    "1234567890123",
					    "9223372036854775807",
					    "-9223372036854775808"};
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		struct jsonw w;
		jsonw_init(&w, 0);
		jsonw_int(&w, values[i]);
		char *s = finish(&w);
		assert_string_equal(s, texts[i]);
		json_t *v = parse(s);
		assert_true(json_is_integer(v));
		assert_true(json_integer_value(v) == values[i]);
		json_decref(v);
		free(s);
	}
}

static void raw_fragment_is_embedded_as_given(void **state)
{
	const char frag[] = "[{\"k\":[1,2]},\"s\"]";
	struct jsonw w;
	jsonw_init(&w, 0);
	jsonw_object_begin(&w);
	jsonw_key(&w, "data");
	jsonw_raw(&w, frag, strlen(frag));
	jsonw_key(&w, "more");
	jsonw_raw(&w, "true", 4);
	jsonw_object_end(&w);
	char *s = finish(&w);
	assert_string_equal(s, "{\"data\":[{\"k\":[1,2]},\"s\"],\"more\":true}");
	free(s);
}

static void large_output_grows_the_buffer(void **state)
{
	/* From a 1-byte buffer: every append must grow it, including a long escaped string. */
	enum { N = 20000 };
	char *big = malloc(N + 1);
	assert_non_null(big);
	for (size_t i = 0; i < N; i++)
		big[i] = (char)(i % 7 == 0 ? '\n' : 'a' + (int)(i % 26));
	big[N] = '\0';
	struct jsonw w;
	jsonw_init(&w, 1);
	jsonw_array_begin(&w);
	for (int i = 0; i < N; i++)
		jsonw_int(&w, i);
	jsonw_string(&w, big);
	jsonw_array_end(&w);
	char *s = finish(&w);
	json_t *v = parse(s);
	assert_int_equal(json_array_size(v), N + 1);
	for (int i = 0; i < N; i++)
		assert_int_equal(json_integer_value(json_array_get(v, (size_t)i)), i);
	assert_string_equal(json_string_value(json_array_get(v, N)), big);
	json_decref(v);
	free(s);
	free(big);
}

static void string_of_only_escapes_fits_its_worst_case(void **state)
{
	/* Six output bytes per input byte: the reservation must cover exactly that. */
	char in[300];
	memset(in, 0x01, sizeof(in));
	struct jsonw w;
	jsonw_init(&w, 1);
	jsonw_string_len(&w, in, sizeof(in));
	char *s = finish(&w);
	assert_int_equal(strlen(s), 6 * sizeof(in) + 2);
	json_t *v = parse(s);
	assert_int_equal(json_string_length(v), sizeof(in));
	json_decref(v);
	free(s);
}

/* Whatever the writer produces, jansson parses to the value written. */
static void round_trip_matches_jansson_value(void **state)
{
	const char *strs[] = {
	    "",		 "plain",    "q\"uote", "back\\slash",
	    "tab\tnl\n", "\x01\x1f", "/",	"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"};
	size_t n = sizeof(strs) / sizeof(strs[0]);
	json_t *want = json_object();
	json_t *arr = json_array();
	struct jsonw w;
	jsonw_init(&w, 0);
	jsonw_object_begin(&w);
	for (size_t i = 0; i < n; i++) {
		char key[16];
		snprintf(key, sizeof(key), "k%zu%s", i, strs[i]);
		jsonw_key(&w, key);
		jsonw_string(&w, strs[i]);
		json_object_set_new(want, key, json_string(strs[i]));
	}
	jsonw_key(&w, "list");
	jsonw_array_begin(&w);
	jsonw_int(&w, INT64_MIN);
	jsonw_int(&w, INT64_MAX);
	jsonw_null(&w);
	jsonw_bool(&w, true);
	jsonw_bool(&w, false);
	jsonw_array_end(&w);
	jsonw_object_end(&w);
	json_array_append_new(arr, json_integer(INT64_MIN));
	json_array_append_new(arr, json_integer(INT64_MAX));
	json_array_append_new(arr, json_null());
	json_array_append_new(arr, json_true());
	json_array_append_new(arr, json_false());
	json_object_set_new(want, "list", arr);

	char *s = finish(&w);
	json_t *got = parse(s);
	assert_true(json_equal(got, want));
	json_decref(got);
	json_decref(want);
	free(s);
}

static void release_without_finish_frees(void **state)
{
	struct jsonw w;
	jsonw_init(&w, 0);
	jsonw_array_begin(&w);
	jsonw_string(&w, "x");
	jsonw_release(&w);
	assert_null(w.buf);
	/* Usable again after release. */
	jsonw_init(&w, 0);
	jsonw_null(&w);
	char *s = finish(&w);
	assert_string_equal(s, "null");
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(short_escapes_for_quote_backslash_and_whitespace),
	    cmocka_unit_test(every_control_character_is_escaped),
	    cmocka_unit_test(delete_and_slash_are_not_escaped),
	    cmocka_unit_test(utf8_passes_through_unchanged),
	    cmocka_unit_test(empty_string_and_empty_containers),
	    cmocka_unit_test(embedded_nul_is_escaped),
	    cmocka_unit_test(keys_are_escaped),
	    cmocka_unit_test(nesting_places_commas_and_colons),
	    cmocka_unit_test(integers_at_the_ends_of_int64),
	    cmocka_unit_test(raw_fragment_is_embedded_as_given),
	    cmocka_unit_test(large_output_grows_the_buffer),
	    cmocka_unit_test(string_of_only_escapes_fits_its_worst_case),
	    cmocka_unit_test(round_trip_matches_jansson_value),
	    cmocka_unit_test(release_without_finish_frees),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
