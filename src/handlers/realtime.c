/*
 * realtime.c — the three real-time paths: the WebSocket upgrade (GET /v1/realtime), the
 * Server-Sent Events stream (GET /v1/projects/{id}/events/stream) and the long poll
 * (GET /v1/projects/{id}/events?wait=). All deliver the same event objects, read from the
 * per-project log by the hub.
 */
#include "core/base64url.h"
#include "core/timeutil.h"
#include "core/uuid.h"
#include "core/xalloc.h"
#include "handlers/common.h"
#include "handlers/handlers.h"
#include "http/reply.h"
#include "http/request.h"
#include "http/server.h"
#include "realtime/hub.h"
#include "realtime/websocket.h"
#include "services/auth.h"
#include "services/events.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LONG_POLL_MAX_S 30

struct upgrade_ctx {
	struct hub *hub;
	char user_id[UUID_STR_LEN];
};

static void upgraded(void *cls, int fd, const char *extra, size_t extra_len, void *handle)
{
	struct upgrade_ctx *u = cls;
	hub_adopt_websocket(u->hub, fd, extra, extra_len, handle,
			    u->user_id[0] ? u->user_id : NULL);
	free(u);
}

static bool header_has_token(const char *h, const char *token)
{
	size_t n = strlen(token);
	for (const char *p = h; p && *p;) {
		while (*p == ' ' || *p == ',')
			p++;
		if (!strncasecmp(p, token, n) && (p[n] == '\0' || p[n] == ',' || p[n] == ' '))
			return true;
		p = strchr(p, ',');
	}
	return false;
}

/* GET /v1/realtime (Upgrade: websocket) -> 101 | 400 | 401 (bad bearer token) */
int handle_realtime(struct request *req)
{
	const char *upgrade = request_header(req, "Upgrade");
	const char *connection = request_header(req, "Connection");
	const char *version = request_header(req, "Sec-WebSocket-Version");
	const char *key = request_header(req, "Sec-WebSocket-Key");
	size_t keylen;

	if (!upgrade || strcasecmp(upgrade, "websocket") || !connection ||
	    !header_has_token(connection, "upgrade"))
		return error_set(&req->err, ERR_BAD_REQUEST,
				 "this endpoint speaks WebSocket only (Upgrade: websocket)");
	if (!version || strcmp(version, "13")) {
		reply_header(req, "Sec-WebSocket-Version", "13");
		return error_set(&req->err, ERR_BAD_REQUEST, "Sec-WebSocket-Version must be 13");
	}
	if (!key || (keylen = strlen(key)) != 24 || key[22] != '=' || key[23] != '=')
		return error_set(&req->err, ERR_BAD_REQUEST,
				 "Sec-WebSocket-Key must be 16 base64-encoded bytes");
	if (hub_draining(req->app->hub))
		return error_set(&req->err, ERR_UNAVAILABLE, "shutting down");

	struct upgrade_ctx *u = xcalloc(1, sizeof(*u));
	u->hub = req->app->hub;
	/* A bearer header is checked now (401 before the upgrade); without one the client
	 * authenticates with its first message. Tokens in the URL are never read. */
	if (request_header(req, "Authorization")) {
		int rc = handlers_authenticate(req);
		if (rc < 0) {
			free(u);
			return rc;
		}
		memcpy(u->user_id, req->user->id, UUID_STR_LEN);
	}
	char *accept = arena_alloc(&req->arena, WS_ACCEPT_KEY_SIZE); /* the reply keeps it */
	ws_accept_key(key, accept);
	reply_header(req, "Upgrade", "websocket");
	reply_header(req, "Connection", "Upgrade");
	reply_header(req, "Sec-WebSocket-Accept", accept);
	return reply_upgrade(req, upgraded, u);
}

/* GET /v1/projects/{id}/events/stream (Last-Event-ID) -> 200 text/event-stream | 404 */
int handle_events_stream(struct request *req)
{
	const char *id = param_uuid(req, "id");
	const char *last = request_header(req, "Last-Event-ID");
	int64_t seq, after;
	int rc;
	if (!id)
		return error_set(&req->err, ERR_NOT_FOUND, "no such project");
	if ((rc = events_head(req->app->store, &req->arena, req->user->id, id, &seq, &req->err)) <
	    0)
		return rc;
	after = seq; /* without Last-Event-ID: only what happens from now on */
	if (last && !events_seq_parse(last, &after))
		return error_set(&req->err, ERR_BAD_REQUEST, "Last-Event-ID must be an event seq");
	if (hub_draining(req->app->hub))
		return error_set(&req->err, ERR_UNAVAILABLE, "shutting down");
	struct hub_stream *st = hub_stream_open(req->app->hub, id, req->user->id, after);
	reply_header(req, "Cache-Control", "no-store");
	reply_header(req, "X-Accel-Buffering", "no");
	return reply_stream(req, "text/event-stream; charset=utf-8", hub_stream_read,
			    hub_stream_release, st);
}

struct poll_state {
	int64_t deadline_ms;
};

/* GET /v1/projects/{id}/events?after=&limit=&wait= -> 200 {data, next_after, has_more} */
int handle_events_list(struct request *req)
{
	const char *id = param_uuid(req, "id");
	const char *wait_s = request_query(req, "wait");
	json_t *out;
	int rc;
	if (!id)
		return error_set(&req->err, ERR_NOT_FOUND, "no such project");
	struct poll_state *ps = req->state;
	if (!ps) {
		long wait = 0;
		if (wait_s) {
			char *end;
			wait = strtol(wait_s, &end, 10);
			if (!*wait_s || *end || wait < 0 || wait > LONG_POLL_MAX_S) {
				error_field(&req->err, "wait", "out_of_range",
					    "must be a whole number of seconds from 0 to %d",
					    LONG_POLL_MAX_S);
				return -ERR_VALIDATION_FAILED;
			}
		}
		ps = arena_alloc(&req->arena, sizeof(*ps));
		ps->deadline_ms = time_now_ms() + wait * 1000;
		req->state = ps;
	}
	if ((rc = events_feed(req->app->store, &req->arena, req->user, id,
			      request_query(req, "after"), request_query(req, "limit"), &out,
			      &req->err)) < 0)
		return rc;
	if (json_array_size(json_object_get(out, "data")) == 0 && time_now_ms() < ps->deadline_ms) {
		json_int_t after = json_integer_value(json_object_get(out, "next_after"));
		if (hub_park(req->app->hub, req, id, (int64_t)after, ps->deadline_ms))
			return 0; /* parked: called again on news, at the deadline or at shutdown */
	}
	return reply_json(req, 200, json_incref(out)); /* out is the arena's */
}
