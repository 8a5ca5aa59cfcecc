/*
 * test_error.c — the error table (every kind has an HTTP status, a unique stable code and a
 * title) and struct error: details, accumulated field errors, release and reuse.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "core/error.h"

static void test_every_kind_has_an_error_status_a_code_and_a_title(void **state)
{
	for (int k = 1; k < ERR__COUNT; k++) {
		int st = error_status(k);
		if (st < 400 || st > 599)
			fail_msg("kind %d has status %d", k, st);
		assert_non_null(error_code(k));
		assert_non_null(error_title(k));
		assert_true(strlen(error_code(k)) > 0);
		assert_true(strlen(error_title(k)) > 0);
		/* codes are stable machine words: lower case and underscores */
		assert_int_equal(strspn(error_code(k), "abcdefghijklmnopqrstuvwxyz_"),
				 strlen(error_code(k)));
	}
}

static void test_codes_are_unique(void **state)
{
	for (int i = 1; i < ERR__COUNT; i++)
		for (int j = i + 1; j < ERR__COUNT; j++)
			if (!strcmp(error_code(i), error_code(j)))
				fail_msg("kinds %d and %d share the code %s", i, j, error_code(i));
}

static void test_table_matches_the_wire_contract(void **state)
{
	static const struct {
		int kind, status;
		const char *code;
	} want[] = {
	    {ERR_MALFORMED_JSON, 400, "malformed_json"},
	    {ERR_BAD_REQUEST, 400, "bad_request"},
	    {ERR_UNAUTHENTICATED, 401, "unauthenticated"},
	    {ERR_INVALID_CREDENTIALS, 401, "invalid_credentials"},
	    {ERR_TOKEN_EXPIRED, 401, "token_expired"},
	    {ERR_SESSION_REVOKED, 401, "session_revoked"},
	    {ERR_FORBIDDEN, 403, "forbidden"},
	    {ERR_NOT_FOUND, 404, "not_found"},
	    {ERR_METHOD_NOT_ALLOWED, 405, "method_not_allowed"},
	    {ERR_CONFLICT, 409, "conflict"},
	    {ERR_PRECONDITION_FAILED, 412, "precondition_failed"},
	    {ERR_REQUEST_TIMEOUT, 408, "request_timeout"},
	    {ERR_PAYLOAD_TOO_LARGE, 413, "payload_too_large"},
	    {ERR_UNSUPPORTED_MEDIA_TYPE, 415, "unsupported_media_type"},
	    {ERR_VALIDATION_FAILED, 422, "validation_failed"},
	    {ERR_IDEMPOTENCY_KEY_REUSED, 422, "idempotency_key_reused"},
	    {ERR_UNKNOWN_PARAMETER, 422, "unknown_parameter"},
	    {ERR_RATE_LIMITED, 429, "rate_limited"},
	    {ERR_INTERNAL, 500, "internal"},
	    {ERR_UNAVAILABLE, 503, "unavailable"},
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		assert_int_equal(error_status(want[i].kind), want[i].status);
		assert_string_equal(error_code(want[i].kind), want[i].code);
	}
}

static void test_negative_kind_maps_like_positive(void **state)
{
	for (int k = 1; k < ERR__COUNT; k++) {
		assert_int_equal(error_status(-k), error_status(k));
		assert_string_equal(error_code(-k), error_code(k));
		assert_string_equal(error_title(-k), error_title(k));
	}
}

static void test_unknown_kind_maps_to_internal(void **state)
{
	assert_int_equal(error_status(ERR__COUNT), 500);
	assert_string_equal(error_code(ERR__COUNT + 7), "internal");
	assert_string_equal(error_code(-(ERR__COUNT + 7)), "internal");
}

static void test_set_returns_the_negative_kind_and_formats_the_detail(void **state)
{
	struct error err = ERROR_INIT;
	assert_int_equal(error_set(&err, ERR_NOT_FOUND, "no task \"%s\" (%d)", "abc", 7),
			 -ERR_NOT_FOUND);
	assert_int_equal(err.kind, ERR_NOT_FOUND);
	assert_string_equal(err.detail, "no task \"abc\" (7)");
	assert_null(err.fields);
	error_release(&err);
}

