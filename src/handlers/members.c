/* members.c — /v1/projects/{id}/members: list, add, change role (or transfer), remove. */
#include "handlers/common.h"
#include "handlers/handlers.h"
#include "http/reply.h"
#include "http/request.h"
#include "http/server.h"
#include "services/members.h"

/* GET /v1/projects/{id}/members -> 200 page of {user, role, joined_at} | 404 */
int handle_members_list(struct request *req)
{
	struct page page;
	const char *id = param_uuid(req, "id");
	int rc;
	if (!id)
		return error_set(&req->err, ERR_NOT_FOUND, "no such project");
	if ((rc = member_list(req->app->store, &req->arena, req->user, id,
			      request_query(req, "limit"), request_query(req, "cursor"), &page,
			      &req->err)) < 0)
		return rc;
	reply_header(req, "Cache-Control", "no-store");
	return reply_page(req, &page);
}

/* GET /v1/projects/{id}/members/{user_id} -> 200 {user, role, joined_at} | 404 */
int handle_members_get(struct request *req)
{
	struct member m;
	const char *id = param_uuid(req, "id"), *uid = param_uuid(req, "user_id");
	int rc;
	if (!id)
		return error_set(&req->err, ERR_NOT_FOUND, "no such project");
	if ((rc = member_get(req->app->store, &req->arena, req->user, id, uid, &m, &req->err)) < 0)
		return rc;
	reply_header(req, "Cache-Control", "no-store");
	return reply_json(req, 200, member_json(&m));
}

/* POST /v1/projects/{id}/members {user_id|username|email, role?} -> 201 | 403 | 404 | 409 | 422 */
int handle_members_add(struct request *req)
{
	struct member m;
	const char *id = param_uuid(req, "id");
	json_t *body;
	int rc;
	if (!id)
		return error_set(&req->err, ERR_NOT_FOUND, "no such project");
	if ((rc = request_json(req, &body)) < 0 ||
	    (rc = member_add(req->app->store, &req->arena, req->user, id, body, &m, &req->err)) < 0)
		return rc;
	reply_header(req, "Location",
		     arena_printf(&req->arena, "/v1/projects/%s/members/%s", id, m.user.id));
	reply_header(req, "Cache-Control", "no-store");
	return reply_json(req, 201, member_json(&m));
}

/* PATCH /v1/projects/{id}/members/{user_id} {role} -> 200 | 403 | 404 | 409 | 422 */
int handle_members_patch(struct request *req)
{
	struct member m;
	const char *id = param_uuid(req, "id"), *uid = param_uuid(req, "user_id");
	json_t *body;
	int rc;
	if (!id)
		return error_set(&req->err, ERR_NOT_FOUND, "no such project");
	if ((rc = request_json(req, &body)) < 0 ||
	    (rc = member_update(req->app->store, &req->arena, req->user, id, uid, body, &m,
				&req->err)) < 0)
		return rc;
	reply_header(req, "Cache-Control", "no-store");
	return reply_json(req, 200, member_json(&m));
}

/* DELETE /v1/projects/{id}/members/{user_id} -> 204 | 403 | 404 | 409 (the owner) */
int handle_members_delete(struct request *req)
{
	const char *id = param_uuid(req, "id"), *uid = param_uuid(req, "user_id");
	int rc;
	if (!id)
		return error_set(&req->err, ERR_NOT_FOUND, "no such project");
	if ((rc = member_remove(req->app->store, &req->arena, req->user, id, uid, &req->err)) < 0)
		return rc;
	return reply_empty(req, 204);
}
