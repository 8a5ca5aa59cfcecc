/* members.c — see members.h. */
#include "services/members.h"
#include "core/arena.h"
#include "core/error.h"
#include "core/timeutil.h"
#include "core/uuid.h"
#include "services/access.h"
#include "services/accounts.h"
#include "services/events.h"
#include "services/tasks.h"
#include "services/tx.h"
#include "services/validate.h"
#include "store/store.h"

#include <string.h>

json_t *member_json(const struct member *m)
{
	char joined[TIME_RFC3339_LEN];
	time_format_ms(m->joined_at, joined);
	return json_pack("{s:o, s:s, s:s}", "user", user_json(&m->user, false), "role", m->role,
			 "joined_at", joined);
}

/* Lists build their page in the arena: see the ownership rule in services/paging.h. */
int member_list(struct store *st, struct arena *a, const struct user *me, const char *project_id,
		const char *limit, const char *cursor, struct page *out, struct error *err)
{
	struct paging pg;
	struct member *items;
	int count, rc;

	if ((rc = paging_begin(&pg, a, arena_printf(a, "members:%s", project_id), "", 1, limit,
			       cursor, err)) < 0)
		return rc;
	const char *after = pg.after ? json_string_value(json_array_get(pg.after, 0)) : NULL;
	if (pg.after && (!after || !uuid_valid(after)))
		return error_set(err, ERR_BAD_REQUEST, "cursor is not valid");
	struct db_conn *c = store_conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	if ((rc = access_project(c, a, project_id, me->id, ACCESS_READ, NULL, err)) < 0)
		return rc;
	if ((rc = store_member_list(c, a, project_id, after, paging_fetch(&pg), &items, &count,
				    err)) < 0)
		return rc;
	out->data = arena_json(a, json_array());
	for (int i = 0; i < paging_shown(&pg, count); i++)
		json_array_append_new(out->data, member_json(&items[i]));
	out->next_cursor = paging_more(&pg, count)
			       ? paging_next(&pg, a, json_pack("[s]", items[pg.limit - 1].user.id))
			       : NULL;
	return 0;
}

int member_get(struct store *st, struct arena *a, const struct user *me, const char *project_id,
	       const char *user_id, struct member *out, struct error *err)
{
	int rc;
	struct db_conn *c = store_conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	if ((rc = access_project(c, a, project_id, me->id, ACCESS_READ, NULL, err)) < 0)
		return rc;
	if (!user_id || !uuid_valid(user_id))
		return error_set(err, ERR_NOT_FOUND, "no such member");
	return store_member_get(c, a, project_id, user_id, out, err);
}

static const char *const add_roles[] = {"member", "viewer", NULL};
static const char *const any_roles[] = {"owner", "member", "viewer", NULL};

static const struct field_spec member_add_fields[] = {
    {"user_id", FIELD_UUID, false, false, 0, 0, NULL},
    {"username", FIELD_STRING, false, false, 1, 254, NULL},
    {"email", FIELD_STRING, false, false, 1, 254, NULL},
    {"role", FIELD_ENUM, false, false, 0, 0, add_roles},
    {"joined_at", FIELD_READ_ONLY, false, false, 0, 0, NULL},
    {"user", FIELD_READ_ONLY, false, false, 0, 0, NULL},
};
#define NMEMBER_ADD_FIELDS (sizeof(member_add_fields) / sizeof(member_add_fields[0]))

/* The active user a member_add body names (exactly one of user_id, username, email). */
static int find_target(struct db_conn *c, struct arena *a, json_t *body, struct user *out,
		       struct error *err)
{
	int rc;
	if (body_string(body, "user_id")) {
		char id[UUID_STR_LEN];
		uuid_normalize(body_string(body, "user_id"), id);
		rc = store_user_get(c, a, id, out, err);
	} else {
		bool by_email = body_string(body, "email") != NULL;
		const char *login = arena_strdup_lower(a, by_email ? body_string(body, "email")
								   : body_string(body, "username"));
		/* A username never contains '@', an e-mail always does: each finds only its own. */
		rc = (strchr(login, '@') != NULL) == by_email
			 ? store_user_find_login(c, a, login, out, err)
			 : -ERR_NOT_FOUND;
	}
	if (rc == 0 && !out->is_active)
		rc = -ERR_NOT_FOUND;
	if (rc == -ERR_NOT_FOUND)
		return error_set(err, ERR_NOT_FOUND, "no such user");
	return rc;
}

int member_add(struct store *st, struct arena *a, const struct user *me, const char *project_id,
	       json_t *body, struct member *out, struct error *err)
{
	struct user target;
	int rc;

	if ((rc = validate_object(body, member_add_fields, NMEMBER_ADD_FIELDS, err)) < 0)
		return rc;
	int ids = !!json_object_get(body, "user_id") + !!json_object_get(body, "username") +
		  !!json_object_get(body, "email");
	if (ids != 1) {
		error_field(err, "user_id", "required",
			    "give exactly one of user_id, username or email");
		return -ERR_VALIDATION_FAILED;
	}
	struct db_conn *c = store_conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	if ((rc = access_begin(c, a, project_id, me->id, ACCESS_MANAGE_MEMBERS, NULL, err)) < 0)
		return rc;
	if ((rc = find_target(c, a, body, &target, err)) < 0)
		goto out;
	const char *role = body_string(body, "role");
	*out = (struct member){
	    .user = target, .role = role ? role : "member", .joined_at = time_now_ms()};
	rc = store_member_insert(c, project_id, target.id, out->role, out->joined_at, err);
	if (rc == -ERR_CONFLICT)
		rc = error_set(err, ERR_CONFLICT, "%s is already a member of this project",
			       target.username);
	if (rc < 0)
		goto out;
	rc = events_append(c, a, project_id, "member.added", me->id,
			   arena_json(a, member_json(out)), err);
out:
	return tx_finish(c, rc, err);
}

