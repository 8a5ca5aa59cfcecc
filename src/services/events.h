/*
 * events.h — the per-project activity feed of API.md "Activity events": appending an event
 * in the caller's transaction, reading the feed for REST, and the reads real-time delivery
 * needs. Tasks, projects, members and the real-time hub all go through here; nothing else
 * appends to or reads the event log. No HTTP, no SQL. Thread-safe.
 */
#ifndef TANDEM_SERVICES_EVENTS_H
#define TANDEM_SERVICES_EVENTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "services/notify.h" /* enum event_note */
#include "store/projects.h"  /* struct event */

struct arena;
struct db_conn;
struct error;
struct store;
struct user;

/*
 * Append an event of `type` to project_id in the caller's transaction (`data` is borrowed).
 * The project's counter assigns the seq under its row lock, so seqs are gap-free in commit
 * order; the note for subscribers goes out only if the transaction commits (tx_finish).
 */
int events_append(struct db_conn *c, struct arena *a, const char *project_id, const char *type,
		  const char *actor_id, json_t *data, struct error *err);

/*
 * Record, for after commit, that project_id is being deleted (its events go with it).
 */
void events_project_deleted(const char *project_id);

/*
 * An event seq as a client writes one (?after=, Last-Event-ID): decimal digits only, no sign
 * or space, within int64. False for anything else. Pure.
 */
bool events_seq_parse(const char *s, int64_t *out);

/* GET /v1/projects/{id}/events?after=&limit= -> {data, next_after, has_more} (new ref). */
int events_feed(struct store *st, struct arena *a, const struct user *me, const char *project_id,
		const char *after, const char *limit, json_t **out, struct error *err);

/*
 * user_id may read project_id's events (the REST rule: access_project, ACCESS_READ); *seq is
 * the project's current (highest) seq, read before the access check (so a removal of the user
 * committed after the check has a higher seq). -ERR_NOT_FOUND for a non-member or no such
 * project.
 */
int events_head(struct store *st, struct arena *a, const char *user_id, const char *project_id,
		int64_t *seq, struct error *err);

/*
 * Delivery read for subscribers that were admitted by events_head(): up to `limit` events
 * after `after`, in seq order (*out in the arena). -ERR_NOT_FOUND when the project no longer
 * exists.
 */
int events_after(struct store *st, struct arena *a, const char *project_id, int64_t after,
		 int limit, struct event **out, int *count, struct error *err);

/* The API's event object. New reference. */
json_t *event_json(const struct event *e);

#endif
