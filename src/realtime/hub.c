/*
 * hub.c — see hub.h.
 *
 * Locking: hub->lock guards the topic table, every subscription list, stream buffers, parked
 * polls and the inbox. WebSocket objects and their wslay contexts belong to the hub thread
 * alone. Database reads happen on the hub thread without the lock held.
 *
 * Memory of an idle WebSocket (issue 8: thousands of them): libmicrohttpd's connection, its
 * memory pool and our request are released as soon as the socket is handed over (see
 * hub_adopt_websocket), and the wslay context (about 8.5 KiB: two 4 KiB frame buffers) exists
 * only while the connection is busy: it is created when bytes arrive or a message is queued,
 * and freed once nothing is queued, no frame is half read and no fragmented message is open
 * (ws_at_rest). What stays is struct ws and the kernel's socket.
 */
#include "realtime/hub.h"
#include "core/arena.h"
#include "core/error.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "core/uuid.h"
#include "core/xalloc.h"
#include "http/request.h"
#include "services/sessions.h"
#include "services/events.h"
#include "store/projects.h"
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <wslay/wslay.h>

#define TOPIC_BUCKETS	  1024
#define CATCHUP_BATCH	  200
#define SWEEP_INTERVAL_MS 5000
#define DRAIN_FLUSH_MS	  2000
#define WS_RX_BUDGET	  65536 /* bytes read from one peer per turn of the loop */
#define WS_CTX_LINGER_MS  1000	/* an unused wslay context is freed after this */

enum sub_kind { SUB_WS, SUB_SSE, SUB_POLL };

struct topic;

struct sub {
	struct sub *next, *prev; /* in the topic */
	struct topic *topic;
	enum sub_kind kind;
	int64_t last;
	char user_id[UUID_STR_LEN];
	void *owner;
	struct sub *owner_next; /* in the WebSocket's own list */
};

struct topic {
	char id[UUID_STR_LEN];
	struct topic *next;
	struct sub *subs;
	bool dirty, deleted;
};

struct ws {
	struct hub *hub;
	struct ws *next, *prev;
	wslay_event_context_ptr ctx; /* NULL while idle: see ws_ctx, ws_at_rest */
	char *extra;		     /* bytes read with the handshake, until consumed */
	struct sub *subs;
	int64_t opened_ms, last_rx_ms, last_ping_ms, close_deadline_ms;
	int64_t full_since_ms; /* event delivery paused on a full queue since then, or 0 */
	int64_t ctx_used_ms;   /* the wslay context was last needed then */
	uint64_t in_payload;   /* bytes of the current frame's payload wslay has yet to read */
	uint32_t rx_budget;
	uint32_t extra_len, extra_off;
	uint32_t events;
	int fd;
	int nsubs;
	uint8_t in_head[14]; /* the frame header read so far ... */
	uint8_t in_head_len; /* ... and its length (0: between frames) */
	bool in_fragmented;  /* a data frame without FIN came: the message goes on */
	bool authed, closing, dead;
	char user_id[UUID_STR_LEN];
};

struct hub_stream {
	struct sub sub;
	struct hub *hub;
	struct request *req;
	bool parked, ended, subscribed;
	char *buf;
	size_t len, off, cap;
	int64_t last_beat_ms;
};

struct waiter {
	struct sub sub;
	struct request *req;
	int64_t deadline_ms;
	struct waiter *next_all, *prev_all;
};

struct adopt {
	struct adopt *next;
	int fd;
	char *extra;
	size_t extra_len;
	char user_id[UUID_STR_LEN];
};

struct note {
	struct note *next;
	char project_id[UUID_STR_LEN];
	enum event_note kind;
};

struct hub {
	struct store *store;
	const struct auth *auth;
	struct hub_limits lim;
	pthread_t thread;
	bool started;
	int epfd, evfd;
	atomic_bool stopping, draining;
	pthread_mutex_t lock;
	pthread_cond_t drained_cond;
	bool drained;
	struct topic *topics[TOPIC_BUCKETS];
	struct note *notes;
	bool resync_all;
	struct adopt *adopts, **adopts_tail; /* a FIFO */
	struct ws *sockets;		     /* hub thread only */
	int nsockets, max_sockets;
	struct waiter *waiters;
	int64_t last_sweep_ms;
};

static void wake(struct hub *h)
{
	uint64_t one = 1;
	ssize_t n = write(h->evfd, &one, sizeof(one));
	(void)n;
}

/* ---- topics (lock held) ---- */

static unsigned bucket(const char *id)
{
	unsigned x = 2166136261u;
	for (; *id; id++)
		x = (x ^ (unsigned char)*id) * 16777619u;
	return x % TOPIC_BUCKETS;
}

static struct topic *topic_get(struct hub *h, const char *id, bool create)
{
	unsigned b = bucket(id);
	for (struct topic *t = h->topics[b]; t; t = t->next)
		if (!strcmp(t->id, id))
			return t;
	if (!create)
		return NULL;
	struct topic *t = xcalloc(1, sizeof(*t));
	memcpy(t->id, id, UUID_STR_LEN);
	t->next = h->topics[b];
	h->topics[b] = t;
	return t;
}

static void sub_attach(struct hub *h, struct sub *s, const char *project_id)
{
	struct topic *t = topic_get(h, project_id, true);
	s->topic = t;
	s->prev = NULL;
	s->next = t->subs;
	if (t->subs)
		t->subs->prev = s;
	t->subs = s;
	t->dirty = true;
}

static void sub_detach(struct sub *s)
{
	struct topic *t = s->topic;
	if (!t)
		return;
	if (s->prev)
		s->prev->next = s->next;
	else
		t->subs = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->topic = NULL;
	s->next = s->prev = NULL;
}

