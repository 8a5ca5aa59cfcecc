/*
 * projects.h — projects, membership and the activity feed: the rules of API.md "Projects and
 * membership" and "Activity events". Every change writes its event in the same transaction.
 * No HTTP, no SQL. Thread-safe (state lives in the store and the caller's arena).
 */
#ifndef TANDEM_SERVICES_PROJECTS_H
#define TANDEM_SERVICES_PROJECTS_H

#include <jansson.h>
#include <stdint.h>

#include "store/projects.h"

struct arena;
struct error;
struct store;
struct user;

/* A page of a list: the items and the cursor of the next page (NULL at the end). */
struct page {
	json_t *data; /* borrowed from the arena */
	const char *next_cursor;
};

int project_create(struct store *st, struct arena *a, const struct user *me, json_t *body,
		   struct project *out, struct error *err);
int project_get(struct store *st, struct arena *a, const struct user *me, const char *id,
		struct project *out, struct error *err);
int project_list(struct store *st, struct arena *a, const struct user *me, const char *q,
		 const char *limit, const char *cursor, struct page *out, struct error *err);
/* expected_version 0: unconditional; otherwise -ERR_PRECONDITION_FAILED when stale. */
int project_update(struct store *st, struct arena *a, const struct user *me, const char *id,
		   json_t *body, int64_t expected_version, struct project *out, struct error *err);
int project_delete(struct store *st, struct arena *a, const struct user *me, const char *id,
		   int64_t expected_version, struct error *err);

int member_list(struct store *st, struct arena *a, const struct user *me, const char *project_id,
		const char *limit, const char *cursor, struct page *out, struct error *err);
int member_get(struct store *st, struct arena *a, const struct user *me, const char *project_id,
	       const char *user_id, struct member *out, struct error *err);
int member_add(struct store *st, struct arena *a, const struct user *me, const char *project_id,
	       json_t *body, struct member *out, struct error *err);
int member_update(struct store *st, struct arena *a, const struct user *me, const char *project_id,
		  const char *user_id, json_t *body, struct member *out, struct error *err);
int member_remove(struct store *st, struct arena *a, const struct user *me, const char *project_id,
		  const char *user_id, struct error *err);

/* GET /v1/projects/{id}/events?after=&limit= -> {data, next_after, has_more} (new ref). */
int event_feed(struct store *st, struct arena *a, const struct user *me, const char *project_id,
	       const char *after, const char *limit, json_t **out, struct error *err);

/* The caller may read project_id's events; *seq is its current (highest) seq. */
int event_head(struct store *st, struct arena *a, const struct user *me, const char *project_id,
	       int64_t *seq, struct error *err);

/*
 * Append an event of `type` to project_id in the caller's transaction; `data` is borrowed.
 * Used by the task service too.
 */
int event_write(struct db_conn *c, struct arena *a, const char *project_id, const char *type,
		const char *actor_id, json_t *data, struct error *err);

/* Parse ?limit= (1–200, default 50); -ERR_VALIDATION_FAILED naming "limit". */
int parse_limit(const char *s, int *out, struct error *err);

json_t *project_json(const struct project *p);
json_t *member_json(const struct member *m);
json_t *event_json(const struct event *e);
/* RFC 3339 text of ms since epoch, as a new JSON string. */
json_t *json_time(int64_t ms);

#endif
