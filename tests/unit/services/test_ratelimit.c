/*
 * test_ratelimit.c — the rate limiter's pure parts and its in-process behaviour: policy
 * parsing (TANDEM_RATE_LIMIT_*), the GCRA arithmetic of one bucket on a fake clock
 * (rl_gcra_step: which requests pass, and the numbers the RateLimit headers show), checks
 * of several keys being all-or-nothing, and what a check does when the configured Redis is
 * unreachable (ordinary checks fail open, strict ones fall back to the in-process tables).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core/log.h"
#include "redis/redis.h"
#include "services/ratelimit.h"

/* ---- policy parsing ---- */

static struct rl_policy parse_ok(const char *text)
{
	struct rl_policy p;
	char why[128] = "";
	if (rl_policy_parse(text, "anon", &p, why, sizeof(why)) != 0)
		fail_msg("\"%s\" refused: %s", text, why);
	assert_string_equal(p.name, "anon");
	return p;
}

static void assert_policy(const char *text, int64_t count, int64_t period_s, int64_t burst)
{
	struct rl_policy p = parse_ok(text);
	assert_int_equal(p.count, count);
	assert_int_equal(p.period_s, period_s);
	assert_int_equal(p.burst, burst);
}

static void policy_periods_have_several_spellings(void **state)
{
	assert_policy("10/s", 10, 1, 10);
	assert_policy("10/sec", 10, 1, 10);
	assert_policy("10/second", 10, 1, 10);
	assert_policy("120/m", 120, 60, 120);
	assert_policy("120/min", 120, 60, 120);
	assert_policy("120/minute", 120, 60, 120);
	assert_policy("5/h", 5, 3600, 5);
	assert_policy("5/hour", 5, 3600, 5);
	assert_policy("7/90", 7, 90, 7); /* a number of seconds */
}

static void policy_burst_defaults_to_the_count(void **state)
{
	assert_policy("120/min,burst=60", 120, 60, 60);
	assert_policy("1/h,burst=4", 1, 3600, 4);
	assert_policy("3/s,burst=1000000000", 3, 1, 1000000000);
	assert_policy("1000000000/86400", 1000000000, 86400, 1000000000);
}

static void policy_name_is_kept_and_bounded(void **state)
{
	struct rl_policy p;
	char why[128];
	assert_int_equal(rl_policy_parse("1/s", "a-very-long-policy-name", &p, why, sizeof(why)),
			 0);
	assert_string_equal(p.name, "a-very-long-pol"); /* 15 bytes and the NUL */
}

static void assert_refused(const char *text, const char *why_has)
{
	struct rl_policy p;
	char why[128] = "";
	if (rl_policy_parse(text, "auth", &p, why, sizeof(why)) == 0)
		fail_msg("\"%s\" accepted", text);
	if (!strstr(why, why_has))
		fail_msg("\"%s\": message \"%s\" does not say \"%s\"", text, why, why_has);
}

static void policy_errors_are_refused_with_a_reason(void **state)
{
	assert_refused("banana", "COUNT/PERIOD");
	assert_refused("", "COUNT/PERIOD");
	assert_refused("1200", "COUNT/PERIOD");
	assert_refused("0/min", "COUNT/PERIOD");
	assert_refused("-5/min", "COUNT/PERIOD");
	assert_refused("10/fortnight", "unknown period");
	assert_refused("10/0", "unknown period");
	assert_refused("10/5x", "unknown period");
	assert_refused("10/min,burst=0", "burst=N");
	assert_refused("10/min,burst=-3", "burst=N");
	assert_refused("10/min,burst=", "burst=N");
	assert_refused("10/min,bust=3", "burst=N");
	assert_refused("120/min,burst=60,extra", "burst=N");
	assert_refused("120/min extra", "unexpected");
	assert_refused("10/min,burst=99999999999999999", "out of range");
	assert_refused("1000000001/s", "out of range");
	assert_refused("1/86401", "out of range");
}

/* ---- one bucket on a fake clock ---- */

#define T0 1700000000000LL /* any time: the arithmetic is relative */

struct bucket {
	int64_t tat;
	const struct rl_policy *p;
};

