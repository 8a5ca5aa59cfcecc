/*
 * test_cors.c — the CORS policy: parsing TANDEM_CORS_ORIGINS (exact origins, `*` alone, clear
 * reasons for what is not an origin), matching a request's Origin, and the preflight's
 * request headers and method.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <string.h>

#include "http/cors.h"

/* Parse spec and expect it refused with a reason that contains `part`. */
static void refused(const char *spec, const char *part)
{
	struct cors *c = (struct cors *)1;
	char why[320] = "";
	if (cors_create(spec, &c, why, sizeof(why)) != -1)
		fail_msg("\"%s\" was accepted", spec);
	assert_null(c);
	if (!strstr(why, part))
		fail_msg("\"%s\": reason \"%s\" lacks \"%s\"", spec, why, part);
}

static struct cors *parsed(const char *spec)
{
	struct cors *c = NULL;
	char why[320] = "";
	if (cors_create(spec, &c, why, sizeof(why)) != 0)
		fail_msg("\"%s\" was refused: %s", spec, why);
	return c;
}

static void test_unset_or_blank_is_off(void **state)
{
	(void)state;
	assert_null(parsed(NULL));
	assert_null(parsed(""));
	assert_null(parsed("  "));
	assert_null(cors_allow_origin(NULL, "http://127.0.0.1:5173"));
	assert_false(cors_any(NULL));
}

static void test_listed_origins_match_exactly(void **state)
{
	(void)state;
	struct cors *c = parsed("http://127.0.0.1:5173, https://app.example.com,http://[::1]:8000");
	assert_false(cors_any(c));
	assert_string_equal(cors_allow_origin(c, "http://127.0.0.1:5173"), "http://127.0.0.1:5173");
	assert_string_equal(cors_allow_origin(c, "https://app.example.com"),
			    "https://app.example.com");
	assert_string_equal(cors_allow_origin(c, "http://[::1]:8000"), "http://[::1]:8000");
	/* another port, scheme or host, a suffix or a prefix: not listed */
	static const char *const others[] = {
	    "http://127.0.0.1:5174",
	    "https://127.0.0.1:5173",
	    "http://127.0.0.1",
	    "http://app.example.com",
	    "https://app.example.com.evil.net",
	    "https://evil-app.example.com",
	    "https://app.example.co",
	    "null",
	    "",
	};
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
		if (cors_allow_origin(c, others[i]))
			fail_msg("\"%s\" was allowed", others[i]);
	assert_null(cors_allow_origin(c, NULL));
	cors_free(c);
}

static void test_scheme_and_host_are_compared_lower_cased(void **state)
{
	(void)state;
	struct cors *c = parsed("HTTPS://App.Example.COM");
	assert_string_equal(cors_allow_origin(c, "https://app.example.com"),
			    "https://app.example.com");
	cors_free(c);
}

static void test_star_allows_every_origin(void **state)
{
	(void)state;
	struct cors *c = parsed(" * ");
	assert_true(cors_any(c));
	assert_string_equal(cors_allow_origin(c, "https://anything.example"), "*");
	assert_null(cors_allow_origin(c, NULL)); /* no Origin: not a CORS request */
	cors_free(c);
}

static void test_star_must_be_alone(void **state)
{
	(void)state;
	refused("*,http://127.0.0.1:5173", "must be the only value");
	refused("http://127.0.0.1:5173,*", "must be the only value");
}

static void test_what_is_not_an_origin_is_refused_with_a_reason(void **state)
{
	(void)state;
	refused("http://127.0.0.1:5173/", "no path");
	refused("https://app.example.com/app", "no path");
	refused("app.example.com", "scheme://host");
	refused("http://", "host is missing");
	refused("http://user@app.example.com", "no user name");
	refused("http://app.example.com:0", "port must be");
	refused("http://app.example.com:65536", "port must be");
	refused("http://app.example.com:", "port must be");
	refused("http://app.example.com:80", "default port");
	refused("https://app.example.com:443", "default port");
	refused("http://app.example.com?x=1", "nothing after");
	refused("http://[::1", "closed by ]");
	refused("null", "sandboxed");
	refused("http://a.example,,http://b.example", "empty item");
	refused("http://a.example,", "empty item");
}

