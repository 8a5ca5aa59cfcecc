/*
 * longpoll.c — parked long polls (GET /v1/projects/{id}/events?wait=). A poll that found no
 * event is a one-shot subscription: the first event after its `after`, its deadline or
 * shutdown resumes the request, and the handler reads the feed again and answers.
 *
 * Threads: hub_park runs on libmicrohttpd's threads, waking on the hub thread (delivery,
 * timers) or in hub_drain; all of it under hub->lock. A waiter is freed when woken.
 */
#include "core/error.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "http/request.h"
#include "realtime/hub_internal.h"

#include <stdio.h>
#include <stdlib.h>

void poll_wake(struct hub *h, struct waiter *w)
{
	sub_detach(&w->sub);
	if (w->prev_all)
		w->prev_all->next_all = w->next_all;
	else
		h->waiters = w->next_all;
	if (w->next_all)
		w->next_all->prev_all = w->prev_all;
	if (w->held)
		caps_put(h, w->sub.user_id, w->ip);
	http_resume(w->req);
	free(w);
}

void poll_expire(struct hub *h, int64_t now)
{
	for (struct waiter *wt = h->waiters, *next; wt; wt = next) {
		next = wt->next_all;
		if (now >= wt->deadline_ms)
			poll_wake(h, wt);
	}
}

void poll_wake_all(struct hub *h)
{
	while (h->waiters)
		poll_wake(h, h->waiters);
}

int hub_park(struct hub *h, struct request *req, const char *project_id, const char *user_id,
	     const char *ip, int64_t after, int64_t deadline_ms, int64_t checked_us)
{
	pthread_mutex_lock(&h->lock);
	if (atomic_load(&h->draining)) {
		pthread_mutex_unlock(&h->lock);
		return HUB_PARK_DRAINING;
	}
	if (revoked_since(h, user_id, checked_us)) {
		pthread_mutex_unlock(&h->lock);
		return HUB_PARK_RECHECK;
	}
	if (!caps_take(h, user_id, ip)) {
		pthread_mutex_unlock(&h->lock);
		return HUB_PARK_LIMITED;
	}
	struct waiter *w = xcalloc(1, sizeof(*w));
	w->held = true;
	snprintf(w->sub.user_id, sizeof(w->sub.user_id), "%s", user_id ? user_id : "");
	snprintf(w->ip, sizeof(w->ip), "%s", ip ? ip : "");
	w->sub.kind = SUB_POLL;
	w->sub.owner = w;
	w->sub.last = after;
	w->sub.admitted = 0; /* any removal of its user wakes it: it reads the feed again */
	snprintf(w->sub.user_id, sizeof(w->sub.user_id), "%s", user_id);
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
	hub_wake(h);
	if (log_get_level() <= LOG_DEBUG) /* what tests wait on to know a poll is parked */
		log_json(
		    LOG_DEBUG, "long poll parked",
		    json_pack("{s:s, s:I}", "project_id", project_id, "after", (json_int_t)after));
	return HUB_PARKED;
}
