/*
 * projects.h — projects, memberships and the per-project event log in the store. SQL only;
 * the permission rules live in services/projects.c. Functions take the caller's connection
 * so services can group them into one transaction; results live in the arena.
 */
#ifndef TANDEM_STORE_PROJECTS_H
#define TANDEM_STORE_PROJECTS_H

#include <stdbool.h>
#include <stdint.h>

#include "store/users.h"

struct arena;
struct db_conn;
struct error;

struct project {
	const char *id, *name, *description, *owner_id;
	const char *role; /* the caller's role, when read for a user */
	int64_t created_at, updated_at, version, event_seq;
};

struct member {
	struct user user;
	const char *role;
	int64_t joined_at;
};

struct event {
	int64_t seq;
	const char *project_id, *type, *actor_id, *data; /* data: JSON text */
	int64_t created_at;
};

/* The project's current event seq; -ERR_NOT_FOUND when it does not exist. */
int store_project_seq(struct db_conn *c, struct arena *a, const char *id, int64_t *seq,
		      struct error *err);
/*
 * Lock the project's row for the rest of the transaction (PostgreSQL: SELECT ... FOR
 * UPDATE; SQLite's BEGIN IMMEDIATE already holds the database's write lock). Every write
 * that touches a project, its members or its tasks takes it first, so such writes run one
 * after another per project and always lock in the same order.
 */
int store_project_lock(struct db_conn *c, const char *id, struct error *err);
int store_project_insert(struct db_conn *c, const struct project *p, struct error *err);
/* The project as `user_id` sees it (with role); -ERR_NOT_FOUND when absent or not a member. */
int store_project_get_for(struct db_conn *c, struct arena *a, const char *id, const char *user_id,
			  struct project *out, struct error *err);
/*
 * The caller's projects, newest first, after `after_id` (keyset; NULL for the first page),
 * filtered by a case-insensitive substring of the name when q is set.
 */
int store_project_list_for(struct db_conn *c, struct arena *a, const char *user_id, const char *q,
			   const char *after_id, int limit, struct project **out, int *count,
			   struct error *err);
/*
 * Write name and description if the version matches (expected_version 0: any). Sets
 * *updated false when the row's version differs. Bumps version and updated_at.
 */
int store_project_update(struct db_conn *c, const struct project *p, int64_t expected_version,
			 bool *updated, struct error *err);
int store_project_set_owner(struct db_conn *c, const char *id, const char *owner_id, int64_t now,
			    struct error *err);
int store_project_delete(struct db_conn *c, const char *id, struct error *err);

/* The role of user_id in project_id, or NULL when not a member (the project may not exist). */
int store_member_role(struct db_conn *c, struct arena *a, const char *project_id,
		      const char *user_id, const char **role, struct error *err);
/* Insert; -ERR_CONFLICT when already a member. */
int store_member_insert(struct db_conn *c, const char *project_id, const char *user_id,
			const char *role, int64_t joined_at, struct error *err);
int store_member_set_role(struct db_conn *c, const char *project_id, const char *user_id,
			  const char *role, struct error *err);
int store_member_delete(struct db_conn *c, const char *project_id, const char *user_id,
			struct error *err);
int store_member_get(struct db_conn *c, struct arena *a, const char *project_id,
		     const char *user_id, struct member *out, struct error *err);
/* Members ordered by user id, after `after_user` (NULL for the first page). */
int store_member_list(struct db_conn *c, struct arena *a, const char *project_id,
		      const char *after_user, int limit, struct member **out, int *count,
		      struct error *err);

/*
 * Append an event: increments the project's counter (the row lock orders concurrent
 * writers, so seqs are gap-free in commit order) and inserts the event, in the caller's
 * transaction. *seq receives the number.
 */
int store_event_append(struct db_conn *c, const char *project_id, const char *type,
		       const char *actor_id, const char *data, int64_t now, int64_t *seq,
		       struct error *err);
/* Events with seq > after, ascending, at most limit. */
int store_event_list(struct db_conn *c, struct arena *a, const char *project_id, int64_t after,
		     int limit, struct event **out, int *count, struct error *err);

#endif