/* One request at `now`; the bucket keeps the new TAT only when allowed, as the limiter does. */
static struct rl_result hit(struct bucket *b, int64_t now)
{
	struct rl_result r;
	int64_t tat = rl_gcra_step(b->p, b->tat, now, &r);
	assert_ptr_equal(r.policy, b->p);
	assert_false(r.degraded);
	if (r.allowed)
		b->tat = tat;
	return r;
}

static void assert_allowed(struct rl_result r, int64_t remaining, int64_t reset_s)
{
	assert_true(r.allowed);
	assert_int_equal(r.remaining, remaining);
	assert_int_equal(r.reset_s, reset_s);
	assert_int_equal(r.retry_after_s, 0);
}

static void assert_refused_for(struct rl_result r, int64_t retry_after_s, int64_t reset_s)
{
	assert_false(r.allowed);
	assert_int_equal(r.remaining, 0);
	assert_int_equal(r.retry_after_s, retry_after_s);
	assert_int_equal(r.reset_s, reset_s);
}

static void gcra_burst_passes_at_once_then_refuses(void **state)
{
	struct rl_policy p = parse_ok("1/s,burst=3"); /* T = 1 s, L = 3 s */
	struct bucket b = {.tat = 0, .p = &p};	      /* new: any TAT in the past */
	assert_allowed(hit(&b, T0), 2, 1);
	assert_allowed(hit(&b, T0), 1, 2);
	assert_allowed(hit(&b, T0), 0, 3);
	assert_int_equal(b.tat, T0 + 3000);
	/* The fourth at the same instant: one token short, for 1 s; nothing consumed. */
	assert_refused_for(hit(&b, T0), 1, 3);
	assert_refused_for(hit(&b, T0), 1, 3);
	assert_int_equal(b.tat, T0 + 3000);
}

static void gcra_refills_one_token_per_interval(void **state)
{
	struct rl_policy p = parse_ok("1/s,burst=3");
	struct bucket b = {.tat = T0 + 3000, .p = &p}; /* empty at T0 */
	/* Not a whole interval later: still refused, and told to wait the rest (rounded up). */
	assert_refused_for(hit(&b, T0 + 1), 1, 3);
	assert_refused_for(hit(&b, T0 + 999), 1, 3);
	/* Exactly one interval later: one token. */
	assert_allowed(hit(&b, T0 + 1000), 0, 3);
	assert_refused_for(hit(&b, T0 + 1000), 1, 3);
	/* 2.5 intervals later: two tokens, not three. */
	assert_allowed(hit(&b, T0 + 3500), 1, 2); /* full again 1.5 s from now: 2 s */
	assert_allowed(hit(&b, T0 + 3500), 0, 3);
	assert_refused_for(hit(&b, T0 + 3500), 1, 3);
}

static void gcra_idle_bucket_refills_only_to_the_burst(void **state)
{
	struct rl_policy p = parse_ok("1/s,burst=3");
	struct bucket b = {.tat = T0, .p = &p};
	int64_t later = T0 + 3600 * 1000; /* an hour idle: full, never more than full */
	assert_allowed(hit(&b, later), 2, 1);
	assert_allowed(hit(&b, later), 1, 2);
	assert_allowed(hit(&b, later), 0, 3);
	assert_false(hit(&b, later).allowed);
}

static void gcra_retry_after_is_when_the_next_token_comes(void **state)
{
	struct rl_policy p = parse_ok("2/min,burst=2"); /* T = 30 s, L = 60 s */
	struct bucket b = {.tat = 0, .p = &p};
	assert_allowed(hit(&b, T0), 1, 30);
	assert_allowed(hit(&b, T0), 0, 60);
	assert_refused_for(hit(&b, T0), 30, 60);
	assert_refused_for(hit(&b, T0 + 10000), 20, 50);
	assert_refused_for(hit(&b, T0 + 29001), 1, 31); /* 0.999 s left: rounded up to 1 */
	assert_allowed(hit(&b, T0 + 30000), 0, 60);
}

static void gcra_sustained_rate_is_the_count_per_period(void **state)
{
	struct rl_policy p = parse_ok("120/min,burst=60"); /* T = 500 ms */
	struct bucket b = {.tat = 0, .p = &p};
	int allowed = 0;
	/* Two minutes at one request every 100 ms: the burst, then one per 500 ms. */
	for (int64_t t = 0; t <= 120000; t += 100)
		allowed += hit(&b, T0 + t).allowed;
	assert_int_equal(allowed, 60 + 240);
}

