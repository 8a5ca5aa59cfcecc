/*
 * hub_internal.h — what the files of the real-time hub share; not for use outside
 * src/realtime/. The hub is split the way libuv splits its handle types:
 *
 *   hub.c        the loop: its thread, epoll, the inbox (adoptions, notes, job results),
 *                timers, start and shutdown
 *   websocket.c  the WebSocket: handshake key, wslay glue, input tracking, socket lifecycle,
 *                the client's messages
 *   fanout.c     topics and subscriptions, delivery of events, catch-up from the log, and
 *                the tokens of live channels (re-checks on a user's revocation)
 *   sse.c        Server-Sent Event streams
 *   longpoll.c   parked long polls
 *   worker.c     the threads that do the hub's database work and token checks
 *
 * Threads. The hub thread only moves bytes: it never waits on the database or a token
 * check; those go to the worker as jobs and their results come back through the inbox
 * (hub->done, then the eventfd). hub->lock guards the topic table, every subscription list,
 * stream buffers, parked polls and the inbox: SSE and long-poll requests attach from
 * libmicrohttpd's threads. WebSocket objects, their wslay contexts and the `fetching` state
 * of topics belong to the hub thread alone. The worker queue has a lock of its own.
 *
 * Ordering (what makes delivery gap-free, duplicate-free and in seq order per subscriber):
 * every subscription carries `last`, the seq it has seen. A read of the log takes the events
 * after some `from`; its result is delivered only to subscribers with from <= last, each
 * getting the events after its own last, in order. A subscriber with last < from waits for
 * the next read (its topic stays dirty). So any number of reads of one topic may be out at
 * once without breaking the order; a topic has at most two: its live read, from the lowest
 * last of the subscribers that are up to date, and its catch-up read, from the lowest last of
 * those that are catching up on the history (sub->catching: a resume point behind the head,
 * or a delivery paused on a full queue). A catch-up read is paged (CATCHUP_BATCH) and paced:
 * the next page is read only once the client has taken most of the last one
 * (CATCHUP_LOW_WATER), and catch-up reads run on one worker thread at a time. So one client
 * catching up on 10,000 events holds back neither the live events of the others on the same
 * project nor the reads of other projects. A subscriber that reached the end of the log
 * joins the live reads. A WebSocket handles its messages one at a time: while
 * a job of its own is out, further messages wait (ws->stash) and the socket is not read.
 */
#ifndef TANDEM_REALTIME_HUB_INTERNAL_H
#define TANDEM_REALTIME_HUB_INTERNAL_H

#include "core/arena.h"
#include "core/uuid.h"
#include "realtime/hub.h"
#include "realtime/websocket.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <wslay/wslay.h>

#define TOPIC_BUCKETS	  1024
#define CATCHUP_BATCH	  200
#define CATCHUP_LOW_WATER 65536 /* a catching-up client gets its next page below this queued */
#define SWEEP_INTERVAL_MS 5000
#define DRAIN_FLUSH_MS	  2000
#define WS_RX_BUDGET	  65536 /* bytes read from one peer per turn of the loop */
#define WS_CTX_LINGER_MS  1000	/* an unused wslay context is freed after this */
#define WORKER_THREADS	  2
#define CLOSE_GRACE_MS	  2000 /* a closing WebSocket that takes no byte for this long is dropped */
#define CAP_BUCKETS	  1024
#define CAP_KEY_LEN	  64 /* a client address key: an IPv4 address or an IPv6 /64 */
#define REVOKED_RECENT	  64

enum sub_kind { SUB_WS, SUB_SSE, SUB_POLL };

struct topic;

/* How many live channels one user or one client address has open ("u:<id>", "i:<addr>"). */
struct cap {
	struct cap *next;
	int n;
	char key[];
};

/*
 * The access token a live channel runs on: kept to re-check it (subscribe, a revocation note
 * for its user) and to end the channel at its expiry. `token` is malloc'd.
 */
struct live_token {
	char *token;
	int64_t exp_ms; /* wall clock; 0: none known */
};

struct sub {
	struct sub *next, *prev; /* in the topic */
	struct topic *topic;
	enum sub_kind kind;
	int64_t last;  /* the seq this subscriber has seen */
	bool catching; /* served by the topic's catch-up reads, not its live ones */
	/* The project's head when the subscriber's access was checked (read before the check):
	 * a member.removed of its user with a higher seq ends it, wherever `last` stands. */
	int64_t admitted;
	char user_id[UUID_STR_LEN];
	void *owner;		/* struct ws, hub_stream or waiter */
	struct sub *owner_next; /* in the WebSocket's own list */
};

struct topic {
	char id[UUID_STR_LEN];
	struct topic *next;
	struct sub *subs;
	bool dirty;	    /* the log may hold events some up-to-date subscriber lacks */
	bool catchup_dirty; /* ... or some catching-up subscriber lacks */
	bool fetching;	    /* a live read is out (hub thread only) */
	bool catching_up;   /* a catch-up read is out (hub thread only) */
	int64_t seen;	    /* the highest seq a read of the topic returned */
};

