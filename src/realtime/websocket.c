/*
 * websocket.c — one WebSocket connection from adoption to close: the handshake's accept key,
 * the wslay glue (callbacks, a context that exists only while the connection is busy),
 * tracking of the peer's frame boundaries, the client's messages (auth, subscribe,
 * unsubscribe, ping) and the socket's lifecycle and timers.
 *
 * Threads: everything here but ws_accept_key and ws_input_* (pure) runs on the hub thread,
 * which alone owns struct ws and its wslay context; subscriptions are changed under hub->lock.
 * A message that needs the database or a token check becomes a job (worker.c): until its
 * result is back (ws_job_done) the connection is not read and later messages wait in order in
 * ws->stash, so answers keep the order of the questions. A connection closed while its job is
 * out is unlinked at once but freed only when the result comes (ws->orphan).
 *
 * Memory of an idle WebSocket (issue 8: thousands of them): libmicrohttpd's connection, its
 * memory pool and our request are released as soon as the socket is handed over (see
 * hub_adopt_websocket), and the wslay context (about 8.5 KiB: two 4 KiB frame buffers) exists
 * only while the connection is busy: it is created when bytes arrive or a message is queued,
 * and freed once nothing is queued, no frame is half read and no fragmented message is open
 * (ws_at_rest). What stays is struct ws and the kernel's socket.
 */
#include "core/error.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "core/xalloc.h"
#include "realtime/hub_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- the protocol's pure pieces ---- */

void ws_accept_key(const char *key, char out[WS_ACCEPT_KEY_SIZE])
{
	static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md || !EVP_DigestInit_ex(md, EVP_sha1(), NULL) ||
	    !EVP_DigestUpdate(md, key, strlen(key)) ||
	    !EVP_DigestUpdate(md, guid, sizeof(guid) - 1) || !EVP_DigestFinal_ex(md, digest, &n))
		abort(); /* out of memory: what xalloc does too */
	EVP_MD_CTX_free(md);
	EVP_EncodeBlock((unsigned char *)out, digest, (int)n);
}

/*
 * Follow the frame boundaries of the bytes handed to wslay (RFC 6455 5.2), so that the hub
 * knows when wslay holds no partial frame or message and its context may be freed: a new
 * context starts between frames, outside any message. wslay asks for bytes only when those it
 * has are used up (wslay_frame_recv), so at a boundary of what it was given, it has also
 * processed all of it.
 */
void ws_input_track(struct ws_input *in, const uint8_t *p, size_t n)
{
	while (n > 0) {
		if (in->payload > 0) {
			size_t take = n < in->payload ? n : (size_t)in->payload;
			in->payload -= take;
			p += take;
			n -= take;
			continue;
		}
		in->head[in->head_len++] = *p++;
		n--;
		if (in->head_len < 2)
			continue;
		unsigned len7 = in->head[1] & 0x7fu;
		unsigned need = 2u +
				(len7 == 126   ? 2u
				 : len7 == 127 ? 8u
					       : 0u) +
				(in->head[1] & 0x80u ? 4u : 0u);
		if (in->head_len < need)
			continue;
		uint64_t len = len7;
		if (len7 >= 126) {
			len = 0;
			for (unsigned i = 2; i < (len7 == 126 ? 4u : 10u); i++)
				len = len << 8 | in->head[i];
		}
		if ((in->head[0] & 0x0fu) < 0x8) /* data frames; control frames interleave */
			in->fragmented = !(in->head[0] & 0x80u);
		in->payload = len;
		in->head_len = 0;
	}
}

bool ws_input_at_rest(const struct ws_input *in)
{
	return in->head_len == 0 && in->payload == 0 && !in->fragmented;
}

/* ---- output ---- */

static wslay_event_context_ptr ws_ctx(struct ws *w);

/* What the outgoing queue costs: its bytes, control frames included (wslay queues a PONG for
 * every PING it reads, and an empty PONG is 0 bytes), plus wslay's bookkeeping per message. */
#define WS_MSG_OVERHEAD 64

size_t ws_queued(const struct ws *w)
{
	if (!w->ctx)
		return 0;
	return wslay_event_get_queued_msg_length(w->ctx) +
	       WS_MSG_OVERHEAD * wslay_event_get_queued_msg_count(w->ctx);
}

