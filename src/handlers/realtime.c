/*
 * realtime.c — the three real-time paths: the WebSocket upgrade (GET /v1/realtime), the
 * Server-Sent Events stream (GET /v1/projects/{id}/events/stream) and the long poll
 * (GET /v1/projects/{id}/events?wait=). All deliver the same event objects, read from the
 * per-project log by the hub. And the stream tickets (POST /v1/realtime/tickets) with which a
 * browser opens the first two without a token in the URL (services/tickets.h).
 */
#include "core/base64url.h"
#include "core/hlist.h"
#include "core/timeutil.h"
#include "core/uuid.h"
#include "core/xalloc.h"
#include "handlers/common.h"
#include "handlers/handlers.h"
#include "handlers/ratelimit.h"
#include "http/clientkey.h"
#include "http/reply.h"
#include "http/request.h"
#include "http/server.h"
#include "realtime/hub.h"
#include "realtime/websocket.h"
#include "services/auth.h"
#include "services/events.h"
#include "services/tickets.h"
#include "services/validate.h"
#include "services/token.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LONG_POLL_MAX_S 30

struct upgrade_ctx {
	struct hub *hub;
	char user_id[UUID_STR_LEN];
	char ip[64];
	/* the request's header or a ticket's token in its arena: hub_adopt_websocket copies it
	 * in time */
	const char *token;
	int64_t exp_ms, checked_us;
	bool ticket_refused;
};

static void upgraded(void *cls, int fd, const char *extra, size_t extra_len, void *handle)
{
	struct upgrade_ctx *u = cls;
	struct hub_who who = {u->user_id, u->token, u->exp_ms, u->checked_us, u->ticket_refused};
	hub_adopt_websocket(u->hub, fd, extra, extra_len, handle,
			    u->user_id[0] || u->ticket_refused ? &who : NULL, u->ip);
	free(u);
}

/* The token of the request's "Authorization: Bearer <token>" header, or NULL. */
static const char *bearer_token(struct request *req)
{
	const char *h = request_header(req, "Authorization");
	if (!h || strncasecmp(h, "Bearer ", 7) != 0)
		return NULL;
	h += 7;
	while (*h == ' ')
		h++;
	return h;
}

/*
 * Who the (authenticated) request is, for a live channel: its user, its bearer token and the
 * token's expiry, which the channel keeps (issue 14: it ends at the expiry and is re-checked
 * when the user's tokens are revoked).
 */
static int live_who(struct request *req, struct hub_who *who)
{
	/* A stream ticket stands for an access token of its session (services/tickets.h). */
	const char *h = req->ticket_token ? req->ticket_token : bearer_token(req);
	struct access_claims claims;
	if (!h)
		return error_set(&req->err, ERR_UNAUTHENTICATED,
				 "this request needs a bearer token");
	/* Verified by the router a moment ago: the thread's token cache answers. */
	int rc = token_verify(&req->arena, &req->app->auth->key, h, &claims, &req->err);
	if (rc < 0)
		return rc;
	who->user_id = req->user->id;
	who->token = h;
	who->exp_ms = claims.exp * 1000;
	who->checked_us = req->start_us; /* the router checked the token after this */
	return 0;
}

/* The client address as the caps on live channels count it (http/clientkey.h: an IPv6
 * client by its /64). */
static const char *stream_key(struct request *req)
{
	char key[CLIENT_KEY_LEN];
	client_key(client_ip(req, req->app->limits), key);
	return arena_strdup(&req->arena, key);
}

static int too_many_streams(struct request *req)
{
	reply_header(req, "Retry-After", "10");
	req->limit_policy = "live-channels"; /* the 429's "policy" */
	return error_set(&req->err, ERR_RATE_LIMITED,
			 "too many open live channels (WebSockets, event streams, long polls) for "
			 "this user or client address; close one first");
}

static bool not_token(const char *s, size_t len, void *cls)
{
	const char *token = cls;
	return !(len == strlen(token) && !strncasecmp(s, token, len));
}

/* True when the comma-separated header `h` lists `token` (any case). */
static bool header_has_token(const char *h, const char *token)
{
	return !hlist_each(h, not_token, (void *)token);
}

