/* conns.c — see conns.h. */
#include "http/conns.h"
#include "core/error.h"
#include "core/xalloc.h"
#include "http/clientkey.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define NBUCKETS   1024
#define LINGER_MAX 256		 /* refused sockets draining at once; more are closed at once */
#define LINGER_US  (2 * 1000000) /* how long a refused socket may drain */

/* Connections of one client key; freed when its last connection closes. */
struct client {
	struct client *next;
	unsigned count;
	char key[CLIENT_KEY_LEN];
};

enum conn_phase { PHASE_IDLE, PHASE_REQUEST, PHASE_EXEMPT, PHASE_UPGRADED };

struct conn {
	struct conn *prev, *next;
	struct client *client;
	int fd;
	atomic_int phase;
	_Atomic int64_t deadline_us;
	bool ended; /* shut down by the sweeper already */
	bool over;  /* opened past its client's limit */
};

struct conns {
	pthread_mutex_t lock;
	unsigned per_client;
	int64_t request_us, idle_us;
	struct client *buckets[NBUCKETS];
	struct conn *head;
	char timeout_answer[640];
	size_t timeout_len;
	/* Refused sockets, written to and shut for writing, drained until the peer closes or
	 * LINGER_US passed: a close() with the peer's request unread would reset the
	 * connection, and the reset can destroy the 429 before the client reads it. */
	struct {
		int fd;
		int64_t until;
	} linger[LINGER_MAX];
	int nlinger;
};

static size_t canned(char *buf, size_t cap, int kind, const char *reason, const char *detail,
		     const char *extra, const char *policy);

static unsigned hash(const char *s)
{
	unsigned h = 2166136261u; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % NBUCKETS;
}

static struct client **find(struct conns *t, const char *key)
{
	struct client **p = &t->buckets[hash(key)];
	while (*p && strcmp((*p)->key, key) != 0)
		p = &(*p)->next;
	return p;
}

struct conns *conns_create(unsigned per_client, int64_t request_us, int64_t idle_us)
{
	struct conns *t = xcalloc(1, sizeof(*t));
	pthread_mutex_init(&t->lock, NULL);
	t->per_client = per_client;
	t->request_us = request_us;
	t->idle_us = idle_us;
	t->timeout_len = canned(t->timeout_answer, sizeof(t->timeout_answer), ERR_REQUEST_TIMEOUT,
				"Request Timeout", "the request did not arrive in time", "", NULL);
	return t;
}

void conns_free(struct conns *t)
{
	if (!t)
		return;
	while (t->head)
		conns_close(t, t->head);
	for (int i = 0; i < t->nlinger; i++)
		close(t->linger[i].fd);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

bool conns_has_room(struct conns *t, const char *key)
{
	if (!t->per_client)
		return true;
	pthread_mutex_lock(&t->lock);
	struct client *c = *find(t, key);
	bool room = !c || c->count < t->per_client;
	pthread_mutex_unlock(&t->lock);
	return room;
}

unsigned conns_count(struct conns *t, const char *key)
{
	pthread_mutex_lock(&t->lock);
	struct client *c = *find(t, key);
	unsigned n = c ? c->count : 0;
	pthread_mutex_unlock(&t->lock);
	return n;
}

struct conn *conns_open(struct conns *t, const char *key, int fd, int64_t now_us, bool *over)
{
	struct conn *c = xcalloc(1, sizeof(*c));
	c->fd = fd;
	atomic_init(&c->phase, PHASE_IDLE);
	atomic_init(&c->deadline_us, now_us + t->idle_us + t->request_us);
	pthread_mutex_lock(&t->lock);
	*over = false;
	if (key) {
		struct client **p = find(t, key);
		if (!*p) {
			*p = xcalloc(1, sizeof(**p));
			memcpy((*p)->key, key, strnlen(key, CLIENT_KEY_LEN - 1));
		}
		c->client = *p;
		c->client->count++;
		c->over = *over = t->per_client && c->client->count > t->per_client;
	}
	c->next = t->head;
	if (t->head)
		t->head->prev = c;
	t->head = c;
	pthread_mutex_unlock(&t->lock);
	return c;
}

bool conn_over_limit(const struct conn *c)
{
	return c->over;
}

/* Under t->lock: the connection no longer counts against its client. */
static void uncount(struct conns *t, struct conn *c)
{
	if (!c->client)
		return;
	if (--c->client->count == 0) {
		struct client **p = find(t, c->client->key);
		*p = c->client->next;
		free(c->client);
	}
	c->client = NULL;
}

void conns_close(struct conns *t, struct conn *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&t->lock);
	if (c->prev)
		c->prev->next = c->next;
	else
		t->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	uncount(t, c);
	pthread_mutex_unlock(&t->lock);
	free(c);
}

