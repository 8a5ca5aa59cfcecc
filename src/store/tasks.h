/*
 * tasks.h — tasks in the store: CRUD, unassignment, and the filtered, sorted, keyset-
 * paginated listing. SQL only; validation and permissions live in services/tasks.c.
 */
#ifndef TANDEM_STORE_TASKS_H
#define TANDEM_STORE_TASKS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct arena;
struct db_conn;
struct error;

struct task {
	const char *id, *project_id, *title, *description, *status, *assignee_id, *created_by;
	int priority; /* rank: 0 low, 1 medium, 2 high, 3 urgent */
	bool has_due;
	int64_t due_date, created_at, updated_at, version;
	const char *role; /* the reader's role in the project (NULL: not a member) */
};

enum task_sort_key { TASK_SORT_CREATED, TASK_SORT_UPDATED, TASK_SORT_DUE, TASK_SORT_PRIORITY };

struct task_sort {
	enum task_sort_key key;
	bool desc;
};

#define TASK_MAX_SORT  4
#define TASK_MAX_WORDS 8

struct task_filter {
	const char *project_id; /* one project; NULL: every project of member_id */
	const char *member_id;	/* the caller: only projects they belong to */
	const char *statuses[3];
	int nstatuses;
	int priorities[4];
	int npriorities;
	const char *assignee_id; /* a user id */
	bool assignee_none;
	bool has_due_before, has_due_after, has_updated_since;
	int64_t due_before, due_after, updated_since;
	const char *words[TASK_MAX_WORDS]; /* lower-cased words of q */
	int nwords;
	struct task_sort sort[TASK_MAX_SORT];
	int nsort;
	json_t *after; /* cursor keys: one per sort key, then the id; NULL for page one */
	int limit;
};

int store_task_insert(struct db_conn *c, const struct task *t, struct error *err);
/* The task with the role of `user_id` in its project (NULL role: not a member). */
int store_task_get_for(struct db_conn *c, struct arena *a, const char *id, const char *user_id,
		       struct task *out, struct error *err);
/* Write every mutable field if version matches (0: any); *updated false when stale. */
int store_task_update(struct db_conn *c, const struct task *t, int64_t expected_version,
		      bool *updated, struct error *err);
int store_task_delete(struct db_conn *c, const char *id, int64_t expected_version, bool *deleted,
		      struct error *err);
/* Unassign every task of user_id in project_id; returns the changed tasks (after). */
int store_task_unassign(struct db_conn *c, struct arena *a, const char *project_id,
			const char *user_id, int64_t now, struct task **out, int *count,
			struct error *err);
/* Up to f->limit tasks matching f in its order. */
int store_task_list(struct db_conn *c, struct arena *a, const struct task_filter *f,
		    struct task **out, int *count, struct error *err);
/* The cursor keys of t for the sort of f (a new JSON array). */
json_t *store_task_cursor_keys(const struct task_filter *f, const struct task *t);

#endif
