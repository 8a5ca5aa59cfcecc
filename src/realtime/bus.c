/* bus.c — see bus.h. */
#include "realtime/bus.h"
#include "core/log.h"
#include "core/uuid.h"
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
	char letter = note == EVENT_NOTE_PROJECT_DELETED ? 'd'
		      : note == EVENT_NOTE_USER_REVOKED	 ? 'u'
							 : 'e';
	if (note == EVENT_NOTE_RESYNC)
		return; /* local only: what a subscriber asks of its own hub */
	snprintf(msg, sizeof(msg), "%c:%s:%lld", letter, project_id, (long long)seq);
	const char *argv[] = {"PUBLISH", BUS_CHANNEL, msg};
	redisReply *r = redis_command(b->redis, 3, argv, NULL);
	if (r)
		freeReplyObject(r); /* a lost message is caught up by the hub's sweep */
}

int bus_parse(const char *m, size_t len, char id[UUID_STR_LEN], int64_t *seq, enum event_note *note)
{
	/* <letter>:<36-character id>:<seq>, the seq 1 to 18 digits (no sign, no space). */
	if (len < 2 + 36 + 2 || len > 2 + 36 + 1 + 18 || m[1] != ':' || m[38] != ':')
		return -1;
	switch (m[0]) {
	case 'e':
		*note = EVENT_NOTE_APPENDED;
		break;
	case 'd':
		*note = EVENT_NOTE_PROJECT_DELETED;
		break;
	case 'u':
		*note = EVENT_NOTE_USER_REVOKED;
		break;
	default:
		return -1;
	}
	char raw[UUID_STR_LEN];
	memcpy(raw, m + 2, 36);
	raw[36] = '\0';
	if (!uuid_normalize(raw, id))
		return -1;
	int64_t v = 0;
	for (size_t i = 39; i < len; i++) {
		if (m[i] < '0' || m[i] > '9')
			return -1;
		v = v * 10 + (m[i] - '0');
	}
	*seq = v;
	return 0;
}

static void handle_message(struct bus *b, redisReply *r)
{
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
	    r->element[0]->type != REDIS_REPLY_STRING || strcmp(r->element[0]->str, "message") ||
	    r->element[2]->type != REDIS_REPLY_STRING)
		return;
	char id[UUID_STR_LEN];
	int64_t seq;
	enum event_note note;
	if (bus_parse(r->element[2]->str, r->element[2]->len, id, &seq, &note) < 0)
		return;
	hub_notify(b->hub, id, seq, note);
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
