/*
 * test_clientkey.c — client_key(): IPv4 as itself, IPv6 by its /64, IPv4-mapped IPv6 as the
 * IPv4 address, and text that is no address kept apart.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "http/clientkey.h"

static const char *key(const char *ip)
{
	static char out[CLIENT_KEY_LEN];
	assert_true(client_key(ip, out));
	return out;
}

static void test_ipv4_is_its_own_key(void **state)
{
	assert_string_equal(key("192.0.2.7"), "192.0.2.7");
	assert_string_equal(key("127.0.0.1"), "127.0.0.1");
}

static void test_ipv6_addresses_of_one_slash_64_share_a_key(void **state)
{
	char a[CLIENT_KEY_LEN];
	snprintf(a, sizeof(a), "%s", key("2001:db8:1:2::1"));
	assert_string_equal(a, "2001:db8:1:2::/64");
	assert_string_equal(key("2001:db8:1:2:ffff:ffff:ffff:ffff"), a);
	assert_string_equal(key("2001:0DB8:0001:0002:abcd::9"), a);
}

static void test_ipv6_addresses_of_another_slash_64_differ(void **state)
{
	assert_string_equal(key("2001:db8:1:3::1"), "2001:db8:1:3::/64");
	assert_string_equal(key("::1"), "::/64");
	assert_string_equal(key("ffff:ffff:ffff:ffff:1:2:3:4"), "ffff:ffff:ffff:ffff::/64");
}

static void test_ipv4_mapped_ipv6_is_the_ipv4_address(void **state)
{
	assert_string_equal(key("::ffff:192.0.2.7"), "192.0.2.7");
	assert_string_equal(key("::ffff:c000:207"), "192.0.2.7");
}

static void test_text_that_is_no_address_is_kept_apart(void **state)
{
	char out[CLIENT_KEY_LEN];
	assert_false(client_key("not-an-ip", out));
	assert_string_equal(out, "not-an-ip");
	assert_false(client_key("2001:db8::1/64", out));
	assert_false(client_key("", out));
	char longer[100];
	memset(longer, 'a', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	assert_false(client_key(longer, out));
	assert_int_equal(strlen(out), CLIENT_KEY_LEN - 1);
}

static void test_socket_addresses_key_like_their_text(void **state)
{
	char out[CLIENT_KEY_LEN];
	struct sockaddr_in a4 = {.sin_family = AF_INET};
	struct sockaddr_in6 a6 = {.sin6_family = AF_INET6};
	inet_pton(AF_INET, "198.51.100.4", &a4.sin_addr);
	assert_true(client_key_addr((struct sockaddr *)&a4, out));
	assert_string_equal(out, "198.51.100.4");
	inet_pton(AF_INET6, "2001:db8:aa:bb:1:2:3:4", &a6.sin6_addr);
	assert_true(client_key_addr((struct sockaddr *)&a6, out));
	assert_string_equal(out, "2001:db8:aa:bb::/64");
	inet_pton(AF_INET6, "::ffff:198.51.100.4", &a6.sin6_addr);
	assert_true(client_key_addr((struct sockaddr *)&a6, out));
	assert_string_equal(out, "198.51.100.4");
	struct sockaddr other = {.sa_family = AF_UNIX};
	assert_false(client_key_addr(&other, out));
	assert_false(client_key_addr(NULL, out));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ipv4_is_its_own_key),
	    cmocka_unit_test(test_ipv6_addresses_of_one_slash_64_share_a_key),
	    cmocka_unit_test(test_ipv6_addresses_of_another_slash_64_differ),
	    cmocka_unit_test(test_ipv4_mapped_ipv6_is_the_ipv4_address),
	    cmocka_unit_test(test_text_that_is_no_address_is_kept_apart),
	    cmocka_unit_test(test_socket_addresses_key_like_their_text),
	};
	return cmocka_run_group_tests_name("http/clientkey", tests, NULL, NULL);
}