static void test_set_accepts_a_negative_kind(void **state)
{
	struct error err = ERROR_INIT;
	assert_int_equal(error_set(&err, -ERR_CONFLICT, "x"), -ERR_CONFLICT);
	assert_int_equal(err.kind, ERR_CONFLICT);
}

static void test_set_without_an_error_struct_returns_the_kind(void **state)
{
	assert_int_equal(error_set(NULL, ERR_FORBIDDEN, "nobody listens"), -ERR_FORBIDDEN);
}

static void test_set_truncates_a_long_detail(void **state)
{
	struct error err = ERROR_INIT;
	char big[2000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	error_set(&err, ERR_BAD_REQUEST, "%s", big);
	assert_int_equal(strlen(err.detail), sizeof(err.detail) - 1);
}

static void test_field_accumulates_fields_and_sets_validation_failed(void **state)
{
	struct error err = ERROR_INIT;
	error_field(&err, "title", "required", "title is required");
	assert_int_equal(err.kind, ERR_VALIDATION_FAILED);
	assert_int_equal(error_field_count(&err), 1);
	assert_string_equal(err.detail, "1 field is invalid");
	error_field(&err, "due_date", "format", "\"%s\" is not a date", "tomorrow");
	assert_int_equal(error_field_count(&err), 2);
	assert_string_equal(err.detail, "2 fields are invalid");

	json_t *f = json_array_get(err.fields, 1);
	assert_string_equal(json_string_value(json_object_get(f, "field")), "due_date");
	assert_string_equal(json_string_value(json_object_get(f, "code")), "format");
	assert_string_equal(json_string_value(json_object_get(f, "message")),
			    "\"tomorrow\" is not a date");
	f = json_array_get(err.fields, 0);
	assert_string_equal(json_string_value(json_object_get(f, "field")), "title");
	error_release(&err);
}

static void test_field_overrides_an_earlier_kind(void **state)
{
	struct error err = ERROR_INIT;
	error_set(&err, ERR_BAD_REQUEST, "earlier");
	error_field(&err, "name", "length", "too long");
	assert_int_equal(err.kind, ERR_VALIDATION_FAILED);
	error_release(&err);
}

static void test_set_after_fields_keeps_the_fields(void **state)
{
	struct error err = ERROR_INIT;
	error_field(&err, "name", "length", "too long");
	error_set(&err, ERR_VALIDATION_FAILED, "the project is invalid");
	assert_int_equal(error_field_count(&err), 1);
	assert_string_equal(err.detail, "the project is invalid");
	error_release(&err);
}

static void test_field_on_null_error_is_ignored(void **state)
{
	error_field(NULL, "a", "b", "c");
	assert_int_equal(error_field_count(NULL), 0);
}

static void test_release_clears_and_allows_reuse(void **state)
{
	struct error err = ERROR_INIT;
	error_field(&err, "a", "b", "c");
	error_release(&err);
	assert_int_equal(err.kind, 0);
	assert_string_equal(err.detail, "");
	assert_null(err.fields);
	assert_int_equal(error_field_count(&err), 0);
	error_field(&err, "x", "y", "z");
	assert_int_equal(error_field_count(&err), 1);
	error_release(&err);
	error_release(&err);
}

static void test_field_keeps_the_first_fifty_and_counts_the_rest(void **state)
{
	struct error err = ERROR_INIT;
	for (int i = 0; i < ERROR_MAX_FIELDS + 25; i++) {
		char name[16];
		snprintf(name, sizeof(name), "f%d", i);
		error_field(&err, name, "unknown", "unknown field");
	}
	assert_int_equal(json_array_size(err.fields), ERROR_MAX_FIELDS);
	assert_int_equal(error_field_count(&err), ERROR_MAX_FIELDS + 25);
	assert_string_equal(json_string_value(json_object_get(
				json_array_get(err.fields, ERROR_MAX_FIELDS - 1), "field")),
			    "f49");
	assert_string_equal(err.detail, "75 fields are invalid");
	error_release(&err);
	assert_int_equal(error_field_count(&err), 0);
}

static void test_field_cuts_a_long_name_at_a_character_boundary(void **state)
{
	char name[4 * ERROR_MAX_FIELD_NAME + 1];
	/* "é" is two bytes: a cut at an odd byte would split one */
	for (int i = 0; i < 2 * ERROR_MAX_FIELD_NAME; i++)
		memcpy(name + 2 * i, "\xc3\xa9", 2);
	name[4 * ERROR_MAX_FIELD_NAME] = '\0';
	memmove(name + 1, name, 4 * ERROR_MAX_FIELD_NAME - 1);
	name[0] = 'x';
	struct error err = ERROR_INIT;
	error_field(&err, name, "unknown", "unknown field");
	const char *kept =
	    json_string_value(json_object_get(json_array_get(err.fields, 0), "field"));
	assert_non_null(kept); /* jansson refuses a string that is not UTF-8 */
	/* "x" and 31 "é" (63 bytes): the 64th byte would split the 32nd */
	assert_int_equal(strlen(kept), ERROR_MAX_FIELD_NAME - 1);
	assert_memory_equal(kept, name, strlen(kept));
	error_release(&err);
}

static void test_quote_keeps_utf8_and_escapes_the_rest(void **state)
{
	(void)state;
	char buf[64];
	assert_string_equal(error_quote(buf, sizeof(buf), "open", 40), "open");
	assert_string_equal(error_quote(buf, sizeof(buf), "\xc3\xa9t\xc3\xa9", 40),
			    "\xc3\xa9t\xc3\xa9");
	assert_string_equal(error_quote(buf, sizeof(buf), "a\xff\x01\x7f", 40), "a\\xFF\\x01\\x7F");
	assert_string_equal(error_quote(buf, sizeof(buf), "\xed\xa0\x80", 40), "\\xED\\xA0\\x80");
	/* Cut at `max` characters, or where the buffer ends, never inside a character. */
	assert_string_equal(error_quote(buf, sizeof(buf), "abcdefgh", 3), "abc...");
	assert_string_equal(error_quote(buf, 9, "\xc3\xa9\xc3\xa9\xc3\xa9", 40),
			    "\xc3\xa9\xc3\xa9...");
	char big[200];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(strlen(error_quote(buf, sizeof(buf), big, 1000)), sizeof(buf) - 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_kind_has_an_error_status_a_code_and_a_title),
	    cmocka_unit_test(test_codes_are_unique),
	    cmocka_unit_test(test_quote_keeps_utf8_and_escapes_the_rest),
	    cmocka_unit_test(test_table_matches_the_wire_contract),
	    cmocka_unit_test(test_negative_kind_maps_like_positive),
	    cmocka_unit_test(test_unknown_kind_maps_to_internal),
	    cmocka_unit_test(test_set_returns_the_negative_kind_and_formats_the_detail),
	    cmocka_unit_test(test_set_accepts_a_negative_kind),
	    cmocka_unit_test(test_set_without_an_error_struct_returns_the_kind),
	    cmocka_unit_test(test_set_truncates_a_long_detail),
	    cmocka_unit_test(test_field_accumulates_fields_and_sets_validation_failed),
	    cmocka_unit_test(test_field_overrides_an_earlier_kind),
	    cmocka_unit_test(test_set_after_fields_keeps_the_fields),
	    cmocka_unit_test(test_field_on_null_error_is_ignored),
	    cmocka_unit_test(test_release_clears_and_allows_reuse),
	    cmocka_unit_test(test_field_keeps_the_first_fifty_and_counts_the_rest),
	    cmocka_unit_test(test_field_cuts_a_long_name_at_a_character_boundary),
	};
	return cmocka_run_group_tests_name("core/error", tests, NULL, NULL);
}