static void test_the_reason_names_the_bad_item(void **state)
{
	(void)state;
	refused("https://ok.example, https://bad.example/x", "\"https://bad.example/x\"");
}

static void test_other_ports_of_the_default_schemes_are_fine(void **state)
{
	(void)state;
	struct cors *c = parsed("http://localhost:443,https://localhost:80,capacitor://localhost");
	assert_non_null(cors_allow_origin(c, "capacitor://localhost"));
	cors_free(c);
}

static void test_allow_headers_echoes_the_asked_known_headers(void **state)
{
	char out[256];
	(void)state;
	assert_int_equal(
	    cors_allow_headers("authorization,content-type,if-match", out, sizeof(out)), 0);
	assert_string_equal(out, "Authorization, Content-Type, If-Match");
	assert_int_equal(
	    cors_allow_headers(" Idempotency-Key , LAST-EVENT-ID,if-none-match ", out, sizeof(out)),
	    0);
	assert_string_equal(out, "Idempotency-Key, Last-Event-ID, If-None-Match");
	assert_int_equal(cors_allow_headers("x-request-id", out, sizeof(out)), 0);
	assert_string_equal(out, "X-Request-Id");
}

static void test_allow_headers_with_none_asked_is_empty(void **state)
{
	char out[16];
	(void)state;
	memset(out, 'x', sizeof(out));
	assert_int_equal(cors_allow_headers(NULL, out, sizeof(out)), 0);
	assert_string_equal(out, "");
	assert_int_equal(cors_allow_headers("", out, sizeof(out)), 0);
	assert_string_equal(out, "");
}

static void test_an_unknown_asked_header_refuses_the_grant(void **state)
{
	char out[256];
	(void)state;
	assert_int_equal(cors_allow_headers("authorization,x-custom", out, sizeof(out)), -1);
	assert_int_equal(cors_allow_headers("authorizationx", out, sizeof(out)), -1);
	assert_int_equal(cors_allow_headers("authoriz", out, sizeof(out)), -1);
	assert_int_equal(cors_allow_headers("cookie", out, sizeof(out)), -1);
}

static void test_allow_headers_never_overruns_a_small_buffer(void **state)
{
	char out[8];
	(void)state;
	assert_int_equal(cors_allow_headers("authorization", out, sizeof(out)), -1);
}

static void test_method_must_be_one_of_the_route(void **state)
{
	(void)state;
	assert_true(cors_method_listed("GET, PATCH, DELETE", "PATCH"));
	assert_true(cors_method_listed("GET, PATCH, DELETE", "DELETE"));
	assert_true(cors_method_listed("GET, PATCH, DELETE", "HEAD"));
	assert_false(cors_method_listed("GET, PATCH, DELETE", "POST"));
	assert_false(cors_method_listed("GET, PATCH, DELETE", "patch")); /* case-sensitive */
	assert_false(cors_method_listed("GET, PATCH, DELETE", "PAT"));
	assert_false(cors_method_listed("POST", "HEAD"));
	assert_false(cors_method_listed("GET", ""));
	assert_false(cors_method_listed("GET", NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_unset_or_blank_is_off),
	    cmocka_unit_test(test_listed_origins_match_exactly),
	    cmocka_unit_test(test_scheme_and_host_are_compared_lower_cased),
	    cmocka_unit_test(test_star_allows_every_origin),
	    cmocka_unit_test(test_star_must_be_alone),
	    cmocka_unit_test(test_what_is_not_an_origin_is_refused_with_a_reason),
	    cmocka_unit_test(test_the_reason_names_the_bad_item),
	    cmocka_unit_test(test_other_ports_of_the_default_schemes_are_fine),
	    cmocka_unit_test(test_allow_headers_echoes_the_asked_known_headers),
	    cmocka_unit_test(test_allow_headers_with_none_asked_is_empty),
	    cmocka_unit_test(test_an_unknown_asked_header_refuses_the_grant),
	    cmocka_unit_test(test_allow_headers_never_overruns_a_small_buffer),
	    cmocka_unit_test(test_method_must_be_one_of_the_route),
	};
	return cmocka_run_group_tests_name("http/cors", tests, NULL, NULL);
}
