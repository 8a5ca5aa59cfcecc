/*
 * hub.c — the hub's loop: its thread, the epoll set (every WebSocket and the inbox's eventfd),
 * the inbox (adopted connections, notes from the bus, results of the worker's jobs), the
 * timers (WebSocket pings and deadlines, SSE heartbeats, long-poll deadlines, the periodic
 * sweep) and start-up and shutdown. The other files of src/realtime/ do the work; see
 * hub_internal.h for the split, the locking and the ordering rules.
 *
 * Threads: hub_main is the hub thread and never waits on the database or a token check (the
 * worker does those). hub_notify and hub_adopt_websocket are called from other threads and
 * only append to the inbox under hub->lock, then write the eventfd.
 */
#include "core/error.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "core/xalloc.h"
#include "http/request.h"
#include "realtime/hub_internal.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

void hub_wake(struct hub *h)
{
	uint64_t one = 1;
	ssize_t n = write(h->evfd, &one, sizeof(one));
	(void)n;
}

/* ---- caps on live channels ---- */

/* The count of `key`, created (at 0) if asked; NULL when it has none. */
static struct cap **cap_slot(struct hub *h, const char *key)
{
	unsigned x = 2166136261u;
	for (const char *p = key; *p; p++)
		x = (x ^ (unsigned char)*p) * 16777619u;
	struct cap **pp = &h->caps[x % CAP_BUCKETS];
	while (*pp && strcmp((*pp)->key, key) != 0)
		pp = &(*pp)->next;
	return pp;
}

static int cap_count(struct hub *h, const char *key)
{
	struct cap *c = *cap_slot(h, key);
	return c ? c->n : 0;
}

static void cap_add(struct hub *h, const char *key, int delta)
{
	struct cap **pp = cap_slot(h, key);
	if (!*pp) {
		assert(delta > 0);
		size_t n = strlen(key) + 1;
		*pp = xcalloc(1, sizeof(**pp) + n);
		memcpy((*pp)->key, key, n);
	}
	(*pp)->n += delta;
	if ((*pp)->n <= 0) { /* entries live only while counted: bounded by open channels */
		struct cap *c = *pp;
		*pp = c->next;
		free(c);
	}
}

bool caps_take(struct hub *h, const char *user_id, const char *ip)
{
	char ukey[UUID_STR_LEN + 2], ikey[CAP_KEY_LEN + 2];
	bool user = user_id && *user_id && h->lim.max_per_user > 0;
	bool addr = ip && *ip && h->lim.max_per_ip > 0;
	snprintf(ukey, sizeof(ukey), "u:%s", user ? user_id : "");
	snprintf(ikey, sizeof(ikey), "i:%s", addr ? ip : "");
	if ((user && cap_count(h, ukey) >= h->lim.max_per_user) ||
	    (addr && cap_count(h, ikey) >= h->lim.max_per_ip))
		return false;
	if (user)
		cap_add(h, ukey, 1);
	if (addr)
		cap_add(h, ikey, 1);
	return true;
}

void caps_put(struct hub *h, const char *user_id, const char *ip)
{
	char key[CAP_KEY_LEN + UUID_STR_LEN + 2];
	if (user_id && *user_id && h->lim.max_per_user > 0) {
		snprintf(key, sizeof(key), "u:%s", user_id);
		cap_add(h, key, -1);
	}
	if (ip && *ip && h->lim.max_per_ip > 0) {
		snprintf(key, sizeof(key), "i:%s", ip);
		cap_add(h, key, -1);
	}
}

bool hub_ws_admissible(struct hub *h, const char *user_id, const char *ip)
{
	pthread_mutex_lock(&h->lock);
	bool ok = caps_take(h, user_id, ip);
	if (ok)
		caps_put(h, user_id, ip);
	pthread_mutex_unlock(&h->lock);
	return ok;
}

/* ---- timers ---- */

static void timers(struct hub *h, int64_t now)
{
	ws_timers(h, now);
	pthread_mutex_lock(&h->lock);
	poll_expire(h, now);
	sse_expire(h, now);
	sse_heartbeats(h, now);
	if (now - h->last_sweep_ms >= SWEEP_INTERVAL_MS) {
		/* Catch up even when no notification came (lost pub/sub message, Redis down). */
		h->last_sweep_ms = now;
		topics_mark_dirty(h);
		topics_prune(h);
	}
	pthread_mutex_unlock(&h->lock);
}

/* ---- the inbox ---- */

static void job_done(struct hub *h, struct job *j)
{
	if (j->kind == JOB_FETCH) {
		fanout_fetched(h, j);
		job_free(j);
	} else if (j->kind == JOB_RECHECK) {
		fanout_rechecked(h, j);
		job_free(j);
	} else {
		ws_job_done(h, j); /* frees j */
	}
}

static void process_inbox(struct hub *h)
{
	pthread_mutex_lock(&h->lock);
	struct note *notes = h->notes;
	struct adopt *adopts = h->adopts;
	struct job *done = h->done;
	bool resync = h->resync_all;
	h->notes = NULL;
	h->notes_tail = &h->notes;
	h->adopts = NULL;
	h->adopts_tail = &h->adopts;
	h->done = NULL;
	h->done_tail = &h->done;
	h->resync_all = false;
	if (resync)
		topics_mark_dirty(h);
	pthread_mutex_unlock(&h->lock);

	while (adopts) {
		struct adopt *next = adopts->next;
		ws_adopt(h, adopts);
		free(adopts);
		adopts = next;
	}
	while (done) {
		struct job *next = done->next;
		job_done(h, done);
		done = next;
	}
	while (notes) {
		struct note *next = notes->next;
		fanout_note(h, notes);
		free(notes);
		notes = next;
	}
}