static void gcra_interval_never_rounds_to_zero(void **state)
{
	/* 1e9 per second is an interval of 1 µs; it counts as 1 ms, so the bucket still
	 * empties. */
	struct rl_policy p = parse_ok("1000000000/s,burst=2");
	struct bucket b = {.tat = 0, .p = &p};
	assert_true(hit(&b, T0).allowed);
	assert_true(hit(&b, T0).allowed);
	assert_false(hit(&b, T0).allowed);
	assert_true(hit(&b, T0 + 1).allowed);
}

/* ---- checks of several keys, in-process ---- */

static void check_of_several_keys_is_all_or_nothing(void **state)
{
	struct rl_policy ip = parse_ok("1/h,burst=5"), login = parse_ok("1/h,burst=2");
	struct ratelimit *rl = ratelimit_create(1000, NULL);
	struct rl_key both[] = {{&ip, "ip:192.0.2.1"}, {&login, "login:alice"}};
	struct rl_key ip_only[] = {{&ip, "ip:192.0.2.1"}};
	struct rl_result r;

	ratelimit_check(rl, both, 2, true, &r);
	assert_true(r.allowed);
	assert_false(r.degraded);
	assert_ptr_equal(r.policy, &login); /* the most constrained bucket is shown */
	assert_int_equal(r.remaining, 1);
	ratelimit_check(rl, both, 2, true, &r);
	assert_true(r.allowed);
	assert_int_equal(r.remaining, 0);
	/* The login bucket is empty: refused, and the IP bucket is not charged. */
	for (int i = 0; i < 3; i++) {
		ratelimit_check(rl, both, 2, true, &r);
		assert_false(r.allowed);
		assert_ptr_equal(r.policy, &login);
		assert_true(r.retry_after_s > 3500 && r.retry_after_s <= 3600);
	}
	ratelimit_check(rl, ip_only, 1, false, &r);
	assert_true(r.allowed);
	assert_int_equal(r.remaining, 2); /* 5 - 2 allowed checks - this one */
	ratelimit_free(rl);
}

static void keys_of_one_name_under_two_policies_are_two_buckets(void **state)
{
	struct rl_policy a = parse_ok("1/h,burst=1");
	struct rl_policy u;
	char why[128];
	assert_int_equal(rl_policy_parse("1/h,burst=1", "user", &u, why, sizeof(why)), 0);
	struct ratelimit *rl = ratelimit_create(1000, NULL);
	struct rl_key ka[] = {{&a, "ip:192.0.2.9"}}, ku[] = {{&u, "ip:192.0.2.9"}};
	struct rl_result r;
	ratelimit_check(rl, ka, 1, false, &r);
	assert_true(r.allowed);
	ratelimit_check(rl, ku, 1, false, &r);
	assert_true(r.allowed);
	ratelimit_check(rl, ka, 1, false, &r);
	assert_false(r.allowed);
	ratelimit_free(rl);
}

static void a_refusing_key_is_the_one_shown(void **state)
{
	/* The IP bucket takes its last token (remaining 0, the longer reset) while the login
	 * bucket refuses: the answer names the one that refused. */
	struct rl_policy ip = parse_ok("1/h,burst=2"), login = parse_ok("6/min,burst=1");
	struct ratelimit *rl = ratelimit_create(1000, NULL);
	struct rl_key ip_only[] = {{&ip, "ip:192.0.2.7"}};
	struct rl_key both[] = {{&ip, "ip:192.0.2.7"}, {&login, "login:bob"}};
	struct rl_key login_only[] = {{&login, "login:bob"}};
	struct rl_result r;
	ratelimit_check(rl, ip_only, 1, true, &r);
	ratelimit_check(rl, login_only, 1, true, &r);
	ratelimit_check(rl, both, 2, true, &r);
	assert_false(r.allowed);
	assert_ptr_equal(r.policy, &login);
	ratelimit_free(rl);
}

