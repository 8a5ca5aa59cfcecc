/*
 * test_token.c — access-token verification, and the per-thread cache of verified tokens in
 * front of it: a cached token must behave exactly like a freshly verified one (a changed
 * byte, another key, expiry), and nothing that failed verification may ever be cached.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/arena.h"
#include "core/error.h"
#include "services/token.h"

#define USER "0190f6a0-0000-7000-8000-000000000001"
#define SID  "0190f6a0-0000-7000-8000-0000000000aa"
/* base64url(HMAC-SHA256("first secret, long enough for HS256", "refresh-rotate" || P)) */
#define NEXT_OF_P "73f97UlVlDI8voTiIEo9xuZnP9SIyzZw5QU9sMit_mw"

static struct token_key make_key(const char *secret)
{
	struct token_key k = {.len = strlen(secret)};
	memcpy(k.secret, secret, k.len);
	return k;
}

static int verify(struct arena *a, const struct token_key *k, const char *tok,
		  struct access_claims *c)
{
	struct error err = ERROR_INIT;
	int rc = token_verify(a, k, tok, c, &err);
	error_release(&err);
	return rc;
}

static void test_verify_twice_gives_the_same_claims(void **state)
{
	(void)state;
	struct arena a;
	arena_init(&a);
	struct token_key k = make_key("first secret, long enough for HS256");
	char *tok = token_issue(&a, &k, USER, 7, SID, 600);
	struct access_claims c1, c2;
	assert_int_equal(verify(&a, &k, tok, &c1), 0);
	assert_int_equal(verify(&a, &k, tok, &c2), 0); /* from the cache */
	assert_string_equal(c1.sub, USER);
	assert_string_equal(c2.sub, USER);
	assert_string_equal(c1.jti, c2.jti);
	assert_int_equal(c2.ver, 7);
	assert_int_equal(c1.exp, c2.exp);
	assert_int_equal(c1.iat, c2.iat);
	arena_release(&a);
}

static void test_a_changed_byte_is_refused_after_a_hit(void **state)
{
	(void)state;
	struct arena a;
	arena_init(&a);
	struct token_key k = make_key("first secret, long enough for HS256");
	char *tok = token_issue(&a, &k, USER, 1, SID, 600);
	struct access_claims c;
	assert_int_equal(verify(&a, &k, tok, &c), 0);
	size_t n = strlen(tok);
	/* Every position: header, payload, signature, first and last byte. */
	for (size_t i = 0; i < n; i++) {
		char *bad = arena_strdup(&a, tok);
		if (bad[i] == '.')
			continue;
		bad[i] = bad[i] == 'A' ? 'B' : 'A';
		assert_int_equal(verify(&a, &k, bad, &c), -ERR_UNAUTHENTICATED);
	}
	/* A prefix and an extension of a cached token are other tokens. */
	assert_int_equal(verify(&a, &k, arena_strndup(&a, tok, n - 1), &c), -ERR_UNAUTHENTICATED);
	assert_int_equal(verify(&a, &k, arena_printf(&a, "%sA", tok), &c), -ERR_UNAUTHENTICATED);
	assert_int_equal(verify(&a, &k, tok, &c), 0);
	arena_release(&a);
}

static void test_another_key_does_not_hit(void **state)
{
	(void)state;
	struct arena a;
	arena_init(&a);
	struct token_key k1 = make_key("first secret, long enough for HS256");
	struct token_key k2 = make_key("second secret, long enough for HS256");
	char *tok = token_issue(&a, &k1, USER, 1, SID, 600);
	struct access_claims c;
	assert_int_equal(verify(&a, &k1, tok, &c), 0);
	assert_int_equal(verify(&a, &k2, tok, &c), -ERR_UNAUTHENTICATED);
	assert_int_equal(verify(&a, &k1, tok, &c), 0);
	arena_release(&a);
}

