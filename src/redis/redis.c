/* redis.c — see redis.h. */
#include "redis/redis.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "core/xalloc.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REDIS_TIMEOUT_MS     250
#define REDIS_RETRY_AFTER_MS 1000

struct conn_slot {
	struct conn_slot *next, *prev;
	struct redis *owner;
	redisContext *ctx;
	int64_t retry_at_ms; /* no reconnect attempt before this */
};

struct redis {
	char *host, *path, *user, *password;
	int port, db;
	pthread_key_t key;
	pthread_mutex_t lock;
	struct conn_slot *slots;
	int64_t last_log_ms;
};

static void slot_unlink(struct conn_slot *s)
{
	struct redis *r = s->owner;
	pthread_mutex_lock(&r->lock);
	if (s->prev)
		s->prev->next = s->next;
	else
		r->slots = s->next;
	if (s->next)
		s->next->prev = s->prev;
	pthread_mutex_unlock(&r->lock);
}

static void thread_exit(void *p)
{
	struct conn_slot *s = p;
	if (s->owner)
		slot_unlink(s);
	if (s->ctx)
		redisFree(s->ctx);
	free(s);
}

int redis_create(const char *url, struct redis **out, char *why, size_t why_len)
{
	struct redis *r = xcalloc(1, sizeof(*r));
	r->port = 6379;
	if (!strncmp(url, "unix://", 7)) {
		const char *p = url + 7, *q = strchr(p, '?');
		r->path = q ? xstrndup(p, (size_t)(q - p)) : xstrdup(p);
		if (q && !strncmp(q, "?db=", 4))
			r->db = atoi(q + 4);
		if (!r->path[0]) {
			snprintf(why, why_len, "no socket path in \"%s\"", url);
			goto fail;
		}
	} else if (!strncmp(url, "redis://", 8)) {
		const char *p = url + 8, *at = strrchr(p, '@');
		if (at) {
			const char *colon = memchr(p, ':', (size_t)(at - p));
			if (colon) {
				if (colon > p)
					r->user = xstrndup(p, (size_t)(colon - p));
				r->password = xstrndup(colon + 1, (size_t)(at - colon - 1));
			} else {
				r->password = xstrndup(p, (size_t)(at - p));
			}
			p = at + 1;
		}
		const char *slash = strchr(p, '/');
		size_t hl = slash ? (size_t)(slash - p) : strlen(p);
		char *hostport = xstrndup(p, hl);
		char *colon = strrchr(hostport, ':');
		if (colon && !strchr(colon, ']')) {
			*colon = '\0';
			char *end;
			long port = strtol(colon + 1, &end, 10);
			if (*end || port <= 0 || port > 65535) {
				free(hostport);
				snprintf(why, why_len, "bad port in \"%s\"", url);
				goto fail;
			}
			r->port = (int)port;
		}
		if (hostport[0] == '[') {
			size_t n = strlen(hostport);
			memmove(hostport, hostport + 1, n);
			hostport[strcspn(hostport, "]")] = '\0';
		}
		r->host = hostport;
		if (!r->host[0]) {
			snprintf(why, why_len, "no host in \"%s\"", url);
			goto fail;
		}
		if (slash && slash[1]) {
			char *end;
			long db = strtol(slash + 1, &end, 10);
			if (*end || db < 0) {
				snprintf(why, why_len, "bad database number in \"%s\"", url);
				goto fail;
			}
			r->db = (int)db;
		}
	} else {
		snprintf(why, why_len, "expected redis://host:port or unix:///path");
		goto fail;
	}
	pthread_mutex_init(&r->lock, NULL);
	if (pthread_key_create(&r->key, thread_exit) != 0)
		abort();
	*out = r;
	return 0;
fail:
	free(r->host);
	free(r->path);
	free(r->user);
	free(r->password);
	free(r);
	return -1;
}

void redis_free(struct redis *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->lock);
	for (struct conn_slot *s = r->slots; s; s = s->next) {
		if (s->ctx)
			redisFree(s->ctx);
		s->ctx = NULL;
		s->owner = NULL;
	}
	r->slots = NULL;
	pthread_mutex_unlock(&r->lock);
	struct conn_slot *mine = pthread_getspecific(r->key);
	pthread_setspecific(r->key, NULL);
	free(mine);
	pthread_key_delete(r->key);
	pthread_mutex_destroy(&r->lock);
	free(r->host);
	free(r->path);
	free(r->user);
	free(r->password);
	free(r);
}

