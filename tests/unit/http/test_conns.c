/*
 * test_conns.c — the connection table: per-client counts and their limit, the request
 * deadline the sweeper enforces (a 408 then the end of the stream, over a socketpair), and
 * the exemptions (answered or parked requests, upgraded connections).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/conns.h"

#define SEC 1000000LL

static void test_a_client_over_its_limit_is_refused_and_counted_apart(void **state)
{
	struct conns *t = conns_create(2, 30 * SEC, 30 * SEC);
	bool over;
	struct conn *a = conns_open(t, "192.0.2.1", -1, 0, &over);
	assert_false(over);
	assert_true(conns_has_room(t, "192.0.2.1"));
	struct conn *b = conns_open(t, "192.0.2.1", -1, 0, &over);
	assert_false(over);
	assert_false(conns_has_room(t, "192.0.2.1"));
	assert_true(conns_has_room(t, "2001:db8::/64"));	   /* another client */
	struct conn *c = conns_open(t, "192.0.2.1", -1, 0, &over); /* a burst got past */
	assert_true(over);
	assert_true(conn_over_limit(c));
	assert_int_equal(conns_count(t, "192.0.2.1"), 3);
	conns_close(t, c);
	conns_close(t, a);
	assert_true(conns_has_room(t, "192.0.2.1"));
	conns_close(t, b);
	assert_int_equal(conns_count(t, "192.0.2.1"), 0);
	conns_free(t);
}

static void test_no_limit_when_zero(void **state)
{
	struct conns *t = conns_create(0, 30 * SEC, 30 * SEC);
	bool over;
	for (int i = 0; i < 100; i++)
		conns_open(t, "k", -1, 0, &over);
	assert_false(over);
	assert_true(conns_has_room(t, "k"));
	conns_free(t); /* closes what is left */
}

static void test_an_upgraded_connection_no_longer_counts(void **state)
{
	struct conns *t = conns_create(1, 30 * SEC, 30 * SEC);
	bool over;
	struct conn *ws = conns_open(t, "k", -1, 0, &over);
	assert_false(conns_has_room(t, "k"));
	conn_upgraded(t, ws);
	assert_true(conns_has_room(t, "k"));
	conns_close(t, ws);
	assert_int_equal(conns_count(t, "k"), 0);
	conns_free(t);
}

static void test_a_late_request_gets_408_and_the_end_of_the_stream(void **state)
{
	int sv[2];
	char buf[1024];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct conns *t = conns_create(0, 2 * SEC, 30 * SEC);
	bool over;
	struct conn *c = conns_open(t, "k", sv[0], 0, &over);
	conn_request_begin(t, c, 10 * SEC);
	assert_int_equal(conns_sweep(t, 12 * SEC - 1), 0); /* within its 2 s */
	assert_int_equal(conns_sweep(t, 12 * SEC), 1);
	ssize_t n = read(sv[1], buf, sizeof(buf) - 1);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "HTTP/1.1 408 Request Timeout\r\n"));
	assert_non_null(strstr(buf, "\"code\":\"request_timeout\""));
	assert_int_equal(read(sv[1], buf, sizeof(buf)), 0); /* then the end */
	assert_int_equal(conns_sweep(t, 20 * SEC), 0);	    /* once */
	conns_close(t, c);
	conns_free(t);
	close(sv[0]);
	close(sv[1]);
}

static void test_an_idle_connection_gets_idle_plus_request_time_and_no_answer(void **state)
{
	int sv[2];
	char buf[64];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct conns *t = conns_create(0, 2 * SEC, 5 * SEC);
	bool over;
	struct conn *c = conns_open(t, "k", sv[0], 0, &over);
	assert_int_equal(conns_sweep(t, 7 * SEC - 1), 0); /* opened at 0: until 7 s */
	conn_request_begin(t, c, 1 * SEC);
	conn_request_end(t, c, 2 * SEC); /* answered at 2 s: idle again until 9 s */
	assert_int_equal(conns_sweep(t, 9 * SEC - 1), 0);
	assert_int_equal(conns_sweep(t, 9 * SEC), 1);
	assert_int_equal(read(sv[1], buf, sizeof(buf)), 0); /* closed without a word */
	conns_close(t, c);
	conns_free(t);
	close(sv[0]);
	close(sv[1]);
}

static void test_answered_parked_and_upgraded_requests_are_exempt(void **state)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct conns *t = conns_create(0, 1 * SEC, 1 * SEC);
	bool over;
	struct conn *c = conns_open(t, "k", sv[0], 0, &over);
	conn_request_begin(t, c, 0);
	conn_request_exempt(c); /* a stream, or a parked long poll */
	assert_int_equal(conns_sweep(t, 3600 * SEC), 0);
	conn_request_end(t, c, 3600 * SEC); /* the stream ended: the deadline is back */
	conn_upgraded(t, c);
	conn_request_begin(t, c, 3600 * SEC); /* an upgraded connection stays exempt */
	assert_int_equal(conns_sweep(t, 7200 * SEC), 0);
	conns_close(t, c);
	conns_free(t);
	close(sv[0]);
	close(sv[1]);
}

static void test_a_refused_socket_reads_429_then_is_closed_by_the_sweeper(void **state)
{
	int sv[2];
	char buf[1024];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	struct conns *t = conns_create(1, 30 * SEC, 30 * SEC);
	/* The client's request is there, unread: closing now would reset the connection. */
	assert_int_equal(write(sv[1], "GET / HTTP/1.1\r\n\r\n", 18), 18);
	conns_refuse(t, sv[0], 0);
	ssize_t n = read(sv[1], buf, sizeof(buf) - 1);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "HTTP/1.1 429 Too Many Requests\r\n"));
	assert_non_null(strstr(buf, "Connection: close\r\n"));
	assert_non_null(strstr(buf, "\"code\":\"rate_limited\""));
	assert_int_equal(read(sv[1], buf, sizeof(buf)), 0); /* shut for writing */
	conns_sweep(t, 1);				    /* drained, the peer still open */
	assert_int_equal(write(sv[1], "x", 1), 1);	    /* so the socket is still there */
	close(sv[1]);					    /* the client closes */
	conns_sweep(t, 2);				    /* and so does the server */
	assert_int_equal(fcntl(sv[0], F_GETFD), -1);
	conns_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_a_client_over_its_limit_is_refused_and_counted_apart),
	    cmocka_unit_test(test_no_limit_when_zero),
	    cmocka_unit_test(test_an_upgraded_connection_no_longer_counts),
	    cmocka_unit_test(test_a_late_request_gets_408_and_the_end_of_the_stream),
	    cmocka_unit_test(test_an_idle_connection_gets_idle_plus_request_time_and_no_answer),
	    cmocka_unit_test(test_answered_parked_and_upgraded_requests_are_exempt),
	    cmocka_unit_test(test_a_refused_socket_reads_429_then_is_closed_by_the_sweeper),
	};
	return cmocka_run_group_tests_name("http/conns", tests, NULL, NULL);
}
