/* limiter.c — see limiter.h. */
#include "redis/limiter.h"
#include "core/log.h"
#include "redis/redis.h"

#include <assert.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

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

/* Written once under pthread_once, read-only afterwards: no thread sees it half-written. */
static char script_sha[2 * SHA_DIGEST_LENGTH + 1];
static pthread_once_t sha_once = PTHREAD_ONCE_INIT;

static void compute_sha(void)
{
	unsigned char d[SHA_DIGEST_LENGTH];
	SHA1((const unsigned char *)LUA, sizeof(LUA) - 1, d);
	for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
		snprintf(script_sha + 2 * i, 3, "%02x", d[i]);
}

const char *redis_gcra_sha(void)
{
	pthread_once(&sha_once, compute_sha);
	return script_sha;
}

/* SCRIPT LOAD, so that the next EVALSHA of every thread finds the script. */
static void load_script(struct redis *r)
{
	const char *argv[] = {"SCRIPT", "LOAD", LUA};
	redisReply *rep = redis_command(r, 3, argv, NULL);
	if (rep && rep->type == REDIS_REPLY_STRING && strcmp(rep->str, redis_gcra_sha()) != 0)
		log_json(LOG_WARN, "redis rate-limit script loaded under another sha",
			 json_pack("{s:s, s:s}", "expected", redis_gcra_sha(), "got", rep->str));
	if (rep)
		freeReplyObject(rep);
}

int redis_gcra(struct redis *r, const struct redis_gcra_key *keys, int n, bool *allowed,
	       int64_t *diffs)
{
	const char *argv[3 + 3 * REDIS_GCRA_MAX_KEYS];
	char nbuf[8], kbuf[REDIS_GCRA_MAX_KEYS][320], num[2 * REDIS_GCRA_MAX_KEYS][24];
	int argc = 0;

	assert(n >= 1 && n <= REDIS_GCRA_MAX_KEYS);
	argv[argc++] = "EVALSHA";
	argv[argc++] = redis_gcra_sha();
	snprintf(nbuf, sizeof(nbuf), "%d", n);
	argv[argc++] = nbuf;
	for (int i = 0; i < n; i++) {
		snprintf(kbuf[i], sizeof(kbuf[i]), "tandem:rl:%s", keys[i].bucket);
		argv[argc++] = kbuf[i];
	}
	for (int i = 0; i < n; i++) {
		snprintf(num[2 * i], sizeof(num[0]), "%lld", (long long)keys[i].interval_ms);
		snprintf(num[2 * i + 1], sizeof(num[0]), "%lld", (long long)keys[i].limit_ms);
		argv[argc++] = num[2 * i];
		argv[argc++] = num[2 * i + 1];
	}
	redisReply *rep = redis_command(r, argc, argv, NULL);
	if (rep && rep->type == REDIS_REPLY_ERROR && !strncmp(rep->str, "NOSCRIPT", 8)) {
		/* Unknown script: a new server, a restart or SCRIPT FLUSH. Load it for the calls
		 * to come, and run this one with its text. */
		freeReplyObject(rep);
		load_script(r);
		argv[0] = "EVAL";
		argv[1] = LUA;
		rep = redis_command(r, argc, argv, NULL);
	}
	if (!rep)
		return -1;
	int rc = -1;
	if (rep->type == REDIS_REPLY_ARRAY && rep->elements == (size_t)n + 1) {
		*allowed = rep->element[0]->integer == 1;
		for (int i = 0; i < n; i++)
			diffs[i] = rep->element[i + 1]->integer;
		rc = 0;
	} else if (rep->type == REDIS_REPLY_ERROR) {
		/* E.g. an ACL user that may not run TIME, GET or SET: every check fails open, so
		 * this would otherwise be one line per request. */
		redis_log_failure(r, "rate-limit script", rep->str);
	}
	freeReplyObject(rep);
	return rc;
}