void conn_request_begin(struct conns *t, struct conn *c, int64_t now_us)
{
	if (atomic_load(&c->phase) == PHASE_UPGRADED)
		return;
	atomic_store(&c->deadline_us, now_us + t->request_us);
	atomic_store(&c->phase, PHASE_REQUEST);
}

void conn_request_end(struct conns *t, struct conn *c, int64_t now_us)
{
	if (atomic_load(&c->phase) == PHASE_UPGRADED)
		return;
	atomic_store(&c->deadline_us, now_us + t->idle_us + t->request_us);
	atomic_store(&c->phase, PHASE_IDLE);
}

void conn_request_exempt(struct conn *c)
{
	if (atomic_load(&c->phase) != PHASE_UPGRADED)
		atomic_store(&c->phase, PHASE_EXEMPT);
}

void conn_upgraded(struct conns *t, struct conn *c)
{
	atomic_store(&c->phase, PHASE_UPGRADED);
	/* A WebSocket counts against the real-time caps, no longer against HTTP's. */
	pthread_mutex_lock(&t->lock);
	uncount(t, c);
	pthread_mutex_unlock(&t->lock);
}

/*
 * A problem answer written straight to a socket, for the two cases that have no request
 * object: a request that ran out of time (the sweeper) and a connection over its client's
 * limit (the acceptor). `instance` is "-": no request id was ever given.
 */
/* `policy`: the limit that refused a 429 (the problem's "policy"), or NULL. */
static size_t canned(char *buf, size_t cap, int kind, const char *reason, const char *detail,
		     const char *extra, const char *policy)
{
	char pol[48] = "";
	if (policy)
		snprintf(pol, sizeof(pol), ",\"policy\":\"%s\"", policy);
	char body[320];
	int status = error_status(kind);
	const char *code = error_code(kind), *title = error_title(kind);
	int bl = snprintf(body, sizeof(body),
			  "{\"type\":\"/problems/%s\",\"title\":\"%s\",\"status\":%d,\"detail\":"
			  "\"%s\",\"instance\":\"-\",\"code\":\"%s\"%s}",
			  code, title, status, detail, code, pol);
	int n = snprintf(buf, cap,
			 "HTTP/1.1 %d %s\r\nContent-Type: application/problem+json\r\n"
			 "Connection: close\r\n%sContent-Length: %d\r\n\r\n%s",
			 status, reason, extra, bl, body);
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

void conns_refuse(struct conns *t, int fd, int64_t now_us)
{
	char buf[640];
	size_t n = canned(buf, sizeof(buf), ERR_RATE_LIMITED, "Too Many Requests",
			  "too many open connections from this client", "Retry-After: 1\r\n",
			  "connections");
	(void)!send(fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
	shutdown(fd, SHUT_WR);
	pthread_mutex_lock(&t->lock);
	if (t->nlinger < LINGER_MAX) {
		t->linger[t->nlinger].fd = fd;
		t->linger[t->nlinger].until = now_us + LINGER_US;
		t->nlinger++;
		fd = -1;
	}
	pthread_mutex_unlock(&t->lock);
	if (fd >= 0)
		close(fd);
}

/* Under t->lock: read what refused peers sent; close those done or out of time. */
static void drain_refused(struct conns *t, int64_t now_us)
{
	char buf[4096];
	for (int i = 0; i < t->nlinger;) {
		ssize_t n;
		while ((n = recv(t->linger[i].fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
			;
		bool done =
		    n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
		if (done || t->linger[i].until <= now_us) {
			close(t->linger[i].fd);
			t->linger[i] = t->linger[--t->nlinger];
		} else {
			i++;
		}
	}
}

int conns_sweep(struct conns *t, int64_t now_us)
{
	int n = 0;
	pthread_mutex_lock(&t->lock);
	drain_refused(t, now_us);
	for (struct conn *c = t->head; c; c = c->next) {
		int phase = atomic_load(&c->phase);
		if (c->ended || phase == PHASE_EXEMPT || phase == PHASE_UPGRADED ||
		    atomic_load(&c->deadline_us) > now_us)
			continue;
		/* Only while a request is arriving does libmicrohttpd write nothing of its own
		 * (bar a 100 Continue, sent at once), so the 408 cannot interleave with an answer.
		 */
		if (phase == PHASE_REQUEST)
			(void)!send(c->fd, t->timeout_answer, t->timeout_len,
				    MSG_DONTWAIT | MSG_NOSIGNAL);
		shutdown(c->fd, SHUT_RDWR);
		c->ended = true;
		n++;
	}
	pthread_mutex_unlock(&t->lock);
	return n;
}
