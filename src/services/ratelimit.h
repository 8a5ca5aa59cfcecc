/*
 * ratelimit.h — GCRA rate limiting (a token bucket without a timer): each key keeps one
 * number, the theoretical arrival time (TAT). A request is allowed when the bucket, refilled
 * at `count` per `period`, holds a token; bursts up to `burst` pass at once.
 *
 * Buckets live in-process (sharded tables, bounded memory, idle keys expire) or, when a
 * Redis client is given, in Redis (redis/limiter.h: one atomic script per check), shared by
 * every instance. This file keeps the policies, the in-process tables and the rules for when
 * Redis is away. A check of several keys (per user and per IP) is all-or-nothing: a
 * refused request consumes nothing. Thread-safe.
 */
#ifndef TANDEM_SERVICES_RATELIMIT_H
#define TANDEM_SERVICES_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct redis;

struct rl_policy {
	char name[16];	  /* "anon", "user", "auth", "login-account", "login-device" */
	int64_t count;	  /* requests per period */
	int64_t period_s; /* window in seconds */
	int64_t burst;	  /* bucket capacity */
};

/* Parse "120/min,burst=60" (period: s, sec, min, m, h, hour, or a number of seconds). */
int rl_policy_parse(const char *text, const char *name, struct rl_policy *out, char *why,
		    size_t why_len);

/*
 * What the RateLimit-Policy field states for `p` (draft-ietf-httpapi-ratelimit-headers: q, w):
 * q is the burst, the requests that pass at once, and w the seconds an empty bucket takes to
 * fill up again (burst * period / count, rounded up). The pair gives the real burst and the
 * real rate; "count per period" would promise count quick requests where only burst pass.
 */
int64_t rl_policy_quota(const struct rl_policy *p);
int64_t rl_policy_window_s(const struct rl_policy *p);

struct rl_key {
	const struct rl_policy *policy;
	const char *key; /* e.g. "ip:127.0.0.1", "user:<id>", "login:alice" */
};

struct rl_result {
	bool allowed;
	const struct rl_policy *policy; /* the policy shown in the headers (most constrained) */
	int64_t remaining;
	int64_t reset_s;       /* seconds until the shown bucket is full again */
	int64_t retry_after_s; /* when refused */
	bool degraded;	       /* Redis was unreachable; the answer came from a fallback */
};

/*
 * One GCRA step for one bucket, the arithmetic every check runs (pure: no clock, no table).
 * tat_ms is the bucket's theoretical arrival time (pass now_ms, or anything earlier, for a
 * new or idle bucket). Fills *r (allowed, remaining, reset_s, retry_after_s when refused,
 * policy; degraded false) and returns the TAT to store when the request is allowed.
 */
int64_t rl_gcra_step(const struct rl_policy *p, int64_t tat_ms, int64_t now_ms,
		     struct rl_result *r);

struct ratelimit;

/* max_keys bounds the in-process tables; redis may be NULL. */
struct ratelimit *ratelimit_create(size_t max_keys, struct redis *redis);
void ratelimit_free(struct ratelimit *rl);

/*
 * Check and, when every key allows it, consume one token from each. With Redis configured
 * and unreachable: `strict` checks (the auth endpoints) fall back to the in-process tables;
 * other checks are allowed (fail open) with degraded set.
 */
void ratelimit_check(struct ratelimit *rl, const struct rl_key *keys, int nkeys, bool strict,
		     struct rl_result *out);

/*
 * Give back the token a strict check of the single key `key` took (the login path takes one
 * before it verifies a password and returns it when the password was right, so that only
 * failures cost). `taken` is that check's result: its degraded flag says whether the token
 * came from the in-process tables (Redis away) or from Redis. The bucket never ends up fuller
 * than full. Best effort: a refund Redis cannot take is logged and the token stays spent.
 */
void ratelimit_refund(struct ratelimit *rl, const struct rl_key *key,
		      const struct rl_result *taken);

#endif
