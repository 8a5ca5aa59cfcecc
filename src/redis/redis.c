/* redis.c — see redis.h. */
#include "redis/redis.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "core/tlsreg.h"
#include "core/xalloc.h"
#include "redis/url.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REDIS_TIMEOUT_MS     250
#define REDIS_RETRY_AFTER_MS 1000

/* One thread's command connection. */
struct conn {
	redisContext *ctx;   /* NULL: not connected */
	int64_t retry_at_ms; /* no reconnect attempt before this */
};

struct redis {
	struct redis_url url;
	struct tlsreg *conns; /* each thread's struct conn */
	pthread_mutex_t lock; /* last_log_ms */
	int64_t last_log_ms;
};

static void conn_close(void *p)
{
	struct conn *c = p;
	if (c->ctx)
		redisFree(c->ctx);
	free(c);
}

int redis_create(const char *url, struct redis **out, char *why, size_t why_len)
{
	struct redis *r = xcalloc(1, sizeof(*r));
	if (redis_url_parse(url, &r->url, why, why_len) < 0) {
		free(r);
		return -1;
	}
	pthread_mutex_init(&r->lock, NULL);
	r->conns = tlsreg_create(conn_close);
	*out = r;
	return 0;
}

void redis_free(struct redis *r)
{
	if (!r)
		return;
	tlsreg_free(r->conns);
	pthread_mutex_destroy(&r->lock);
	redis_url_release(&r->url);
	free(r);
}

void redis_log_failure(struct redis *r, const char *what, const char *detail)
{
	int64_t now = time_now_ms();
	/* One line every 10 s is enough to say Redis is down; more would flood the log. */
	pthread_mutex_lock(&r->lock);
	int quiet = r->last_log_ms && now - r->last_log_ms < 10000;
	if (!quiet)
		r->last_log_ms = now;
	pthread_mutex_unlock(&r->lock);
	if (!quiet)
		log_json(LOG_WARN, "redis unavailable",
			 json_pack("{s:s, s:s}", "op", what, "detail", detail ? detail : ""));
}

/* Run one set-up command; false (logged) when it fails. */
static bool setup(struct redis *r, redisContext *c, const char *what, int argc, const char **argv)
{
	redisReply *rep = redisCommandArgv(c, argc, argv, NULL);
	bool ok = rep && rep->type != REDIS_REPLY_ERROR;
	if (!ok)
		redis_log_failure(r, what, rep ? rep->str : c->errstr);
	if (rep)
		freeReplyObject(rep);
	return ok;
}

struct redisContext *redis_connect(struct redis *r, int timeout_ms)
{
	const struct redis_url *u = &r->url;
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	redisContext *c = u->path ? redisConnectUnixWithTimeout(u->path, tv)
				  : redisConnectWithTimeout(u->host, u->port, tv);
	if (!c || c->err) {
		redis_log_failure(r, "connect", c ? c->errstr : "out of memory");
		if (c)
			redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, tv);
	if (u->password) {
		/* With a user name, the ACL form: the legacy AUTH <password> logs in as `default`,
		 * which an ACL set-up usually disables. */
		const char *with_user[] = {"AUTH", u->user, u->password};
		const char *plain[] = {"AUTH", u->password};
		if (!(u->user ? setup(r, c, "auth", 3, with_user) : setup(r, c, "auth", 2, plain)))
			goto fail;
	}
	if (u->db) {
		char db[16];
		snprintf(db, sizeof(db), "%d", u->db);
		const char *argv[] = {"SELECT", db};
		if (!setup(r, c, "select", 2, argv))
			goto fail;
	}
	return c;
fail:
	redisFree(c);
	return NULL;
}

/* Did the server close the connection (rather than time out or send garbage)? */
static bool closed_under_us(const redisContext *c)
{
	return c->err == REDIS_ERR_EOF ||
	       (c->err == REDIS_ERR_IO && (errno == ECONNRESET || errno == EPIPE));
}

static struct conn *conn_get(struct redis *r)
{
	struct conn *c = tlsreg_get(r->conns);
	if (!c) {
		c = xcalloc(1, sizeof(*c));
		tlsreg_set(r->conns, c);
	}
	return c;
}

/* (Re)connect the thread's connection; false when Redis is unreachable (backs off). */
static bool reconnect(struct redis *r, struct conn *c)
{
	if (c->ctx)
		redisFree(c->ctx);
	if (!(c->ctx = redis_connect(r, REDIS_TIMEOUT_MS))) {
		c->retry_at_ms = time_now_ms() + REDIS_RETRY_AFTER_MS;
		return false;
	}
	log_info("redis connection established");
	return true;
}

struct redisReply *redis_command(struct redis *r, int argc, const char **argv,
				 const size_t *argvlen)
{
	struct conn *c = conn_get(r);
	bool reused = c->ctx != NULL;
	if (!c->ctx) {
		if (time_now_ms() < c->retry_at_ms)
			return NULL;
		if (!reconnect(r, c))
			return NULL;
	}
	redisReply *rep = redisCommandArgv(c->ctx, argc, argv, argvlen);
	if (reused && (!rep || c->ctx->err) && closed_under_us(c->ctx)) {
		/* An idle connection that Redis closed (a restart, a failover, an idle timeout):
		 * every thread finds out on its next command. Connect again at once, once, instead
		 * of failing open and backing off. Never after a timeout: the command may have
		 * run. */
		if (rep)
			freeReplyObject(rep);
		if (!reconnect(r, c))
			return NULL;
		rep = redisCommandArgv(c->ctx, argc, argv, argvlen);
	}
	if (!rep || c->ctx->err) {
		redis_log_failure(r, argv[0], c->ctx->errstr);
		if (rep)
			freeReplyObject(rep);
		redisFree(c->ctx);
		c->ctx = NULL;
		c->retry_at_ms = time_now_ms() + REDIS_RETRY_AFTER_MS;
		return NULL;
	}
	return rep;
}

int redis_ping(struct redis *r)
{
	const char *argv[] = {"PING"};
	conn_get(r)->retry_at_ms = 0; /* a readiness probe always tries */
	redisReply *rep = redis_command(r, 1, argv, NULL);
	int ok = rep && rep->type == REDIS_REPLY_STATUS;
	if (rep)
		freeReplyObject(rep);
	return ok ? 0 : -1;
}
