/*
 * members.h — project membership: the rules of API.md "Projects and membership" for members
 * and roles (owner / member / viewer; exactly one owner; removal, and demotion to viewer,
 * unassign the member's tasks). Every change writes its event in the same transaction. No
 * HTTP, no SQL.
 */
#ifndef TANDEM_SERVICES_MEMBERS_H
#define TANDEM_SERVICES_MEMBERS_H

#include <jansson.h>

#include "services/paging.h"
#include "store/projects.h"

struct arena;
struct error;
struct store;
struct user;

int member_list(struct store *st, struct arena *a, const struct user *me, const char *project_id,
		const char *limit, const char *cursor, struct page *out, struct error *err);
/* user_id as given in the path: anything that is not a user id is simply no member (404). */
int member_get(struct store *st, struct arena *a, const struct user *me, const char *project_id,
	       const char *user_id, struct member *out, struct error *err);
int member_add(struct store *st, struct arena *a, const struct user *me, const char *project_id,
	       json_t *body, struct member *out, struct error *err);
int member_update(struct store *st, struct arena *a, const struct user *me, const char *project_id,
		  const char *user_id, json_t *body, struct member *out, struct error *err);
int member_remove(struct store *st, struct arena *a, const struct user *me, const char *project_id,
		  const char *user_id, struct error *err);

/* The API's member object {user, role, joined_at}. New reference. */
json_t *member_json(const struct member *m);

#endif