/* Free topics nobody listens to any more. */
static void topics_prune(struct hub *h)
{
	for (int b = 0; b < TOPIC_BUCKETS; b++) {
		struct topic **pp = &h->topics[b];
		while (*pp) {
			struct topic *t = *pp;
			if (!t->subs) {
				*pp = t->next;
				free(t);
			} else {
				pp = &t->next;
			}
		}
	}
}

/* ---- WebSocket output (hub thread) ---- */

static wslay_event_context_ptr ws_ctx(struct ws *w);

static size_t ws_queued(const struct ws *w)
{
	return w->ctx ? wslay_event_get_queued_msg_length(w->ctx) : 0;
}

static void ws_send_text(struct ws *w, const char *text, size_t len)
{
	if (w->closing || w->dead || !ws_ctx(w))
		return;
	size_t before = wslay_event_get_queued_msg_length(w->ctx);
	struct wslay_event_msg m = {WSLAY_TEXT_FRAME, (const uint8_t *)text, len};
	if (wslay_event_queue_msg(w->ctx, &m) != 0) {
		w->dead = true;
		return;
	}
	if (before >= 2 * w->hub->lim.max_queue) {
		/* Events pause at max_queue (see deliver), so only answers to a client that sends
		 * without reading get here: close it rather than buffer without bound. */
		static const char why[] = "slow consumer";
		wslay_event_queue_close(w->ctx, 4008, (const uint8_t *)why, sizeof(why) - 1);
		w->closing = true;
		w->close_deadline_ms = time_now_ms() + 2000;
	}
}

static void ws_send_json(struct ws *w, json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (s) {
		ws_send_text(w, s, strlen(s));
		free(s);
	}
}

static void ws_error(struct ws *w, const char *code, const char *message)
{
	ws_send_json(
	    w, json_pack("{s:s, s:s, s:s}", "type", "error", "code", code, "message", message));
}

static void ws_close(struct ws *w, uint16_t code, const char *reason)
{
	if (w->closing || w->dead || !ws_ctx(w))
		return;
	wslay_event_queue_close(w->ctx, code, (const uint8_t *)reason, strlen(reason));
	w->closing = true;
	w->close_deadline_ms = time_now_ms() + 2000;
}

/* ---- delivery (lock held) ---- */

static void stream_append(struct hub_stream *st, const char *s, size_t n)
{
	if (st->len + n > st->cap) {
		if (st->off) {
			memmove(st->buf, st->buf + st->off, st->len - st->off);
			st->len -= st->off;
			st->off = 0;
		}
		size_t cap = st->cap ? st->cap : 4096;
		while (cap < st->len + n)
			cap *= 2;
		if (cap != st->cap) {
			st->buf = xrealloc(st->buf, cap);
			st->cap = cap;
		}
	}
	memcpy(st->buf + st->len, s, n);
	st->len += n;
}

static void stream_wake(struct hub_stream *st)
{
	if (st->parked) {
		st->parked = false;
		http_resume(st->req);
	}
}

static void waiter_wake(struct hub *h, struct waiter *w)
{
	sub_detach(&w->sub);
	if (w->prev_all)
		w->prev_all->next_all = w->next_all;
	else
		h->waiters = w->next_all;
	if (w->next_all)
		w->next_all->prev_all = w->prev_all;
	http_resume(w->req);
	free(w);
}

static void ws_sub_remove(struct ws *w, struct sub *s)
{
	for (struct sub **pp = &w->subs; *pp; pp = &(*pp)->owner_next) {
		if (*pp == s) {
			*pp = s->owner_next;
			w->nsubs--;
			break;
		}
	}
	sub_detach(s);
	free(s);
}

/* The server ends a subscription (lost membership, deleted project). */
static void end_sub(struct hub *h, struct sub *s, const char *reason)
{
	const char *project = s->topic ? s->topic->id : "";
	json_t *msg = json_pack("{s:s, s:s, s:s}", "type", "unsubscribed", "project_id", project,
				"reason", reason);
	switch (s->kind) {
	case SUB_WS: {
		struct ws *w = s->owner;
		ws_send_json(w, msg);
		ws_sub_remove(w, s);
		return;
	}
	case SUB_SSE: {
		struct hub_stream *st = s->owner;
		char *text = json_dumps(msg, JSON_COMPACT);
		json_decref(msg);
		char *frame = NULL;
		if (text && asprintf(&frame, "event: unsubscribed\ndata: %s\n\n", text) > 0)
			stream_append(st, frame, strlen(frame));
		free(frame);
		free(text);
		st->ended = true;
		sub_detach(s);
		stream_wake(st);
		return;
	}
	case SUB_POLL:
		json_decref(msg);
		waiter_wake(h, s->owner);
		return;
	}
}

/* An event as text, built once per event whatever the number of subscribers. */
struct event_text {
	const char *json; /* the event object */
	size_t len;
	char *ws; /* {"type":"event","event":<json>}, made on first use */
	size_t ws_len;
};