void ws_send_text(struct ws *w, const char *text, size_t len)
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
		log_json(
		    LOG_INFO, "websocket closed as a slow consumer",
		    json_pack("{s:s, s:s}", "user_id", w->user_id, "cause", "answers not read"));
		static const char why[] = "slow consumer";
		wslay_event_queue_close(w->ctx, 4008, (const uint8_t *)why, sizeof(why) - 1);
		w->closing = true;
		w->close_deadline_ms = time_now_ms() + CLOSE_GRACE_MS;
	}
}

void ws_send_json(struct ws *w, json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (s) {
		ws_send_text(w, s, strlen(s));
		free(s);
	}
}

/*
 * A reply to a client message: `id` (borrowed; NULL: none) is the message's own, echoed so
 * that a client with several requests out can match the answer (issue 15). o is stolen.
 */
static void ws_reply(struct ws *w, const json_t *id, json_t *o)
{
	if (id)
		json_object_set_new(o, "id", json_copy((json_t *)id));
	ws_send_json(w, o);
}

/* An error: for the message with `id` (NULL: none or unknown) and the project `project_id`
 * it concerns (NULL: none). */
static void ws_error(struct ws *w, const json_t *id, const char *project_id, const char *code,
		     const char *message)
{
	json_t *o = json_pack("{s:s, s:s, s:s}", "type", "error", "code", code, "message", message);
	if (project_id)
		json_object_set_new(o, "project_id", json_string(project_id));
	ws_reply(w, id, o);
}

void ws_close(struct ws *w, uint16_t code, const char *reason)
{
	if (w->closing || w->dead || !ws_ctx(w))
		return;
	wslay_event_queue_close(w->ctx, code, (const uint8_t *)reason, strlen(reason));
	w->closing = true;
	w->close_deadline_ms = time_now_ms() + CLOSE_GRACE_MS;
}

void ws_sub_remove(struct ws *w, struct sub *s)
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

/* ---- the client's messages ---- */

static struct sub *ws_sub_find(struct ws *w, const char *pid)
{
	struct sub *found = NULL;
	for (struct sub *s = w->subs; s; s = s->owner_next)
		if (s->topic && !strcmp(s->topic->id, pid))
			found = s;
	return found;
}

static void ws_start_job(struct ws *w, struct job *j)
{
	j->ws = w;
	w->job = j;
	worker_post(w->hub, j);
}

/* The longest `id` a client message may carry, and project_id an error echoes. */
#define WS_ID_MAX 64

/* Characters (code points) of n bytes of UTF-8 (jansson's strings are valid UTF-8). */
static size_t utf8_chars(const char *s, size_t n)
{
	size_t chars = 0;
	for (size_t i = 0; i < n; i++)
		chars += ((unsigned char)s[i] & 0xc0u) != 0x80u; /* count the lead bytes */
	return chars;
}

static void ws_start_job_for(struct ws *w, struct job *j, const json_t *id)
{
	if (id)
		j->msg_id = json_copy((json_t *)id);
	ws_start_job(w, j);
}

static void ws_authenticate(struct ws *w, json_t *msg, const json_t *id)
{
	const char *token = json_string_value(json_object_get(msg, "token"));
	if (!token && w->authed) {
		ws_error(w, id, NULL, "validation_failed",
			 "an auth message needs a string \"token\"");
		return;
	}
	if (!token) {
		ws_close(w, 4001, "unauthenticated");
		return;
	}
	struct job *j = job_create(JOB_AUTH);
	j->token = arena_strdup(&j->arena, token);
	ws_start_job_for(w, j, id);
}

/* The project a message names, as the client wrote it, for its error (NULL: not a string). */
static const char *named_project(json_t *msg)
{
	return json_string_value(json_object_get(msg, "project_id"));
}

/* The same, to echo in an error: not when it is longer than any id (NULL then). */
static const char *echoed_project(json_t *msg)
{
	const char *p = named_project(msg);
	return p && utf8_chars(p, strlen(p)) <= WS_ID_MAX ? p : NULL;
}

