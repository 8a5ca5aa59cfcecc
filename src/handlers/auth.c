/*
 * auth.c — /v1/auth/...: register, login, refresh, logout; and the bearer-token check that
 * runs before every non-public route.
 */
#include "handlers/handlers.h"
#include "handlers/ratelimit.h"
#include "http/reply.h"
#include "http/request.h"
#include "http/router.h"
#include "http/server.h"
#include "services/ratelimit.h"
#include "services/sessions.h"
#include "services/tickets.h"

static int no_store(struct request *req)
{
	reply_header(req, "Cache-Control", "no-store");
	reply_header(req, "Pragma", "no-cache");
	return 0;
}

/*
 * The caller of a non-public route: the bearer token of the Authorization header, or on a
 * ROUTE_TICKET route without one, the stream ticket of ?ticket= (spent here; called again for
 * the same request, the access token it stood for is checked).
 */
int handlers_authenticate(struct request *req)
{
	struct user *u = arena_alloc(&req->arena, sizeof(*u));
	const char *authorization = request_header(req, "Authorization");
	const char *ticket =
	    req->route && (req->route->flags & ROUTE_TICKET) ? request_query(req, "ticket") : NULL;
	int rc;
	if (req->ticket_token) {
		rc = auth_token_user(req->app->auth, req->app->store, &req->arena,
				     req->ticket_token, u, &req->err);
	} else if (ticket && authorization) {
		return error_set(&req->err, ERR_BAD_REQUEST,
				 "send either an Authorization header or ?ticket=, not both");
	} else if (ticket) {
		const char *token;
		rc = ticket_redeem(req->app->auth, req->app->store, &req->arena, ticket, u, &token,
				   &req->err);
		if (rc == 0)
			req->ticket_token = token;
	} else {
		rc = auth_authenticate(req->app->auth, req->app->store, &req->arena, authorization,
				       u, &req->err);
	}
	if (rc == -ERR_UNAUTHENTICATED || rc == -ERR_TOKEN_EXPIRED || rc == -ERR_TICKET_INVALID)
		reply_header(req, "WWW-Authenticate",
			     rc == -ERR_TOKEN_EXPIRED || authorization
				 ? "Bearer realm=\"tandem\", error=\"invalid_token\""
				 : "Bearer realm=\"tandem\"");
	if (rc == 0)
		req->user = u;
	return rc;
}

/* POST /v1/auth/register {email, username, password, display_name?} -> 201 | 409 | 422 */
int handle_auth_register(struct request *req)
{
	struct session s = {0};
	json_t *body;
	int rc;
	no_store(req);
	if ((rc = request_json(req, &body)) < 0 ||
	    (rc = auth_register(req->app->auth, req->app->store, &req->arena, body, &s,
				&req->err)) < 0)
		return rc;
	reply_header(req, "Location", "/v1/users/me");
	return reply_json(req, 201, session_json(&s));
}

/*
 * POST /v1/auth/login {login, password, device_token?} -> 200 {..., device_token}
 * | 401 invalid_credentials | 422 | 429 (policy auth, login-account or login-device)
 */
int handle_auth_login(struct request *req)
{
	struct session s = {0};
	struct login_limit lim;
	struct rl_result *res = arena_alloc(&req->arena, sizeof(*res));
	json_t *body;
	int rc;
	no_store(req);
	if ((rc = request_json(req, &body)) < 0)
		return rc;
	handlers_login_limit(req, &lim, res);
	rc = auth_login(req->app->auth, req->app->store, &req->arena, body, &lim, &s, &req->err);
	handlers_login_limited(req, &lim);
	if (rc < 0)
		return rc;
	return reply_json(req, 200, session_json(&s));
}

/*
 * No body and no Content-Type (a client that sent only its bearer header) is an empty object,
 * so that the answer names the missing `refresh_token` (422, on refresh and logout alike) instead
 * of a Content-Type the client never meant to set. Anything else goes through request_json as on
 * every route: a body that is not JSON is 415, an empty body declared as JSON is 400.
 */
static int json_or_nothing(struct request *req, json_t **out)
{
	const char *ct = request_header(req, "Content-Type");
	if (req->body_len == 0 && (!ct || !*ct)) {
		*out = arena_json(&req->arena, json_object());
		return 0;
	}
	return request_json(req, out);
}

/* POST /v1/auth/refresh {refresh_token} -> 200 new pair | 401 | 422 */
int handle_auth_refresh(struct request *req)
{
	struct session s = {0};
	json_t *body;
	int rc;
	no_store(req);
	if ((rc = json_or_nothing(req, &body)) < 0 ||
	    (rc = auth_refresh(req->app->auth, req->app->store, &req->arena, body, &s, &req->err)) <
		0)
		return rc;
	return reply_json(req, 200, session_json(&s));
}

/* POST /v1/auth/logout {refresh_token} -> 204 | 415 | 422 (also with no body) */
int handle_auth_logout(struct request *req)
{
	json_t *body;
	int rc;
	no_store(req);
	if ((rc = json_or_nothing(req, &body)) < 0 ||
	    (rc = auth_logout(req->app->auth, req->app->store, &req->arena, body, &req->err)) < 0)
		return rc;
	return reply_empty(req, 204);
}
