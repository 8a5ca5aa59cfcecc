/*
 * tasks.h — the rules of API.md "Tasks": validation, assignment, merge-patch updates with
 * per-field last-write-wins (or If-Match), filters and sorts, and the task events written in
 * the same transaction as each change. No HTTP, no SQL.
 */
#ifndef TANDEM_SERVICES_TASKS_H
#define TANDEM_SERVICES_TASKS_H

#include <jansson.h>
#include <stdint.h>

#include "services/paging.h"
#include "store/tasks.h"

struct arena;
struct db_conn;
struct error;
struct jsonw;
struct precondition;
struct store;
struct user;

/* The raw query-string values of a list request (any may be NULL). */
struct task_query {
	const char *project_id; /* the path's project, or ?project_id= on /v1/tasks */
	const char *status, *priority, *assignee_id, *due_before, *due_after, *updated_since, *q,
	    *sort, *cursor, *limit;
};

int task_create(struct store *st, struct arena *a, const struct user *me, const char *project_id,
		json_t *body, struct task *out, struct error *err);
int task_get(struct store *st, struct arena *a, const struct user *me, const char *id,
	     struct task *out, struct error *err);
/*
 * pre NULL or any version: last write wins per field; otherwise 412 unless the task's version
 * is one `pre` names (pre->current then holds the version found, for the ETag).
 */
int task_update(struct store *st, struct arena *a, const struct user *me, const char *id,
		json_t *body, struct precondition *pre, struct task *out, struct error *err);
int task_delete(struct store *st, struct arena *a, const struct user *me, const char *id,
		struct precondition *pre, struct error *err);
/* A page of tasks, serialised: `data` is the JSON array of task objects (`len` bytes,
 * NUL-terminated, owned by the arena given to task_list); next_cursor NULL on the last page. */
struct task_page {
	const char *data;
	size_t len;
	const char *next_cursor;
};

/* `in_project`: listing one project (path) rather than across the caller's projects. */
int task_list(struct store *st, struct arena *a, const struct user *me, const struct task_query *q,
	      bool in_project, struct task_page *out, struct error *err);

/* Unassign user_id's tasks in project_id (member removed or demoted to viewer), with a
 * task.updated each, in the caller's transaction. */
int task_unassign_member(struct db_conn *c, struct arena *a, const char *project_id,
			 const char *user_id, const char *actor_id, struct error *err);

/* The API's task object. New reference; events (task.*) are built from it. */
json_t *task_json(const struct task *t);
/* The task object written straight to w (responses); task_json() is derived from it. */
void task_write_json(struct jsonw *w, const struct task *t);

#endif