static void ws_subscribe(struct ws *w, json_t *msg, const json_t *id)
{
	struct hub *h = w->hub;
	const char *pid_in = named_project(msg);
	json_t *after = json_object_get(msg, "after");
	char pid[UUID_STR_LEN];
	if (!pid_in || !uuid_normalize(pid_in, pid)) {
		ws_error(w, id, echoed_project(msg), "validation_failed",
			 "project_id must be a project id");
		return;
	}
	if (after && !json_is_null(after) &&
	    (!json_is_integer(after) || json_integer_value(after) < 0)) {
		ws_error(w, id, pid, "validation_failed", "after must be null or a seq >= 0");
		return;
	}
	pthread_mutex_lock(&h->lock);
	bool existing = ws_sub_find(w, pid) != NULL;
	pthread_mutex_unlock(&h->lock);
	if (!existing && w->nsubs >= h->lim.max_subscriptions) {
		ws_error(w, id, pid, "too_many_subscriptions", "unsubscribe from a project first");
		return;
	}
	/* The same rule as REST (events_head: ACCESS_READ), on the worker. */
	struct job *j = job_create(JOB_SUBSCRIBE);
	memcpy(j->project_id, pid, UUID_STR_LEN);
	memcpy(j->user_id, w->user_id, UUID_STR_LEN);
	j->token = arena_strdup(&j->arena, w->tok.token ? w->tok.token : "");
	j->has_after = after && json_is_integer(after);
	j->after = j->has_after ? json_integer_value(after) : 0;
	ws_start_job_for(w, j, id);
}

static void ws_subscribed(struct ws *w, struct job *j)
{
	struct hub *h = w->hub;
	if (j->auth_rc < 0) {
		ws_token_refused(w, j->auth_rc);
		return;
	}
	if (j->rc < 0 && j->rc != -ERR_NOT_FOUND) {
		ws_error(w, j->msg_id, j->project_id, "unavailable",
			 "the service is temporarily unavailable; retry later");
		return;
	}
	if (j->rc < 0) {
		ws_error(w, j->msg_id, j->project_id, "not_found", "no such project");
		return;
	}
	if (j->has_after && j->after > j->seq) {
		/* A resume point past the head would never see the events before it, a removal
		 * among them (issue 14). */
		ws_reply(w, j->msg_id,
			 json_pack("{s:s, s:s, s:s, s:s, s:I}", "type", "error", "code",
				   "validation_failed", "message",
				   "after is beyond the project's last event", "project_id",
				   j->project_id, "seq", (json_int_t)j->seq));
		return;
	}
	/* Reply first: events with seq > after follow it, then live ones, from the log. Nothing
	 * can come between: the subscription exists from here on, on this thread. */
	ws_reply(w, j->msg_id,
		 json_pack("{s:s, s:s, s:I}", "type", "subscribed", "project_id", j->project_id,
			   "seq", (json_int_t)j->seq));
	pthread_mutex_lock(&h->lock);
	struct sub *s = ws_sub_find(w, j->project_id);
	if (s) {
		sub_detach(s);
	} else {
		s = xcalloc(1, sizeof(*s));
		s->kind = SUB_WS;
		s->owner = w;
		memcpy(s->user_id, w->user_id, UUID_STR_LEN);
		s->owner_next = w->subs;
		w->subs = s;
		w->nsubs++;
	}
	s->last = j->has_after ? j->after : j->seq;
	/* Behind the head: it catches up on pages of its own, at its own pace (fanout.c). */
	s->catching = s->last < j->seq;
	s->admitted = j->seq;
	sub_attach(h, s, j->project_id);
	pthread_mutex_unlock(&h->lock);
}

static void ws_unsubscribe(struct ws *w, json_t *msg, const json_t *id)
{
	const char *pid_in = named_project(msg);
	char pid[UUID_STR_LEN];
	if (!pid_in || !uuid_normalize(pid_in, pid)) {
		ws_error(w, id, echoed_project(msg), "validation_failed",
			 "project_id must be a project id");
		return;
	}
	pthread_mutex_lock(&w->hub->lock);
	struct sub *found = ws_sub_find(w, pid);
	if (found)
		ws_sub_remove(w, found);
	pthread_mutex_unlock(&w->hub->lock);
	if (!found) {
		ws_error(w, id, pid, "not_found", "not subscribed to this project");
		return;
	}
	ws_reply(w, id,
		 json_pack("{s:s, s:s, s:s}", "type", "unsubscribed", "project_id", pid, "reason",
			   "requested"));
}

