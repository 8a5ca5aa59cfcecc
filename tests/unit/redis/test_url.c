/*
 * test_url.c — the one parser of Redis URLs (redis/url.h): every accepted form with what it
 * yields (host, port, socket path, ACL user, password, database), the forms that must be
 * refused, messages that never quote the password, and the redaction used in start-up
 * messages.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "redis/url.h"

static struct redis_url parse_ok(const char *text)
{
	struct redis_url u;
	char why[160] = "";
	int rc = redis_url_parse(text, &u, why, sizeof(why));
	if (rc != 0)
		fail_msg("\"%s\" refused: %s", text, why);
	return u;
}

static void assert_str_or_null(const char *got, const char *want)
{
	if (!want)
		assert_null(got);
	else if (!got)
		fail_msg("got NULL, expected \"%s\"", want);
	else
		assert_string_equal(got, want);
}

static void assert_url(const char *text, const char *host, int port, const char *path,
		       const char *user, const char *password, int db)
{
	struct redis_url u = parse_ok(text);
	assert_str_or_null(u.host, host);
	assert_int_equal(u.port, port);
	assert_str_or_null(u.path, path);
	assert_str_or_null(u.user, user);
	assert_str_or_null(u.password, password);
	assert_int_equal(u.db, db);
	redis_url_release(&u);
}

static void tcp_host_alone_takes_the_default_port(void **state)
{
	assert_url("redis://localhost", "localhost", 6379, NULL, NULL, NULL, 0);
	assert_url("redis://127.0.0.1:6380", "127.0.0.1", 6380, NULL, NULL, NULL, 0);
	assert_url("redis://cache.internal:1/", "cache.internal", 1, NULL, NULL, NULL, 0);
}

static void tcp_database_number_follows_the_slash(void **state)
{
	assert_url("redis://h:7000/3", "h", 7000, NULL, NULL, NULL, 3);
	assert_url("redis://h/15", "h", 6379, NULL, NULL, NULL, 15);
}

static void ipv6_address_goes_in_brackets(void **state)
{
	assert_url("redis://[::1]:6390/2", "::1", 6390, NULL, NULL, NULL, 2);
	assert_url("redis://[fe80::1]", "fe80::1", 6379, NULL, NULL, NULL, 0);
}

static void acl_user_and_password(void **state)
{
	assert_url("redis://tandem:s3cret@h:6380/1", "h", 6380, NULL, "tandem", "s3cret", 1);
}

static void password_without_user_logs_in_as_default(void **state)
{
	assert_url("redis://:s3cret@h", "h", 6379, NULL, NULL, "s3cret", 0);
	/* Userinfo without ':' is the password, as it always was here. */
	assert_url("redis://s3cret@h", "h", 6379, NULL, NULL, "s3cret", 0);
}

static void password_is_taken_as_written(void **state)
{
	/* ':' and '@' inside the password: userinfo ends at the last '@', the user name at the
	 * first ':'. No percent-decoding. */
	assert_url("redis://u:p:a@ss@h:1", "h", 1, NULL, "u", "p:a@ss", 0);
	assert_url("redis://u:p%40ss@h", "h", 6379, NULL, "u", "p%40ss", 0);
	assert_url("redis://u:p/ss@h/4", "h", 6379, NULL, "u", "p/ss", 4);
}

static void unix_socket_with_and_without_database(void **state)
{
	assert_url("unix:///run/redis/redis.sock", NULL, 0, "/run/redis/redis.sock", NULL, NULL, 0);
	assert_url("unix:///tmp/r.sock?db=5", NULL, 0, "/tmp/r.sock", NULL, NULL, 5);
}

static void unix_socket_with_acl_user(void **state)
{
	assert_url("unix://tandem:pw@/tmp/r.sock?db=2", NULL, 0, "/tmp/r.sock", "tandem", "pw", 2);
	assert_url("unix://:pw@/tmp/r.sock", NULL, 0, "/tmp/r.sock", NULL, "pw", 0);
	/* An absolute path may hold an '@': it is a path, not userinfo. */
	assert_url("unix:///tmp/a@b/r.sock", NULL, 0, "/tmp/a@b/r.sock", NULL, NULL, 0);
}

static void assert_refused(const char *text, const char *why_has)
{
	struct redis_url u;
	char why[160] = "";
	if (redis_url_parse(text, &u, why, sizeof(why)) == 0)
		fail_msg("\"%s\" accepted", text);
	assert_null(u.host);
	assert_null(u.path);
	assert_null(u.user);
	assert_null(u.password);
	if (!strstr(why, why_has))
		fail_msg("\"%s\": message \"%s\" does not say \"%s\"", text, why, why_has);
	if (strstr(why, "hunter2"))
		fail_msg("\"%s\": message \"%s\" quotes the password", text, why);
}

