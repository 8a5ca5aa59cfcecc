/* access.c — see access.h. */
#include "services/access.h"
#include "core/error.h"
#include "core/uuid.h"
#include "store/db.h"
#include "store/projects.h"

#include <stdbool.h>
#include <string.h>

/* The table of API.md "Projects and membership": may owner / member / viewer do it? */
static const struct {
	bool owner, member, viewer;
	const char *what;
} rules[ACCESS__COUNT] = {
    [ACCESS_READ] = {true, true, true, "see this project"},
    [ACCESS_WRITE_TASKS] = {true, true, false, "change tasks in this project"},
    [ACCESS_EDIT_PROJECT] = {true, false, false, "edit this project"},
    [ACCESS_MANAGE_MEMBERS] = {true, false, false, "manage the members of this project"},
    [ACCESS_DELETE_PROJECT] = {true, false, false, "delete this project"},
    [ACCESS_LEAVE] = {false, true, true, "leave this project"},
};

int access_check(const char *role, enum access_action action, struct error *err)
{
	if (!role)
		return error_set(err, ERR_NOT_FOUND, "no such project");
	/* A role this table does not know (a bug or a newer schema) grants nothing. */
	bool ok = !strcmp(role, "owner")    ? rules[action].owner
		  : !strcmp(role, "member") ? rules[action].member
		  : !strcmp(role, "viewer") ? rules[action].viewer
					    : false;
	if (ok)
		return 0;
	if (action == ACCESS_LEAVE)
		return error_set(err, ERR_CONFLICT,
				 "the owner cannot leave the project: transfer ownership first");
	return error_set(err, ERR_FORBIDDEN, "a %s may not %s", role, rules[action].what);
}

int access_project(struct db_conn *c, struct arena *a, const char *project_id, const char *user_id,
		   enum access_action action, const char **role, struct error *err)
{
	const char *r = NULL;
	if (!uuid_valid(project_id))
		return error_set(err, ERR_NOT_FOUND, "no such project");
	int rc = store_member_role(c, a, project_id, user_id, &r, err);
	if (rc < 0)
		return rc;
	if (role)
		*role = r;
	return access_check(r, action, err);
}

int access_begin(struct db_conn *c, struct arena *a, const char *project_id, const char *user_id,
		 enum access_action action, const char **role, struct error *err)
{
	int rc;
	if (!uuid_valid(project_id))
		return error_set(err, ERR_NOT_FOUND, "no such project");
	if ((rc = db_begin(c, true, err)) < 0)
		return rc;
	if ((rc = store_project_lock(c, project_id, err)) < 0 ||
	    (rc = access_project(c, a, project_id, user_id, action, role, err)) < 0)
		db_rollback(c);
	return rc;
}