static void log_failure(struct redis *r, const char *what, const char *detail)
{
	int64_t now = time_now_ms();
	/* One line every 10 s is enough to say Redis is down; more would flood the log. */
	pthread_mutex_lock(&r->lock);
	int quiet = now - r->last_log_ms < 10000;
	if (!quiet)
		r->last_log_ms = now;
	pthread_mutex_unlock(&r->lock);
	if (!quiet)
		log_json(LOG_WARN, "redis unavailable",
			 json_pack("{s:s, s:s}", "op", what, "detail", detail ? detail : ""));
}

static redisContext *connect_ctx(struct redis *r)
{
	struct timeval tv = {0, REDIS_TIMEOUT_MS * 1000};
	redisContext *c = r->path ? redisConnectUnixWithTimeout(r->path, tv)
				  : redisConnectWithTimeout(r->host, r->port, tv);
	if (!c || c->err) {
		log_failure(r, "connect", c ? c->errstr : "out of memory");
		if (c)
			redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, tv);
	redisReply *rep = NULL;
	if (r->password) {
		rep = r->user ? redisCommand(c, "AUTH %s %s", r->user, r->password)
			      : redisCommand(c, "AUTH %s", r->password);
		if (!rep || rep->type == REDIS_REPLY_ERROR) {
			log_failure(r, "auth", rep ? rep->str : c->errstr);
			goto fail;
		}
		freeReplyObject(rep);
	}
	if (r->db) {
		rep = redisCommand(c, "SELECT %d", r->db);
		if (!rep || rep->type == REDIS_REPLY_ERROR) {
			log_failure(r, "select", rep ? rep->str : c->errstr);
			goto fail;
		}
		freeReplyObject(rep);
	}
	return c;
fail:
	if (rep)
		freeReplyObject(rep);
	redisFree(c);
	return NULL;
}

/* Did the server close the connection (rather than time out or send garbage)? */
static bool closed_under_us(const redisContext *c)
{
	return c->err == REDIS_ERR_EOF ||
	       (c->err == REDIS_ERR_IO && (errno == ECONNRESET || errno == EPIPE));
}

static struct conn_slot *slot_get(struct redis *r)
{
	struct conn_slot *s = pthread_getspecific(r->key);
	if (!s) {
		s = xcalloc(1, sizeof(*s));
		s->owner = r;
		pthread_setspecific(r->key, s);
		pthread_mutex_lock(&r->lock);
		s->next = r->slots;
		if (r->slots)
			r->slots->prev = s;
		r->slots = s;
		pthread_mutex_unlock(&r->lock);
	}
	return s;
}

struct redisReply *redis_command(struct redis *r, int argc, const char **argv,
				 const size_t *argvlen)
{
	struct conn_slot *s = slot_get(r);
	bool reused = s->ctx != NULL;
	if (!s->ctx) {
		if (time_now_ms() < s->retry_at_ms)
			return NULL;
		if (!(s->ctx = connect_ctx(r))) {
			s->retry_at_ms = time_now_ms() + REDIS_RETRY_AFTER_MS;
			return NULL;
		}
		log_info("redis connection established");
	}
	redisReply *rep = redisCommandArgv(s->ctx, argc, argv, argvlen);
	if (reused && (!rep || s->ctx->err) && closed_under_us(s->ctx)) {
		/* An idle connection that Redis closed (a restart, a failover, an idle timeout):
		 * every thread finds out on its next command. Connect again at once, once, instead
		 * of failing open and backing off. Never after a timeout: the command may have
		 * run. */
		if (rep)
			freeReplyObject(rep);
		redisFree(s->ctx);
		if (!(s->ctx = connect_ctx(r))) {
			s->retry_at_ms = time_now_ms() + REDIS_RETRY_AFTER_MS;
			return NULL;
		}
		log_info("redis connection established");
		rep = redisCommandArgv(s->ctx, argc, argv, argvlen);
	}
	if (!rep || s->ctx->err) {
		log_failure(r, argv[0], s->ctx->errstr);
		if (rep)
			freeReplyObject(rep);
		redisFree(s->ctx);
		s->ctx = NULL;
		s->retry_at_ms = time_now_ms() + REDIS_RETRY_AFTER_MS;
		return NULL;
	}
	return rep;
}

int redis_ping(struct redis *r)
{
	const char *argv[] = {"PING"};
	struct conn_slot *s = slot_get(r);
	s->retry_at_ms = 0; /* a readiness probe always tries */
	redisReply *rep = redis_command(r, 1, argv, NULL);
	int ok = rep && rep->type == REDIS_REPLY_STATUS;
	if (rep)
		freeReplyObject(rep);
	return ok ? 0 : -1;
}
