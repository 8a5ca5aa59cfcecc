/*
 * redis.h — the one Redis client of the process, on hiredis: request paths (the rate
 * limiter, redis/limiter.h), the event bus's publisher and its subscriber all connect
 * through it, so the URL (redis/url.h) is parsed once and every connection logs in the same
 * way (`AUTH user password` with an ACL user, `AUTH password` without) and selects the same
 * database.
 *
 * One struct redis per process for one URL; every thread that runs commands gets its own
 * connection (core/tlsreg), made on first use. Calls have a short timeout: Redis being slow
 * or gone must cost a request milliseconds, not seconds. After a failure a thread waits a
 * moment before it tries to connect again, so an outage does not turn every request into a
 * connect attempt; service resumes by itself when Redis is back. Thread-safe.
 */
#ifndef TANDEM_REDIS_REDIS_H
#define TANDEM_REDIS_REDIS_H

#include <stddef.h>

struct redis;
struct redisContext;
struct redisReply;

/*
 * Parse and remember `url` (see redis/url.h for its forms). Nothing is connected yet.
 * Returns 0, or -1 with a message in `why` (size why_len) that does not quote the password.
 */
int redis_create(const char *url, struct redis **out, char *why, size_t why_len);
void redis_free(struct redis *r);

/*
 * A new blocking connection of the caller's own (not one of the per-thread ones), logged in
 * and with the database selected; calls on it time out after timeout_ms. For connections
 * that do something else than commands (the bus's SUBSCRIBE). Returns NULL when Redis is
 * unreachable or refuses the login (logged, at most once every few seconds); the caller
 * frees the context with redisFree().
 */
struct redisContext *redis_connect(struct redis *r, int timeout_ms);

/*
 * Run a command (argv form) on the calling thread's connection. Returns a reply to free with
 * freeReplyObject(), or NULL when Redis is unreachable or timed out (an error reply is
 * returned as a reply of type REDIS_REPLY_ERROR, not NULL).
 */
struct redisReply *redis_command(struct redis *r, int argc, const char **argv,
				 const size_t *argvlen);

/*
 * Log that Redis failed at `what` (one line every 10 s at most, shared by every caller of
 * this struct redis, so a Redis that fails every request does not flood the log).
 */
void redis_log_failure(struct redis *r, const char *what, const char *detail);

/* PING; 0 when Redis answers. */
int redis_ping(struct redis *r);

#endif
