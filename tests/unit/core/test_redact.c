/*
 * test_redact.c — passwords in connection strings never reach a message or `ps`: URL
 * userinfo (with an unencoded '@' too), password-only userinfo, libpq key=value strings
 * (quoted values included), URL query parameters; nothing else is touched.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "core/redact.h"

static void check(const char *in, const char *want)
{
	char buf[256], copy[256];
	redact_url(in, buf, sizeof(buf));
	assert_string_equal(buf, want);
	/* In place: same length, the same characters outside the password. */
	snprintf(copy, sizeof(copy), "%s", in);
	bool had = redact_in_place(copy);
	assert_int_equal(strlen(copy), strlen(in));
	assert_int_equal(had, strcmp(in, want) != 0);
	assert_null(strstr(copy, "s3cret"));
}

static void test_url_userinfo_password_is_hidden(void **state)
{
	(void)state;
	check("postgres://alice:s3cret@db.example.com:5432/tandem",
	      "postgres://alice:***@db.example.com:5432/tandem");
	check("postgresql://alice:s3cret@with@at@host/db", "postgresql://alice:***@host/db");
	check("redis://s3cret@localhost:6379/0", "redis://***@localhost:6379/0");
	check("http://bob:s3cret@x", "http://bob:***@x"); /* any scheme, a mistyped one too */
}

static void test_password_parameters_are_hidden(void **state)
{
	(void)state;
	check("host=/tmp dbname=tandem password=s3cret user=alice",
	      "host=/tmp dbname=tandem password=*** user=alice");
	check("password = 's3cret with \\' quote' dbname=x", "password = *** dbname=x");
	check("postgres://h/db?user=a&password=s3cret&sslmode=disable",
	      "postgres://h/db?user=a&password=***&sslmode=disable");
	check("postgres://a:s3cret@h/db?password=s3cret", "postgres://a:***@h/db?password=***");
}

static void test_strings_without_a_password_are_unchanged(void **state)
{
	(void)state;
	check("postgres://db.example.com/tandem", "postgres://db.example.com/tandem");
	check("sqlite:/var/lib/tandem/tandem.db", "sqlite:/var/lib/tandem/tandem.db");
	check("host=/tmp dbname=x oldpassword_hint=1", "host=/tmp dbname=x oldpassword_hint=1");
	check("", "");
}

static void test_a_short_buffer_is_truncated_and_terminated(void **state)
{
	(void)state;
	char buf[12];
	redact_url("postgres://alice:s3cret@host/db", buf, sizeof(buf));
	assert_int_equal(strlen(buf), sizeof(buf) - 1);
	assert_null(strstr(buf, "s3c"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_url_userinfo_password_is_hidden),
	    cmocka_unit_test(test_password_parameters_are_hidden),
	    cmocka_unit_test(test_strings_without_a_password_are_unchanged),
	    cmocka_unit_test(test_a_short_buffer_is_truncated_and_terminated),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