static const struct field_spec member_update_fields[] = {
    {"role", FIELD_ENUM, true, false, 0, 0, any_roles},
    {"user", FIELD_READ_ONLY, false, false, 0, 0, NULL},
    {"joined_at", FIELD_READ_ONLY, false, false, 0, 0, NULL},
};
#define NMEMBER_UPDATE_FIELDS (sizeof(member_update_fields) / sizeof(member_update_fields[0]))

/* Transfer ownership from `me` (the owner) to `to`: exactly one owner at all times. */
static int transfer(struct db_conn *c, struct arena *a, const struct user *me,
		    const char *project_id, struct member *to, struct error *err)
{
	struct member old_owner;
	int rc;
	if ((rc = store_member_get(c, a, project_id, me->id, &old_owner, err)) < 0 ||
	    (rc = store_member_set_role(c, project_id, me->id, "member", err)) < 0 ||
	    (rc = store_member_set_role(c, project_id, to->user.id, "owner", err)) < 0 ||
	    (rc = store_project_set_owner(c, project_id, to->user.id, time_now_ms(), err)) < 0)
		return rc;
	old_owner.role = "member";
	to->role = "owner";
	if ((rc = events_append(c, a, project_id, "member.updated", me->id,
				arena_json(a, member_json(to)), err)) < 0)
		return rc;
	return events_append(c, a, project_id, "member.updated", me->id,
			     arena_json(a, member_json(&old_owner)), err);
}

int member_update(struct store *st, struct arena *a, const struct user *me, const char *project_id,
		  const char *user_id, json_t *body, struct member *out, struct error *err)
{
	int rc;

	if ((rc = validate_object(body, member_update_fields, NMEMBER_UPDATE_FIELDS, err)) < 0)
		return rc;
	const char *role = body_string(body, "role");
	struct db_conn *c = store_conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	if ((rc = access_begin(c, a, project_id, me->id, ACCESS_MANAGE_MEMBERS, NULL, err)) < 0)
		return rc;
	if (!user_id || !uuid_valid(user_id)) {
		rc = error_set(err, ERR_NOT_FOUND, "no such member");
		goto out;
	}
	if ((rc = store_member_get(c, a, project_id, user_id, out, err)) < 0)
		goto out;
	if (!strcmp(out->role, role))
		goto out; /* nothing changes, nothing to record */
	if (!strcmp(out->role, "owner")) {
		rc = error_set(err, ERR_CONFLICT,
			       "the owner's role changes only by transferring ownership to another "
			       "member");
		goto out;
	}
	if (!strcmp(role, "owner")) {
		rc = transfer(c, a, me, project_id, out, err);
		goto out;
	}
	out->role = role;
	/* A viewer cannot change tasks, so cannot keep any: unassigned as on removal, in the same
	 * transaction, each change with its event, before the member.updated event. */
	if (!strcmp(role, "viewer") &&
	    (rc = task_unassign_member(c, a, project_id, user_id, me->id, err)) < 0)
		goto out;
	if ((rc = store_member_set_role(c, project_id, user_id, role, err)) < 0)
		goto out;
	rc = events_append(c, a, project_id, "member.updated", me->id,
			   arena_json(a, member_json(out)), err);
out:
	return tx_finish(c, rc, err);
}

int member_remove(struct store *st, struct arena *a, const struct user *me, const char *project_id,
		  const char *user_id, struct error *err)
{
	struct member m;
	int rc;
	bool self = user_id && !strcmp(user_id, me->id);
	struct db_conn *c = store_conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	if ((rc = access_begin(c, a, project_id, me->id,
			       self ? ACCESS_LEAVE : ACCESS_MANAGE_MEMBERS, NULL, err)) < 0)
		return rc;
	if (!user_id || !uuid_valid(user_id)) {
		rc = error_set(err, ERR_NOT_FOUND, "no such member");
		goto out;
	}
	if ((rc = store_member_get(c, a, project_id, user_id, &m, err)) < 0)
		goto out;
	if (!strcmp(m.role, "owner")) {
		rc = error_set(err, ERR_CONFLICT,
			       "the owner cannot be removed: transfer ownership first");
		goto out;
	}
	/* Their tasks become unassigned in the same transaction, each change with its event. */
	if ((rc = task_unassign_member(c, a, project_id, user_id, me->id, err)) < 0 ||
	    (rc = store_member_delete(c, project_id, user_id, err)) < 0)
		goto out;
	rc = events_append(c, a, project_id, "member.removed", me->id,
			   arena_json(a, member_json(&m)), err);
out:
	return tx_finish(c, rc, err);
}
