/* ratelimit.c — see ratelimit.h. Times are milliseconds. */
#include "services/ratelimit.h"
#include "core/log.h"
#include "core/random.h"
#include "core/timeutil.h"
#include "core/xalloc.h"
#include "redis/redis.h"

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHARDS		   16
#define MAX_KEYS_PER_CHECK 4

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
	char script_sha[48];
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

/* Merge per-key results: show the most constrained bucket. */
static void merge(struct rl_result *out, const struct rl_result *k, bool first)
{
	if (first || k->remaining < out->remaining ||
	    (k->remaining == out->remaining && k->reset_s > out->reset_s)) {
		int64_t retry = out->retry_after_s;
		*out = *k;
		if (retry > out->retry_after_s)
			out->retry_after_s = retry;
	} else if (k->retry_after_s > out->retry_after_s) {
		out->retry_after_s = k->retry_after_s;
	}
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
		int64_t tat = e[i]->hash ? e[i]->tat : now;
		if (tat < now)
			tat = now;
		news[i] = tat + interval_ms(keys[i].policy);
		int64_t diff = news[i] - now;
		struct rl_result k = {.allowed = diff <= limit_ms(keys[i].policy)};
		describe(keys[i].policy, diff, k.allowed, &k);
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

/* ---- Redis ---- */

/*
 * KEYS: bucket keys; ARGV: T1, L1, T2, L2, ... Uses the server's clock so that every instance
 * agrees. Returns {allowed, diff1, diff2, ...}; writes only when every key allows.
 */
static const char LUA[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local ok = 1\n"
    "local res = {0}\n"
    "local news = {}\n"
    "for i = 1, #KEYS do\n"
    "  local T = tonumber(ARGV[2 * i - 1])\n"
    "  local L = tonumber(ARGV[2 * i])\n"
    "  local tat = tonumber(redis.call('GET', KEYS[i]) or now)\n"
    "  if tat < now then tat = now end\n"
    "  news[i] = tat + T\n"
    "  local diff = news[i] - now\n"
    "  if diff > L then ok = 0 end\n"
    "  res[i + 1] = diff\n"
    "end\n"
    "if ok == 1 then\n"
    "  for i = 1, #KEYS do\n"
    "    redis.call('SET', KEYS[i], news[i], 'PX', math.max(1, news[i] - now))\n"
    "  end\n"
    "end\n"
    "res[1] = ok\n"
    "return res\n";

static int check_redis(struct ratelimit *rl, const struct rl_key *keys, int n,
		       struct rl_result *out)
{
	const char *argv[3 + 3 * MAX_KEYS_PER_CHECK];
	char nbuf[8], kbuf[MAX_KEYS_PER_CHECK][300], num[2 * MAX_KEYS_PER_CHECK][24];
	int argc = 0;

	argv[argc++] = "EVAL";
	argv[argc++] = LUA;
	snprintf(nbuf, sizeof(nbuf), "%d", n);
	argv[argc++] = nbuf;
	for (int i = 0; i < n; i++) {
		snprintf(kbuf[i], sizeof(kbuf[i]), "tandem:rl:%s:%s", keys[i].policy->name,
			 keys[i].key);
		argv[argc++] = kbuf[i];
	}
	for (int i = 0; i < n; i++) {
		snprintf(num[2 * i], sizeof(num[0]), "%lld",
			 (long long)interval_ms(keys[i].policy));
		snprintf(num[2 * i + 1], sizeof(num[0]), "%lld",
			 (long long)limit_ms(keys[i].policy));
		argv[argc++] = num[2 * i];
		argv[argc++] = num[2 * i + 1];
	}
	/* EVALSHA first; the script is loaded on a miss (NOSCRIPT) by EVAL itself. */
	redisReply *rep = NULL;
	if (rl->script_sha[0]) {
		argv[0] = "EVALSHA";
		argv[1] = rl->script_sha;
		rep = redis_command(rl->redis, argc, argv, NULL);
		if (rep && rep->type == REDIS_REPLY_ERROR && !strncmp(rep->str, "NOSCRIPT", 8)) {
			freeReplyObject(rep);
			rep = NULL;
		} else if (!rep) {
			return -1;
		}
	}
	if (!rep) {
		const char *load[] = {"SCRIPT", "LOAD", LUA};
		redisReply *l = redis_command(rl->redis, 3, load, NULL);
		if (!l)
			return -1;
		if (l->type == REDIS_REPLY_STRING && l->len < sizeof(rl->script_sha))
			memcpy(rl->script_sha, l->str,
			       l->len + 1); /* same text, same sha: benign race */
		freeReplyObject(l);
		argv[0] = "EVAL";
		argv[1] = LUA;
		rep = redis_command(rl->redis, argc, argv, NULL);
		if (!rep)
			return -1;
	}
	int rc = -1;
	if (rep->type == REDIS_REPLY_ARRAY && rep->elements == (size_t)n + 1) {
		out->allowed = rep->element[0]->integer == 1;
		for (int i = 0; i < n; i++) {
			int64_t diff = rep->element[i + 1]->integer;
			struct rl_result k = {.allowed = diff <= limit_ms(keys[i].policy)};
			describe(keys[i].policy, diff, k.allowed, &k);
			merge(out, &k, i == 0);
		}
		out->allowed = rep->element[0]->integer == 1;
		rc = 0;
	} else if (rep->type == REDIS_REPLY_ERROR) {
		log_json(LOG_WARN, "redis rate-limit script failed",
			 json_pack("{s:s}", "detail", rep->str));
	}
	freeReplyObject(rep);
	return rc;
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
