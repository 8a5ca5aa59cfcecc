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

/*
 * KEYS[1]: one bucket; ARGV[1]: its T. Gives back one token a check took: the TAT moves back
 * by T, and a bucket that is then full is deleted (never fuller than full). Returns 1 when
 * there was a bucket, 0 when it had expired already.
 */
static const char LUA_REFUND[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local tat = tonumber(redis.call('GET', KEYS[1]))\n"
    "if not tat then return 0 end\n"
    "tat = tat - tonumber(ARGV[1])\n"
    "if tat <= now then\n"
    "  redis.call('DEL', KEYS[1])\n"
    "else\n"
    "  redis.call('SET', KEYS[1], tat, 'PX', tat - now)\n"
    "end\n"
    "return 1\n";

struct script {
	const char *text;
	size_t len;
	char sha[2 * SHA_DIGEST_LENGTH + 1];
};

/* Written once under pthread_once, read-only afterwards: no thread sees them half-written. */
static struct script scripts[] = {
    {LUA, sizeof(LUA) - 1, ""},
    {LUA_REFUND, sizeof(LUA_REFUND) - 1, ""},
};
static pthread_once_t sha_once = PTHREAD_ONCE_INIT;

static void compute_sha(void)
{
	for (size_t k = 0; k < sizeof(scripts) / sizeof(scripts[0]); k++) {
		unsigned char d[SHA_DIGEST_LENGTH];
		SHA1((const unsigned char *)scripts[k].text, scripts[k].len, d);
		for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
			snprintf(scripts[k].sha + 2 * i, 3, "%02x", d[i]);
	}
}

static const char *script_sha(struct script *sc)
{
	pthread_once(&sha_once, compute_sha);
	return sc->sha;
}

const char *redis_gcra_sha(void)
{
	return script_sha(&scripts[0]);
}

/* SCRIPT LOAD, so that the next EVALSHA of every thread finds the script. */
static void load_script(struct redis *r, struct script *sc)
{
	const char *argv[] = {"SCRIPT", "LOAD", sc->text};
	redisReply *rep = redis_command(r, 3, argv, NULL);
	if (rep && rep->type == REDIS_REPLY_STRING && strcmp(rep->str, script_sha(sc)) != 0)
		log_json(LOG_WARN, "redis rate-limit script loaded under another sha",
			 json_pack("{s:s, s:s}", "expected", script_sha(sc), "got", rep->str));
	if (rep)
		freeReplyObject(rep);
}

/*
 * EVALSHA argv (argv[0] and argv[1] are set here); when Redis does not know the script (a new
 * server, a restart or SCRIPT FLUSH), load it for the calls to come and run this one with its
 * text. NULL when Redis is away.
 */
static redisReply *run_script(struct redis *r, struct script *sc, int argc, const char **argv)
{
	argv[0] = "EVALSHA";
	argv[1] = script_sha(sc);
	redisReply *rep = redis_command(r, argc, argv, NULL);
	if (rep && rep->type == REDIS_REPLY_ERROR && !strncmp(rep->str, "NOSCRIPT", 8)) {
		freeReplyObject(rep);
		load_script(r, sc);
		argv[0] = "EVAL";
		argv[1] = sc->text;
		rep = redis_command(r, argc, argv, NULL);
	}
	return rep;
}

int redis_gcra(struct redis *r, const struct redis_gcra_key *keys, int n, bool *allowed,
	       int64_t *diffs)
{
	const char *argv[3 + 3 * REDIS_GCRA_MAX_KEYS];
	char nbuf[8], kbuf[REDIS_GCRA_MAX_KEYS][320], num[2 * REDIS_GCRA_MAX_KEYS][24];
	int argc = 0;

	assert(n >= 1 && n <= REDIS_GCRA_MAX_KEYS);
	argc = 2; /* EVALSHA sha: run_script() */
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
	redisReply *rep = run_script(r, &scripts[0], argc, argv);
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

int redis_gcra_refund(struct redis *r, const char *bucket, int64_t interval_ms)
{
	char key[320], t[24];
	snprintf(key, sizeof(key), "tandem:rl:%s", bucket);
	snprintf(t, sizeof(t), "%lld", (long long)interval_ms);
	const char *argv[] = {NULL, NULL, "1", key, t};
	redisReply *rep = run_script(r, &scripts[1], 5, argv);
	if (!rep)
		return -1;
	int rc = rep->type == REDIS_REPLY_INTEGER ? 0 : -1;
	if (rep->type == REDIS_REPLY_ERROR)
		redis_log_failure(r, "rate-limit refund script", rep->str);
	freeReplyObject(rep);
	return rc;
}
