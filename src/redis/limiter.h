/*
 * limiter.h — the Redis half of the rate limiter (services/ratelimit.h holds the policies,
 * the in-process tables and the fallback rules): GCRA buckets shared by every instance, one
 * atomic Lua script per check (and one per refund of a token a check took: a correct
 * password gives back what the login took), run on the server's clock so that instances
 * agree.
 *
 * Each script is called by its SHA-1 (EVALSHA: one round trip), computed once from its text
 * and never changed afterwards, so threads share it without a lock. When Redis does not know
 * the script (first use, SCRIPT FLUSH, a restart) it is loaded and run once with EVAL.
 * Thread-safe (each thread uses its own connection, see redis.h).
 */
#ifndef TANDEM_REDIS_LIMITER_H
#define TANDEM_REDIS_LIMITER_H

#include <stdbool.h>
#include <stdint.h>

struct redis;

/* The most keys one check may hold. */
#define REDIS_GCRA_MAX_KEYS 4

struct redis_gcra_key {
	const char *bucket;  /* e.g. "anon:ip:127.0.0.1"; stored as tandem:rl:<bucket> */
	int64_t interval_ms; /* T: emission interval */
	int64_t limit_ms;    /* L: tolerance, burst * T */
};

/*
 * Check n (1..REDIS_GCRA_MAX_KEYS) buckets at once: each key's new TAT would be
 * max(TAT, now) + T; the check is allowed when new TAT - now <= L for every key, and only
 * then are the new TATs stored (each expiring when its bucket is full again). diffs[i] gets
 * new TAT - now of key i (ms), allowed or not. Returns 0, or -1 when Redis is unreachable,
 * timed out or the script failed (logged).
 */
int redis_gcra(struct redis *r, const struct redis_gcra_key *keys, int n, bool *allowed,
	       int64_t *diffs);

/*
 * Give back one token of `bucket` (as in redis_gcra_key) whose emission interval is
 * interval_ms: its TAT moves back by one interval, and a bucket full again is deleted. One
 * round trip, atomic. Returns 0, or -1 when Redis is unreachable or the script failed.
 */
int redis_gcra_refund(struct redis *r, const char *bucket, int64_t interval_ms);

/* The check script's SHA-1 in lower-case hex, as EVALSHA and SCRIPT LOAD spell it. */
const char *redis_gcra_sha(void);

#endif
