/* ratelimit.c — see ratelimit.h. Times are milliseconds. */
#include "services/ratelimit.h"
#include "core/log.h"
#include "core/random.h"
#include "core/timeutil.h"
#include "core/xalloc.h"
#include "redis/limiter.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHARDS		   16
#define MAX_KEYS_PER_CHECK REDIS_GCRA_MAX_KEYS

struct entry {
	uint64_t hash; /* 0: empty */
	int64_t tat;
};

struct shard {
	pthread_mutex_t lock;
	struct entry *slots;
	size_t cap, count, max;
	bool warned;
};

struct ratelimit {
	struct shard shards[SHARDS];
	uint64_t seed;
	struct redis *redis;
};

/* ---- policies ---- */

int rl_policy_parse(const char *text, const char *name, struct rl_policy *out, char *why,
		    size_t why_len)
{
	char unit[16] = "";
	long long count = 0, burst = -1;
	int n = 0;
	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "%s", name);
	if (sscanf(text, "%lld/%15[a-z0-9]%n", &count, unit, &n) < 2 || count <= 0) {
		snprintf(why, why_len, "expected COUNT/PERIOD[,burst=N], e.g. 120/min,burst=60");
		return -1;
	}
	const char *rest = text + n;
	if (*rest == ',') {
		int m = 0;
		if (sscanf(rest, ",burst=%lld%n", &burst, &m) != 1 || rest[m] != '\0' ||
		    burst <= 0) {
			snprintf(why, why_len, "expected ,burst=N with N > 0 after the rate");
			return -1;
		}
	} else if (*rest) {
		snprintf(why, why_len, "unexpected \"%s\"", rest);
		return -1;
	}
	long long period;
	if (!strcmp(unit, "s") || !strcmp(unit, "sec") || !strcmp(unit, "second"))
		period = 1;
	else if (!strcmp(unit, "m") || !strcmp(unit, "min") || !strcmp(unit, "minute"))
		period = 60;
	else if (!strcmp(unit, "h") || !strcmp(unit, "hour"))
		period = 3600;
	else if ((period = atoll(unit)) <= 0 || strspn(unit, "0123456789") != strlen(unit)) {
		snprintf(why, why_len, "unknown period \"%s\" (s, min, h or seconds)", unit);
		return -1;
	}
	if (count > 1000000000 || period > 86400 || burst > 1000000000) {
		snprintf(why, why_len, "rate or burst out of range");
		return -1;
	}
	out->count = count;
	out->period_s = period;
	out->burst = burst > 0 ? burst : count;
	return 0;
}

/* Emission interval T and tolerance L = burst * T, in microseconds-precise ms. */
static int64_t interval_ms(const struct rl_policy *p)
{
	int64_t t = p->period_s * 1000 / p->count;
	return t > 0 ? t : 1;
}

static int64_t limit_ms(const struct rl_policy *p)
{
	return interval_ms(p) * p->burst;
}

int64_t rl_policy_quota(const struct rl_policy *p)
{
	return p->burst;
}

int64_t rl_policy_window_s(const struct rl_policy *p)
{
	return (limit_ms(p) + 999) / 1000;
}

/* Fill the result for one key from diff = new_tat - now. */
static void describe(const struct rl_policy *p, int64_t diff, bool allowed, struct rl_result *r)
{
	int64_t t = interval_ms(p), l = limit_ms(p);
	if (allowed) {
		r->remaining = (l - diff) / t;
		r->reset_s = (diff + 999) / 1000;
	} else {
		r->remaining = 0;
		r->reset_s = (diff - t + 999) / 1000;
		r->retry_after_s = (diff - l + 999) / 1000;
		if (r->retry_after_s < 1)
			r->retry_after_s = 1;
	}
	r->policy = p;
}

/* Merge per-key results: show the most constrained bucket, and a refusing one before one that
 * let the request through (a 429 names the policy that refused it). */
static void merge(struct rl_result *out, const struct rl_result *k, bool first)
{
	if (first || (!k->allowed && out->allowed) ||
	    (k->allowed == out->allowed &&
	     (k->remaining < out->remaining ||
	      (k->remaining == out->remaining && k->reset_s > out->reset_s)))) {
		int64_t retry = out->retry_after_s;
		*out = *k;
		if (retry > out->retry_after_s)
			out->retry_after_s = retry;
	} else if (k->retry_after_s > out->retry_after_s) {
		out->retry_after_s = k->retry_after_s;
	}
}