/* A client message that came while the connection's job was out. */
struct ws_msg {
	struct ws_msg *next;
	size_t len;
	uint8_t opcode;
	char data[];
};

struct job;

struct ws {
	struct hub *hub;
	struct ws *next, *prev;
	wslay_event_context_ptr ctx; /* NULL while idle: see ws_ctx, ws_at_rest */
	char *extra;		     /* bytes read with the handshake, until consumed */
	struct sub *subs;
	struct job *job;      /* the job out for this connection, or NULL (one at a time) */
	struct ws_msg *stash; /* messages waiting for it, in order */
	int64_t opened_ms, last_rx_ms, last_ping_ms, close_deadline_ms;
	int64_t full_since_ms; /* event delivery paused on a full queue since then, or 0 */
	bool catchup_wait;     /* a catch-up page waits for the queue to drain (ws_pump) */
	int64_t ctx_used_ms;   /* the wslay context was last needed then */
	struct ws_input in;    /* where the peer's byte stream stands */
	uint32_t rx_budget;
	uint32_t extra_len, extra_off;
	uint32_t events;
	int fd;
	int nsubs;
	bool authed, closing, dead;
	bool orphan;		 /* destroyed while its job was out: freed when the result comes */
	bool held_ip, held_user; /* places taken in the caps (caps_take), given back at destroy */
	char user_id[UUID_STR_LEN];
	char ip[CAP_KEY_LEN];
	int64_t tokens, tokens_ms; /* the message budget, in thousandths of a message */
	int over;		   /* messages refused since the last one within the budget */
	bool rate_closed;	   /* over the budget for good: 1008 once the queue is sent */
	bool ticket_closed;	   /* its ?ticket= was refused: 4001 once the queue is sent */
	struct live_token tok;	   /* the token it authenticated with (authed only) */
};

struct hub_stream {
	struct sub sub;
	struct hub *hub;
	struct request *req;
	bool parked, ended, subscribed;
	bool held;	   /* a place in the caps, given back at release */
	bool catchup_wait; /* a catch-up page waits for the buffer to drain (hub_stream_read) */
	char ip[CAP_KEY_LEN];
	char *buf;
	size_t len, off, cap;
	int64_t last_beat_ms;
	struct live_token tok;
	bool recheck; /* see hub_stream_recheck */
};

struct waiter {
	struct sub sub;
	struct request *req;
	int64_t deadline_ms;
	struct waiter *next_all, *prev_all;
	bool held; /* a place in the caps, given back when woken */
	char ip[CAP_KEY_LEN];
};

struct adopt {
	struct adopt *next;
	int fd;
	char *extra;
	size_t extra_len;
	char user_id[UUID_STR_LEN];
	char ip[CAP_KEY_LEN];
	struct live_token tok; /* moved to the connection */
	int64_t checked_us;    /* its token check began then (time_mono_us) */
	bool ticket_refused;   /* see hub_who */
};

struct note {
	struct note *next;
	char project_id[UUID_STR_LEN];
	int64_t seq;
	enum event_note kind;
};

/* An event as the worker rendered it, text built once whatever the number of subscribers. */
struct fetched {
	int64_t seq;
	const char *type;
	const char *json; /* the event object */
	size_t len;
	const char *removed_user; /* member.removed: whose membership ended, else NULL */
	char *ws;		  /* {"type":"event","event":<json>}, made on first use (hub) */
	size_t ws_len;
};

enum job_kind { JOB_AUTH, JOB_SUBSCRIBE, JOB_FETCH, JOB_RECHECK };

struct job {
	struct job *next;
	enum job_kind kind;
	struct arena arena; /* inputs and results; released with the job */
	/* JOB_AUTH, JOB_SUBSCRIBE: the connection (kept by ws->job, see ws_destroy) */
	struct ws *ws;
	char project_id[UUID_STR_LEN];
	char user_id[UUID_STR_LEN];
	json_t *msg_id;		/* JOB_AUTH, JOB_SUBSCRIBE: the message's id, or NULL */
	const char *token;	/* JOB_AUTH, JOB_SUBSCRIBE: checked again */
	int64_t exp_ms;		/* JOB_AUTH: the token's expiry */
	int64_t checked_us;	/* JOB_AUTH: the check began then (time_mono_us) */
	bool has_after;		/* JOB_SUBSCRIBE */
	int64_t after;		/* JOB_SUBSCRIBE: the client's; JOB_FETCH: read after this */
	bool catchup;		/* JOB_FETCH: a topic's catch-up read (else its live read) */
	int rc;			/* result: 0 or a negative error kind */
	int auth_rc;		/* JOB_SUBSCRIBE: the token's check (0 or negative) */
	int64_t seq;		/* JOB_SUBSCRIBE: the project's head */
	struct fetched *events; /* JOB_FETCH */
	int nevents;
	/* JOB_RECHECK: user_id's tokens (arena) and, as the result, each one's check */
	const char **tokens;
	int *rcs;
	int ntokens;
};