static void deliver(struct hub *h, struct sub *s, const struct event *e, struct event_text *et,
		    const char *removed_user)
{
	s->last = e->seq;
	switch (s->kind) {
	case SUB_WS: {
		struct ws *w = s->owner;
		if (!et->ws) {
			static const char head[] = "{\"type\":\"event\",\"event\":";
			et->ws_len = sizeof(head) - 1 + et->len + 1;
			et->ws = xmalloc(et->ws_len + 1);
			memcpy(et->ws, head, sizeof(head) - 1);
			memcpy(et->ws + sizeof(head) - 1, et->json, et->len);
			memcpy(et->ws + sizeof(head) - 1 + et->len, "}", 2);
		}
		ws_send_text(w, et->ws, et->ws_len);
		/* A full queue pauses delivery (the log keeps the rest) until the client has taken
		 * half of it (ws_pump); one that takes nothing is closed by the timers. */
		if (!w->full_since_ms && ws_queued(w) >= h->lim.max_queue)
			w->full_since_ms = time_now_ms();
		break;
	}
	case SUB_SSE: {
		struct hub_stream *st = s->owner;
		char head[96];
		int m = snprintf(head, sizeof(head),
				 "id: %lld\nevent: %s\ndata: ", (long long)e->seq, e->type);
		stream_append(st, head, (size_t)m);
		stream_append(st, et->json, et->len);
		stream_append(st, "\n\n", 2);
		stream_wake(st);
		if (st->len - st->off >= h->lim.max_queue) {
			/* A stream that does not read: end it rather than buffer without bound. The
			 * client reconnects with Last-Event-ID and resumes from the log. */
			st->ended = true;
			sub_detach(s);
			return;
		}
		break;
	}
	case SUB_POLL:
		waiter_wake(h, s->owner);
		return;
	}
	if (removed_user && !strcmp(removed_user, s->user_id))
		end_sub(h, s, "membership_removed");
}

static bool sub_paused(const struct sub *s)
{
	return s->kind == SUB_WS && ((const struct ws *)s->owner)->full_since_ms != 0;
}

static const char *removed_user_of(const struct event *e, json_t *ej)
{
	if (strcmp(e->type, "member.removed") != 0)
		return NULL;
	return json_string_value(
	    json_object_get(json_object_get(json_object_get(ej, "data"), "user"), "id"));
}

static void project_deleted(struct hub *h, const char *project_id);

/* Bring every subscriber of one project up to date from the event log. */
static void catch_up(struct hub *h, const char *project_id)
{
	struct arena a;
	struct error err = ERROR_INIT;
	struct db_conn *c = store_conn(h->store, &err);
	if (!c) {
		error_release(&err);
		return; /* the next sweep retries */
	}
	for (;;) {
		int64_t min_last = INT64_MAX;
		pthread_mutex_lock(&h->lock);
		struct topic *t = topic_get(h, project_id, false);
		if (t) {
			t->dirty = false;
			for (struct sub *s = t->subs; s; s = s->next)
				if (s->last < min_last && !sub_paused(s))
					min_last = s->last;
		}
		pthread_mutex_unlock(&h->lock);
		if (min_last == INT64_MAX)
			return;

		struct event *evs;
		int n;
		arena_init(&a);
		if (store_event_list(c, &a, project_id, min_last, CATCHUP_BATCH, &evs, &n, &err) <
		    0) {
			log_json(LOG_WARN, "realtime catch-up failed",
				 json_pack("{s:s, s:s}", "project_id", project_id, "detail",
					   err.detail));
			error_release(&err);
			arena_release(&a);
			return;
		}
		int64_t head;
		if (n == 0 && store_project_seq(c, &a, project_id, &head, &err) == -ERR_NOT_FOUND) {
			/* A deletion leaves no event behind: an instance that missed its pub/sub
			 * message finds out here, on the sweep. */
			error_release(&err);
			arena_release(&a);
			project_deleted(h, project_id);
			return;
		}
		error_release(&err);
		pthread_mutex_lock(&h->lock);
		t = topic_get(h, project_id, false);
		for (int i = 0; t && i < n; i++) {
			bool wanted = false; /* a paused subscriber reads it later, from the log */
			for (struct sub *s = t->subs; s && !wanted; s = s->next)
				wanted = s->last < evs[i].seq && !sub_paused(s);
			if (!wanted)
				continue;
			json_t *ej = event_json(&evs[i]);
			char *text = json_dumps(ej, JSON_COMPACT);
			struct event_text et = {.json = text, .len = text ? strlen(text) : 0};
			const char *removed = removed_user_of(&evs[i], ej);
			struct sub *s = t->subs;
			while (text && s) {
				struct sub *next = s->next; /* deliver may unlink s */
				if (s->last < evs[i].seq && !sub_paused(s))
					deliver(h, s, &evs[i], &et, removed);
				s = next;
			}
			free(et.ws);
			free(text);
			json_decref(ej);
		}
		pthread_mutex_unlock(&h->lock);
		arena_release(&a);
		if (n < CATCHUP_BATCH)
			return;
	}
}

static void project_deleted(struct hub *h, const char *project_id)
{
	pthread_mutex_lock(&h->lock);
	struct topic *t = topic_get(h, project_id, false);
	while (t && t->subs)
		end_sub(h, t->subs, "project_deleted");
	pthread_mutex_unlock(&h->lock);
}

/* ---- WebSocket protocol (hub thread) ---- */

/*
 * Follow the frame boundaries of the bytes handed to wslay (RFC 6455 5.2), so that the hub
 * knows when wslay holds no partial frame or message and its context may be freed: a new
 * context starts between frames, outside any message. wslay validates the frames; this only
 * counts. wslay asks for bytes only when those it has are used up (wslay_frame_recv), so at a
 * boundary of what it was given, it has also processed all of it.
 */
static void ws_track_input(struct ws *w, const uint8_t *p, size_t n)
{
	while (n > 0) {
		if (w->in_payload > 0) {
			size_t take = n < w->in_payload ? n : (size_t)w->in_payload;
			w->in_payload -= take;
			p += take;
			n -= take;
			continue;
		}
		w->in_head[w->in_head_len++] = *p++;
		n--;
		if (w->in_head_len < 2)
			continue;
		unsigned len7 = w->in_head[1] & 0x7fu;
		unsigned need = 2u +
				(len7 == 126   ? 2u
				 : len7 == 127 ? 8u
					       : 0u) +
				(w->in_head[1] & 0x80u ? 4u : 0u);
		if (w->in_head_len < need)
			continue;
		uint64_t len = len7;
		if (len7 >= 126) {
			len = 0;
			for (unsigned i = 2; i < (len7 == 126 ? 4u : 10u); i++)
				len = len << 8 | w->in_head[i];
		}
		if ((w->in_head[0] & 0x0fu) < 0x8) /* data frames; control frames interleave */
			w->in_fragmented = !(w->in_head[0] & 0x80u);
		w->in_payload = len;
		w->in_head_len = 0;
	}
}

