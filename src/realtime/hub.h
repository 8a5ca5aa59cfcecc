/*
 * hub.h — real-time delivery of project events: WebSocket subscriptions, Server-Sent Event
 * streams and parked long polls, all fed from the per-project event log.
 *
 * One hub thread owns every WebSocket (epoll, non-blocking sockets, wslay framing) and does
 * all delivery; a small worker does its database reads and token checks (hub_internal.h). Delivery
 * is driven by the database, not by the notifications themselves: a notification only says "project
 * P has news"; the hub then reads the events after the lowest seq its subscribers have seen and
 * hands each subscriber what it lacks. So a lost, late or duplicated notification can never cause a
 * gap or a duplicate, and a periodic sweep catches up even when no notification arrives at all
 * (Redis down).
 *
 * hub_notify() and the SSE/long-poll entry points are called from worker threads; the rest
 * runs on the hub thread.
 */
#ifndef TANDEM_REALTIME_HUB_H
#define TANDEM_REALTIME_HUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "services/events.h" /* enum event_note */

struct auth;
struct request;
struct store;
struct hub;

struct hub_limits {
	size_t max_message;    /* bytes of one client message */
	size_t max_queue;      /* bytes queued to one client before 4008 */
	int max_subscriptions; /* per WebSocket connection */
	int ping_interval_s;   /* server pings */
	int idle_timeout_s;    /* silent peer closed after */
	int auth_timeout_s;    /* first-message auth deadline */
	int sse_heartbeat_s;
	int msg_rate, msg_burst; /* client messages per second and burst, per WebSocket (0: off) */
	int max_per_user; /* open WebSockets + SSE streams + parked polls per user (0: off) */
	int max_per_ip;	  /* the same per client address key (0: off) */
	int max_sockets;  /* open WebSockets at most (more are closed with 1013); 0: half of
			     RLIMIT_NOFILE. libmicrohttpd does not count them (hub_adopt_websocket)
			   */
};

struct hub *hub_create(struct store *st, const struct auth *au, const struct hub_limits *lim);
int hub_start(struct hub *h);
/* Close every WebSocket with 1001, end every stream, wake every parked poll. */
void hub_drain(struct hub *h);
/* Stop the thread and free everything (after the HTTP server stopped). */
void hub_free(struct hub *h);

/*
 * Project `project_id` has news up to `seq` (0 if unknown), or was deleted; EVENT_NOTE_RESYNC
 * (project_id ignored): re-read every topic; EVENT_NOTE_USER_REVOKED (a user id in place of
 * project_id): re-check the tokens of every live channel of that user. Thread-safe; a
 * hint, never data — except a user note, which is never dropped.
 */
void hub_notify(struct hub *h, const char *project_id, int64_t seq, enum event_note kind);

/*
 * Who a live channel belongs to: the user and the access token it was opened with (borrowed;
 * the hub keeps a copy), and that token's expiry (wall clock, ms). The channel ends at the
 * expiry, and its token is checked again on every WebSocket subscribe and whenever the user's
 * tokens are revoked (EVENT_NOTE_USER_REVOKED).
 */
struct hub_who {
	const char *user_id;
	const char *token;
	int64_t exp_ms;
	int64_t checked_us; /* the token's check began then (time_mono_us) */
	/* hub_adopt_websocket only: the upgrade's ?ticket= was refused (the other fields are
	 * unused): the socket gets an error ticket_invalid and closes with 4001 unauthenticated
	 * (a browser sees no HTTP status of a refused upgrade, only the close). */
	bool ticket_refused;
};

/*
 * Adopt an upgraded WebSocket connection. who NULL: the client must authenticate with
 * its first message. Call it from the upgrade handler: it keeps a duplicate of `fd` and hands
 * the connection back to libmicrohttpd at once with http_upgrade_close(handle), so that
 * libmicrohttpd frees its per-connection memory. Thread-safe.
 */
void hub_adopt_websocket(struct hub *h, int fd, const char *extra, size_t extra_len, void *handle,
			 const struct hub_who *who, const char *ip);

/*
 * Live channels (WebSockets, SSE streams, parked long polls) are capped per user and per
 * client address `ip` (a key: IPv6 clients by their /64), hub_limits.max_per_user/_ip.
 * hub_ws_admissible: whether a WebSocket of user_id (NULL: it authenticates later) from ip
 * would be within them now (else answer 429 instead of upgrading). It takes nothing: the hub
 * counts the socket when it adopts it, and closes it with 1013 if it is over a cap then, or
 * when its user, known only after the auth message, is.
 */
bool hub_ws_admissible(struct hub *h, const char *user_id, const char *ip);

/*
 * SSE: open a stream of project_id's events after `after` for who from client address ip
 * (already authorised when the project's head was `admitted`: a removal of the user after
 * that ends the stream). NULL when the user or the address is at its cap (answer 429).
 */
struct hub_stream;
struct hub_stream *hub_stream_open(struct hub *h, const char *project_id, const struct hub_who *who,
				   const char *ip, int64_t after, int64_t admitted);
/* A revocation of the stream's user was handled since its token was checked (and before the
 * stream was attached, where it would have found it): check the token again. */
bool hub_stream_recheck(const struct hub_stream *st);
/* The stream's reader (see reply_stream) and release. */
long hub_stream_read(void *stream, struct request *req, char *buf, size_t max);
void hub_stream_release(void *stream);

/*
 * Long poll: park `req` of user_id from client address ip until project_id has an event after
 * `after`, or until deadline_ms (wall clock), or shutdown, or the user's removal from the
 * project or a revocation of the user's tokens (the handler checks its token again when it
 * resumes). checked_us (time_mono_us) is when the request's token check began: a revocation
 * of the user handled since then may have found nothing to wake. Returns HUB_PARKED,
 * HUB_PARK_DRAINING (answer at once), HUB_PARK_RECHECK (nothing parked: check the token
 * again, then retry) or HUB_PARK_LIMITED (the user or the address is at its cap: answer 429).
 */
enum { HUB_PARKED, HUB_PARK_DRAINING, HUB_PARK_RECHECK, HUB_PARK_LIMITED };
int hub_park(struct hub *h, struct request *req, const char *project_id, const char *user_id,
	     const char *ip, int64_t after, int64_t deadline_ms, int64_t checked_us);

/* True once hub_drain() has begun. */
bool hub_draining(const struct hub *h);

#endif
