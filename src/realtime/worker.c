/*
 * worker.c — the hub's database work and token checks, off the hub thread. A few threads
 * (WORKER_THREADS) take jobs from a FIFO, call the services (auth_token_user, events_head,
 * events_after: the same rules as REST) and post each job back to the hub's inbox, where the
 * hub thread applies the result (websocket.c, fanout.c). So a slow database delays the answers
 * that need it, never the bytes of other sockets.
 *
 * Threads: worker_post is called on the hub thread; the queue has its own lock. A job belongs
 * to the worker from worker_post until it is back in hub->done, then to the hub thread, which
 * frees it. Each worker thread has its own store connection (store_conn is per thread).
 */
#include "core/error.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "core/xalloc.h"
#include "realtime/hub_internal.h"
#include "services/sessions.h"
#include "services/events.h"
#include "services/token.h"

#include <stdlib.h>
#include <string.h>

struct job *job_create(enum job_kind kind)
{
	struct job *j = xcalloc(1, sizeof(*j));
	j->kind = kind;
	arena_init(&j->arena);
	return j;
}

void job_free(struct job *j)
{
	if (!j)
		return;
	for (int i = 0; i < j->nevents; i++)
		free(j->events[i].ws);
	json_decref(j->msg_id);
	arena_release(&j->arena);
	free(j);
}

/* The token's user (the rule REST applies: auth_token_user) and its expiry. */
static int check_token(struct hub *h, struct arena *a, const char *token, char *user_id,
		       int64_t *exp_ms)
{
	struct error err = ERROR_INIT;
	struct access_claims claims;
	struct user u;
	int rc = auth_token_user(h->auth, h->store, a, token, &u, &err);
	if (rc == 0 && user_id)
		memcpy(user_id, u.id, UUID_STR_LEN);
	/* Verified just now, so this is the thread's token cache answering. */
	if (rc == 0 && exp_ms && (rc = token_verify(a, &h->auth->key, token, &claims, &err)) == 0)
		*exp_ms = claims.exp * 1000;
	error_release(&err);
	return rc;
}

static void run_auth(struct hub *h, struct job *j)
{
	j->checked_us = time_mono_us();
	j->rc = check_token(h, &j->arena, j->token, j->user_id, &j->exp_ms);
}

static void run_subscribe(struct hub *h, struct job *j)
{
	struct error err = ERROR_INIT;
	char user_id[UUID_STR_LEN];
	/* The token is checked again on every subscribe: it may have been revoked since. */
	j->auth_rc = check_token(h, &j->arena, j->token, user_id, NULL);
	if (j->auth_rc == 0 && strcmp(user_id, j->user_id) != 0)
		j->auth_rc = -ERR_UNAUTHENTICATED; /* cannot happen: one token, one user */
	if (j->auth_rc < 0) {
		j->rc = j->auth_rc;
		return;
	}
	j->rc = events_head(h->store, &j->arena, j->user_id, j->project_id, &j->seq, &err);
	error_release(&err);
}

static void run_recheck(struct hub *h, struct job *j)
{
	for (int i = 0; i < j->ntokens; i++) {
		char user_id[UUID_STR_LEN];
		j->rcs[i] = check_token(h, &j->arena, j->tokens[i], user_id, NULL);
		if (j->rcs[i] == 0 && strcmp(user_id, j->user_id) != 0)
			j->rcs[i] = -ERR_UNAUTHENTICATED;
	}
}

static const char *removed_user_of(struct arena *a, const struct event *e, json_t *ej)
{
	if (strcmp(e->type, "member.removed") != 0)
		return NULL;
	const char *id = json_string_value(
	    json_object_get(json_object_get(json_object_get(ej, "data"), "user"), "id"));
	return id ? arena_strdup(a, id) : NULL;
}

