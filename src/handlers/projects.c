/* projects.c — /v1/projects and /v1/projects/{id}: create, list, read, update, delete. */
#include "handlers/common.h"
#include "handlers/handlers.h"
#include "http/reply.h"
#include "http/request.h"
#include "http/server.h"
#include "services/precondition.h"
#include "services/projects.h"

static int reply_project(struct request *req, int status, const struct project *p)
{
	set_etag(req, p->version);
	return reply_json(req, status, project_json(p));
}

/* POST /v1/projects {name, description?} -> 201 project (caller is owner) | 422 */
int handle_projects_create(struct request *req)
{
	struct project p;
	json_t *body;
	int rc;
	if ((rc = request_json(req, &body)) < 0 ||
	    (rc = project_create(req->app->store, &req->arena, req->user, body, &p, &req->err)) < 0)
		return rc;
	reply_header(req, "Location", arena_printf(&req->arena, "/v1/projects/%s", p.id));
	return reply_project(req, 201, &p);
}

/* GET /v1/projects?q=&limit=&cursor= -> 200 page of the caller's projects with role */
int handle_projects_list(struct request *req)
{
	struct page page;
	int rc = project_list(req->app->store, &req->arena, req->user, request_query(req, "q"),
			      request_query(req, "limit"), request_query(req, "cursor"), &page,
			      &req->err);
	return rc < 0 ? rc : reply_page(req, &page);
}

/* GET /v1/projects/{id} -> 200 project, ETag | 304 | 404 */
int handle_projects_get(struct request *req)
{
	struct project p;
	const char *id = param_uuid(req, "id");
	int rc;
	if (!id)
		return error_set(&req->err, ERR_NOT_FOUND, "no such project");
	if ((rc = project_get(req->app->store, &req->arena, req->user, id, &p, &req->err)) < 0)
		return rc;
	if (if_none_match(req, p.version)) {
		set_etag(req, p.version);
		return reply_empty(req, 304);
	}
	return reply_project(req, 200, &p);
}

/* PATCH /v1/projects/{id} {name?, description?} -> 200 | 403 | 404 | 412 (current ETag) | 422 */
int handle_projects_patch(struct request *req)
{
	struct project p;
	const char *id = param_uuid(req, "id");
	json_t *body;
	struct precondition pre;
	int rc;
	if (!id)
		return error_set(&req->err, ERR_NOT_FOUND, "no such project");
	if ((rc = request_json(req, &body)) < 0)
		return rc;
	if_match(req, &pre);
	rc = project_update(req->app->store, &req->arena, req->user, id, body, &pre, &p, &req->err);
	return rc < 0 ? if_match_refused(req, rc, &pre) : reply_project(req, 200, &p);
}

/* DELETE /v1/projects/{id} -> 204 (tasks, members, events go too) | 403 | 404 | 412 (current ETag)
 */
int handle_projects_delete(struct request *req)
{
	const char *id = param_uuid(req, "id");
	struct precondition pre;
	int rc;
	if (!id)
		return error_set(&req->err, ERR_NOT_FOUND, "no such project");
	if_match(req, &pre);
	rc = project_delete(req->app->store, &req->arena, req->user, id, &pre, &req->err);
	return rc < 0 ? if_match_refused(req, rc, &pre) : reply_empty(req, 204);
}