/*
 * A message's optional `id`: a string of at most WS_ID_MAX characters or an integer. True
 * with *id NULL when there is none; false when it is there but not one of those.
 */
static bool message_id(json_t *msg, json_t **id)
{
	*id = json_object_get(msg, "id");
	if (!*id || json_is_integer(*id))
		return true;
	const char *s = json_string_value(*id);
	return s && utf8_chars(s, json_string_length(*id)) <= WS_ID_MAX;
}

static void ws_handle(struct ws *w, uint8_t opcode, const char *data, size_t len)
{
	if (w->closing || w->dead)
		return;
	if (opcode != WSLAY_TEXT_FRAME) {
		if (!w->authed)
			ws_close(w, 4001, "unauthenticated");
		else
			ws_error(w, NULL, NULL, "bad_request",
				 "only text frames carrying JSON are accepted");
		return;
	}
	json_t *msg = json_loadb(data, len, JSON_REJECT_DUPLICATES, NULL);
	const char *type = json_string_value(json_object_get(msg, "type"));
	json_t *id = NULL;
	bool id_ok = json_is_object(msg) && message_id(msg, &id);
	if (!w->authed) {
		if (type && !strcmp(type, "auth") && id_ok)
			ws_authenticate(w, msg, id);
		else
			ws_close(w, 4001, "unauthenticated");
	} else if (!msg || !json_is_object(msg)) {
		ws_error(w, NULL, NULL, "malformed_json", "a message must be a JSON object");
	} else if (!id_ok) {
		ws_error(w, NULL, echoed_project(msg), "validation_failed",
			 "id must be a string of at most 64 characters or an integer");
	} else if (!type) {
		ws_error(w, id, echoed_project(msg), "validation_failed",
			 "a message needs a string \"type\"");
	} else if (!strcmp(type, "subscribe")) {
		ws_subscribe(w, msg, id);
	} else if (!strcmp(type, "unsubscribe")) {
		ws_unsubscribe(w, msg, id);
	} else if (!strcmp(type, "ping")) {
		ws_reply(w, id, json_pack("{s:s}", "type", "pong"));
	} else if (!strcmp(type, "auth")) {
		ws_authenticate(w, msg, id); /* a new token before the current one expires */
	} else {
		ws_error(w, id, echoed_project(msg), "unknown_type", "unknown message type");
	}
	json_decref(msg);
}

/* Messages that waited for a job, in order, until one starts a job again. */
static void ws_run_stash(struct ws *w)
{
	while (w->stash && !w->job) {
		struct ws_msg *m = w->stash;
		w->stash = m->next;
		ws_handle(w, m->opcode, m->data, m->len);
		free(m);
	}
}

static void ws_stash_free(struct ws *w)
{
	while (w->stash) {
		struct ws_msg *m = w->stash;
		w->stash = m->next;
		free(m);
	}
}

/* ---- the connection's token (issue 14) ---- */

/* A revocation of the user handled since the token was checked (from checked_us on) found
 * no channel of this connection: check the token again now that it is in place. */
static void ws_revoked_since(struct ws *w, int64_t checked_us)
{
	struct hub *h = w->hub;
	pthread_mutex_lock(&h->lock);
	bool again = revoked_since(h, w->user_id, checked_us);
	pthread_mutex_unlock(&h->lock);
	if (again)
		fanout_user_revoked(h, w->user_id);
}

static void ws_token_set(struct ws *w, const char *token, int64_t exp_ms, int64_t checked_us)
{
	live_token_release(&w->tok);
	w->tok.token = xstrdup(token);
	w->tok.exp_ms = exp_ms;
	ws_revoked_since(w, checked_us);
}

void ws_token_refused(struct ws *w, int rc)
{
	if (rc == -ERR_UNAVAILABLE)
		ws_close(w, 1013, "try again later"); /* it could not be checked */
	else
		ws_close(w, 4001, live_token_reason(rc));
}

/* The answer to an auth message on an authenticated connection: a token of the same user
 * replaces the current one (and its expiry); anything else is refused and the connection
 * goes on with the token it has. */
