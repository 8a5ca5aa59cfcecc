/*
 * fanout.c — topics (one per project somebody listens to), their subscriptions, and delivery:
 * a dirty topic gets a catch-up job (worker.c reads the events through the events service),
 * and its result is handed to every subscriber that lacks it, whatever its kind (WebSocket,
 * SSE, long poll). See hub_internal.h for the ordering rules this keeps.
 *
 * Threads: the topic table and subscriptions are guarded by hub->lock (SSE and long polls
 * attach from libmicrohttpd's threads); posting jobs and applying their results happen on the
 * hub thread, which alone reads and writes topic->fetching.
 */
#include "core/error.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "core/xalloc.h"
#include "realtime/hub_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned bucket(const char *id)
{
	unsigned x = 2166136261u;
	for (; *id; id++)
		x = (x ^ (unsigned char)*id) * 16777619u;
	return x % TOPIC_BUCKETS;
}

struct topic *topic_get(struct hub *h, const char *id, bool create)
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

void sub_attach(struct hub *h, struct sub *s, const char *project_id)
{
	struct topic *t = topic_get(h, project_id, true);
	s->topic = t;
	s->prev = NULL;
	s->next = t->subs;
	if (t->subs)
		t->subs->prev = s;
	t->subs = s;
	t->dirty = true;
	t->catchup_dirty = true;
}

void sub_detach(struct sub *s)
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

/* Free topics nobody listens to any more (a result for one finds no topic and is dropped). */
void topics_prune(struct hub *h)
{
	for (int b = 0; b < TOPIC_BUCKETS; b++) {
		struct topic **pp = &h->topics[b];
		while (*pp) {
			struct topic *t = *pp;
			if (!t->subs && !t->fetching && !t->catching_up) {
				*pp = t->next;
				free(t);
			} else {
				pp = &t->next;
			}
		}
	}
}

void topics_mark_dirty(struct hub *h)
{
	for (int b = 0; b < TOPIC_BUCKETS; b++)
		for (struct topic *t = h->topics[b]; t; t = t->next)
			t->dirty = t->catchup_dirty = true;
}

void sub_end(struct hub *h, struct sub *s, const char *reason)
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
		char *text = json_dumps(msg, JSON_COMPACT);
		json_decref(msg);
		sse_end(s->owner, text);
		free(text);
		return;
	}
	case SUB_POLL:
		json_decref(msg);
		poll_wake(h, s->owner);
		return;
	}
}

static bool sub_paused(const struct sub *s)
{
	return s->kind == SUB_WS && ((const struct ws *)s->owner)->full_since_ms != 0;
}

size_t catchup_low_water(const struct hub *h)
{
	return h->lim.max_queue / 2 < CATCHUP_LOW_WATER ? h->lim.max_queue / 2 : CATCHUP_LOW_WATER;
}

/* A catching-up subscriber gets its next page only once its client has taken most of the
 * last one: the client's own pace paces its catch-up (and it is told when to go on). */
static bool sub_ready(struct hub *h, struct sub *s)
{
	switch (s->kind) {
	case SUB_WS: {
		struct ws *w = s->owner;
		if (w->full_since_ms)
			return false; /* ws_pump marks it again when it resumes */
		if (ws_queued(w) >= catchup_low_water(h)) {
			w->catchup_wait = true;
			return false;
		}
		return true;
	}
	case SUB_SSE: {
		struct hub_stream *st = s->owner;
		if (st->len - st->off >= catchup_low_water(h)) {
			st->catchup_wait = true;
			return false;
		}
		return true;
	}
	case SUB_POLL:
		return true;
	}
	return true;
}

/*
 * A catching-up stream takes a page's events only while its queue is below the low water;
 * the rest of the page waits for its next read, asked for once the reader has taken the
 * queue down (sse.c). So a page of large events is fed at the reader's pace and never fills
 * the queue bound that ends a stream whose reader stopped reading (sse_deliver).
 */
static bool page_room(const struct hub *h, const struct sub *s)
{
	if (s->kind != SUB_SSE || !s->catching)
		return true;
	const struct hub_stream *st = s->owner;
	return st->len - st->off < catchup_low_water(h);
}

