/* users.c — /v1/users: the caller's own account and the user directory. */
#include "handlers/handlers.h"
#include "http/reply.h"
#include "http/request.h"
#include "http/server.h"
#include "services/accounts.h"

#include <stdlib.h>
#include <string.h>

#define USERS_SEARCH_MAX 20

/* GET /v1/users/me -> 200 user */
int handle_users_me_get(struct request *req)
{
	reply_header(req, "Cache-Control", "no-store");
	return reply_json(req, 200, user_json(req->user, true));
}

/* PATCH /v1/users/me {username?, display_name?, email?} -> 200 user | 409 | 422 */
int handle_users_me_patch(struct request *req)
{
	struct user u;
	json_t *body;
	int rc;
	reply_header(req, "Cache-Control", "no-store");
	if ((rc = request_json(req, &body)) < 0 ||
	    (rc = auth_update_profile(req->app->store, &req->arena, req->user, body, &u,
				      &req->err)) < 0)
		return rc;
	return reply_json(req, 200, user_json(&u, true));
}

/* PUT /v1/users/me/password {current_password, new_password} -> 204 | 422 */
int handle_users_me_password(struct request *req)
{
	json_t *body;
	int rc;
	reply_header(req, "Cache-Control", "no-store");
	if ((rc = request_json(req, &body)) < 0 ||
	    (rc = auth_change_password(req->app->auth, req->app->store, &req->arena, req->user,
				       body, &req->err)) < 0)
		return rc;
	return reply_empty(req, 204);
}

/* GET /v1/users?q= (>= 2 characters) -> 200 {data: [public users], ...} at most 20 | 422 */
int handle_users_search(struct request *req)
{
	struct user *users;
	int count, rc;
	reply_header(req, "Cache-Control", "no-store");
	if ((rc = auth_search_users(req->app->store, &req->arena, request_query(req, "q"),
				    USERS_SEARCH_MAX, &users, &count, &req->err)) < 0)
		return rc;
	json_t *data = json_array();
	for (int i = 0; i < count; i++)
		json_array_append_new(
		    data, user_json(&users[i],
				    req->user->is_admin || !strcmp(users[i].id, req->user->id)));
	return reply_json(req, 200,
			  json_pack("{s:o, s:n, s:b}", "data", data, "next_cursor", "has_more", 0));
}