static ssize_t ws_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
			  void *user)
{
	struct ws *w = user;
	(void)ctx;
	(void)flags;
	if (w->extra) {
		size_t n = w->extra_len - w->extra_off;
		if (n > len)
			n = len;
		memcpy(buf, w->extra + w->extra_off, n);
		w->extra_off += (uint32_t)n;
		if (w->extra_off == w->extra_len) {
			free(w->extra);
			w->extra = NULL;
		}
		w->last_rx_ms = time_now_ms();
		ws_track_input(w, buf, n);
		return (ssize_t)n;
	}
	if (w->rx_budget == 0) {
		/* Enough of this peer for one turn: wslay_event_recv would otherwise read a fast
		 * sender for ever while every other connection starves. The socket stays readable
		 * (epoll is level-triggered), so the rest comes on the next turn. */
		wslay_event_set_error(w->ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	if (len > w->rx_budget)
		len = w->rx_budget;
	ssize_t r;
	while ((r = recv(w->fd, buf, len, 0)) < 0 && errno == EINTR)
		;
	if (r < 0) {
		wslay_event_set_error(w->ctx, errno == EAGAIN || errno == EWOULDBLOCK
						  ? WSLAY_ERR_WOULDBLOCK
						  : WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	if (r == 0) {
		wslay_event_set_error(w->ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	w->rx_budget -= (uint32_t)r;
	w->last_rx_ms = time_now_ms();
	ws_track_input(w, buf, (size_t)r);
	return r;
}

static ssize_t ws_send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
			  void *user)
{
	struct ws *w = user;
	(void)ctx;
	(void)flags;
	ssize_t r;
	while ((r = send(w->fd, data, len, MSG_NOSIGNAL)) < 0 && errno == EINTR)
		;
	if (r < 0) {
		wslay_event_set_error(w->ctx, errno == EAGAIN || errno == EWOULDBLOCK
						  ? WSLAY_ERR_WOULDBLOCK
						  : WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	return r;
}

static int ws_genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user)
{
	(void)ctx;
	(void)user;
	memset(buf, 0, len); /* servers do not mask */
	return 0;
}

static void ws_authenticate(struct ws *w, json_t *msg)
{
	struct hub *h = w->hub;
	struct arena a;
	struct error err = ERROR_INIT;
	struct user u;
	const char *token = json_string_value(json_object_get(msg, "token"));
	arena_init(&a);
	const char *bearer = token ? arena_printf(&a, "Bearer %s", token) : NULL;
	if (bearer && auth_authenticate(h->auth, h->store, &a, bearer, &u, &err) == 0) {
		memcpy(w->user_id, u.id, UUID_STR_LEN);
		w->authed = true;
		ws_send_json(w, json_pack("{s:s, s:s}", "type", "authenticated", "user_id", u.id));
	} else {
		ws_close(w, 4001, "unauthenticated");
	}
	error_release(&err);
	arena_release(&a);
}

static void ws_subscribe(struct ws *w, json_t *msg)
{
	struct hub *h = w->hub;
	const char *pid_in = json_string_value(json_object_get(msg, "project_id"));
	json_t *after = json_object_get(msg, "after");
	char pid[UUID_STR_LEN];
	if (!pid_in || !uuid_normalize(pid_in, pid)) {
		ws_error(w, "validation_failed", "project_id must be a project id");
		return;
	}
	if (after && !json_is_null(after) &&
	    (!json_is_integer(after) || json_integer_value(after) < 0)) {
		ws_error(w, "validation_failed", "after must be null or a seq >= 0");
		return;
	}
	struct sub *existing = NULL;
	for (struct sub *s = w->subs; s; s = s->owner_next)
		if (s->topic && !strcmp(s->topic->id, pid))
			existing = s;
	if (!existing && w->nsubs >= h->lim.max_subscriptions) {
		ws_error(w, "too_many_subscriptions", "unsubscribe from a project first");
		return;
	}
	struct arena a;
	struct error err = ERROR_INIT;
	const char *role = NULL;
	int64_t seq = 0;
	arena_init(&a);
	struct db_conn *c = store_conn(h->store, &err);
	int rc = c ? store_member_role(c, &a, pid, w->user_id, &role, &err) : -ERR_UNAVAILABLE;
	if (rc == 0 && role)
		rc = store_project_seq(c, &a, pid, &seq, &err);
	arena_release(&a);
	error_release(&err);
	if (rc < 0 && rc != -ERR_NOT_FOUND) {
		ws_error(w, "unavailable", "the service is temporarily unavailable; retry later");
		return;
	}
	if (rc < 0 || !role) {
		ws_error(w, "not_found", "no such project");
		return;
	}
	/* Reply first: events with seq > after follow it, then live ones, from the log. */
	ws_send_json(w, json_pack("{s:s, s:s, s:I}", "type", "subscribed", "project_id", pid, "seq",
				  (json_int_t)seq));
	pthread_mutex_lock(&h->lock);
	if (existing) {
		sub_detach(existing);
	} else {
		existing = xcalloc(1, sizeof(*existing));
		existing->kind = SUB_WS;
		existing->owner = w;
		memcpy(existing->user_id, w->user_id, UUID_STR_LEN);
		existing->owner_next = w->subs;
		w->subs = existing;
		w->nsubs++;
	}
	existing->last = after && json_is_integer(after) ? json_integer_value(after) : seq;
	sub_attach(h, existing, pid);
	pthread_mutex_unlock(&h->lock);
}

static void ws_unsubscribe(struct ws *w, json_t *msg)
{
	const char *pid_in = json_string_value(json_object_get(msg, "project_id"));
	char pid[UUID_STR_LEN];
	if (!pid_in || !uuid_normalize(pid_in, pid)) {
		ws_error(w, "validation_failed", "project_id must be a project id");
		return;
	}
	pthread_mutex_lock(&w->hub->lock);
	struct sub *found = NULL;
	for (struct sub *s = w->subs; s; s = s->owner_next)
		if (s->topic && !strcmp(s->topic->id, pid))
			found = s;
	if (found)
		ws_sub_remove(w, found);
	pthread_mutex_unlock(&w->hub->lock);
	if (!found) {
		ws_error(w, "not_found", "not subscribed to this project");
		return;
	}
	ws_send_json(w, json_pack("{s:s, s:s, s:s}", "type", "unsubscribed", "project_id", pid,
				  "reason", "requested"));
}

static void ws_on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
		      void *user)
{
	struct ws *w = user;
	(void)ctx;
	if (arg->opcode >= 0x8)
		return; /* control frames: wslay answers pings and closes itself */
	if (arg->opcode != WSLAY_TEXT_FRAME) {
		if (!w->authed)
			ws_close(w, 4001, "unauthenticated");
		else
			ws_error(w, "bad_request", "only text frames carrying JSON are accepted");
		return;
	}
	json_t *msg =
	    json_loadb((const char *)arg->msg, arg->msg_length, JSON_REJECT_DUPLICATES, NULL);
	const char *type = json_string_value(json_object_get(msg, "type"));
	if (!w->authed) {
		if (type && !strcmp(type, "auth"))
			ws_authenticate(w, msg);
		else
			ws_close(w, 4001, "unauthenticated");
	} else if (!msg || !json_is_object(msg)) {
		ws_error(w, "malformed_json", "a message must be a JSON object");
	} else if (!type) {
		ws_error(w, "validation_failed", "a message needs a string \"type\"");
	} else if (!strcmp(type, "subscribe")) {
		ws_subscribe(w, msg);
	} else if (!strcmp(type, "unsubscribe")) {
		ws_unsubscribe(w, msg);
	} else if (!strcmp(type, "ping")) {
		ws_send_json(w, json_pack("{s:s}", "type", "pong"));
	} else if (!strcmp(type, "auth")) {
		ws_error(w, "bad_request", "already authenticated");
	} else {
		ws_error(w, "unknown_type", "unknown message type");
	}
	json_decref(msg);
}

static const struct wslay_event_callbacks callbacks = {
    ws_recv_cb, ws_send_cb, ws_genmask_cb, NULL, NULL, NULL, ws_on_msg,
};

/* The connection's wslay context, created if it has none (NULL, and the connection dead, when
 * that fails). */
static wslay_event_context_ptr ws_ctx(struct ws *w)
{
	w->ctx_used_ms = time_now_ms();
	if (w->ctx)
		return w->ctx;
	if (w->dead || wslay_event_context_server_init(&w->ctx, &callbacks, w) != 0) {
		w->ctx = NULL;
		w->dead = true;
		return NULL;
	}
	wslay_event_config_set_max_recv_msg_length(w->ctx, w->hub->lim.max_message);
	return w->ctx;
}

/* Nothing in wslay that a fresh context would not have: no partial frame or message read,
 * nothing queued or half sent, no close begun, no paused delivery. */
static bool ws_at_rest(const struct ws *w)
{
	return w->ctx && !w->closing && !w->dead && !w->full_since_ms && !w->extra &&
	       w->in_head_len == 0 && w->in_payload == 0 && !w->in_fragmented &&
	       wslay_event_want_read(w->ctx) && !wslay_event_want_write(w->ctx) &&
	       wslay_event_get_queued_msg_count(w->ctx) == 0 &&
	       !wslay_event_get_close_received(w->ctx) && !wslay_event_get_close_sent(w->ctx);
}

static void ws_destroy(struct hub *h, struct ws *w)
{
	pthread_mutex_lock(&h->lock);
	while (w->subs) {
		struct sub *s = w->subs;
		w->subs = s->owner_next;
		sub_detach(s);
		free(s);
	}
	pthread_mutex_unlock(&h->lock);
	epoll_ctl(h->epfd, EPOLL_CTL_DEL, w->fd, NULL);
	/* Unread input would turn the close into a reset, which discards what is not yet sent
	 * (the close frame, typically): read it away and send FIN first. */
	char sink[4096];
	for (int i = 0; i < 256 && recv(w->fd, sink, sizeof(sink), MSG_DONTWAIT) > 0; i++)
		;
	shutdown(w->fd, SHUT_WR);
	if (w->prev)
		w->prev->next = w->next;
	else
		h->sockets = w->next;
	if (w->next)
		w->next->prev = w->prev;
	if (w->ctx)
		wslay_event_context_free(w->ctx);
	close(w->fd);
	h->nsockets--;
	free(w->extra);
	free(w);
}

/* Flush what wslay queued and watch for writability only while something waits. */
static void ws_pump(struct hub *h, struct ws *w)
{
	if (!w->dead && w->ctx && wslay_event_want_write(w->ctx) && wslay_event_send(w->ctx) != 0)
		w->dead = true;
	if (!w->dead && w->ctx && !wslay_event_want_read(w->ctx) && !wslay_event_want_write(w->ctx))
		w->dead = true; /* both directions closed */
	if (w->dead) {
		ws_destroy(h, w);
		return;
	}
	if (w->full_since_ms && ws_queued(w) < h->lim.max_queue / 2) {
		w->full_since_ms = 0; /* resume: deliver_dirty sends what the log holds for it */
		pthread_mutex_lock(&h->lock);
		for (struct sub *s = w->subs; s; s = s->owner_next)
			if (s->topic)
				s->topic->dirty = true;
		pthread_mutex_unlock(&h->lock);
	}
	uint32_t want =
	    EPOLLIN | EPOLLRDHUP | (w->ctx && wslay_event_want_write(w->ctx) ? EPOLLOUT : 0);
	if (want != w->events) {
		struct epoll_event ev = {.events = want, .data.ptr = w};
		epoll_ctl(h->epfd, EPOLL_CTL_MOD, w->fd, &ev);
		w->events = want;
	}
}

static void ws_adopt(struct hub *h, struct adopt *ad)
{
	struct ws *w = xcalloc(1, sizeof(*w));
	w->hub = h;
	w->fd = ad->fd;
	w->extra = ad->extra; /* NULL when the client sent nothing after the handshake */
	w->extra_len = (uint32_t)ad->extra_len;
	w->opened_ms = w->last_rx_ms = w->last_ping_ms = time_now_ms();
	if (ad->user_id[0]) {
		memcpy(w->user_id, ad->user_id, UUID_STR_LEN);
		w->authed = true;
	}
	int fl = fcntl(w->fd, F_GETFL);
	fcntl(w->fd, F_SETFL, fl | O_NONBLOCK);
	h->nsockets++;
	w->next = h->sockets;
	if (h->sockets)
		h->sockets->prev = w;
	h->sockets = w;
	w->events = EPOLLIN | EPOLLRDHUP;
	struct epoll_event ev = {.events = w->events, .data.ptr = w};
	epoll_ctl(h->epfd, EPOLL_CTL_ADD, w->fd, &ev);
	if (atomic_load(&h->draining))
		ws_close(w, 1001, "server shutting down");
	else if (h->nsockets > h->max_sockets)
		/* libmicrohttpd no longer counts this connection (hub_adopt_websocket): bound the
		 * descriptors WebSockets hold here. */
		ws_close(w, 1013, "too many connections");
	w->rx_budget = WS_RX_BUDGET;
	if (w->extra && ws_ctx(w) && wslay_event_recv(w->ctx) != 0) {
		wslay_event_send(w->ctx); /* the close wslay queued for a broken frame, if any */
		w->dead = true;
	}
	ws_pump(h, w);
}

/* ---- timers (hub thread) ---- */

static void timers(struct hub *h, int64_t now)
{
	for (struct ws *w = h->sockets, *next; w; w = next) {
		next = w->next;
		if (w->closing && now > w->close_deadline_ms)
			w->dead = true;
		else if (!w->authed && now - w->opened_ms > (int64_t)h->lim.auth_timeout_s * 1000)
			ws_close(w, 4001, "authentication timeout");
		else if (w->full_since_ms &&
			 now - w->full_since_ms > (int64_t)h->lim.ping_interval_s * 1000)
			/* It took not even half its queue in a ping interval (our pings are stuck
			 * behind the backlog too): it resumes with its last seq. */
			ws_close(w, 4008, "slow consumer");
		else if (now - w->last_rx_ms > (int64_t)h->lim.idle_timeout_s * 1000)
			w->dead = true; /* silent peer: no pong, nothing */
		else if (now - w->last_ping_ms > (int64_t)h->lim.ping_interval_s * 1000) {
			struct wslay_event_msg m = {WSLAY_PING, (const uint8_t *)"", 0};
			if (ws_ctx(w))
				wslay_event_queue_msg(w->ctx, &m);
			w->last_ping_ms = now;
		} else if (w->ctx && now - w->ctx_used_ms >= WS_CTX_LINGER_MS && ws_at_rest(w)) {
			wslay_event_context_free(w->ctx);
			w->ctx = NULL;
		}
		ws_pump(h, w);
	}
	pthread_mutex_lock(&h->lock);
	for (struct waiter *wt = h->waiters, *next; wt; wt = next) {
		next = wt->next_all;
		if (now >= wt->deadline_ms)
			waiter_wake(h, wt);
	}
	for (int b = 0; b < TOPIC_BUCKETS; b++)
		for (struct topic *t = h->topics[b]; t; t = t->next)
			for (struct sub *s = t->subs; s; s = s->next) {
				if (s->kind != SUB_SSE)
					continue;
				struct hub_stream *st = s->owner;
				if (now - st->last_beat_ms >=
				    (int64_t)h->lim.sse_heartbeat_s * 1000) {
					stream_append(st, ": heartbeat\n\n", 13);
					st->last_beat_ms = now;
					stream_wake(st);
				}
			}
	if (now - h->last_sweep_ms >= SWEEP_INTERVAL_MS) {
		/* Catch up even when no notification came (lost pub/sub message, Redis down). */
		h->last_sweep_ms = now;
		for (int b = 0; b < TOPIC_BUCKETS; b++)
			for (struct topic *t = h->topics[b]; t; t = t->next)
				t->dirty = true;
		topics_prune(h);
	}
	pthread_mutex_unlock(&h->lock);
}

/* ---- the thread ---- */

static void process_inbox(struct hub *h)
{
	pthread_mutex_lock(&h->lock);
	struct note *notes = h->notes;
	struct adopt *adopts = h->adopts;
	bool resync = h->resync_all;
	h->notes = NULL;
	h->adopts = NULL;
	h->adopts_tail = &h->adopts;
	h->resync_all = false;
	if (resync)
		for (int b = 0; b < TOPIC_BUCKETS; b++)
			for (struct topic *t = h->topics[b]; t; t = t->next)
				t->dirty = true;
	pthread_mutex_unlock(&h->lock);

	while (adopts) {
		struct adopt *next = adopts->next;
		ws_adopt(h, adopts);
		free(adopts);
		adopts = next;
	}
	while (notes) {
		struct note *next = notes->next;
		if (notes->kind == EVENT_NOTE_PROJECT_DELETED) {
			project_deleted(h, notes->project_id);
		} else {
			pthread_mutex_lock(&h->lock);
			struct topic *t = topic_get(h, notes->project_id, false);
			if (t)
				t->dirty = true;
			pthread_mutex_unlock(&h->lock);
		}
		free(notes);
		notes = next;
	}
}

static void deliver_dirty(struct hub *h)
{
	char ids[64][UUID_STR_LEN];
	for (;;) {
		int n = 0;
		pthread_mutex_lock(&h->lock);
		for (int b = 0; b < TOPIC_BUCKETS && n < 64; b++)
			for (struct topic *t = h->topics[b]; t && n < 64; t = t->next)
				if (t->dirty && t->subs) {
					t->dirty = false;
					memcpy(ids[n++], t->id, UUID_STR_LEN);
				}
		pthread_mutex_unlock(&h->lock);
		for (int i = 0; i < n; i++)
			catch_up(h, ids[i]);
		if (n < 64)
			return;
	}
}

static void drain_sockets(struct hub *h)
{
	for (struct ws *w = h->sockets; w; w = w->next)
		ws_close(w, 1001, "server shutting down");
}

static void *hub_main(void *arg)
{
	struct hub *h = arg;
	struct epoll_event evs[64];
	int64_t last_timer = 0;
	bool drain_started = false;
	int64_t drain_deadline = 0;

	while (!atomic_load(&h->stopping)) {
		int n = epoll_wait(h->epfd, evs, 64, 200);
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr == NULL) {
				uint64_t v;
				ssize_t r = read(h->evfd, &v, sizeof(v));
				(void)r;
				continue;
			}
			struct ws *w = evs[i].data.ptr;
			w->rx_budget = WS_RX_BUDGET;
			if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP))
				if (ws_ctx(w) && wslay_event_recv(w->ctx) != 0) {
					/* The close wslay queued for a broken frame, if any */
					wslay_event_send(w->ctx);
					w->dead = true;
				}
			ws_pump(h, w);
		}
		process_inbox(h);
		if (atomic_load(&h->draining) && !drain_started) {
			drain_started = true;
			drain_deadline = time_now_ms() + DRAIN_FLUSH_MS;
			drain_sockets(h);
		}
		deliver_dirty(h);
		for (struct ws *w = h->sockets, *next; w; w = next) {
			next = w->next;
			ws_pump(h, w);
		}
		int64_t now = time_now_ms();
		if (now - last_timer >= 1000 || drain_started) {
			last_timer = now;
			timers(h, now);
		}
		if (drain_started && !h->drained && (!h->sockets || now > drain_deadline)) {
			while (h->sockets)
				ws_destroy(h, h->sockets);
			pthread_mutex_lock(&h->lock);
			h->drained = true;
			pthread_cond_broadcast(&h->drained_cond);
			pthread_mutex_unlock(&h->lock);
		}
	}
	while (h->sockets)
		ws_destroy(h, h->sockets);
	return NULL;
}

/* ---- public ---- */

struct hub *hub_create(struct store *st, const struct auth *au, const struct hub_limits *lim)
{
	struct hub *h = xcalloc(1, sizeof(*h));
	h->store = st;
	h->auth = au;
	h->lim = *lim;
	h->adopts_tail = &h->adopts;
	h->max_sockets = lim->max_sockets;
	if (h->max_sockets <= 0) {
		/* Half of the descriptors, the rest for HTTP connections and the process. */
		struct rlimit rl;
		rlim_t half = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur / 2 : 32768;
		h->max_sockets = half > 1000000 ? 1000000 : (int)half;
	}
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->drained_cond, NULL);
	h->epfd = epoll_create1(EPOLL_CLOEXEC);
	h->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
	epoll_ctl(h->epfd, EPOLL_CTL_ADD, h->evfd, &ev);
	return h;
}