static void other_schemes_are_refused(void **state)
{
	assert_refused("http://localhost:6379", "expected redis://");
	assert_refused("rediss://u:hunter2@h", "expected redis://");
	assert_refused("localhost:6379", "expected redis://");
	assert_refused("", "expected redis://");
}

static void bad_ports_are_refused(void **state)
{
	assert_refused("redis://u:hunter2@h:0", "bad port");
	assert_refused("redis://u:hunter2@h:65536", "bad port");
	assert_refused("redis://u:hunter2@h:", "bad port");
	assert_refused("redis://u:hunter2@h:63x9", "bad port");
	assert_refused("redis://u:hunter2@h:-1", "bad port");
	assert_refused("redis://u:hunter2@h:99999999999999999999", "bad port");
	assert_refused("redis://[::1]x", "after the [IPv6 address]");
	assert_refused("redis://[::1", "unterminated");
}

static void missing_host_is_refused(void **state)
{
	assert_refused("redis://", "no host");
	assert_refused("redis://u:hunter2@", "no host");
	assert_refused("redis://:6379", "no host");
	assert_refused("redis:///0", "no host");
	assert_refused("redis://h?db=1", "unexpected '?'");
}

static void bad_databases_are_refused(void **state)
{
	assert_refused("redis://u:hunter2@h/x", "database");
	assert_refused("redis://h/-1", "database");
	assert_refused("redis://h/1/2", "database");
	assert_refused("redis://h/99999999999", "database");
	assert_refused("unix:///tmp/r.sock?db=", "?db=N");
	assert_refused("unix:///tmp/r.sock?db=x", "?db=N");
	assert_refused("unix:///tmp/r.sock?database=1", "?db=N");
}

static void missing_socket_path_is_refused(void **state)
{
	assert_refused("unix://", "no socket path");
	assert_refused("unix://?db=1", "no socket path");
	assert_refused("unix://u:hunter2@?db=1", "must be absolute");
	assert_refused("unix://redis.sock", "must be absolute");
	assert_refused("unix://u:hunter2@", "must be absolute");
}

static void user_without_password_is_refused(void **state)
{
	assert_refused("redis://tandem:@h", "without a password");
	assert_refused("unix://tandem:@/tmp/r.sock", "without a password");
}

static void assert_redacted(const char *text, const char *want)
{
	char buf[256];
	redis_url_redact(text, buf, sizeof(buf));
	assert_string_equal(buf, want);
}

static void redaction_hides_only_the_password(void **state)
{
	assert_redacted("redis://tandem:hunter2@h:6380/1", "redis://tandem:***@h:6380/1");
	assert_redacted("redis://:hunter2@h", "redis://:***@h");
	assert_redacted("redis://hunter2@h", "redis://***@h");
	assert_redacted("redis://u:hun@ter2@h:0", "redis://u:***@h:0");
	assert_redacted("unix://u:hunter2@/tmp/r.sock?db=x", "unix://u:***@/tmp/r.sock?db=x");
	assert_redacted("redis://h:1/0", "redis://h:1/0");
	assert_redacted("unix:///tmp/a@b", "unix:///tmp/a@b");
	/* A mistyped scheme may carry a password too. */
	assert_redacted("rediss://u:hunter2@h", "rediss://u:***@h");
	assert_redacted("http://hunter2@h:1", "http://***@h:1");
	assert_redacted("localhost:6379", "localhost:6379");
	assert_redacted("", "");
}

static void redaction_truncates_safely(void **state)
{
	char buf[12];
	redis_url_redact("redis://tandem:hunter2@host", buf, sizeof(buf));
	assert_string_equal(buf, "redis://tan");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(tcp_host_alone_takes_the_default_port),
	    cmocka_unit_test(tcp_database_number_follows_the_slash),
	    cmocka_unit_test(ipv6_address_goes_in_brackets),
	    cmocka_unit_test(acl_user_and_password),
	    cmocka_unit_test(password_without_user_logs_in_as_default),
	    cmocka_unit_test(password_is_taken_as_written),
	    cmocka_unit_test(unix_socket_with_and_without_database),
	    cmocka_unit_test(unix_socket_with_acl_user),
	    cmocka_unit_test(other_schemes_are_refused),
	    cmocka_unit_test(bad_ports_are_refused),
	    cmocka_unit_test(missing_host_is_refused),
	    cmocka_unit_test(bad_databases_are_refused),
	    cmocka_unit_test(missing_socket_path_is_refused),
	    cmocka_unit_test(user_without_password_is_refused),
	    cmocka_unit_test(redaction_hides_only_the_password),
	    cmocka_unit_test(redaction_truncates_safely),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