static void run_fetch(struct hub *h, struct job *j)
{
	struct error err = ERROR_INIT;
	struct event *evs;
	int n;
	j->rc = events_after(h->store, &j->arena, j->project_id, j->after, CATCHUP_BATCH, &evs, &n,
			     &err);
	error_release(&err);
	if (j->rc < 0)
		return;
	if (log_get_level() <= LOG_DEBUG) /* what tests look at to see how far a catch-up went */
		log_json(LOG_DEBUG, "realtime read",
			 json_pack("{s:s, s:I, s:i, s:b}", "project_id", j->project_id, "after",
				   (json_int_t)j->after, "events", n, "catchup", j->catchup));
	j->events = arena_alloc(&j->arena, sizeof(*j->events) * (size_t)(n ? n : 1));
	for (int i = 0; i < n; i++) {
		json_t *ej = event_json(&evs[i]);
		char *text = json_dumps(ej, JSON_COMPACT);
		if (!text) {
			json_decref(ej);
			break; /* delivered up to here; the rest on the next read */
		}
		struct fetched *f = &j->events[j->nevents++];
		memset(f, 0, sizeof(*f));
		f->seq = evs[i].seq;
		f->type = evs[i].type;
		f->json = arena_strdup(&j->arena, text);
		f->len = strlen(text);
		f->removed_user = removed_user_of(&j->arena, &evs[i], ej);
		free(text);
		json_decref(ej);
	}
}

static void post_done(struct hub *h, struct job *j)
{
	j->next = NULL;
	pthread_mutex_lock(&h->lock);
	*h->done_tail = j;
	h->done_tail = &j->next;
	pthread_mutex_unlock(&h->lock);
	hub_wake(h);
}

static void *worker_main(void *arg)
{
	struct hub *h = arg;
	struct worker *wk = &h->worker;
	for (;;) {
		pthread_mutex_lock(&wk->lock);
		/* Catch-up reads take one thread at a time: the others stay for the live reads
		 * and the sockets' checks, which never wait behind a catch-up. */
		while (!wk->stop && !wk->queue && !(wk->cqueue && wk->catchup_running == 0))
			pthread_cond_wait(&wk->cond, &wk->lock);
		if (wk->stop) {
			pthread_mutex_unlock(&wk->lock);
			return NULL;
		}
		struct job *j;
		if (wk->cqueue && wk->catchup_running == 0) {
			j = wk->cqueue;
			wk->cqueue = j->next;
			if (!wk->cqueue)
				wk->ctail = &wk->cqueue;
			wk->catchup_running++;
		} else {
			j = wk->queue;
			wk->queue = j->next;
			if (!wk->queue)
				wk->tail = &wk->queue;
		}
		pthread_mutex_unlock(&wk->lock);
		switch (j->kind) {
		case JOB_AUTH:
			run_auth(h, j);
			break;
		case JOB_SUBSCRIBE:
			run_subscribe(h, j);
			break;
		case JOB_FETCH:
			run_fetch(h, j);
			break;
		case JOB_RECHECK:
			run_recheck(h, j);
			break;
		}
		if (j->kind == JOB_FETCH && j->catchup) {
			pthread_mutex_lock(&wk->lock);
			wk->catchup_running--;
			pthread_cond_signal(&wk->cond); /* a thread may wait for that */
			pthread_mutex_unlock(&wk->lock);
		}
		post_done(h, j);
	}
}

void worker_start(struct hub *h)
{
	struct worker *wk = &h->worker;
	for (int i = 0; i < WORKER_THREADS; i++)
		if (pthread_create(&wk->threads[wk->nthreads], NULL, worker_main, h) == 0)
			wk->nthreads++;
}

void worker_post(struct hub *h, struct job *j)
{
	struct worker *wk = &h->worker;
	j->next = NULL;
	pthread_mutex_lock(&wk->lock);
	bool stopped = wk->stop || wk->nthreads == 0;
	if (!stopped && j->kind == JOB_FETCH && j->catchup) {
		*wk->ctail = j;
		wk->ctail = &j->next;
		pthread_cond_signal(&wk->cond);
	} else if (!stopped) {
		*wk->tail = j;
		wk->tail = &j->next;
		pthread_cond_signal(&wk->cond);
	}
	pthread_mutex_unlock(&wk->lock);
	if (stopped) {
		j->rc = -ERR_UNAVAILABLE;
		post_done(h, j);
	}
}

void worker_stop(struct hub *h)
{
	struct worker *wk = &h->worker;
	pthread_mutex_lock(&wk->lock);
	wk->stop = true;
	pthread_cond_broadcast(&wk->cond);
	pthread_mutex_unlock(&wk->lock);
	for (int i = 0; i < wk->nthreads; i++)
		pthread_join(wk->threads[i], NULL);
	wk->nthreads = 0;
	while (wk->queue || wk->cqueue) {
		struct job **q = wk->queue ? &wk->queue : &wk->cqueue;
		struct job *j = *q;
		*q = j->next;
		j->rc = -ERR_UNAVAILABLE;
		post_done(h, j);
	}
	wk->tail = &wk->queue;
	wk->ctail = &wk->cqueue;
}