static void test_a_cached_token_still_expires(void **state)
{
	(void)state;
	struct arena a;
	arena_init(&a);
	struct token_key k = make_key("first secret, long enough for HS256");
	char *tok = token_issue(&a, &k, USER, 1, SID, 1);
	struct access_claims c;
	assert_int_equal(verify(&a, &k, tok, &c), 0);
	sleep(2);
	assert_int_equal(verify(&a, &k, tok, &c), -ERR_TOKEN_EXPIRED);
	assert_int_equal(verify(&a, &k, tok, &c), -ERR_TOKEN_EXPIRED);
	arena_release(&a);
}

static void test_many_tokens_each_verify(void **state)
{
	(void)state;
	struct arena a;
	arena_init(&a);
	struct token_key k = make_key("first secret, long enough for HS256");
	char *toks[300];
	struct access_claims c;
	for (int i = 0; i < 300; i++) {
		toks[i] = token_issue(&a, &k, USER, i, SID, 600);
		assert_int_equal(verify(&a, &k, toks[i], &c), 0);
	}
	/* Evicted or cached, each still verifies to its own claims. */
	for (int round = 0; round < 2; round++)
		for (int i = 299; i >= 0; i--) {
			assert_int_equal(verify(&a, &k, toks[i], &c), 0);
			assert_int_equal(c.ver, i);
		}
	arena_release(&a);
}