int hub_start(struct hub *h)
{
	if (pthread_create(&h->thread, NULL, hub_main, h) != 0)
		return -1;
	h->started = true;
	return 0;
}

bool hub_draining(const struct hub *h)
{
	return atomic_load(&h->draining);
}

void hub_drain(struct hub *h)
{
	if (!h)
		return;
	atomic_store(&h->draining, true);
	pthread_mutex_lock(&h->lock);
	/* Wake every parked poll and end every stream; their handlers answer at once. */
	while (h->waiters)
		waiter_wake(h, h->waiters);
	for (int b = 0; b < TOPIC_BUCKETS; b++)
		for (struct topic *t = h->topics[b]; t; t = t->next)
			for (struct sub *s = t->subs; s; s = s->next)
				if (s->kind == SUB_SSE) {
					struct hub_stream *st = s->owner;
					st->ended = true;
					stream_wake(st);
				}
	pthread_mutex_unlock(&h->lock);
	wake(h);
	if (!h->started)
		return;
	pthread_mutex_lock(&h->lock);
	while (!h->drained)
		pthread_cond_wait(&h->drained_cond, &h->lock);
	pthread_mutex_unlock(&h->lock);
}

void hub_free(struct hub *h)
{
	if (!h)
		return;
	atomic_store(&h->stopping, true);
	wake(h);
	if (h->started)
		pthread_join(h->thread, NULL);
	while (h->notes) {
		struct note *n = h->notes;
		h->notes = n->next;
		free(n);
	}
	while (h->adopts) {
		struct adopt *a = h->adopts;
		h->adopts = a->next;
		close(a->fd);
		free(a->extra);
		free(a);
	}
	for (int b = 0; b < TOPIC_BUCKETS; b++) {
		while (h->topics[b]) {
			struct topic *t = h->topics[b];
			h->topics[b] = t->next;
			while (t->subs) {
				struct sub *s = t->subs;
				sub_detach(s);
				if (s->kind == SUB_WS)
					free(s);
			}
			free(t);
		}
	}
	close(h->epfd);
	close(h->evfd);
	pthread_mutex_destroy(&h->lock);
	pthread_cond_destroy(&h->drained_cond);
	free(h);
}