static void deliver(struct hub *h, struct sub *s, struct fetched *e)
{
	s->last = e->seq;
	switch (s->kind) {
	case SUB_WS: {
		struct ws *w = s->owner;
		if (!e->ws) {
			static const char head[] = "{\"type\":\"event\",\"event\":";
			e->ws_len = sizeof(head) - 1 + e->len + 1;
			e->ws = xmalloc(e->ws_len + 1);
			memcpy(e->ws, head, sizeof(head) - 1);
			memcpy(e->ws + sizeof(head) - 1, e->json, e->len);
			memcpy(e->ws + sizeof(head) - 1 + e->len, "}", 2);
		}
		ws_send_text(w, e->ws, e->ws_len);
		/* A full queue pauses delivery (the log keeps the rest) until the client has taken
		 * half of it (ws_pump); one that takes nothing is closed by the timers. */
		if (!w->full_since_ms && ws_queued(w) >= h->lim.max_queue)
			w->full_since_ms = time_now_ms();
		break;
	}
	case SUB_SSE: {
		struct hub_stream *st = s->owner;
		sse_deliver(h, st, e);
		if (st->ended)
			return; /* detached: it stopped reading */
		break;
	}
	case SUB_POLL:
		poll_wake(h, s->owner);
		return;
	}
}

/*
 * member.removed of a user ends every subscription of that user on the topic that was
 * admitted before it, whatever its position: one that has seen less gets no more events of
 * the project, one that claims to have seen more (or is paused, or waits for a read of its
 * own) ends all the same. A subscription admitted after the removal (the user came back)
 * stays. Every removal is read by some catch-up: the lowest `last` of the topic is at most
 * the head when its subscriber was admitted.
 */
static void removal(struct hub *h, struct topic *t, const struct fetched *e)
{
	struct sub *s = t->subs;
	while (s) {
		struct sub *next = s->next; /* sub_end unlinks s */
		if (s->admitted < e->seq && !strcmp(e->removed_user, s->user_id))
			sub_end(h, s, "membership_removed");
		s = next;
	}
}

static void project_deleted(struct hub *h, const char *project_id)
{
	pthread_mutex_lock(&h->lock);
	struct topic *t = topic_get(h, project_id, false);
	while (t && t->subs)
		sub_end(h, t->subs, "project_deleted");
	pthread_mutex_unlock(&h->lock);
}

void fanout_note(struct hub *h, const struct note *n)
{
	if (n->kind == EVENT_NOTE_USER_REVOKED) {
		pthread_mutex_lock(&h->lock);
		unsigned i = (unsigned)(h->nrevoked++ % REVOKED_RECENT);
		snprintf(h->revoked[i].user_id, UUID_STR_LEN, "%s", n->project_id);
		h->revoked[i].at_us = time_mono_us();
		pthread_mutex_unlock(&h->lock);
		fanout_user_revoked(h, n->project_id);
		return;
	}
	if (n->kind == EVENT_NOTE_PROJECT_DELETED) {
		project_deleted(h, n->project_id);
		return;
	}
	pthread_mutex_lock(&h->lock);
	struct topic *t = topic_get(h, n->project_id, false);
	if (t && !t->dirty) {
		/* The note says how far the log goes: when every subscriber has that already (it
		 * came from an earlier read, or this instance's own note arrived again through
		 * Redis), there is nothing to read. */
		bool behind = n->seq <= 0 || n->seq > t->seen;
		for (struct sub *s = t->subs; s && !behind; s = s->next)
			behind = !s->catching && s->last < n->seq;
		t->dirty = behind;
	}
	pthread_mutex_unlock(&h->lock);
}

static struct job *fetch_job(struct topic *t, int64_t from, bool catchup, struct job *next)
{
	struct job *j = job_create(JOB_FETCH);
	memcpy(j->project_id, t->id, UUID_STR_LEN);
	j->after = from;
	j->catchup = catchup;
	j->next = next;
	return j;
}

