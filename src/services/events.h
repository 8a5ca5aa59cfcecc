/*
 * events.h — STAND-IN on the realtime branch for the events service the lead is writing on
 * main (same interface); replaced by main's file at the merge. Thread-safe.
 */
#ifndef TANDEM_SERVICES_EVENTS_H
#define TANDEM_SERVICES_EVENTS_H

#include <jansson.h>
#include <stdint.h>

#include "store/projects.h"

struct arena;
struct error;
struct store;

enum event_note { EVENT_NOTE_APPENDED, EVENT_NOTE_PROJECT_DELETED, EVENT_NOTE_RESYNC };

/* user_id may read project_id's events (access_project ACCESS_READ): *seq = its head.
 * -ERR_NOT_FOUND for a non-member or no such project. */
int events_head(struct store *st, struct arena *a, const char *user_id, const char *project_id,
		int64_t *seq, struct error *err);
/* Delivery read for subscribers already admitted: up to `limit` events after `after`, in seq
 * order. -ERR_NOT_FOUND when the project no longer exists. */
int events_after(struct store *st, struct arena *a, const char *project_id, int64_t after,
		 int limit, struct event **out, int *count, struct error *err);
json_t *event_json(const struct event *e); /* new reference */

#endif