int64_t rl_gcra_step(const struct rl_policy *p, int64_t tat_ms, int64_t now_ms, struct rl_result *r)
{
	int64_t tat = tat_ms < now_ms ? now_ms : tat_ms;
	int64_t new_tat = tat + interval_ms(p), diff = new_tat - now_ms;
	memset(r, 0, sizeof(*r));
	r->allowed = diff <= limit_ms(p);
	describe(p, diff, r->allowed, r);
	return new_tat;
}

/* ---- in-process tables ---- */

static uint64_t hash_key(const struct ratelimit *rl, const char *policy, const char *key)
{
	uint64_t h = rl->seed ^ 1469598103934665603ull;
	for (const char *s = policy; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	h = (h ^ 0xff) * 1099511628211ull;
	for (const char *s = key; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h ? h : 1;
}

static struct entry *find(struct shard *s, uint64_t h)
{
	for (size_t i = h & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
		if (s->slots[i].hash == h || s->slots[i].hash == 0)
			return &s->slots[i];
	}
}

/* Drop buckets that have refilled completely (their TAT is in the past). */
static void sweep(struct shard *s, int64_t now)
{
	struct entry *old = s->slots;
	size_t cap = s->cap;
	s->slots = xcalloc(cap, sizeof(*old));
	s->count = 0;
	for (size_t i = 0; i < cap; i++) {
		if (old[i].hash && old[i].tat > now) {
			*find(s, old[i].hash) = old[i];
			s->count++;
		}
	}
	free(old);
}

/* Drop the bucket nearest to full (the smallest TAT): it owes the least, so forgetting it
 * gives away the least. */
static void evict(struct shard *s, int64_t now)
{
	struct entry *min = NULL;
	for (size_t i = 0; i < s->cap; i++)
		if (s->slots[i].hash && (!min || s->slots[i].tat < min->tat))
			min = &s->slots[i];
	if (min) {
		min->tat = now;
		sweep(s, now);
	}
}

struct ratelimit *ratelimit_create(size_t max_keys, struct redis *redis)
{
	struct ratelimit *rl = xcalloc(1, sizeof(*rl));
	size_t per = max_keys / SHARDS + 1, cap = 64;
	while (cap < per * 2)
		cap *= 2;
	for (int i = 0; i < SHARDS; i++) {
		pthread_mutex_init(&rl->shards[i].lock, NULL);
		rl->shards[i].cap = cap;
		rl->shards[i].max = per;
		rl->shards[i].slots = xcalloc(cap, sizeof(struct entry));
	}
	random_bytes(&rl->seed, sizeof(rl->seed));
	rl->redis = redis;
	return rl;
}

void ratelimit_free(struct ratelimit *rl)
{
	if (!rl)
		return;
	for (int i = 0; i < SHARDS; i++) {
		pthread_mutex_destroy(&rl->shards[i].lock);
		free(rl->shards[i].slots);
	}
	free(rl);
}

static void check_local(struct ratelimit *rl, const struct rl_key *keys, int n,
			struct rl_result *out)
{
	uint64_t h[MAX_KEYS_PER_CHECK];
	bool locked[SHARDS] = {false};
	int64_t now = time_now_ms(), news[MAX_KEYS_PER_CHECK];
	struct entry *e[MAX_KEYS_PER_CHECK];

	for (int i = 0; i < n; i++) {
		h[i] = hash_key(rl, keys[i].policy->name, keys[i].key);
		locked[(h[i] >> 60) & (SHARDS - 1)] = true;
	}
	/* Lock shards in ascending order so two checks never deadlock. */
	for (int i = 0; i < SHARDS; i++)
		if (locked[i])
			pthread_mutex_lock(&rl->shards[i].lock);
	bool allowed = true;
	for (int i = 0; i < n; i++) {
		struct shard *s = &rl->shards[(h[i] >> 60) & (SHARDS - 1)];
		e[i] = find(s, h[i]);
		struct rl_result k;
		news[i] = rl_gcra_step(keys[i].policy, e[i]->hash ? e[i]->tat : now, now, &k);
		allowed &= k.allowed;
		merge(out, &k, i == 0);
	}
	/* After merge(), which copies the shown key's verdict: the request needs every key. */
	out->allowed = allowed;
	if (out->allowed) {
		for (int i = 0; i < n; i++) {
			struct shard *s = &rl->shards[(h[i] >> 60) & (SHARDS - 1)];
			/* Look again: two new keys of one shard found the same empty slot, and a
			 * sweep for an earlier key replaces the shard's table. */
			e[i] = find(s, h[i]);
			if (!e[i]->hash) {
				if (s->count >= s->max)
					sweep(s, now);
				if (s->count >= s->max) {
					/* Memory is bounded, but an untracked key would be
					 * unlimited (password guessing too): make room instead. Say
					 * so once. */
					if (!s->warned)
						log_warn("rate limiter table is full; raise "
							 "TANDEM_RATE_LIMIT_MAX_KEYS");
					s->warned = true;
					evict(s, now);
				}
				e[i] = find(s, h[i]);
				e[i]->hash = h[i];
				s->count++;
			}
			e[i]->tat = news[i];
		}
	}
	for (int i = SHARDS - 1; i >= 0; i--)
		if (locked[i])
			pthread_mutex_unlock(&rl->shards[i].lock);
}

/* ---- Redis (redis/limiter.c runs the same arithmetic in one script) ---- */

static int check_redis(struct ratelimit *rl, const struct rl_key *keys, int n,
		       struct rl_result *out)
{
	struct redis_gcra_key rk[MAX_KEYS_PER_CHECK] = {{0}};
	char bucket[MAX_KEYS_PER_CHECK][300];
	int64_t diffs[MAX_KEYS_PER_CHECK];
	bool allowed;

	for (int i = 0; i < n; i++) {
		snprintf(bucket[i], sizeof(bucket[i]), "%s:%s", keys[i].policy->name, keys[i].key);
		rk[i] = (struct redis_gcra_key){.bucket = bucket[i],
						.interval_ms = interval_ms(keys[i].policy),
						.limit_ms = limit_ms(keys[i].policy)};
	}
	if (redis_gcra(rl->redis, rk, n, &allowed, diffs) < 0)
		return -1;
	for (int i = 0; i < n; i++) {
		struct rl_result k = {.allowed = diffs[i] <= limit_ms(keys[i].policy)};
		describe(keys[i].policy, diffs[i], k.allowed, &k);
		merge(out, &k, i == 0);
	}
	/* After merge(), which copies the shown key's verdict: the script decided for all. */
	out->allowed = allowed;
	return 0;
}

void ratelimit_check(struct ratelimit *rl, const struct rl_key *keys, int nkeys, bool strict,
		     struct rl_result *out)
{
	memset(out, 0, sizeof(*out));
	if (nkeys > MAX_KEYS_PER_CHECK)
		nkeys = MAX_KEYS_PER_CHECK;
	if (rl->redis) {
		if (check_redis(rl, keys, nkeys, out) == 0)
			return;
		memset(out, 0, sizeof(*out));
		out->degraded = true;
		if (!strict) {
			/* Fail open: ordinary traffic is served while Redis is away. */
			out->allowed = true;
			out->policy = keys[0].policy;
			out->remaining = keys[0].policy->burst;
			out->reset_s = 0;
			return;
		}
	}
	check_local(rl, keys, nkeys, out);
	out->degraded = rl->redis != NULL;
}

static void refund_local(struct ratelimit *rl, const struct rl_key *key)
{
	uint64_t h = hash_key(rl, key->policy->name, key->key);
	struct shard *s = &rl->shards[(h >> 60) & (SHARDS - 1)];
	int64_t now = time_now_ms();
	pthread_mutex_lock(&s->lock);
	struct entry *e = find(s, h);
	/* Not there: evicted or expired, so already full. At or below now: full (the next sweep
	 * drops it). */
	if (e->hash) {
		e->tat -= interval_ms(key->policy);
		if (e->tat < now)
			e->tat = now;
	}
	pthread_mutex_unlock(&s->lock);
}

void ratelimit_refund(struct ratelimit *rl, const struct rl_key *key, const struct rl_result *taken)
{
	if (rl->redis && !taken->degraded) {
		char bucket[300];
		snprintf(bucket, sizeof(bucket), "%s:%s", key->policy->name, key->key);
		if (redis_gcra_refund(rl->redis, bucket, interval_ms(key->policy)) < 0)
			log_warn(
			    "could not give back a %s rate-limit token (Redis): it stays spent",
			    key->policy->name);
		return;
	}
	refund_local(rl, key);
}