/* ---- the thread ---- */

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
			ws_on_ready(h, evs[i].data.ptr, evs[i].events);
		}
		process_inbox(h);
		if (atomic_load(&h->draining) && !drain_started) {
			drain_started = true;
			drain_deadline = time_now_ms() + DRAIN_FLUSH_MS;
			for (struct ws *w = h->sockets; w; w = w->next)
				ws_close(w, 1001, "server shutting down");
		}
		fanout_post_dirty(h);
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
	h->notes_tail = &h->notes;
	h->adopts_tail = &h->adopts;
	h->done_tail = &h->done;
	h->max_sockets = lim->max_sockets;
	if (h->max_sockets <= 0) {
		/* Half of the descriptors, the rest for HTTP connections and the process. */
		struct rlimit rl;
		rlim_t half = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur / 2 : 32768;
		h->max_sockets = half > 1000000 ? 1000000 : (int)half;
	}
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->drained_cond, NULL);
	pthread_mutex_init(&h->worker.lock, NULL);
	pthread_cond_init(&h->worker.cond, NULL);
	h->worker.tail = &h->worker.queue;
	h->worker.ctail = &h->worker.cqueue;
	h->epfd = epoll_create1(EPOLL_CLOEXEC);
	h->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
	epoll_ctl(h->epfd, EPOLL_CTL_ADD, h->evfd, &ev);
	return h;
}

int hub_start(struct hub *h)
{
	worker_start(h);
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
	poll_wake_all(h);
	sse_end_all(h);
	pthread_mutex_unlock(&h->lock);
	hub_wake(h);
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
	hub_wake(h);
	if (h->started)
		pthread_join(h->thread, NULL);
	/* The hub thread is gone and every socket destroyed: results left (and those of jobs
	 * never started) only free their jobs and the connections orphaned by them. */
	worker_stop(h);
	while (h->done) {
		struct job *j = h->done;
		h->done = j->next;
		if (j->kind == JOB_AUTH || j->kind == JOB_SUBSCRIBE) {
			assert(j->ws->orphan);
			free(j->ws);
		}
		job_free(j);
	}
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
		live_token_release(&a->tok);
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
	for (int b = 0; b < CAP_BUCKETS; b++)
		while (h->caps[b]) {
			struct cap *c = h->caps[b];
			h->caps[b] = c->next;
			free(c);
		}
	close(h->epfd);
	close(h->evfd);
	pthread_mutex_destroy(&h->lock);
	pthread_cond_destroy(&h->drained_cond);
	pthread_mutex_destroy(&h->worker.lock);
	pthread_cond_destroy(&h->worker.cond);
	free(h);
}

void hub_notify(struct hub *h, const char *project_id, int64_t seq, enum event_note kind)
{
	if (!h)
		return;
	bool queued = true;
	pthread_mutex_lock(&h->lock);
	if (kind == EVENT_NOTE_RESYNC) {
		h->resync_all = true;
	} else if (kind == EVENT_NOTE_USER_REVOKED) {
		/* Never dropped, whoever listens (the hub knows which channels are the user's);
		 * one pending note per user is enough. */
		bool pending = false;
		for (struct note *n = h->notes; n && !pending; n = n->next)
			pending = n->kind == kind && !strcmp(n->project_id, project_id);
		if (!pending) {
			struct note *n = xcalloc(1, sizeof(*n));
			snprintf(n->project_id, sizeof(n->project_id), "%s", project_id);
			n->kind = kind;
			*h->notes_tail = n;
			h->notes_tail = &n->next;
		}
	} else if (kind == EVENT_NOTE_PROJECT_DELETED || topic_get(h, project_id, false)) {
		struct note *n = xcalloc(1, sizeof(*n));
		snprintf(n->project_id, sizeof(n->project_id), "%s", project_id);
		n->seq = seq;
		n->kind = kind;
		*h->notes_tail = n;
		h->notes_tail = &n->next;
	} else {
		queued = false;
	}
	pthread_mutex_unlock(&h->lock);
	/* Nobody listens to most projects: a note for one of them costs a lookup, and the hub
	 * thread is not woken (a write would otherwise wake it once per commit for nothing). */
	if (queued)
		hub_wake(h);
}

void hub_adopt_websocket(struct hub *h, int fd, const char *extra, size_t extra_len, void *handle,
			 const struct hub_who *who, const char *ip)
{
	struct adopt *a = xcalloc(1, sizeof(*a));
	if (extra_len) {
		a->extra = xmalloc(extra_len);
		memcpy(a->extra, extra, extra_len); /* `extra` is in libmicrohttpd's pool */
		a->extra_len = extra_len;
	}
	if (who && who->ticket_refused) {
		a->ticket_refused = true;
	} else if (who) { /* copied now: the request (and its headers) go with the connection
			     below */
		snprintf(a->user_id, sizeof(a->user_id), "%s", who->user_id);
		a->tok.token = xstrdup(who->token);
		a->tok.exp_ms = who->exp_ms;
		a->checked_us = who->checked_us;
	}
	if (ip)
		snprintf(a->ip, sizeof(a->ip), "%s", ip);
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
		live_token_release(&a->tok);
		free(a);
		return;
	}
	pthread_mutex_lock(&h->lock);
	/* In arrival order: over the socket cap it is the newest WebSocket that is refused,
	 * never one admitted earlier. */
	*h->adopts_tail = a;
	h->adopts_tail = &a->next;
	pthread_mutex_unlock(&h->lock);
	hub_wake(h);
}
