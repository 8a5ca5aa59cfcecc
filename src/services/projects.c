/* projects.c — see projects.h. */
#include "services/projects.h"
#include "core/arena.h"
#include "core/cursor.h"
#include "core/error.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "core/uuid.h"
#include "services/access.h"
#include "services/notify.h"
#include "services/auth.h"
#include "services/tasks.h"
#include "services/validate.h"
#include "store/store.h"
#include "store/tasks.h"

#include <stdlib.h>
#include <string.h>

#define PAGE_DEFAULT 50
#define PAGE_MAX     200

/* ---- shared helpers ---- */

json_t *json_time(int64_t ms)
{
	char buf[TIME_RFC3339_LEN];
	time_format_ms(ms, buf);
	return json_string(buf);
}

int parse_limit(const char *s, int *out, struct error *err)
{
	if (!s) {
		*out = PAGE_DEFAULT;
		return 0;
	}
	char *end;
	long v = strtol(s, &end, 10);
	if (!*s || *end || v < 1 || v > PAGE_MAX) {
		error_field(err, "limit", "out_of_range", "must be a whole number from 1 to %d",
			    PAGE_MAX);
		return -ERR_VALIDATION_FAILED;
	}
	*out = (int)v;
	return 0;
}

json_t *project_json(const struct project *p)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:I}", "id", p->id, "name", p->name,
			      "description", p->description, "owner_id", p->owner_id, "created_at",
			      json_time(p->created_at), "updated_at", json_time(p->updated_at),
			      "version", (json_int_t)p->version);
	if (p->role)
		json_object_set_new(o, "role", json_string(p->role));
	return o;
}

json_t *member_json(const struct member *m)
{
	return json_pack("{s:o, s:s, s:o}", "user", user_json(&m->user, false), "role", m->role,
			 "joined_at", json_time(m->joined_at));
}

json_t *event_json(const struct event *e)
{
	json_t *data = json_loads(e->data, 0, NULL);
	return json_pack("{s:I, s:s, s:s, s:s?, s:o, s:o}", "seq", (json_int_t)e->seq, "type",
			 e->type, "project_id", e->project_id, "actor_id", e->actor_id,
			 "created_at", json_time(e->created_at), "data", data ? data : json_null());
}

int event_write(struct db_conn *c, struct arena *a, const char *project_id, const char *type,
		const char *actor_id, json_t *data, struct error *err)
{
	int64_t seq;
	char *text = json_dumps(data, JSON_COMPACT);
	const char *copy = arena_strdup(a, text);
	free(text);
	int rc = store_event_append(c, project_id, type, actor_id, copy, time_now_ms(), &seq, err);
	if (rc == 0)
		notify_pending(project_id, seq, NOTIFY_EVENT);
	return rc;
}

static struct db_conn *conn(struct store *st, struct error *err)
{
	return store_conn(st, err);
}

/* ---- projects ---- */

static const struct field_spec project_fields[] = {
    {"name", FIELD_STRING, true, false, 1, 100, NULL},
    {"description", FIELD_STRING, false, true, 0, 5000, NULL},
    {"id", FIELD_READ_ONLY, false, false, 0, 0, NULL},
    {"owner_id", FIELD_READ_ONLY, false, false, 0, 0, NULL},
    {"role", FIELD_READ_ONLY, false, false, 0, 0, NULL},
    {"created_at", FIELD_READ_ONLY, false, false, 0, 0, NULL},
    {"updated_at", FIELD_READ_ONLY, false, false, 0, 0, NULL},
    {"version", FIELD_READ_ONLY, false, false, 0, 0, NULL},
};
#define NPROJECT_FIELDS (sizeof(project_fields) / sizeof(project_fields[0]))

static const char *str(json_t *body, const char *key)
{
	return json_string_value(json_object_get(body, key));
}

int project_create(struct store *st, struct arena *a, const struct user *me, json_t *body,
		   struct project *out, struct error *err)
{
	char id[UUID_STR_LEN];
	int rc;
	if ((rc = validate_object(body, project_fields, NPROJECT_FIELDS, err)) < 0)
		return rc;
	struct db_conn *c = conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	uuid_v7(id);
	int64_t now = time_now_ms();
	*out = (struct project){
	    .id = arena_strdup(a, id),
	    .name = str(body, "name"),
	    .description = str(body, "description") ? str(body, "description") : "",
	    .owner_id = me->id,
	    .role = "owner",
	    .created_at = now,
	    .updated_at = now,
	    .version = 1,
	};
	struct member owner = {.user = *me, .role = "owner", .joined_at = now};
	if ((rc = db_begin(c, true, err)) < 0)
		return rc;
	if ((rc = store_project_insert(c, out, err)) == 0 &&
	    (rc = store_member_insert(c, out->id, me->id, "owner", now, err)) == 0)
		rc = event_write(c, a, out->id, "member.added", me->id,
				 arena_json(a, member_json(&owner)), err);
	return tx_finish(c, rc, err);
}

