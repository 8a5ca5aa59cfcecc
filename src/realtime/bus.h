/*
 * bus.h — the event bus: carries "project P has news" from the instance that committed it to
 * every instance's hub. In-process always; through Redis pub/sub as well when a Redis URL is
 * configured, so that several instances behind a load balancer behave as one.
 *
 * Messages are hints, not data: the hub reads the events themselves from the database, so
 * a message lost while Redis is down costs latency (the hub's sweep finds the events), never
 * an event. A subscriber thread keeps the Redis subscription alive and, after every
 * reconnect, asks the hub to re-check all its projects.
 */
#ifndef TANDEM_REALTIME_BUS_H
#define TANDEM_REALTIME_BUS_H

#include <stddef.h>
#include <stdint.h>

#include "core/uuid.h"
#include "services/notify.h"

struct bus;
struct hub;
struct redis;

/* redis may be NULL (in-process only); it also makes the subscriber's connection. */
struct bus *bus_create(struct hub *hub, struct redis *redis);
/* The notify sink: publish after commit. */
void bus_publish(void *bus, const char *project_id, int64_t seq, enum event_note note);
void bus_free(struct bus *b);

/*
 * A bus message, "<letter>:<id>:<seq>": 'e' a project has events up to seq, 'd' a project was
 * deleted, 'u' a user's tokens were revoked (the id is the user's, seq 0). Strict: anything
 * else on the channel is refused (-1). id is normalised; pure and thread-safe.
 */
int bus_parse(const char *m, size_t len, char id[UUID_STR_LEN], int64_t *seq,
	      enum event_note *note);

#endif