void fanout_post_dirty(struct hub *h)
{
	struct job *jobs = NULL;
	pthread_mutex_lock(&h->lock);
	for (int b = 0; b < TOPIC_BUCKETS; b++)
		for (struct topic *t = h->topics[b]; t; t = t->next) {
			if (t->dirty && !t->fetching) {
				t->dirty = false;
				/* Live: after the lowest seq an up-to-date subscriber that can take
				 * events has seen. */
				int64_t from = INT64_MAX;
				for (struct sub *s = t->subs; s; s = s->next)
					if (s->last < from && !s->catching && !sub_paused(s))
						from = s->last;
				/*
				 * None (every subscriber catches up or is paused): read past what
				 * the topic has read all the same, so that a new event is read at
				 * once whatever the pace of the catch-ups; a member.removed among
				 * them ends its user's subscriptions now (removal), not when a
				 * catch-up reaches it. Only a removal after a subscriber's
				 * admission ends it: the read starts there at the earliest, not at
				 * a catching subscriber's position (a read from there would hand it
				 * the history at the speed of the log, not its client's, and reach
				 * the removal only after all of it).
				 */
				if (from == INT64_MAX && t->subs) {
					int64_t admitted = INT64_MAX;
					for (struct sub *s = t->subs; s; s = s->next)
						if (s->admitted < admitted)
							admitted = s->admitted;
					from = t->seen > admitted ? t->seen : admitted;
				}
				if (from != INT64_MAX) {
					jobs = fetch_job(t, from, false, jobs);
					t->fetching = true;
				}
			}
			if (t->catchup_dirty && !t->catching_up) {
				t->catchup_dirty = false;
				/* Catch-up: the next page for those whose clients took the last. */
				int64_t from = INT64_MAX;
				for (struct sub *s = t->subs; s; s = s->next)
					if (s->catching && s->last < from && sub_ready(h, s))
						from = s->last;
				if (from != INT64_MAX) {
					jobs = fetch_job(t, from, true, jobs);
					t->catching_up = true;
				}
			}
		}
	pthread_mutex_unlock(&h->lock);
	while (jobs) {
		struct job *next = jobs->next;
		worker_post(h, jobs);
		jobs = next;
	}
}

void fanout_fetched(struct hub *h, struct job *j)
{
	if (j->rc == -ERR_NOT_FOUND) {
		/* A deletion leaves no event behind: an instance that missed its pub/sub message
		 * finds out here, on the sweep. */
		pthread_mutex_lock(&h->lock);
		struct topic *t = topic_get(h, j->project_id, false);
		if (t && j->catchup)
			t->catching_up = false;
		else if (t)
			t->fetching = false;
		pthread_mutex_unlock(&h->lock);
		project_deleted(h, j->project_id);
		return;
	}
	if (j->rc < 0)
		log_json(LOG_WARN, "realtime catch-up failed",
			 json_pack("{s:s, s:s}", "project_id", j->project_id, "detail",
				   error_code(-j->rc)));
	pthread_mutex_lock(&h->lock);
	struct topic *t = topic_get(h, j->project_id, false);
	if (!t) {
		pthread_mutex_unlock(&h->lock);
		return;
	}
	if (j->catchup)
		t->catching_up = false;
	else
		t->fetching = false;
	for (int i = 0; i < j->nevents; i++) {
		struct fetched *e = &j->events[i];
		struct sub *s = t->subs;
		if (e->seq > t->seen)
			t->seen = e->seq;
		while (s) {
			struct sub *next = s->next; /* deliver may unlink s */
			/* The batch holds every event after j->after: a subscriber that has seen
			 * less than that waits for a read of its own (below), or it would skip
			 * some. A paused one reads them later, from the log. */
			if (s->last < e->seq && s->last >= j->after && !sub_paused(s)) {
				if (page_room(h, s))
					deliver(h, s, e);
				else /* the rest once its reader has taken the queue down */
					t->catchup_dirty = true;
			}
			s = next;
		}
		if (e->removed_user)
			removal(h, t, e);
		free(e->ws);
		e->ws = NULL;
	}
	/* More in the log (a full batch), a failed read, or subscribers this read could not
	 * serve: read again. A failed read waits for the next note or sweep instead. */
	if (j->rc == 0 && !j->catchup) {
		if (j->nevents == CATCHUP_BATCH)
			t->dirty = true;
		for (struct sub *s = t->subs; s && !t->dirty; s = s->next)
			if (s->last < j->after && !s->catching && !sub_paused(s))
				t->dirty = true;
	} else if (j->rc == 0) {
		/* A catching-up subscriber that got everything up to the end of the log (a page
		 * short of full) joins the live reads; the others want their next page. */
		int64_t end = j->nevents ? j->events[j->nevents - 1].seq : j->after;
		for (struct sub *s = t->subs; s; s = s->next) {
			if (!s->catching)
				continue;
			if (s->last >= end && j->nevents < CATCHUP_BATCH) {
				s->catching = false;
				t->dirty = true;
			} else {
				t->catchup_dirty = true;
			}
		}
	}
	pthread_mutex_unlock(&h->lock);
}

/* ---- the tokens of live channels ---- */