void hub_notify(struct hub *h, const char *project_id, int64_t seq, enum event_note kind)
{
	(void)seq;
	if (!h)
		return;
	pthread_mutex_lock(&h->lock);
	if (kind == EVENT_NOTE_RESYNC) {
		h->resync_all = true;
	} else if (kind == EVENT_NOTE_PROJECT_DELETED || topic_get(h, project_id, false)) {
		/* Nobody listens to most projects: notes for them cost nothing. */
		struct note *n = xcalloc(1, sizeof(*n));
		snprintf(n->project_id, sizeof(n->project_id), "%s", project_id);
		n->kind = kind;
		n->next = h->notes;
		h->notes = n;
	}
	pthread_mutex_unlock(&h->lock);
	wake(h);
}

void hub_adopt_websocket(struct hub *h, int fd, const char *extra, size_t extra_len, void *handle,
			 const char *user_id)
{
	struct adopt *a = xcalloc(1, sizeof(*a));
	if (extra_len) {
		a->extra = xmalloc(extra_len);
		memcpy(a->extra, extra, extra_len); /* `extra` is in libmicrohttpd's pool */
		a->extra_len = extra_len;
	}
	/*
	 * Keep the socket, give libmicrohttpd the connection back now: its memory pool (the
	 * configured connection memory), the connection and our request are freed at once
	 * instead of living as long as the WebSocket. For a plain (non-TLS) upgraded connection
	 * MHD_UPGRADE_ACTION_CLOSE only marks it closed; libmicrohttpd's own thread then frees it
	 * and close()s its descriptor, without shutdown() (libmicrohttpd 0.9.75:
	 * MHD_upgrade_action -> resume_suspended_connections -> MHD_cleanup_connections), and the
	 * descriptor is already out of libmicrohttpd's epoll set (removed when the connection
	 * was suspended for the upgrade). So a duplicate keeps the connection open, unaffected.
	 * We are inside the upgrade handler, on the connection's own thread: nothing runs
	 * concurrently with this.
	 */
	a->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	http_upgrade_close(handle);
	if (a->fd < 0) {
		log_warn("cannot keep an upgraded WebSocket: dup: %s", strerror(errno));
		free(a->extra);
		free(a);
		return;
	}
	if (user_id)
		snprintf(a->user_id, sizeof(a->user_id), "%s", user_id);
	pthread_mutex_lock(&h->lock);
	/* In arrival order: over the socket cap it is the newest WebSocket that is refused,
	 * never one admitted earlier. */
	*h->adopts_tail = a;
	h->adopts_tail = &a->next;
	pthread_mutex_unlock(&h->lock);
	wake(h);
}

