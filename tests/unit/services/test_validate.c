/*
 * test_validate.c — strict input (API.md "General rules"): validate_object() against a field
 * table of every field type, one {field, code, message} entry per offending field, lengths in
 * code points, enumerations, UUIDs and RFC 3339 timestamps; and the small helpers beside it
 * (utf8_length, valid_email, valid_username, body_string).
 *
 * The expected `code` strings are the module's (API.md pins only "too_long" and the shape);
 * they are the stable wire values clients match on, so a change to one must show here.
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

#include "core/error.h"
#include "services/validate.h"

static const char *const statuses[] = {"todo", "in_progress", "done", NULL};

/* One field of every type; `title` is the only required one. */
static const struct field_spec specs[] = {
    {"id", FIELD_READ_ONLY, false, false, 0, 0, NULL},
    {"title", FIELD_STRING, true, false, 1, 5, NULL},
    {"note", FIELD_STRING, false, true, 0, 3, NULL},
    {"code", FIELD_STRING, false, false, 3, 0, NULL}, /* at least 3, no maximum */
    {"status", FIELD_ENUM, false, false, 0, 0, statuses},
    {"owner_id", FIELD_UUID, false, true, 0, 0, NULL},
    {"due", FIELD_TIMESTAMP, false, true, 0, 0, NULL},
    {"count", FIELD_INTEGER, false, false, 0, 0, NULL},
    {"done", FIELD_BOOLEAN, false, false, 0, 0, NULL},
};
#define NSPECS (sizeof(specs) / sizeof(specs[0]))

#define UUID "01890a5d-ac96-774b-bcce-b302099a8057"