int project_get(struct store *st, struct arena *a, const struct user *me, const char *id,
		struct project *out, struct error *err)
{
	struct db_conn *c = conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	if (!uuid_valid(id))
		return error_set(err, ERR_NOT_FOUND, "no such project");
	return store_project_get_for(c, a, id, me->id, out, err);
}

int project_list(struct store *st, struct arena *a, const struct user *me, const char *q,
		 const char *limit_s, const char *cursor, struct page *out, struct error *err)
{
	struct project *items;
	json_t *keys = NULL;
	int limit, count, rc;

	if ((rc = parse_limit(limit_s, &limit, err)) < 0)
		return rc;
	if (q && utf8_length(q) > 100) {
		error_field(err, "q", "too_long", "at most 100 characters");
		return -ERR_VALIDATION_FAILED;
	}
	if (cursor && (rc = cursor_decode(a, cursor, arena_printf(a, "projects:%s", me->id), 1,
					  &keys, err)) < 0)
		return rc;
	const char *after = keys ? json_string_value(json_array_get(keys, 0)) : NULL;
	if (keys && (!after || !uuid_valid(after)))
		return error_set(err, ERR_BAD_REQUEST, "cursor is not valid");
	struct db_conn *c = conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	if ((rc = store_project_list_for(c, a, me->id, q, after, limit + 1, &items, &count, err)) <
	    0)
		return rc;
	out->data = arena_json(a, json_array());
	for (int i = 0; i < count && i < limit; i++)
		json_array_append_new(out->data, project_json(&items[i]));
	out->next_cursor = NULL;
	if (count > limit) {
		json_t *k = json_pack("[s]", items[limit - 1].id);
		out->next_cursor = cursor_encode(a, arena_printf(a, "projects:%s", me->id), k);
		json_decref(k);
	}
	return 0;
}

int project_update(struct store *st, struct arena *a, const struct user *me, const char *id,
		   json_t *body, int64_t expected_version, struct project *out, struct error *err)
{
	struct field_spec specs[NPROJECT_FIELDS];
	bool updated;
	int rc;

	memcpy(specs, project_fields, sizeof(specs));
	specs[0].required = false; /* merge-patch: absent means unchanged */
	if ((rc = validate_object(body, specs, NPROJECT_FIELDS, err)) < 0)
		return rc;
	struct db_conn *c = conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	if ((rc = access_begin(c, a, id, me->id, ACCESS_EDIT_PROJECT, NULL, err)) < 0)
		return rc;
	if ((rc = store_project_get_for(c, a, id, me->id, out, err)) < 0)
		return tx_finish(c, rc, err);
	if (expected_version && out->version != expected_version)
		return tx_finish(c,
				 error_set(err, ERR_PRECONDITION_FAILED,
					   "the project has changed (version %lld)",
					   (long long)out->version),
				 err);
	if (str(body, "name"))
		out->name = str(body, "name");
	if (json_object_get(body, "description"))
		out->description = str(body, "description") ? str(body, "description") : "";
	out->updated_at = time_now_ms();
	if ((rc = store_project_update(c, out, out->version, &updated, err)) < 0)
		return tx_finish(c, rc, err);
	if (!updated)
		return tx_finish(
		    c, error_set(err, ERR_PRECONDITION_FAILED, "the project has changed"), err);
	out->version++;
	struct project shown = *out;
	shown.role = NULL; /* the event is for every member: no viewer-specific role */
	rc = event_write(c, a, id, "project.updated", me->id, arena_json(a, project_json(&shown)),
			 err);
	return tx_finish(c, rc, err);
}

int project_delete(struct store *st, struct arena *a, const struct user *me, const char *id,
		   int64_t expected_version, struct error *err)
{
	struct project p;
	int rc;
	struct db_conn *c = conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	if ((rc = access_begin(c, a, id, me->id, ACCESS_DELETE_PROJECT, NULL, err)) < 0)
		return rc;
	if ((rc = store_project_get_for(c, a, id, me->id, &p, err)) < 0)
		return tx_finish(c, rc, err);
	if (expected_version && p.version != expected_version)
		return tx_finish(
		    c, error_set(err, ERR_PRECONDITION_FAILED, "the project has changed"), err);
	/* Tasks, memberships and events go with it (ON DELETE CASCADE). */
	notify_pending(id, 0, NOTIFY_PROJECT_DELETED);
	return tx_finish(c, store_project_delete(c, id, err), err);
}

/* ---- members ---- */