struct hub_stream *hub_stream_open(struct hub *h, const char *project_id, const char *user_id,
				   int64_t after)
{
	struct hub_stream *st = xcalloc(1, sizeof(*st));
	st->hub = h;
	st->sub.kind = SUB_SSE;
	st->sub.owner = st;
	st->sub.last = after;
	snprintf(st->sub.user_id, sizeof(st->sub.user_id), "%s", user_id);
	st->last_beat_ms = time_now_ms();
	stream_append(st, ": tandem event stream\nretry: 2000\n\n", 35);
	pthread_mutex_lock(&h->lock);
	if (atomic_load(&h->draining)) {
		st->ended = true;
	} else {
		sub_attach(h, &st->sub, project_id);
		st->subscribed = true;
	}
	pthread_mutex_unlock(&h->lock);
	wake(h);
	return st;
}

long hub_stream_read(void *stream, struct request *req, char *buf, size_t max)
{
	struct hub_stream *st = stream;
	struct hub *h = st->hub;
	long n = 0;
	pthread_mutex_lock(&h->lock);
	st->req = req;
	if (st->off < st->len) {
		size_t avail = st->len - st->off;
		n = (long)(avail < max ? avail : max);
		memcpy(buf, st->buf + st->off, (size_t)n);
		st->off += (size_t)n;
		if (st->off == st->len)
			st->off = st->len = 0;
	} else if (st->ended) {
		n = -1;
	} else {
		/* Nothing to send: park until the hub has something (or a heartbeat is due). */
		http_suspend(req);
		st->parked = true;
	}
	pthread_mutex_unlock(&h->lock);
	return n;
}

void hub_stream_release(void *stream)
{
	struct hub_stream *st = stream;
	struct hub *h = st->hub;
	pthread_mutex_lock(&h->lock);
	sub_detach(&st->sub);
	pthread_mutex_unlock(&h->lock);
	free(st->buf);
	free(st);
}

bool hub_park(struct hub *h, struct request *req, const char *project_id, int64_t after,
	      int64_t deadline_ms)
{
	pthread_mutex_lock(&h->lock);
	if (atomic_load(&h->draining)) {
		pthread_mutex_unlock(&h->lock);
		return false;
	}
	struct waiter *w = xcalloc(1, sizeof(*w));
	w->sub.kind = SUB_POLL;
	w->sub.owner = w;
	w->sub.last = after;
	w->req = req;
	w->deadline_ms = deadline_ms;
	w->next_all = h->waiters;
	if (h->waiters)
		h->waiters->prev_all = w;
	h->waiters = w;
	/* Attaching marks the topic dirty: an event that committed between the caller's read
	 * and now is found by the hub's next catch-up, so no wake-up is lost. */
	sub_attach(h, &w->sub, project_id);
	http_suspend(req);
	pthread_mutex_unlock(&h->lock);
	wake(h);
	return true;
}
