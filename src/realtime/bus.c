/* bus.c — see bus.h. */
#include "realtime/bus.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "realtime/hub.h"
#include "redis/redis.h"

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BUS_CHANNEL "tandem:events"

struct bus {
	struct hub *hub;
	struct redis *redis;
	pthread_t thread;
	bool started;
	atomic_bool stop;
};

void bus_publish(void *cls, const char *project_id, int64_t seq, enum event_note note)
{
	struct bus *b = cls;
	hub_notify(b->hub, project_id, seq, note);
	if (!b->redis)
		return;
	char msg[96];
	snprintf(msg, sizeof(msg), "%c:%s:%lld", note == EVENT_NOTE_PROJECT_DELETED ? 'd' : 'e',
		 project_id, (long long)seq);
	const char *argv[] = {"PUBLISH", BUS_CHANNEL, msg};
	redisReply *r = redis_command(b->redis, 3, argv, NULL);
	if (r)
		freeReplyObject(r); /* a lost message is caught up by the hub's sweep */
}

static void handle_message(struct bus *b, redisReply *r)
{
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
	    r->element[0]->type != REDIS_REPLY_STRING || strcmp(r->element[0]->str, "message"))
		return;
	const char *m = r->element[2]->str;
	if (!m || strlen(m) < 40 || m[1] != ':')
		return;
	char pid[37];
	memcpy(pid, m + 2, 36);
	pid[36] = '\0';
	long long seq = atoll(m + 39);
	hub_notify(b->hub, pid, seq,
		   m[0] == 'd' ? EVENT_NOTE_PROJECT_DELETED : EVENT_NOTE_APPENDED);
}

/* A connection of the subscriber thread's own, logged in by the redis module like every
 * other (pub/sub channels are global to the server: the database does not matter). */
static redisContext *subscribe_connect(struct redis *redis)
{
	redisContext *c = redis_connect(redis, 1000);
	if (!c)
		return NULL;
	redisReply *r = redisCommand(c, "SUBSCRIBE %s", BUS_CHANNEL);
	bool ok = r && r->type == REDIS_REPLY_ARRAY;
	if (r)
		freeReplyObject(r);
	if (!ok) {
		redisFree(c);
		return NULL;
	}
	return c;
}

static void *subscriber(void *arg)
{
	struct bus *b = arg;
	bool was_up = true;
	while (!atomic_load(&b->stop)) {
		redisContext *c = subscribe_connect(b->redis);
		if (!c) {
			if (was_up)
				log_warn(
				    "event bus: cannot subscribe to redis; retrying every second");
			was_up = false;
			for (int i = 0; i < 10 && !atomic_load(&b->stop); i++)
				usleep(100000);
			continue;
		}
		log_info("event bus: subscribed to redis channel %s", BUS_CHANNEL);
		was_up = true;
		/* Anything published while we were away: let the hub re-read every topic. */
		hub_notify(b->hub, "", 0, EVENT_NOTE_RESYNC);
		while (!atomic_load(&b->stop)) {
			struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
			int pr = poll(&pfd, 1, 200);
			if (pr < 0)
				continue;
			if (pr == 0)
				continue;
			if (redisBufferRead(c) != REDIS_OK)
				break;
			void *reply = NULL;
			int rc;
			while ((rc = redisGetReplyFromReader(c, &reply)) == REDIS_OK && reply) {
				handle_message(b, reply);
				freeReplyObject(reply);
				reply = NULL;
			}
			if (rc != REDIS_OK)
				break;
		}
		if (!atomic_load(&b->stop))
			log_warn("event bus: lost the redis subscription; reconnecting");
		redisFree(c);
	}
	return NULL;
}

struct bus *bus_create(struct hub *hub, struct redis *redis)
{
	struct bus *b = xcalloc(1, sizeof(*b));
	b->hub = hub;
	b->redis = redis;
	if (redis && pthread_create(&b->thread, NULL, subscriber, b) == 0)
		b->started = true;
	return b;
}

void bus_free(struct bus *b)
{
	if (!b)
		return;
	atomic_store(&b->stop, true);
	if (b->started)
		pthread_join(b->thread, NULL);
	free(b);
}