int member_list(struct store *st, struct arena *a, const struct user *me, const char *project_id,
		const char *limit_s, const char *cursor, struct page *out, struct error *err)
{
	struct member *items;
	json_t *keys = NULL;
	int limit, count, rc;

	if ((rc = parse_limit(limit_s, &limit, err)) < 0)
		return rc;
	if (cursor && (rc = cursor_decode(a, cursor, arena_printf(a, "members:%s", project_id), 1,
					  &keys, err)) < 0)
		return rc;
	const char *after = keys ? json_string_value(json_array_get(keys, 0)) : NULL;
	if (keys && (!after || !uuid_valid(after)))
		return error_set(err, ERR_BAD_REQUEST, "cursor is not valid");
	struct db_conn *c = conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	if ((rc = access_project(c, a, project_id, me->id, ACCESS_READ, NULL, err)) < 0)
		return rc;
	if ((rc = store_member_list(c, a, project_id, after, limit + 1, &items, &count, err)) < 0)
		return rc;
	out->data = arena_json(a, json_array());
	for (int i = 0; i < count && i < limit; i++)
		json_array_append_new(out->data, member_json(&items[i]));
	out->next_cursor = NULL;
	if (count > limit) {
		json_t *k = json_pack("[s]", items[limit - 1].user.id);
		out->next_cursor = cursor_encode(a, arena_printf(a, "members:%s", project_id), k);
		json_decref(k);
	}
	return 0;
}

