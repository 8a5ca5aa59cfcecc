/* projects.c — see projects.h. */
#include "services/projects.h"
#include "core/arena.h"
#include "core/error.h"
#include "core/timeutil.h"
#include "core/uuid.h"
#include "services/access.h"
#include "services/events.h"
#include "services/members.h"
#include "services/precondition.h"
#include "services/tx.h"
#include "services/validate.h"
#include "store/store.h"

#include <string.h>

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

json_t *project_json(const struct project *p)
{
	char created[TIME_RFC3339_LEN], updated[TIME_RFC3339_LEN];
	time_format_ms(p->created_at, created);
	time_format_ms(p->updated_at, updated);
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "id", p->id, "name", p->name,
			      "description", p->description, "owner_id", p->owner_id, "created_at",
			      created, "updated_at", updated, "version", (json_int_t)p->version);
	if (p->role)
		json_object_set_new(o, "role", json_string(p->role));
	return o;
}

int project_create(struct store *st, struct arena *a, const struct user *me, json_t *body,
		   struct project *out, struct error *err)
{
	char id[UUID_STR_LEN];
	int rc;
	if ((rc = validate_object(body, project_fields, NPROJECT_FIELDS, err)) < 0)
		return rc;
	struct db_conn *c = store_conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	uuid_v7(id);
	int64_t now = time_now_ms();
	const char *description = body_string(body, "description");
	*out = (struct project){
	    .id = arena_strdup(a, id),
	    .name = body_string(body, "name"),
	    .description = description ? description : "",
	    .owner_id = me->id,
	    .role = "owner",
	    .created_at = now,
	    .updated_at = now,
	    .version = 1,
	};
	struct member owner = {.user = *me, .role = "owner", .joined_at = now};
	if ((rc = db_begin(c, true, err)) < 0)
		return rc;
	if ((rc = store_project_insert(c, out, err)) < 0 ||
	    (rc = store_member_insert(c, out->id, me->id, "owner", now, err)) < 0)
		goto out;
	rc = events_append(c, a, out->id, "member.added", me->id,
			   arena_json(a, member_json(&owner)), err);
out:
	return tx_finish(c, rc, err);
}

int project_get(struct store *st, struct arena *a, const struct user *me, const char *id,
		struct project *out, struct error *err)
{
	struct db_conn *c = store_conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	if (!uuid_valid(id))
		return error_set(err, ERR_NOT_FOUND, "no such project");
	return store_project_get_for(c, a, id, me->id, out, err);
}

/* Lists build their page in the arena: see the ownership rule in services/paging.h. */
int project_list(struct store *st, struct arena *a, const struct user *me, const char *q,
		 const char *limit, const char *cursor, struct page *out, struct error *err)
{
	struct paging pg;
	struct project *items;
	int count, rc;

	if ((rc = paging_limit(limit, &pg.limit, err)) < 0)
		return rc;
	if (q && utf8_length(q) > 100) {
		error_field(err, "q", "too_long", "at most 100 characters");
		return -ERR_VALIDATION_FAILED;
	}
	pg.scope = arena_printf(a, "projects:%s", me->id);
	/* The search matches names case-insensitively: ?q=Road and ?q=road are one query. */
	pg.query = q && *q ? arena_printf(a, "q=%s", arena_strdup_lower(a, q)) : "";
	if ((rc = paging_cursor(&pg, a, cursor, 1, err)) < 0)
		return rc;
	const char *after = pg.after ? json_string_value(json_array_get(pg.after, 0)) : NULL;
	if (pg.after && (!after || !uuid_valid(after)))
		return error_set(err, ERR_BAD_REQUEST, "cursor is not valid");
	struct db_conn *c = store_conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	if ((rc = store_project_list_for(c, a, me->id, q, after, paging_fetch(&pg), &items, &count,
					 err)) < 0)
		return rc;
	out->data = arena_json(a, json_array());
	for (int i = 0; i < paging_shown(&pg, count); i++)
		json_array_append_new(out->data, project_json(&items[i]));
	out->next_cursor = paging_more(&pg, count)
			       ? paging_next(&pg, a, json_pack("[s]", items[pg.limit - 1].id))
			       : NULL;
	return 0;
}

int project_update(struct store *st, struct arena *a, const struct user *me, const char *id,
		   json_t *body, struct precondition *pre, struct project *out, struct error *err)
{
	struct field_spec specs[NPROJECT_FIELDS];
	bool updated;
	int rc;

	memcpy(specs, project_fields, sizeof(specs));
	specs[0].required = false; /* merge-patch: absent means unchanged */
	if ((rc = validate_object(body, specs, NPROJECT_FIELDS, err)) < 0)
		return rc;
	struct db_conn *c = store_conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	if ((rc = access_begin(c, a, id, me->id, ACCESS_EDIT_PROJECT, NULL, err)) < 0)
		return rc;
	if ((rc = store_project_get_for(c, a, id, me->id, out, err)) < 0)
		goto out;
	if (!precondition_met(pre, out->version)) {
		rc = precondition_fail(pre, "project", out->version, err);
		goto out;
	}
	const char *name = body_string(body, "name"), *description = out->description;
	if (json_object_get(body, "description"))
		description =
		    body_string(body, "description") ? body_string(body, "description") : "";
	if ((!name || !strcmp(name, out->name)) && !strcmp(description, out->description))
		goto out; /* nothing changes: no new version, no event */
	if (name)
		out->name = name;
	out->description = description;
	out->updated_at = time_now_ms();
	if ((rc = store_project_update(c, out, out->version, &updated, err)) < 0)
		goto out;
	if (!updated) { /* not expected under the project's lock: a clean 412 if it happens */
		struct project now;
		struct error ignored = {0};
		int64_t current =
		    store_project_get_for(c, a, id, me->id, &now, &ignored) < 0 ? 0 : now.version;
		error_release(&ignored);
		rc = precondition_fail(pre, "project", current, err);
		goto out;
	}
	out->version++;
	struct project shown = *out;
	shown.role = NULL; /* the event is for every member: no viewer-specific role */
	rc = events_append(c, a, id, "project.updated", me->id, arena_json(a, project_json(&shown)),
			   err);
out:
	return tx_finish(c, rc, err);
}

int project_delete(struct store *st, struct arena *a, const struct user *me, const char *id,
		   struct precondition *pre, struct error *err)
{
	struct project p;
	int rc;
	struct db_conn *c = store_conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	if ((rc = access_begin(c, a, id, me->id, ACCESS_DELETE_PROJECT, NULL, err)) < 0)
		return rc;
	if ((rc = store_project_get_for(c, a, id, me->id, &p, err)) < 0)
		goto out;
	if (!precondition_met(pre, p.version)) {
		rc = precondition_fail(pre, "project", p.version, err);
		goto out;
	}
	/* Tasks, memberships and events go with it (ON DELETE CASCADE). */
	events_project_deleted(id);
	rc = store_project_delete(c, id, err);
out:
	return tx_finish(c, rc, err);
}