static void a_refund_gives_back_one_token_and_never_more_than_the_burst(void **state)
{
	struct rl_policy p = parse_ok("1/h,burst=2");
	struct ratelimit *rl = ratelimit_create(1000, NULL);
	struct rl_key k[] = {{&p, "login-account:user:1"}};
	struct rl_result r, first;
	ratelimit_check(rl, k, 1, true, &first);
	assert_true(first.allowed);
	ratelimit_refund(rl, k, &first); /* as if it had not happened */
	ratelimit_refund(rl, k, &first); /* a second one cannot overfill the bucket */
	ratelimit_check(rl, k, 1, true, &r);
	assert_true(r.allowed);
	assert_int_equal(r.remaining, 1);
	ratelimit_check(rl, k, 1, true, &r);
	assert_true(r.allowed);
	assert_int_equal(r.remaining, 0);
	ratelimit_check(rl, k, 1, true, &r);
	assert_false(r.allowed);
	ratelimit_refund(rl, k, &first); /* one back: exactly one more passes */
	ratelimit_check(rl, k, 1, true, &r);
	assert_true(r.allowed);
	ratelimit_check(rl, k, 1, true, &r);
	assert_false(r.allowed);
	ratelimit_free(rl);
}

/* ---- Redis configured but unreachable ---- */

static struct redis *unreachable_redis(void)
{
	struct redis *redis;
	char why[128];
	/* A socket that does not exist: connecting fails at once, without any network. */
	assert_int_equal(
	    redis_create("unix:///nonexistent/tandem-unit-test.sock", &redis, why, sizeof(why)), 0);
	return redis;
}

static void unreachable_redis_fails_open_for_ordinary_checks(void **state)
{
	struct rl_policy p = parse_ok("1/h,burst=2");
	struct redis *redis = unreachable_redis();
	struct ratelimit *rl = ratelimit_create(1000, redis);
	struct rl_key k[] = {{&p, "ip:192.0.2.2"}};
	struct rl_result r;
	for (int i = 0; i < 5; i++) {
		ratelimit_check(rl, k, 1, false, &r);
		assert_true(r.allowed);
		assert_true(r.degraded);
		assert_ptr_equal(r.policy, &p);
		assert_int_equal(r.remaining, 2);
	}
	ratelimit_free(rl);
	redis_free(redis);
}

static void unreachable_redis_keeps_strict_checks_limited_in_process(void **state)
{
	struct rl_policy p = parse_ok("1/h,burst=2");
	struct redis *redis = unreachable_redis();
	struct ratelimit *rl = ratelimit_create(1000, redis);
	struct rl_key k[] = {{&p, "login:alice"}};
	struct rl_result r;
	ratelimit_check(rl, k, 1, true, &r);
	assert_true(r.allowed && r.degraded);
	assert_int_equal(r.remaining, 1);
	ratelimit_check(rl, k, 1, true, &r);
	assert_true(r.allowed && r.degraded);
	ratelimit_check(rl, k, 1, true, &r);
	assert_false(r.allowed);
	assert_true(r.degraded);
	ratelimit_free(rl);
	redis_free(redis);
}

int main(void)
{
	log_set_level(LOG_ERROR); /* "redis unavailable" warnings are expected here */
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(policy_periods_have_several_spellings),
	    cmocka_unit_test(policy_burst_defaults_to_the_count),
	    cmocka_unit_test(policy_name_is_kept_and_bounded),
	    cmocka_unit_test(policy_errors_are_refused_with_a_reason),
	    cmocka_unit_test(gcra_burst_passes_at_once_then_refuses),
	    cmocka_unit_test(gcra_refills_one_token_per_interval),
	    cmocka_unit_test(gcra_idle_bucket_refills_only_to_the_burst),
	    cmocka_unit_test(gcra_retry_after_is_when_the_next_token_comes),
	    cmocka_unit_test(gcra_sustained_rate_is_the_count_per_period),
	    cmocka_unit_test(gcra_interval_never_rounds_to_zero),
	    cmocka_unit_test(check_of_several_keys_is_all_or_nothing),
	    cmocka_unit_test(keys_of_one_name_under_two_policies_are_two_buckets),
	    cmocka_unit_test(a_refusing_key_is_the_one_shown),
	    cmocka_unit_test(a_refund_gives_back_one_token_and_never_more_than_the_burst),
	    cmocka_unit_test(unreachable_redis_fails_open_for_ordinary_checks),
	    cmocka_unit_test(unreachable_redis_keeps_strict_checks_limited_in_process),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