int member_get(struct store *st, struct arena *a, const struct user *me, const char *project_id,
	       const char *user_id, struct member *out, struct error *err)
{
	int rc;
	struct db_conn *c = conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	if ((rc = access_project(c, a, project_id, me->id, ACCESS_READ, NULL, err)) < 0)
		return rc;
	if (!uuid_valid(user_id))
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

int member_add(struct store *st, struct arena *a, const struct user *me, const char *project_id,
	       json_t *body, struct member *out, struct error *err)
{
	struct user target;
	int rc;

	if ((rc = validate_object(body, member_add_fields, 6, err)) < 0)
		return rc;
	int ids = !!json_object_get(body, "user_id") + !!json_object_get(body, "username") +
		  !!json_object_get(body, "email");
	if (ids != 1) {
		error_field(err, ids ? "user_id" : "user_id", "required",
			    "give exactly one of user_id, username or email");
		return -ERR_VALIDATION_FAILED;
	}
	struct db_conn *c = conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	if ((rc = access_begin(c, a, project_id, me->id, ACCESS_MANAGE_MEMBERS, NULL, err)) < 0)
		return rc;
	if (str(body, "user_id")) {
		char id[UUID_STR_LEN];
		uuid_normalize(str(body, "user_id"), id);
		rc = store_user_get(c, a, id, &target, err);
	} else {
		const char *login =
		    str(body, "username") ? str(body, "username") : str(body, "email");
		char *lower = arena_strdup(a, login);
		for (char *p = lower; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
		/* A username never contains '@', an e-mail always does: each finds only its own. */
		bool by_email = str(body, "email") != NULL;
		rc = (strchr(lower, '@') != NULL) == by_email
			 ? store_user_find_login(c, a, lower, &target, err)
			 : error_set(err, ERR_NOT_FOUND, "no such user");
	}
	if (rc == 0 && !target.is_active)
		rc = error_set(err, ERR_NOT_FOUND, "no such user");
	if (rc == -ERR_NOT_FOUND)
		return tx_finish(c, error_set(err, ERR_NOT_FOUND, "no such user"), err);
	if (rc < 0)
		return tx_finish(c, rc, err);
	*out = (struct member){.user = target,
			       .role = str(body, "role") ? str(body, "role") : "member",
			       .joined_at = time_now_ms()};
	rc = store_member_insert(c, project_id, target.id, out->role, out->joined_at, err);
	if (rc == -ERR_CONFLICT) {
		error_set(err, ERR_CONFLICT, "%s is already a member of this project",
			  target.username);
	} else if (rc == 0) {
		rc = event_write(c, a, project_id, "member.added", me->id,
				 arena_json(a, member_json(out)), err);
	}
	return tx_finish(c, rc, err);
}

static const struct field_spec member_update_fields[] = {
    {"role", FIELD_ENUM, true, false, 0, 0, any_roles},
    {"user", FIELD_READ_ONLY, false, false, 0, 0, NULL},
    {"joined_at", FIELD_READ_ONLY, false, false, 0, 0, NULL},
};

int member_update(struct store *st, struct arena *a, const struct user *me, const char *project_id,
		  const char *user_id, json_t *body, struct member *out, struct error *err)
{
	struct member old_owner;
	int rc;

	if ((rc = validate_object(body, member_update_fields, 3, err)) < 0)
		return rc;
	const char *role = str(body, "role");
	struct db_conn *c = conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	if ((rc = access_begin(c, a, project_id, me->id, ACCESS_MANAGE_MEMBERS, NULL, err)) < 0)
		return rc;
	if (!uuid_valid(user_id))
		return tx_finish(c, error_set(err, ERR_NOT_FOUND, "no such member"), err);
	if ((rc = store_member_get(c, a, project_id, user_id, out, err)) < 0)
		return tx_finish(c, rc, err);
	if (!strcmp(out->role, role))
		return tx_finish(c, 0, err); /* nothing changes, nothing to record */
	if (!strcmp(out->role, "owner"))
		return tx_finish(c,
				 error_set(err, ERR_CONFLICT,
					   "the owner's role changes only by transferring "
					   "ownership to another member"),
				 err);
	if (!strcmp(role, "owner")) {
		/* Transfer: exactly one owner at all times, the old one becomes a member. */
		if ((rc = store_member_get(c, a, project_id, me->id, &old_owner, err)) < 0 ||
		    (rc = store_member_set_role(c, project_id, me->id, "member", err)) < 0 ||
		    (rc = store_member_set_role(c, project_id, user_id, "owner", err)) < 0 ||
		    (rc = store_project_set_owner(c, project_id, user_id, time_now_ms(), err)) < 0)
			return tx_finish(c, rc, err);
		old_owner.role = "member";
		out->role = "owner";
		if ((rc = event_write(c, a, project_id, "member.updated", me->id,
				      arena_json(a, member_json(out)), err)) < 0 ||
		    (rc = event_write(c, a, project_id, "member.updated", me->id,
				      arena_json(a, member_json(&old_owner)), err)) < 0)
			return tx_finish(c, rc, err);
		return tx_finish(c, 0, err);
	}
	out->role = role;
	if ((rc = store_member_set_role(c, project_id, user_id, role, err)) == 0)
		rc = event_write(c, a, project_id, "member.updated", me->id,
				 arena_json(a, member_json(out)), err);
	return tx_finish(c, rc, err);
}

int member_remove(struct store *st, struct arena *a, const struct user *me, const char *project_id,
		  const char *user_id, struct error *err)
{
	struct member m;
	int rc;
	bool self = !strcmp(user_id, me->id);
	struct db_conn *c = conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	if ((rc = access_begin(c, a, project_id, me->id,
			       self ? ACCESS_LEAVE : ACCESS_MANAGE_MEMBERS, NULL, err)) < 0)
		return rc;
	if (!uuid_valid(user_id))
		return tx_finish(c, error_set(err, ERR_NOT_FOUND, "no such member"), err);
	if ((rc = store_member_get(c, a, project_id, user_id, &m, err)) < 0)
		return tx_finish(c, rc, err);
	if (!strcmp(m.role, "owner"))
		return tx_finish(c,
				 error_set(err, ERR_CONFLICT,
					   "the owner cannot be removed: transfer ownership first"),
				 err);
	/* Their tasks become unassigned in the same transaction, each change with its event. */
	if ((rc = task_unassign_member(c, a, project_id, user_id, me->id, err)) < 0 ||
	    (rc = store_member_delete(c, project_id, user_id, err)) < 0)
		return tx_finish(c, rc, err);
	rc = event_write(c, a, project_id, "member.removed", me->id, arena_json(a, member_json(&m)),
			 err);
	return tx_finish(c, rc, err);
}

/* ---- events ---- */

int event_head(struct store *st, struct arena *a, const struct user *me, const char *project_id,
	       int64_t *seq, struct error *err)
{
	int rc;
	struct db_conn *c = conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	if ((rc = access_project(c, a, project_id, me->id, ACCESS_READ, NULL, err)) < 0)
		return rc;
	return store_project_seq(c, a, project_id, seq, err);
}

int event_feed(struct store *st, struct arena *a, const struct user *me, const char *project_id,
	       const char *after_s, const char *limit_s, json_t **out, struct error *err)
{
	struct event *items;
	int limit, count, rc;
	long long after = 0;

	if ((rc = parse_limit(limit_s, &limit, err)) < 0)
		return rc;
	if (after_s) {
		char *end;
		after = strtoll(after_s, &end, 10);
		if (!*after_s || *end || after < 0) {
			error_field(err, "after", "invalid", "must be a whole number >= 0");
			return -ERR_VALIDATION_FAILED;
		}
	}
	struct db_conn *c = conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	if ((rc = access_project(c, a, project_id, me->id, ACCESS_READ, NULL, err)) < 0)
		return rc;
	if ((rc = store_event_list(c, a, project_id, after, limit + 1, &items, &count, err)) < 0)
		return rc;
	json_t *data = json_array();
	int64_t next = after;
	for (int i = 0; i < count && i < limit; i++) {
		json_array_append_new(data, event_json(&items[i]));
		next = items[i].seq;
	}
	*out = json_pack("{s:o, s:I, s:b}", "data", data, "next_after", (json_int_t)next,
			 "has_more", count > limit);
	return 0;
}
