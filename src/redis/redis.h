/*
 * redis.h — a Redis client for request paths (rate limits now, more later) on hiredis.
 *
 * One struct redis per process for one URL; every thread that uses it gets its own
 * connection, made on first use. Calls have a short timeout: Redis being slow or gone must
 * cost a request milliseconds, not seconds. After a failure a thread waits a moment before
 * it tries to connect again, so an outage does not turn every request into a connect
 * attempt; service resumes by itself when Redis is back.
 */
#ifndef TANDEM_REDIS_REDIS_H
#define TANDEM_REDIS_REDIS_H

#include <stddef.h>

struct redis;
struct redisReply;

/*
 * Parse and remember `url`: redis://[[user]:password@]host[:port][/db] or
 * unix:///path/to/socket[?db=N]. Nothing is connected yet. Returns 0, or -1 with a
 * message in `why` (size why_len).
 */
int redis_create(const char *url, struct redis **out, char *why, size_t why_len);
void redis_free(struct redis *r);

/*
 * Run a command (argv form) on the calling thread's connection. Returns a reply to free with
 * freeReplyObject(), or NULL when Redis is unreachable, timed out or answered an error
 * (an error reply is returned as a reply of type REDIS_REPLY_ERROR, not NULL).
 */
struct redisReply *redis_command(struct redis *r, int argc, const char **argv,
				 const size_t *argvlen);

/* PING; 0 when Redis answers. */
int redis_ping(struct redis *r);

#endif