/* Parse a test body (written with single quotes for readability) and validate it. */
static int validate(const char *text, struct error *err)
{
	char buf[2048];
	size_t n = strlen(text);
	assert_true(n < sizeof(buf));
	for (size_t i = 0; i <= n; i++)
		buf[i] = text[i] == '\'' ? '"' : text[i];
	json_error_t je;
	json_t *body = json_loads(buf, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
	if (!body)
		fail_msg("test body %s: %s", buf, je.text);
	int rc = validate_object(body, specs, NSPECS, err);
	json_decref(body);
	return rc;
}

/* The one error entry recorded for `field`; fails when there is none or more than one. */
static json_t *entry_of(const struct error *err, const char *field)
{
	json_t *found = NULL, *e;
	size_t i, n = 0;
	json_array_foreach(err->fields, i, e)
	{
		if (!strcmp(json_string_value(json_object_get(e, "field")), field)) {
			found = e;
			n++;
		}
	}
	if (n != 1)
		fail_msg("%zu error entries for field \"%s\", want 1", n, field);
	return found;
}

static const char *code_of(const struct error *err, const char *field)
{
	return json_string_value(json_object_get(entry_of(err, field), "code"));
}

static const char *message_of(const struct error *err, const char *field)
{
	return json_string_value(json_object_get(entry_of(err, field), "message"));
}

/* `body` is refused with exactly one entry: `field` with `code`. */
static void assert_one_error(const char *body, const char *field, const char *code)
{
	struct error err = ERROR_INIT;
	int rc = validate(body, &err);
	if (rc != -ERR_VALIDATION_FAILED || error_field_count(&err) != 1)
		fail_msg("%s: rc %d with %zu field errors, want -ERR_VALIDATION_FAILED with 1",
			 body, rc, error_field_count(&err));
	assert_int_equal(err.kind, ERR_VALIDATION_FAILED);
	if (strcmp(code_of(&err, field), code))
		fail_msg("%s: field \"%s\" has code \"%s\", want \"%s\"", body, field,
			 code_of(&err, field), code);
	assert_true(strlen(message_of(&err, field)) > 0);
	error_release(&err);
}

static void assert_valid(const char *body)
{
	struct error err = ERROR_INIT;
	int rc = validate(body, &err);
	if (rc != 0) {
		char *dump = err.fields ? json_dumps(err.fields, JSON_COMPACT) : NULL;
		fail_msg("%s refused (rc %d): %s", body, rc, dump ? dump : "no field errors");
	}
	assert_int_equal(err.kind, ERR_OK);
	assert_int_equal(error_field_count(&err), 0);
	assert_null(err.fields);
	error_release(&err);
}

static void test_body_with_every_field_valid_passes(void **state)
{
	(void)state;
	assert_valid("{'title': 'write', 'note': 'ok', 'code': 'abcdef', 'status': 'done', "
		     "'owner_id': '" UUID "', 'due': '2024-01-15T14:30:00.000Z', 'count': -3, "
		     "'done': false}");
}

static void test_body_with_only_the_required_field_passes(void **state)
{
	(void)state;
	assert_valid("{'title': 'x'}");
}

static void test_unknown_field_is_refused_by_name(void **state)
{
	(void)state;
	assert_one_error("{'title': 'x', 'colour': 'red'}", "colour", "unknown_field");
	/* Names are exact: no case folding, no prefix match. */
	assert_one_error("{'title': 'x', 'Title': 'y'}", "Title", "unknown_field");
	assert_one_error("{'title': 'x', 'tit': 'y'}", "tit", "unknown_field");
}

static void test_very_long_unknown_field_name_is_cut_to_64_characters(void **state)
{
	(void)state;
	char body[400], name[200];
	memset(name, 'k', 150);
	name[150] = '\0';
	snprintf(body, sizeof(body), "{'title': 'x', '%s': 1}", name);
	name[64] = '\0';
	assert_one_error(body, name, "unknown_field");
}

static void test_read_only_field_is_refused_even_with_a_valid_value(void **state)
{
	(void)state;
	assert_one_error("{'title': 'x', 'id': '" UUID "'}", "id", "read_only");
	assert_one_error("{'title': 'x', 'id': null}", "id", "read_only");
}

static void test_wrong_json_type_is_refused_for_every_field_type(void **state)
{
	(void)state;
	static const struct {
		const char *field;
		const char *values[6];
	} cases[] = {
	    {"title", {"1", "true", "[]", "{}", "1.5", NULL}},
	    {"code", {"123", "false", "['abc']", NULL}},
	    {"status", {"1", "true", "['done']", "{'done': 1}", NULL}},
	    {"owner_id", {"1", "true", "['" UUID "']", NULL}},
	    {"due", {"1705329000000", "true", "{}", NULL}},
	    {"count", {"'1'", "1.5", "1.0", "true", "[1]", NULL}},
	    {"done", {"0", "1", "'true'", "[]", NULL}},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		for (const char *const *v = cases[i].values; *v; v++) {
			char body[200];
			const char *field = cases[i].field;
			if (!strcmp(field, "title"))
				snprintf(body, sizeof(body), "{'title': %s}", *v);
			else
				snprintf(body, sizeof(body), "{'title': 'x', '%s': %s}", field, *v);
			assert_one_error(body, field, "type");
		}
}

static void test_type_message_names_the_expected_type(void **state)
{
	(void)state;
	struct error err = ERROR_INIT;
	validate("{'title': 1, 'count': 'x', 'done': 'x'}", &err);
	assert_non_null(strstr(message_of(&err, "title"), "string"));
	assert_non_null(strstr(message_of(&err, "count"), "integer"));
	assert_non_null(strstr(message_of(&err, "done"), "boolean"));
	error_release(&err);
}

static void test_missing_required_field_is_refused(void **state)
{
	(void)state;
	assert_one_error("{}", "title", "required");
	assert_one_error("{'note': 'a'}", "title", "required");
}

static void test_null_is_accepted_only_for_nullable_fields(void **state)
{
	(void)state;
	assert_valid("{'title': 'x', 'note': null, 'owner_id': null, 'due': null}");
	assert_one_error("{'title': null}", "title", "not_nullable");
	assert_one_error("{'title': 'x', 'code': null}", "code", "not_nullable");
	assert_one_error("{'title': 'x', 'status': null}", "status", "not_nullable");
	assert_one_error("{'title': 'x', 'count': null}", "count", "not_nullable");
	assert_one_error("{'title': 'x', 'done': null}", "done", "not_nullable");
}

static void test_lengths_are_counted_in_code_points(void **state)
{
	(void)state;
	/* Five characters each, up to 20 bytes: at the maximum of 5. */
	assert_valid("{'title': 'h\xc3\xa9llo'}");
	assert_valid("{'title': '\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe6\x97\xa5\xe6\x9c\xac'}");
	assert_valid("{'title': '\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80"
		     "\xf0\x9f\x98\x80'}");
	/* Six characters: one too many, however few bytes. */
	assert_one_error("{'title': 'abcdef'}", "title", "too_long");
	assert_one_error("{'title': 'h\xc3\xa9llo!'}", "title", "too_long");
	/* Three characters in 9 bytes meet a minimum of 3; two in 5 bytes do not. */
	assert_valid("{'title': 'x', 'code': '\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80'}");
	assert_one_error("{'title': 'x', 'code': '\xc3\xa9\xe6\x97\xa5'}", "code", "too_short");
	assert_one_error("{'title': 'x', 'code': 'ab'}", "code", "too_short");
}

static void test_length_messages_give_the_limit(void **state)
{
	(void)state;
	struct error err = ERROR_INIT;
	validate("{'title': 'abcdef', 'code': 'a'}", &err);
	/* API.md's own example: {"code": "too_long", "message": "at most 200 characters"}. */
	assert_string_equal(message_of(&err, "title"), "at most 5 characters");
	assert_string_equal(message_of(&err, "code"), "at least 3 characters");
	error_release(&err);
}

static void test_empty_string_for_a_non_empty_field_counts_as_missing(void **state)
{
	(void)state;
	assert_one_error("{'title': ''}", "title", "required");
	/* A field without a minimum takes the empty string; one without a maximum any length. */
	assert_valid("{'title': 'x', 'note': ''}");
	char body[1100];
	snprintf(body, sizeof(body), "{'title': 'x', 'code': '%01000d'}", 0);
	assert_valid(body);
}

static void test_string_with_a_nul_character_is_refused(void **state)
{
	(void)state;
	assert_one_error("{'title': 'a\\u0000b'}", "title", "invalid");
}

static void test_enum_takes_only_its_choices(void **state)
{
	(void)state;
	assert_valid("{'title': 'x', 'status': 'todo'}");
	assert_valid("{'title': 'x', 'status': 'in_progress'}");
	assert_valid("{'title': 'x', 'status': 'done'}");
	assert_one_error("{'title': 'x', 'status': 'DONE'}", "status", "invalid_choice");
	assert_one_error("{'title': 'x', 'status': 'in progress'}", "status", "invalid_choice");
	assert_one_error("{'title': 'x', 'status': ''}", "status", "invalid_choice");
	assert_one_error("{'title': 'x', 'status': 'done '}", "status", "invalid_choice");
}

static void test_enum_message_lists_the_choices(void **state)
{
	(void)state;
	struct error err = ERROR_INIT;
	validate("{'title': 'x', 'status': 'later'}", &err);
	assert_string_equal(message_of(&err, "status"), "must be one of: todo, in_progress, done");
	error_release(&err);
}

static void test_uuid_field_takes_only_uuids(void **state)
{
	(void)state;
	assert_valid("{'title': 'x', 'owner_id': '" UUID "'}");
	assert_one_error("{'title': 'x', 'owner_id': 'not-a-uuid'}", "owner_id", "invalid");
	assert_one_error("{'title': 'x', 'owner_id': ''}", "owner_id", "invalid");
	/* One character short, and without its dashes. */
	assert_one_error("{'title': 'x', 'owner_id': '01890a5d-ac96-774b-bcce-b302099a805'}",
			 "owner_id", "invalid");
	assert_one_error("{'title': 'x', 'owner_id': '01890a5dac96774bbcceb302099a8057'}",
			 "owner_id", "invalid");
	assert_one_error("{'title': 'x', 'owner_id': '01890a5d-ac96-774b-bcce-b302099a805g'}",
			 "owner_id", "invalid");
}

static void test_timestamp_field_takes_rfc3339_date_times(void **state)
{
	(void)state;
	assert_valid("{'title': 'x', 'due': '2024-01-15T14:30:00Z'}");
	assert_valid("{'title': 'x', 'due': '2024-01-15T14:30:00.123Z'}");
	assert_valid("{'title': 'x', 'due': '2024-01-15T14:30:00.5+02:00'}");
	assert_valid("{'title': 'x', 'due': '2024-02-29T23:59:59-11:30'}");
	static const char *const bad[] = {
	    "2024-01-15",
	    "14:30:00Z",
	    "2024-01-15T14:30:00", /* no zone */
	    "2024-02-30T00:00:00Z",
	    "2023-02-29T00:00:00Z",
	    "2024-13-01T00:00:00Z",
	    "2024-01-15T24:00:01Z",
	    "2024-01-15T14:30:00.Z",
	    "yesterday",
	    "",
	    "2024-01-15T14:30:00Z junk",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char body[200];
		snprintf(body, sizeof(body), "{'title': 'x', 'due': '%s'}", bad[i]);
		assert_one_error(body, "due", "invalid");
	}
}

static void test_every_offending_field_gets_one_entry(void **state)
{
	(void)state;
	struct error err = ERROR_INIT;
	int rc = validate("{'id': 'x', 'colour': 1, 'note': 'long', 'status': 'later', "
			  "'owner_id': 'no', 'due': 'soon', 'count': 'many', 'done': 1, "
			  "'code': null}",
			  &err);
	assert_int_equal(rc, -ERR_VALIDATION_FAILED);
	assert_int_equal(err.kind, ERR_VALIDATION_FAILED);
	assert_int_equal(error_field_count(&err), 10);
	assert_string_equal(code_of(&err, "id"), "read_only");
	assert_string_equal(code_of(&err, "colour"), "unknown_field");
	assert_string_equal(code_of(&err, "note"), "too_long");
	assert_string_equal(code_of(&err, "status"), "invalid_choice");
	assert_string_equal(code_of(&err, "owner_id"), "invalid");
	assert_string_equal(code_of(&err, "due"), "invalid");
	assert_string_equal(code_of(&err, "count"), "type");
	assert_string_equal(code_of(&err, "done"), "type");
	assert_string_equal(code_of(&err, "code"), "not_nullable");
	assert_string_equal(code_of(&err, "title"), "required");
	/* Each entry is exactly {field, code, message}, all strings. */
	json_t *e;
	size_t i;
	json_array_foreach(err.fields, i, e)
	{
		assert_int_equal(json_object_size(e), 3);
		assert_true(json_is_string(json_object_get(e, "message")));
	}
	/* API.md: "detail": "2 fields are invalid". */
	assert_string_equal(err.detail, "10 fields are invalid");
	error_release(&err);
}

static void test_detail_counts_a_single_field_in_the_singular(void **state)
{
	(void)state;
	struct error err = ERROR_INIT;
	validate("{'title': 'x', 'colour': 1}", &err);
	assert_string_equal(err.detail, "1 field is invalid");
	error_release(&err);
}

static void test_valid_body_does_not_fail_on_earlier_field_errors(void **state)
{
	/* A caller that recorded a field error of its own first: only new problems count. */
	(void)state;
	struct error err = ERROR_INIT;
	error_field(&err, "password", "too_short", "at least 8 characters");
	assert_int_equal(validate("{'title': 'x'}", &err), 0);
	assert_int_equal(error_field_count(&err), 1);
	assert_int_equal(validate("{'title': 'x', 'done': 1}", &err), -ERR_VALIDATION_FAILED);
	assert_int_equal(error_field_count(&err), 2);
	error_release(&err);
}

static void test_utf8_length_counts_code_points(void **state)
{
	(void)state;
	assert_int_equal(utf8_length(""), 0);
	assert_int_equal(utf8_length("abc"), 3);
	assert_int_equal(utf8_length("\xc3\xa9"), 1);	      /* é, 2 bytes */
	assert_int_equal(utf8_length("\xe2\x82\xac"), 1);     /* €, 3 bytes */
	assert_int_equal(utf8_length("\xf0\x9f\x98\x80"), 1); /* 😀, 4 bytes */
	assert_int_equal(utf8_length("a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z"), 5);
	assert_int_equal(utf8_length("e\xcc\x81"), 2); /* e + combining acute: two code points */
}

static void test_valid_email_accepts_ordinary_addresses(void **state)
{
	(void)state;
	static const char *const good[] = {
	    "a@b.co",
	    "first.last+tag@example.com",
	    "x_y-z@mail.sub.example.org",
	    "UPPER@Example.COM",
	    "digits123@123.example",
	    "\xc3\xbc@ex\xc3\xa4mple.de", /* ü@exämple.de */
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (!valid_email(good[i]))
			fail_msg("\"%s\" refused", good[i]);
}

static void test_valid_email_refuses_malformed_addresses(void **state)
{
	(void)state;
	static const char *const bad[] = {
	    "",		"plain",     "@example.com", "a@",	  "a@b",
	    "a@@b.com", "a@b@c.com", "a b@c.com",    "a@b c.com", "a\t@b.com",
	    ".a@b.com", "a.@b.com",  "a..b@c.com",   "a@b..com",  "a@.b.com",
	    "a@b.com.", "a@-b.com",  "a@b-.com",     "a@b_c.com", "a@b.com\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (valid_email(bad[i]))
			fail_msg("\"%s\" accepted", bad[i]);
}

static void test_valid_email_refuses_specials_and_controls_in_the_local_part(void **state)
{
	/* Each on its own, so that dropping one character from the check shows. */
	(void)state;
	static const char specials[] = "()<>[]\\,;:\" \t\x01\x1f\x7f";
	for (const char *c = specials; *c; c++) {
		char s[16];
		snprintf(s, sizeof(s), "a%cb@c.com", *c);
		if (valid_email(s))
			fail_msg("\"%s\" (with 0x%02x) accepted", s, (unsigned char)*c);
	}
}

static void test_valid_email_enforces_the_length_limits(void **state)
{
	(void)state;
	char s[400];
	/* Local part: 64 characters at most. */
	snprintf(s, sizeof(s), "%s@b.com",
		 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	assert_true(valid_email(s));
	snprintf(s, sizeof(s), "%s@b.com",
		 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	assert_false(valid_email(s));
	/* A domain label: 63 characters at most. */
	char label[70];
	memset(label, 'd', 63);
	label[63] = '\0';
	snprintf(s, sizeof(s), "a@%s.com", label);
	assert_true(valid_email(s));
	snprintf(s, sizeof(s), "a@%sd.com", label);
	assert_false(valid_email(s));
	/* The whole address: 254 bytes at most. */
	char dom[300] = "";
	memset(label, 'd', 60);
	label[60] = '\0';
	for (int i = 0, off = 0; i < 4; i++)
		off += snprintf(dom + off, sizeof(dom) - (size_t)off, "%s.", label);
	/* 7 or 8 local characters, "@", four labels of 60 with their dots (244), "co". */
	snprintf(s, sizeof(s), "aaaaaaa@%sco", dom);
	assert_int_equal(strlen(s), 254);
	assert_true(valid_email(s));
	snprintf(s, sizeof(s), "aaaaaaaa@%sco", dom);
	assert_int_equal(strlen(s), 255);
	assert_false(valid_email(s));
}

static void test_valid_username_takes_3_to_32_of_the_allowed_characters(void **state)
{
	(void)state;
	assert_true(valid_username("abc"));
	assert_true(valid_username("user_name.x-1"));
	assert_true(valid_username("0123456789"));
	assert_true(valid_username("abcdefghijklmnopqrstuvwxyz012345"));   /* 32 */
	assert_false(valid_username("abcdefghijklmnopqrstuvwxyz0123456")); /* 33 */
	assert_false(valid_username("ab"));
	assert_false(valid_username(""));
	assert_false(valid_username("Abc")); /* callers lower-case first */
	assert_false(valid_username("a b"));
	assert_false(valid_username("a@b"));
	assert_false(valid_username("a+b"));
	assert_false(valid_username("a/b"));
	assert_false(valid_username("\xc3\xa9\xc3\xa9\xc3\xa9")); /* three letters, not ASCII */
}

static void test_body_string_reads_only_strings(void **state)
{
	(void)state;
	json_t *body = json_pack("{s:s, s:n, s:i, s:b, s:[s]}", "name", "ada", "gone", "num", 1,
				 "flag", 1, "list", "x");
	const char *name = body_string(body, "name");
	assert_string_equal(name, "ada");
	/* Borrowed from the body, not a copy. */
	assert_ptr_equal(name, json_string_value(json_object_get(body, "name")));
	assert_null(body_string(body, "gone"));
	assert_null(body_string(body, "num"));
	assert_null(body_string(body, "flag"));
	assert_null(body_string(body, "list"));
	assert_null(body_string(body, "absent"));
	json_decref(body);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_body_with_every_field_valid_passes),
	    cmocka_unit_test(test_body_with_only_the_required_field_passes),
	    cmocka_unit_test(test_unknown_field_is_refused_by_name),
	    cmocka_unit_test(test_very_long_unknown_field_name_is_cut_to_64_characters),
	    cmocka_unit_test(test_read_only_field_is_refused_even_with_a_valid_value),
	    cmocka_unit_test(test_wrong_json_type_is_refused_for_every_field_type),
	    cmocka_unit_test(test_type_message_names_the_expected_type),
	    cmocka_unit_test(test_missing_required_field_is_refused),
	    cmocka_unit_test(test_null_is_accepted_only_for_nullable_fields),
	    cmocka_unit_test(test_lengths_are_counted_in_code_points),
	    cmocka_unit_test(test_length_messages_give_the_limit),
	    cmocka_unit_test(test_empty_string_for_a_non_empty_field_counts_as_missing),
	    cmocka_unit_test(test_string_with_a_nul_character_is_refused),
	    cmocka_unit_test(test_enum_takes_only_its_choices),
	    cmocka_unit_test(test_enum_message_lists_the_choices),
	    cmocka_unit_test(test_uuid_field_takes_only_uuids),
	    cmocka_unit_test(test_timestamp_field_takes_rfc3339_date_times),
	    cmocka_unit_test(test_every_offending_field_gets_one_entry),
	    cmocka_unit_test(test_detail_counts_a_single_field_in_the_singular),
	    cmocka_unit_test(test_valid_body_does_not_fail_on_earlier_field_errors),
	    cmocka_unit_test(test_utf8_length_counts_code_points),
	    cmocka_unit_test(test_valid_email_accepts_ordinary_addresses),
	    cmocka_unit_test(test_valid_email_refuses_malformed_addresses),
	    cmocka_unit_test(test_valid_email_refuses_specials_and_controls_in_the_local_part),
	    cmocka_unit_test(test_valid_email_enforces_the_length_limits),
	    cmocka_unit_test(test_valid_username_takes_3_to_32_of_the_allowed_characters),
	    cmocka_unit_test(test_body_string_reads_only_strings),
	};
	return cmocka_run_group_tests_name("services/validate", tests, NULL, NULL);
}