/*
 * GET /v1/realtime?ticket= (Upgrade: websocket) -> 101 | 400 | 401 (bad bearer token) | 429.
 * A ticket authenticates the socket at once; a refused ticket still upgrades, then closes
 * with 4001 (handlers_authenticate's rules, without a 401 a browser could not see).
 */
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

	const char *ticket = request_query(req, "ticket");
	if (ticket && request_header(req, "Authorization"))
		return error_set(&req->err, ERR_BAD_REQUEST,
				 "send either an Authorization header or ?ticket=, not both");
	struct upgrade_ctx *u = xcalloc(1, sizeof(*u));
	u->hub = req->app->hub;
	/* A bearer header is checked now (401 before the upgrade), a ticket is spent now; without
	 * either the client authenticates with its first message. Tokens in the URL are never
	 * read. */
	if (ticket) {
		struct user *me = arena_alloc(&req->arena, sizeof(*me));
		const char *token;
		struct access_claims claims;
		int rc = ticket_redeem(req->app->auth, req->app->store, &req->arena, ticket, me,
				       &token, &req->err);
		if (rc == 0)
			rc = token_verify(&req->arena, &req->app->auth->key, token, &claims,
					  &req->err);
		if (rc == -ERR_TICKET_INVALID) {
			error_release(&req->err);
			u->ticket_refused = true;
		} else if (rc < 0) {
			free(u);
			return rc;
		} else {
			req->user = me;
			memcpy(u->user_id, me->id, UUID_STR_LEN);
			u->token = token;
			u->exp_ms = claims.exp * 1000;
			u->checked_us = req->start_us; /* ticket_redeem checked it after this */
		}
	} else if (request_header(req, "Authorization")) {
		struct hub_who who;
		int rc = handlers_authenticate(req);
		if (rc == 0)
			rc = live_who(req, &who);
		if (rc < 0) {
			free(u);
			return rc;
		}
		memcpy(u->user_id, req->user->id, UUID_STR_LEN);
		u->token = who.token;
		u->exp_ms = who.exp_ms;
		u->checked_us = who.checked_us;
	}
	snprintf(u->ip, sizeof(u->ip), "%s", stream_key(req));
	if (!hub_ws_admissible(u->hub, u->user_id[0] ? u->user_id : NULL, u->ip)) {
		free(u);
		return too_many_streams(req);
	}
	char *accept = arena_alloc(&req->arena, WS_ACCEPT_KEY_SIZE); /* the reply keeps it */
	ws_accept_key(key, accept);
	reply_header(req, "Upgrade", "websocket");
	reply_header(req, "Connection", "Upgrade");
	reply_header(req, "Sec-WebSocket-Accept", accept);
	return reply_upgrade(req, upgraded, u);
}

/*
 * GET /v1/projects/{id}/events/stream?after=&ticket= (Last-Event-ID) -> 200 text/event-stream
 * | 400 | 401 | 404 | 422 (the resume point beyond the project's last event) | 429.
 * The resume point is Last-Event-ID (an EventSource's reconnection) or else ?after= (an
 * EventSource cannot set the header on its first connection); without either, only what
 * happens from now on.
 */
int handle_events_stream(struct request *req)
{
	const char *id = param_uuid(req, "id");
	const char *last = request_header(req, "Last-Event-ID");
	const char *after_q = request_query(req, "after");
	const char *field = last ? "Last-Event-ID" : "after";
	struct hub_who who;
	int64_t seq, after, v = 0;
	int rc;
	if (!id)
		return error_set(&req->err, ERR_NOT_FOUND, "no such project");
	if (last && !events_seq_parse(last, &v))
		return error_set(&req->err, ERR_BAD_REQUEST, "Last-Event-ID must be an event seq");
	if (!last && after_q && !events_seq_parse(after_q, &v)) {
		char qb[200];
		error_field(&req->err, "after", "invalid",
			    "'%s' is not an event seq (a whole number >= 0)",
			    error_quote(qb, sizeof(qb), after_q, 40));
		return -ERR_VALIDATION_FAILED;
	}
	if ((rc = events_head(req->app->store, &req->arena, req->user->id, id, &seq, &req->err)) <
	    0)
		return rc;
	after = seq; /* without a resume point: only what happens from now on */
	if (last || after_q) {
		if (v > seq) {
			/* It would never see the events up to it, a removal among them. */
			error_field(&req->err, field, "out_of_range",
				    "'%lld' is beyond the project's last event (seq %lld)",
				    (long long)v, (long long)seq);
			return -ERR_VALIDATION_FAILED;
		}
		after = v;
	}
	if ((rc = live_who(req, &who)) < 0)
		return rc;
	if (hub_draining(req->app->hub))
		return error_set(&req->err, ERR_UNAVAILABLE, "shutting down");
	struct hub_stream *st =
	    hub_stream_open(req->app->hub, id, &who, stream_key(req), after, seq);
	if (!st)
		return too_many_streams(req);
	/* Checked again now that the stream is attached when a revocation of the user, handled
	 * between the router's check and the attachment, found no stream to end. */
	if (hub_stream_recheck(st) && (rc = handlers_authenticate(req)) < 0) {
		hub_stream_release(st);
		return rc;
	}
	reply_header(req, "Cache-Control", "no-store");
	reply_header(req, "X-Accel-Buffering", "no");
	return reply_stream(req, "text/event-stream; charset=utf-8", hub_stream_read,
			    hub_stream_release, st);
}

struct poll_state {
	int64_t deadline_ms; /* the wait's end, or the token's expiry if that comes first */
	int64_t checked_us;  /* the last token check began then (time_mono_us) */
};