bool revoked_since(const struct hub *h, const char *user_id, int64_t since_us)
{
	uint64_t n = h->nrevoked < REVOKED_RECENT ? h->nrevoked : REVOKED_RECENT;
	for (uint64_t k = 0; k < n; k++) {
		unsigned i = (unsigned)((h->nrevoked - 1 - k) % REVOKED_RECENT);
		if (h->revoked[i].at_us < since_us)
			return false; /* newest first: the rest is older */
		if (!strcmp(h->revoked[i].user_id, user_id))
			return true;
	}
	/* Every entry is recent: older ones, overwritten, may have been too. */
	return h->nrevoked > REVOKED_RECENT;
}

void live_token_release(struct live_token *t)
{
	free(t->token);
	t->token = NULL;
	t->exp_ms = 0;
}

const char *live_token_reason(int rc)
{
	if (rc == -ERR_TOKEN_EXPIRED)
		return "token_expired";
	if (rc == -ERR_UNAVAILABLE)
		return "unavailable";
	return "unauthenticated";
}

static void add_token(struct job *j, int *cap, const char *token)
{
	if (!token)
		return;
	for (int i = 0; i < j->ntokens; i++)
		if (!strcmp(j->tokens[i], token))
			return;
	if (j->ntokens == *cap) {
		int ncap = *cap ? *cap * 2 : 8;
		const char **nt = arena_alloc(&j->arena, sizeof(*nt) * (size_t)ncap);
		if (j->ntokens)
			memcpy(nt, j->tokens, sizeof(*nt) * (size_t)j->ntokens);
		j->tokens = nt;
		*cap = ncap;
	}
	j->tokens[j->ntokens++] = arena_strdup(&j->arena, token);
}

void fanout_user_revoked(struct hub *h, const char *user_id)
{
	struct job *j = job_create(JOB_RECHECK);
	int cap = 0;
	snprintf(j->user_id, sizeof(j->user_id), "%s", user_id);
	for (struct ws *w = h->sockets; w; w = w->next)
		if (w->authed && !strcmp(w->user_id, user_id))
			add_token(j, &cap, w->tok.token);
	pthread_mutex_lock(&h->lock);
	for (int b = 0; b < TOPIC_BUCKETS; b++)
		for (struct topic *t = h->topics[b]; t; t = t->next) {
			struct sub *s = t->subs;
			while (s) {
				struct sub *next = s->next; /* poll_wake unlinks s */
				if (!strcmp(s->user_id, user_id)) {
					if (s->kind == SUB_SSE)
						add_token(
						    j, &cap,
						    ((struct hub_stream *)s->owner)->tok.token);
					else if (s->kind == SUB_POLL)
						poll_wake(h, s->owner); /* it checks on resuming */
				}
				s = next;
			}
		}
	pthread_mutex_unlock(&h->lock);
	if (!j->ntokens) {
		job_free(j);
		return;
	}
	j->rcs = arena_alloc(&j->arena, sizeof(*j->rcs) * (size_t)j->ntokens);
	for (int i = 0; i < j->ntokens; i++)
		j->rcs[i] = -ERR_UNAVAILABLE; /* what a job that never runs answers */
	worker_post(h, j);
}

static int refused(const struct job *j, const char *token)
{
	for (int i = 0; token && i < j->ntokens; i++)
		if (!strcmp(j->tokens[i], token))
			return j->rcs[i];
	return 0;
}

void fanout_rechecked(struct hub *h, struct job *j)
{
	int rc;
	/* A channel that moved to another token since (a WebSocket's re-auth) is not
	 * concerned: the check of that token is its own. */
	for (struct ws *w = h->sockets; w; w = w->next)
		if (w->authed && !strcmp(w->user_id, j->user_id) &&
		    (rc = refused(j, w->tok.token)) < 0)
			ws_token_refused(w, rc);
	pthread_mutex_lock(&h->lock);
	for (int b = 0; b < TOPIC_BUCKETS; b++)
		for (struct topic *t = h->topics[b]; t; t = t->next) {
			struct sub *s = t->subs;
			while (s) {
				struct sub *next = s->next; /* sub_end unlinks s */
				if (s->kind == SUB_SSE && !strcmp(s->user_id, j->user_id) &&
				    (rc = refused(j, ((struct hub_stream *)s->owner)->tok.token)) <
					0)
					sub_end(h, s, live_token_reason(rc));
				s = next;
			}
		}
	pthread_mutex_unlock(&h->lock);
}