static void ws_reauthenticated(struct ws *w, struct job *j)
{
	if (w->closing || w->dead)
		return;
	if (j->rc == 0 && strcmp(j->user_id, w->user_id) != 0) {
		ws_error(w, j->msg_id, NULL, "forbidden", "the token is another user's");
		return;
	}
	if (j->rc < 0) {
		ws_error(w, j->msg_id, NULL, error_code(-j->rc),
			 j->rc == -ERR_UNAVAILABLE ? "the token could not be checked; retry later"
						   : "the token is not valid");
		return;
	}
	ws_token_set(w, j->token, j->exp_ms, j->checked_us);
	ws_reply(w, j->msg_id,
		 json_pack("{s:s, s:s}", "type", "authenticated", "user_id", w->user_id));
}

void ws_job_done(struct hub *h, struct job *j)
{
	struct ws *w = j->ws;
	w->job = NULL;
	if (w->orphan) {
		free(w);
		job_free(j);
		return;
	}
	switch (j->kind) {
	case JOB_AUTH:
		if (w->authed)
			ws_reauthenticated(w, j);
		else if (j->rc == 0 && !w->closing && !w->dead) {
			memcpy(w->user_id, j->user_id, UUID_STR_LEN);
			w->authed = true;
			ws_token_set(w, j->token, j->exp_ms, j->checked_us);
			pthread_mutex_lock(&h->lock);
			if (!w->held_user)
				w->held_user = caps_take(h, w->user_id, NULL);
			pthread_mutex_unlock(&h->lock);
			if (!w->held_user) {
				ws_close(w, 1013, "too many connections for this user");
				break;
			}
			ws_reply(w, j->msg_id,
				 json_pack("{s:s, s:s}", "type", "authenticated", "user_id",
					   j->user_id));
		} else if (!w->closing && !w->dead) {
			/* token_expired: refresh and send auth again; unauthenticated: log in
			 * again; 1013: it could not be checked now */
			ws_token_refused(w, j->rc);
		}
		break;
	case JOB_SUBSCRIBE:
		if (!w->closing && !w->dead)
			ws_subscribed(w, j);
		break;
	case JOB_FETCH:
	case JOB_RECHECK:
		break;
	}
	job_free(j);
	ws_run_stash(w);
	ws_pump(h, w);
}

/* ---- wslay glue ---- */

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
		ws_input_track(&w->in, buf, n);
		return (ssize_t)n;
	}
	if (w->rx_budget == 0 || w->job || ws_queued(w) >= w->hub->lim.max_queue) {
		/* Enough of this peer for one turn: wslay_event_recv would otherwise read a fast
		 * sender for ever while every other connection starves. The socket stays readable
		 * (epoll is level-triggered), so the rest comes on the next turn. With a job out,
		 * the rest waits for its result. With a full outgoing queue, the rest waits until
		 * the peer takes it: every PING read would queue one more PONG (ws_pump). */
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
	ws_input_track(&w->in, buf, (size_t)r);
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
	if (w->closing) /* a peer that takes its backlog gets the close frame behind it */
		w->close_deadline_ms = time_now_ms() + CLOSE_GRACE_MS;
	return r;
}

static int ws_genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user)
{
	(void)ctx;
	(void)user;
	memset(buf, 0, len); /* servers do not mask */
	return 0;
}

/*
 * The connection's message budget, a token bucket: msg_rate messages a second, msg_burst at
 * once. A message past it is not handled: the first one is answered with an error
 * rate_limited, and a client that goes on sending msg_burst more before the budget lets one
 * through is closed with 1008 (policy violation). Tokens are counted in thousandths.
 */
static bool ws_within_budget(struct ws *w)
{
	const struct hub_limits *l = &w->hub->lim;
	if (l->msg_rate <= 0)
		return true;
	int64_t now = time_now_ms(), cap = (int64_t)l->msg_burst * 1000;
	if (now > w->tokens_ms) {
		int64_t gained = (now - w->tokens_ms) * l->msg_rate;
		w->tokens = gained >= cap - w->tokens ? cap : w->tokens + gained;
		w->tokens_ms = now;
	}
	if (w->tokens >= 1000) {
		w->tokens -= 1000;
		w->over = 0;
		return true;
	}
	if (w->closing || w->dead || w->rate_closed)
		return false;
	if (w->over++ == 0) {
		ws_error(w, NULL, NULL, "rate_limited", "too many messages; slow down");
	} else if (w->over > l->msg_burst) {
		/* Closed once what is queued (the error, typically) is sent: wslay would send the
		 * close frame ahead of it (ws_pump). */
		log_json(LOG_INFO, "websocket closed for its message rate",
			 json_pack("{s:s}", "user_id", w->user_id));
		w->rate_closed = true;
	}
	return false;
}