/* Check the token again (a revocation may have come since the last check). */
static int poll_recheck(struct request *req, struct poll_state *ps)
{
	ps->checked_us = time_mono_us();
	return handlers_authenticate(req);
}

/*
 * A long poll's checks: `after` is not beyond the project's last event (a poll parked there
 * would wait past events it never sees), and the wait ends no later than the token.
 */
static int poll_admit(struct request *req, const char *id, struct poll_state *ps)
{
	const char *after_s = request_query(req, "after");
	struct hub_who who;
	int64_t seq;
	int rc;
	if ((rc = live_who(req, &who)) < 0)
		return rc;
	if (who.exp_ms < ps->deadline_ms)
		ps->deadline_ms = who.exp_ms;
	if (!after_s)
		return 0;
	int64_t after;
	if (!events_seq_parse(after_s, &after))
		return 0; /* events_feed says what is wrong with it */
	if ((rc = events_head(req->app->store, &req->arena, req->user->id, id, &seq, &req->err)) <
	    0)
		return rc;
	if (after > seq) {
		error_field(&req->err, "after", "out_of_range",
			    "'%lld' is beyond the project's last event (seq %lld)",
			    (long long)after, (long long)seq);
		return -ERR_VALIDATION_FAILED;
	}
	return 0;
}

/*
 * GET /v1/projects/{id}/events?after=&limit=&wait= -> 200 {data, next_after, has_more} | 401
 * (the token expired or was revoked while the poll waited) | 422 (a wait with `after` beyond
 * the project's last event) | 429
 */
int handle_events_list(struct request *req)
{
	const char *id = param_uuid(req, "id");
	const char *wait_s = request_query(req, "wait");
	json_t *out;
	int rc;
	if (!id)
		return error_set(&req->err, ERR_NOT_FOUND, "no such project");
	struct poll_state *ps = req->state;
	/* Resumed: the token may have expired or been revoked while the poll was parked. */
	if (ps && (rc = poll_recheck(req, ps)) < 0)
		return rc;
	if (!ps) {
		long wait = 0;
		if (wait_s) {
			char *end;
			wait = strtol(wait_s, &end, 10);
			if (!*wait_s || *end || wait < 0 || wait > LONG_POLL_MAX_S) {
				char qb[200];
				error_field(&req->err, "wait", "out_of_range",
					    "'%s' is not a whole number of seconds from 0 to %d",
					    error_quote(qb, sizeof(qb), wait_s, 40),
					    LONG_POLL_MAX_S);
				return -ERR_VALIDATION_FAILED;
			}
		}
		ps = arena_alloc(&req->arena, sizeof(*ps));
		ps->deadline_ms = time_now_ms() + wait * 1000;
		ps->checked_us = req->start_us; /* the router checked the token after this */
		if (wait > 0 && (rc = poll_admit(req, id, ps)) < 0)
			return rc;
		req->state = ps;
	}
	if ((rc = events_feed(req->app->store, &req->arena, req->user, id,
			      request_query(req, "after"), request_query(req, "limit"), &out,
			      &req->err)) < 0)
		return rc;
	if (json_array_size(json_object_get(out, "data")) == 0 && time_now_ms() < ps->deadline_ms) {
		json_int_t after = json_integer_value(json_object_get(out, "next_after"));
		int parked;
		/* A revocation of the user handled since the token was checked found no poll to
		 * wake: check again before parking (each check moves checked_us on). */
		while ((parked = hub_park(req->app->hub, req, id, req->user->id, stream_key(req),
					  (int64_t)after, ps->deadline_ms, ps->checked_us)) ==
		       HUB_PARK_RECHECK)
			if ((rc = poll_recheck(req, ps)) < 0)
				return rc;
		if (parked == HUB_PARKED)
			return 0; /* parked: called again on news, at the deadline or at shutdown */
		if (parked == HUB_PARK_LIMITED)
			return too_many_streams(req);
	}
	return reply_json(req, 200, json_incref(out)); /* out is the arena's */
}

/* POST /v1/realtime/tickets (no body, or {}) -> 201 {ticket, expires_in} | 401 | 415 | 422 */
int handle_realtime_tickets(struct request *req)
{
	const char *h = bearer_token(req); /* the router authenticated the request with it */
	const char *ticket;
	int64_t expires_in;
	int rc;
	reply_header(req, "Cache-Control", "no-store");
	if (req->body_len > 0) { /* {} or nothing: it takes no field */
		json_t *body;
		if ((rc = request_json(req, &body)) < 0 ||
		    (rc = validate_object(body, NULL, 0, &req->err)) < 0)
			return rc;
	}
	if (!h)
		return error_set(&req->err, ERR_UNAUTHENTICATED,
				 "this request needs a bearer token");
	if ((rc = ticket_create(req->app->auth, req->app->store, &req->arena, h, &ticket,
				&expires_in, &req->err)) < 0)
		return rc;
	return reply_json(
	    req, 201,
	    json_pack("{s:s, s:I}", "ticket", ticket, "expires_in", (json_int_t)expires_in));
}
