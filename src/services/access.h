/*
 * access.h — the permission table of API.md, in one place.
 *
 * Every service operation on a project or its members, tasks or events names the action it
 * performs and calls access_project() (or access_check() when it already read the caller's
 * role with the resource) before it touches anything. A caller who is not a member gets
 * -ERR_NOT_FOUND, exactly as if the project did not exist; a member whose role does not allow
 * the action gets -ERR_FORBIDDEN. System admins are ordinary users here.
 */
#ifndef TANDEM_SERVICES_ACCESS_H
#define TANDEM_SERVICES_ACCESS_H

struct arena;
struct db_conn;
struct error;

enum access_action {
	ACCESS_READ,	       /* see project, members, tasks, events */
	ACCESS_WRITE_TASKS,    /* create / edit / delete tasks */
	ACCESS_EDIT_PROJECT,   /* name, description */
	ACCESS_MANAGE_MEMBERS, /* add / remove members, change roles */
	ACCESS_DELETE_PROJECT,
	ACCESS_LEAVE, /* remove oneself */
	ACCESS__COUNT
};

/* Decide for a role ("owner", "member", "viewer" or NULL for a non-member). */
int access_check(const char *role, enum access_action action, struct error *err);

/* Read the caller's role in project_id and decide. *role (may be NULL) receives it. */
int access_project(struct db_conn *c, struct arena *a, const char *project_id, const char *user_id,
		   enum access_action action, const char **role, struct error *err);

/*
 * Begin a write transaction on project_id: take the project's lock first, then decide with
 * the role read under it, so that concurrent changes to members and tasks see each other.
 * On failure the transaction is already rolled back.
 */
int access_begin(struct db_conn *c, struct arena *a, const char *project_id, const char *user_id,
		 enum access_action action, const char **role, struct error *err);

#endif
