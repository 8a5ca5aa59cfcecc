/*
 * sse.c — Server-Sent Event streams (GET /v1/projects/{id}/events/stream). A stream is a
 * subscription whose output is a buffer that libmicrohttpd drains through hub_stream_read; an
 * empty buffer parks the request (http_suspend) until the hub appends to it.
 *
 * Threads: hub_stream_open/read/release run on libmicrohttpd's threads, delivery and
 * heartbeats on the hub thread; all of it under hub->lock. A stream that stops reading is
 * ended once its buffer reaches max_queue: the client reconnects with Last-Event-ID.
 */
#include "core/log.h"
#include "core/timeutil.h"
#include "core/xalloc.h"
#include "http/request.h"
#include "realtime/hub_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

void sse_deliver(struct hub *h, struct hub_stream *st, const struct fetched *e)
{
	char head[96];
	int m =
	    snprintf(head, sizeof(head), "id: %lld\nevent: %s\ndata: ", (long long)e->seq, e->type);
	stream_append(st, head, (size_t)m);
	stream_append(st, e->json, e->len);
	stream_append(st, "\n\n", 2);
	stream_wake(st);
	if (st->len - st->off >= h->lim.max_queue) {
		/* A stream that does not read: end it rather than buffer without bound. The
		 * client reconnects with Last-Event-ID and resumes from the log. */
		log_json(LOG_INFO, "sse stream ended: its reader fell behind",
			 json_pack("{s:s, s:I}", "project_id", st->sub.topic->id, "seq",
				   (json_int_t)e->seq));
		st->ended = true;
		sub_detach(&st->sub);
	}
}

void sse_end(struct hub_stream *st, const char *event_json)
{
	if (event_json) {
		char *frame = xasprintf("event: unsubscribed\ndata: %s\n\n", event_json);
		stream_append(st, frame, strlen(frame));
		free(frame);
	}
	st->ended = true;
	sub_detach(&st->sub);
	stream_wake(st);
}

void sse_heartbeats(struct hub *h, int64_t now)
{
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
}

void sse_expire(struct hub *h, int64_t now)
{
	for (int b = 0; b < TOPIC_BUCKETS; b++)
		for (struct topic *t = h->topics[b]; t; t = t->next) {
			struct sub *s = t->subs;
			while (s) {
				struct sub *next = s->next; /* sub_end unlinks s */
				struct hub_stream *st = s->owner;
				if (s->kind == SUB_SSE && st->tok.exp_ms && now >= st->tok.exp_ms)
					sub_end(h, s, "token_expired");
				s = next;
			}
		}
}

void sse_end_all(struct hub *h)
{
	for (int b = 0; b < TOPIC_BUCKETS; b++)
		for (struct topic *t = h->topics[b]; t; t = t->next)
			for (struct sub *s = t->subs; s; s = s->next)
				if (s->kind == SUB_SSE) {
					struct hub_stream *st = s->owner;
					st->ended = true;
					stream_wake(st);
				}
}

struct hub_stream *hub_stream_open(struct hub *h, const char *project_id, const struct hub_who *who,
				   const char *ip, int64_t after, int64_t admitted)
{
	struct hub_stream *st = xcalloc(1, sizeof(*st));
	st->hub = h;
	st->sub.kind = SUB_SSE;
	st->sub.owner = st;
	st->sub.last = after;
	st->sub.catching = true; /* its first read tells whether it is behind (fanout.c) */
	st->sub.admitted = admitted;
	snprintf(st->sub.user_id, sizeof(st->sub.user_id), "%s", who->user_id);
	snprintf(st->ip, sizeof(st->ip), "%s", ip ? ip : "");
	st->tok.token = xstrdup(who->token);
	st->tok.exp_ms = who->exp_ms;
	st->last_beat_ms = time_now_ms();
	stream_append(st, ": tandem event stream\nretry: 2000\n\n", 35);
	pthread_mutex_lock(&h->lock);
	if (atomic_load(&h->draining)) {
		st->ended = true;
	} else if (!caps_take(h, st->sub.user_id, st->ip)) {
		pthread_mutex_unlock(&h->lock);
		live_token_release(&st->tok);
		free(st->buf);
		free(st);
		return NULL;
	} else {
		st->held = true;
		sub_attach(h, &st->sub, project_id);
		st->subscribed = true;
		st->recheck = revoked_since(h, who->user_id, who->checked_us);
	}
	pthread_mutex_unlock(&h->lock);
	hub_wake(h);
	return st;
}

bool hub_stream_recheck(const struct hub_stream *st)
{
	return st->recheck; /* set once, before the stream was handed out */
}

long hub_stream_read(void *stream, struct request *req, char *buf, size_t max)
{
	struct hub_stream *st = stream;
	struct hub *h = st->hub;
	long n = 0;
	bool wake = false;
	pthread_mutex_lock(&h->lock);
	st->req = req;
	if (st->off < st->len) {
		size_t avail = st->len - st->off;
		n = (long)(avail < max ? avail : max);
		memcpy(buf, st->buf + st->off, (size_t)n);
		st->off += (size_t)n;
		if (st->off == st->len)
			st->off = st->len = 0;
		if (st->catchup_wait && st->len - st->off < catchup_low_water(h) && st->sub.topic) {
			st->catchup_wait = false; /* it took the last catch-up page: the next one */
			st->sub.topic->catchup_dirty = true;
			wake = true;
		}
	} else if (st->ended) {
		n = -1;
	} else {
		/* Nothing to send: park until the hub has something (or a heartbeat is due). */
		http_suspend(req);
		st->parked = true;
	}
	pthread_mutex_unlock(&h->lock);
	if (wake)
		hub_wake(h);
	return n;
}

void hub_stream_release(void *stream)
{
	struct hub_stream *st = stream;
	struct hub *h = st->hub;
	pthread_mutex_lock(&h->lock);
	sub_detach(&st->sub);
	if (st->held)
		caps_put(h, st->sub.user_id, st->ip);
	pthread_mutex_unlock(&h->lock);
	live_token_release(&st->tok);
	free(st->buf);
	free(st);
}