struct worker {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job *queue, **tail;   /* a FIFO */
	struct job *cqueue, **ctail; /* catch-up reads, a FIFO: one thread at a time on them */
	int catchup_running;
	bool stop;
	int nthreads;
	pthread_t threads[WORKER_THREADS];
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
	struct note *notes, **notes_tail; /* FIFOs */
	struct adopt *adopts, **adopts_tail;
	struct job *done, **done_tail;
	bool resync_all;
	struct ws *sockets; /* hub thread only */
	int nsockets, max_sockets;
	struct waiter *waiters;
	struct cap *caps[CAP_BUCKETS]; /* open live channels per user and per client address */
	int64_t last_sweep_ms;
	/* The last REVOKED_RECENT revocations handled (a ring, under lock): see revoked_since. */
	struct {
		char user_id[UUID_STR_LEN];
		int64_t at_us; /* time_mono_us */
	} revoked[REVOKED_RECENT];
	uint64_t nrevoked;
	struct worker worker;
};

/* hub.c */
void hub_wake(struct hub *h);
/*
 * The caps on live channels (WebSockets, SSE streams, parked long polls) per user and per
 * client address, lock held. caps_take takes a place for user_id and for ip (either may be
 * NULL or empty: not counted), both or neither: false when one of them is at its cap.
 * caps_put gives back what caps_take took.
 */
bool caps_take(struct hub *h, const char *user_id, const char *ip);
void caps_put(struct hub *h, const char *user_id, const char *ip);

/* fanout.c (lock held unless said otherwise) */
struct topic *topic_get(struct hub *h, const char *id, bool create);
void sub_attach(struct hub *h, struct sub *s, const char *project_id);
void sub_detach(struct sub *s);
void topics_prune(struct hub *h);
void topics_mark_dirty(struct hub *h);
/* The server ends a subscription (lost membership, deleted project, shutdown). */
void sub_end(struct hub *h, struct sub *s, const char *reason);
/* Hub thread, lock not held: a note from the inbox, then catch-up jobs for dirty topics. */
void fanout_note(struct hub *h, const struct note *n);
void fanout_post_dirty(struct hub *h);
/* Hub thread, lock not held: a catch-up job's result. */
void fanout_fetched(struct hub *h, struct job *j);
/* Queued bytes below which a catching-up client gets its next page. */
size_t catchup_low_water(const struct hub *h);

/* Hub thread, lock not held: EVENT_NOTE_USER_REVOKED for user_id: re-check the tokens of
 * every live channel of the user on the worker (wake the user's parked polls: they check
 * their token when they resume), and apply the result (JOB_RECHECK). */
void fanout_user_revoked(struct hub *h, const char *user_id);
void fanout_rechecked(struct hub *h, struct job *j);
void live_token_release(struct live_token *t);
/*
 * Lock held. A revocation of user_id was handled at or after since_us (time_mono_us), or so
 * many that the ring no longer tells: a token checked since then may have been revoked
 * without the note finding its channel (it was not attached yet). Such a channel checks its
 * token again once attached, where the next note finds it.
 */
bool revoked_since(const struct hub *h, const char *user_id, int64_t since_us);
/* Why a refused token ends a channel: "token_expired", "unavailable" or "unauthenticated". */
const char *live_token_reason(int rc);

/* websocket.c (hub thread) */
void ws_adopt(struct hub *h, struct adopt *ad);
void ws_on_ready(struct hub *h, struct ws *w, uint32_t events);
void ws_pump(struct hub *h, struct ws *w);
void ws_destroy(struct hub *h, struct ws *w);
void ws_timers(struct hub *h, int64_t now);
void ws_close(struct ws *w, uint16_t code, const char *reason);
/* Queue a text message; false if the connection cannot take it. */
void ws_send_text(struct ws *w, const char *text, size_t len);
void ws_send_json(struct ws *w, json_t *o); /* o is stolen */
size_t ws_queued(const struct ws *w);
void ws_sub_remove(struct ws *w, struct sub *s); /* lock held */
void ws_job_done(struct hub *h, struct job *j);
/* A re-check refused the connection's token (rc < 0): close it (4001, or 1013 when the
 * check could not be made). */
void ws_token_refused(struct ws *w, int rc);

/* sse.c (lock held) */
void sse_deliver(struct hub *h, struct hub_stream *st, const struct fetched *e);
void sse_end(struct hub_stream *st, const char *event_json);
void sse_heartbeats(struct hub *h, int64_t now);
void sse_end_all(struct hub *h);
/* End the streams whose token expired (reason token_expired). */
void sse_expire(struct hub *h, int64_t now);

/* longpoll.c (lock held) */
void poll_wake(struct hub *h, struct waiter *w);
void poll_expire(struct hub *h, int64_t now);
void poll_wake_all(struct hub *h);

/* worker.c */
void worker_start(struct hub *h);
/* Stop the threads; jobs never started come back as results with -ERR_UNAVAILABLE. */
void worker_stop(struct hub *h);
struct job *job_create(enum job_kind kind);
void job_free(struct job *j);
void worker_post(struct hub *h, struct job *j);

#endif
