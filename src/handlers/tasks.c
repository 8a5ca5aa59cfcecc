/* tasks.c — /v1/projects/{id}/tasks, /v1/tasks and /v1/tasks/{id}. */
#include "core/jsonw.h"
#include "handlers/common.h"
#include "handlers/handlers.h"
#include "http/reply.h"
#include "http/request.h"
#include "http/server.h"
#include "services/precondition.h"
#include "services/tasks.h"

static int reply_task(struct request *req, int status, const struct task *t)
{
	struct jsonw w;
	size_t len;
	set_etag(req, t->version);
	jsonw_init(&w, 512);
	task_write_json(&w, t);
	char *body = jsonw_finish(&w, &len);
	return reply_json_text(req, status, body, len);
}

/* POST /v1/projects/{id}/tasks {title, description?, status?, priority?, assignee_id?,
 * due_date?} -> 201 task | 403 | 404 | 422 */
int handle_tasks_create(struct request *req)
{
	struct task t;
	const char *pid = param_uuid(req, "id");
	json_t *body;
	int rc;
	if (!pid)
		return error_set(&req->err, ERR_NOT_FOUND, "no such project");
	if ((rc = request_json(req, &body)) < 0 ||
	    (rc = task_create(req->app->store, &req->arena, req->user, pid, body, &t, &req->err)) <
		0)
		return rc;
	reply_header(req, "Location", arena_printf(&req->arena, "/v1/tasks/%s", t.id));
	return reply_task(req, 201, &t);
}

static int list(struct request *req, const char *project_id)
{
	struct task_page page;
	struct task_query q = {
	    .project_id = project_id ? project_id : request_query(req, "project_id"),
	    .status = request_query(req, "status"),
	    .priority = request_query(req, "priority"),
	    .assignee_id = request_query(req, "assignee_id"),
	    .due_before = request_query(req, "due_before"),
	    .due_after = request_query(req, "due_after"),
	    .updated_since = request_query(req, "updated_since"),
	    .q = request_query(req, "q"),
	    .sort = request_query(req, "sort"),
	    .cursor = request_query(req, "cursor"),
	    .limit = request_query(req, "limit"),
	};
	int rc = task_list(req->app->store, &req->arena, req->user, &q, project_id != NULL, &page,
			   &req->err);
	return rc < 0 ? rc : reply_page_text(req, page.data, page.len, page.next_cursor);
}

/* GET /v1/projects/{id}/tasks?filters -> 200 page | 404 | 422 */
int handle_tasks_list_project(struct request *req)
{
	const char *pid = param_uuid(req, "id");
	if (!pid)
		return error_set(&req->err, ERR_NOT_FOUND, "no such project");
	return list(req, pid);
}

/* GET /v1/tasks?filters&project_id= -> 200 page across the caller's projects | 422 */
int handle_tasks_list_all(struct request *req)
{
	return list(req, NULL);
}

/* GET /v1/tasks/{id} -> 200 task, ETag | 304 | 404 */
int handle_tasks_get(struct request *req)
{
	struct task t;
	const char *id = param_uuid(req, "id");
	int rc;
	if (!id)
		return error_set(&req->err, ERR_NOT_FOUND, "no such task");
	if ((rc = task_get(req->app->store, &req->arena, req->user, id, &t, &req->err)) < 0)
		return rc;
	if (if_none_match(req, t.version)) {
		set_etag(req, t.version);
		return reply_empty(req, 304);
	}
	return reply_task(req, 200, &t);
}

/* PATCH /v1/tasks/{id} {any writable field} -> 200 | 403 | 404 | 412 (current ETag) | 422 */
int handle_tasks_patch(struct request *req)
{
	struct task t;
	const char *id = param_uuid(req, "id");
	json_t *body;
	struct precondition pre;
	int rc;
	if (!id)
		return error_set(&req->err, ERR_NOT_FOUND, "no such task");
	if ((rc = request_json(req, &body)) < 0)
		return rc;
	if_match(req, &pre);
	rc = task_update(req->app->store, &req->arena, req->user, id, body, &pre, &t, &req->err);
	return rc < 0 ? if_match_refused(req, rc, &pre) : reply_task(req, 200, &t);
}

/* DELETE /v1/tasks/{id} -> 204 | 403 | 404 | 412 (current ETag) */
int handle_tasks_delete(struct request *req)
{
	const char *id = param_uuid(req, "id");
	struct precondition pre;
	int rc;
	if (!id)
		return error_set(&req->err, ERR_NOT_FOUND, "no such task");
	if_match(req, &pre);
	rc = task_delete(req->app->store, &req->arena, req->user, id, &pre, &req->err);
	return rc < 0 ? if_match_refused(req, rc, &pre) : reply_empty(req, 204);
}