static void ws_on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
		      void *user)
{
	struct ws *w = user;
	(void)ctx;
	if (arg->opcode >= 0x8)
		return; /* control frames: wslay answers pings and closes itself */
	if (!ws_within_budget(w))
		return;
	if (w->job || w->stash) {
		/* wslay parses every frame it has buffered in one go: keep the message until the
		 * job out is answered (ws_job_done). Bounded by one turn's read budget. */
		struct ws_msg *m = xmalloc(sizeof(*m) + arg->msg_length);
		m->next = NULL;
		m->len = arg->msg_length;
		m->opcode = arg->opcode;
		if (arg->msg_length) /* an empty message comes with msg NULL */
			memcpy(m->data, arg->msg, arg->msg_length);
		struct ws_msg **pp = &w->stash;
		while (*pp)
			pp = &(*pp)->next;
		*pp = m;
		return;
	}
	ws_handle(w, arg->opcode, (const char *)arg->msg, arg->msg_length);
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
 * nothing queued or half sent, no close begun, no paused delivery, no job out. */
static bool ws_at_rest(const struct ws *w)
{
	return w->ctx && !w->closing && !w->dead && !w->rate_closed && !w->ticket_closed &&
	       !w->full_since_ms && !w->extra && !w->job && !w->stash && ws_input_at_rest(&w->in) &&
	       wslay_event_want_read(w->ctx) && !wslay_event_want_write(w->ctx) &&
	       wslay_event_get_queued_msg_count(w->ctx) == 0 &&
	       !wslay_event_get_close_received(w->ctx) && !wslay_event_get_close_sent(w->ctx);
}

/* ---- lifecycle ---- */

void ws_destroy(struct hub *h, struct ws *w)
{
	pthread_mutex_lock(&h->lock);
	while (w->subs) {
		struct sub *s = w->subs;
		w->subs = s->owner_next;
		sub_detach(s);
		free(s);
	}
	caps_put(h, w->held_user ? w->user_id : NULL, w->held_ip ? w->ip : NULL);
	w->held_user = w->held_ip = false;
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
	w->ctx = NULL;
	live_token_release(&w->tok);
	close(w->fd);
	h->nsockets--;
	free(w->extra);
	ws_stash_free(w);
	if (w->job)
		w->orphan = true; /* the job's result frees it (ws_job_done) */
	else
		free(w);
}

/* Flush what wslay queued and watch for what the connection waits for. */
void ws_pump(struct hub *h, struct ws *w)
{
	if (!w->dead && w->ctx && wslay_event_want_write(w->ctx) && wslay_event_send(w->ctx) != 0)
		w->dead = true;
	if (!w->dead && w->ctx && !wslay_event_want_read(w->ctx) && !wslay_event_want_write(w->ctx))
		w->dead = true; /* both directions closed */
	if (w->dead) {
		ws_destroy(h, w);
		return;
	}
	if (w->rate_closed && !w->closing && w->ctx &&
	    wslay_event_get_queued_msg_count(w->ctx) == 0)
		ws_close(w, 1008, "message rate exceeded");
	if (w->ticket_closed && !w->closing && w->ctx &&
	    wslay_event_get_queued_msg_count(w->ctx) == 0)
		ws_close(w, 4001, "unauthenticated");
	if (w->full_since_ms && ws_queued(w) < h->lim.max_queue / 2) {
		/* Resume: it fell behind while paused, so it catches up on pages of its own
		 * from the log rather than hold back the live reads of its topics. */
		w->full_since_ms = 0;
		w->catchup_wait = false;
		pthread_mutex_lock(&h->lock);
		for (struct sub *s = w->subs; s; s = s->owner_next)
			if (s->topic) {
				s->catching = true;
				s->topic->catchup_dirty = true;
			}
		pthread_mutex_unlock(&h->lock);
	} else if (w->catchup_wait && ws_queued(w) < catchup_low_water(h)) {
		w->catchup_wait = false; /* it took the last page: the next one */
		pthread_mutex_lock(&h->lock);
		for (struct sub *s = w->subs; s; s = s->owner_next)
			if (s->topic && s->catching)
				s->topic->catchup_dirty = true;
		pthread_mutex_unlock(&h->lock);
	}
	/* A peer that does not take what is queued for it is not read either (its PINGs would
	 * queue PONGs without bound): it has a ping interval to take half of it, or 4008. */
	bool full = ws_queued(w) >= h->lim.max_queue;
	if (full && !w->full_since_ms)
		w->full_since_ms = time_now_ms();
	/* With a job out, input waits (level-triggered epoll would report it every turn). */
	uint32_t want = (w->job || full ? 0 : EPOLLIN | EPOLLRDHUP) |
			(w->ctx && wslay_event_want_write(w->ctx) ? EPOLLOUT : 0);
	if (want != w->events) {
		struct epoll_event ev = {.events = want, .data.ptr = w};
		epoll_ctl(h->epfd, EPOLL_CTL_MOD, w->fd, &ev);
		w->events = want;
	}
}

void ws_on_ready(struct hub *h, struct ws *w, uint32_t events)
{
	w->rx_budget = WS_RX_BUDGET;
	if (w->job) {
		if (events & (EPOLLERR | EPOLLHUP))
			w->dead = true; /* gone; the job's result finds an orphan */
	} else if (events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)) {
		if (ws_ctx(w) && wslay_event_recv(w->ctx) != 0) {
			/* The close wslay queued for a broken frame, if any */
			wslay_event_send(w->ctx);
			w->dead = true;
		}
	}
	ws_pump(h, w);
}