static void test_garbage_is_refused(void **state)
{
	(void)state;
	struct arena a;
	arena_init(&a);
	struct token_key k = make_key("first secret, long enough for HS256");
	struct access_claims c;
	const char *bad[] = {
	    "", ".", "..", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", "eyJhbGciOiJIUzI1NiJ9.e30.AAAA"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		for (int twice = 0; twice < 2; twice++)
			assert_int_equal(verify(&a, &k, bad[i], &c), -ERR_UNAUTHENTICATED);
	arena_release(&a);
}

/*
 * The successor of a refresh token is HMAC-SHA256(key, "refresh-rotate" || token) in
 * base64url: fixed for a token and key (so the grace window finds it again), different for
 * another token or key. The expected value was computed apart, with Python's hmac module.
 */
static void test_refresh_successor_is_the_labelled_hmac(void **state)
{
	(void)state;
	struct arena a;
	arena_init(&a);
	struct token_key k = make_key("first secret, long enough for HS256");
	struct token_key k2 = make_key("second secret, long enough for HS256");
	const char *p = "yLD-Fpn0ccYlf26MgM93HmTRvaZoMrVvo3Z8JhoM97U";
	char *next = token_refresh_next(&a, &k, p);
	assert_string_equal(next, NEXT_OF_P);
	assert_string_equal(token_refresh_next(&a, &k, p), next);
	assert_string_not_equal(token_refresh_next(&a, &k2, p), next);
	assert_string_not_equal(token_refresh_next(&a, &k, next), next);
	assert_int_equal(strlen(next), 43);
	arena_release(&a);
}

/* Issued with every claim given, a token is the same byte for byte, and says what it got. */
static void test_issue_at_is_deterministic(void **state)
{
	(void)state;
	struct arena a;
	arena_init(&a);
	struct token_key k = make_key("first secret, long enough for HS256");
	const char *jti = "0190f6a0-0000-7000-8000-0000000000bb";
	int64_t iat = time(NULL);
	char *t1 = token_issue_at(&a, &k, USER, 3, SID, jti, iat, iat + 600);
	char *t2 = token_issue_at(&a, &k, USER, 3, SID, jti, iat, iat + 600);
	assert_string_equal(t1, t2);
	assert_string_not_equal(token_issue_at(&a, &k, USER, 3, SID, jti, iat, iat + 601), t1);
	struct access_claims c;
	assert_int_equal(verify(&a, &k, t1, &c), 0);
	assert_string_equal(c.jti, jti);
	assert_string_equal(c.sid, SID);
	assert_int_equal(c.iat, iat);
	assert_int_equal(c.exp, iat + 600);
	assert_int_equal(c.ver, 3);
	arena_release(&a);
}

/* ---- device tokens ---- */

#define NOW  1765000000
#define YEAR 31536000
/* Made by tests/fuzz/seeds.py's device_token(USER, 1765000000) under the fuzz secret: the
 * Python reference and the C code agree on the format and the MAC. */
#define FUZZ_SECRET "fuzz-secret-fuzz-secret-fuzz-secret"
#define FUZZ_SEED                                                                                  \
	"01900000-0000-7000-8000-000000000003.MDEyMzQ1Njc4OWFiY2RlZg.1765000000."                  \
	"crlfL9-rMl6Slnx6sHx8RoCrfL4S1VbGvQ7KWnHF1UI"

static void test_a_device_token_verifies_for_its_user_only_with_its_key(void **state)
{
	(void)state;
	struct arena a;
	arena_init(&a);
	struct token_key k = make_key("device-secret-device-secret-device-secret");
	struct token_key other = make_key("another-secret-another-secret-another-secret");
	struct device_claims dc, dc2;
	char *t = token_device_issue(&a, &k, USER);
	int64_t now = time(NULL);
	assert_int_equal(token_device_verify(&a, &k, t, YEAR, now, &dc), 0);
	assert_string_equal(dc.sub, USER);
	assert_int_equal(strlen(dc.nonce), TOKEN_DEVICE_NONCE_LEN);
	assert_int_equal(token_device_verify(&a, &other, t, YEAR, now, &dc2), -1);
	/* Each login gets its own nonce: its own failure bucket. */
	char *t2 = token_device_issue(&a, &k, USER);
	assert_int_equal(token_device_verify(&a, &k, t2, YEAR, now, &dc2), 0);
	assert_string_not_equal(dc.nonce, dc2.nonce);
	/* Expired, and issued in the future. */
	assert_int_equal(token_device_verify(&a, &k, t, 60, now + 61, &dc2), -1);
	assert_int_equal(token_device_verify(&a, &k, t, YEAR, now - 3600, &dc2), -1);
	/* Any one character changed. */
	for (size_t i = 0; t[i]; i++) {
		char *c = arena_strdup(&a, t);
		c[i] = c[i] == 'A' ? 'B' : 'A';
		assert_int_equal(token_device_verify(&a, &k, c, YEAR, now, &dc2), -1);
	}
	arena_release(&a);
}

static void test_a_device_token_is_not_an_access_token_and_garbage_is_refused(void **state)
{
	(void)state;
	struct arena a;
	arena_init(&a);
	struct token_key k = make_key(FUZZ_SECRET);
	struct device_claims dc;
	struct access_claims c;
	struct error err = ERROR_INIT;
	char *t = token_device_issue(&a, &k, USER);
	assert_true(token_verify(&a, &k, t, &c, &err) < 0);
	error_release(&err);
	char *jwt = token_issue(&a, &k, USER, 1, SID, 60);
	assert_int_equal(token_device_verify(&a, &k, jwt, YEAR, NOW, &dc), -1);
	static const char *const bad[] = {"", ".", "...", "x.y.z.w",
					  USER ".AAAAAAAAAAAAAAAAAAAAAA.01."
					       "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(token_device_verify(&a, &k, bad[i], YEAR, NOW, &dc), -1);
	/* tests/fuzz/seeds.py's valid seed (Python's HMAC) verifies here. */
	assert_int_equal(token_device_verify(&a, &k, FUZZ_SEED, YEAR, NOW, &dc), 0);
	assert_string_equal(dc.sub, "01900000-0000-7000-8000-000000000003");
	arena_release(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_verify_twice_gives_the_same_claims),
	    cmocka_unit_test(test_a_changed_byte_is_refused_after_a_hit),
	    cmocka_unit_test(test_another_key_does_not_hit),
	    cmocka_unit_test(test_a_cached_token_still_expires),
	    cmocka_unit_test(test_many_tokens_each_verify),
	    cmocka_unit_test(test_garbage_is_refused),
	    cmocka_unit_test(test_refresh_successor_is_the_labelled_hmac),
	    cmocka_unit_test(test_issue_at_is_deterministic),
	    cmocka_unit_test(test_a_device_token_verifies_for_its_user_only_with_its_key),
	    cmocka_unit_test(test_a_device_token_is_not_an_access_token_and_garbage_is_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