void ws_adopt(struct hub *h, struct adopt *ad)
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
		w->tok = ad->tok; /* moved */
		ad->tok.token = NULL;
	}
	memcpy(w->ip, ad->ip, CAP_KEY_LEN);
	w->tokens = (int64_t)h->lim.msg_burst * 1000;
	w->tokens_ms = w->opened_ms;
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
	else {
		/* The upgrade was within the caps (hub_ws_admissible); others may have come first.
		 */
		pthread_mutex_lock(&h->lock);
		bool ok = caps_take(h, w->authed ? w->user_id : NULL, w->ip);
		pthread_mutex_unlock(&h->lock);
		w->held_user = ok && w->authed;
		w->held_ip = ok;
		if (!ok)
			ws_close(w, 1013, "too many connections");
		else if (w->authed)
			ws_revoked_since(w, ad->checked_us);
	}
	if (ad->ticket_refused && !w->closing) {
		/* The upgrade's ?ticket= was refused: say why, then close as for a bad token. */
		ws_error(w, NULL, NULL, "ticket_invalid",
			 "the stream ticket is not valid (unknown, already used or expired): get a "
			 "new one with POST /v1/realtime/tickets");
		w->ticket_closed = true; /* 4001 once the error is sent (ws_pump) */
	}
	w->rx_budget = WS_RX_BUDGET;
	if (w->extra && ws_ctx(w) && wslay_event_recv(w->ctx) != 0) {
		wslay_event_send(w->ctx); /* the close wslay queued for a broken frame, if any */
		w->dead = true;
	}
	ws_pump(h, w);
}

void ws_timers(struct hub *h, int64_t now)
{
	for (struct ws *w = h->sockets, *next; w; w = next) {
		next = w->next;
		if (w->closing && now > w->close_deadline_ms)
			w->dead = true;
		else if (!w->authed && now - w->opened_ms > (int64_t)h->lim.auth_timeout_s * 1000)
			ws_close(w, 4001, "authentication timeout");
		else if (w->authed && w->tok.exp_ms && now >= w->tok.exp_ms && !w->closing)
			ws_close(w, 4001, "token_expired"); /* no new auth message came in time */
		else if (w->full_since_ms && !w->closing &&
			 now - w->full_since_ms > (int64_t)h->lim.ping_interval_s * 1000) {
			/* It took not even half its queue in a ping interval (our pings are stuck
			 * behind the backlog too): it resumes with its last seq. */
			log_json(LOG_INFO, "websocket closed as a slow consumer",
				 json_pack("{s:s, s:s}", "user_id", w->user_id, "cause",
					   "queue not taken"));
			ws_close(w, 4008, "slow consumer");
		} else if (!w->job && now - w->last_rx_ms > (int64_t)h->lim.idle_timeout_s * 1000)
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
}
