/*
 * conns.h — every open HTTP connection, for the limits libmicrohttpd cannot keep itself: the
 * per-client connection count (keyed by client_key(), so an IPv6 client is its /64) and the
 * absolute request deadline (libmicrohttpd's connection timeout is an idle timeout: a body
 * trickled one byte every 25 s would reset it forever).
 *
 * Threads: an entry is opened and closed on the libmicrohttpd thread that owns its
 * connection (the connection notifier), which also moves its deadline; conns_has_room() runs
 * on the acceptor; conns_sweep() runs on the sweeper thread. One mutex guards the table and
 * the counts; a deadline is an atomic the sweeper reads without it. The sweeper ends a late
 * connection with shutdown(2), never close(2): the descriptor stays libmicrohttpd's, which
 * sees the end of the stream and closes the connection itself. An entry leaves the table
 * under the mutex before libmicrohttpd closes its descriptor, so the sweeper never touches a
 * descriptor that was reused.
 */
#ifndef TANDEM_HTTP_CONNS_H
#define TANDEM_HTTP_CONNS_H

#include <stdbool.h>
#include <stdint.h>

struct conns;
struct conn;

/*
 * per_client: connections one client key may hold (0: no limit). request_us: how long one
 * request may take to arrive; idle_us: libmicrohttpd's idle timeout (a connection between
 * requests gets both before the sweeper ends it).
 */
struct conns *conns_create(unsigned per_client, int64_t request_us, int64_t idle_us);
void conns_free(struct conns *t);

/* Whether a new connection from `key` stays within the per-client limit (the acceptor). */
bool conns_has_room(struct conns *t, const char *key);

/*
 * Answer 429 rate_limited (Connection: close) on a socket not given to libmicrohttpd, and
 * take it over: conns_sweep() drains and closes it once the peer closed (or after 2 s).
 */
void conns_refuse(struct conns *t, int fd, int64_t now_us);

/*
 * Record a connection that libmicrohttpd started (fd is its socket). *over is set when the
 * client now holds more than its limit (connections accepted in a burst): answer its first
 * request with 429 and close. key NULL: not counted (a trusted proxy's connection carries many
 * clients). Returns the entry, to be given to conns_close().
 */
struct conn *conns_open(struct conns *t, const char *key, int fd, int64_t now_us, bool *over);
/* Whether the connection was over its client's limit when it opened. */
bool conn_over_limit(const struct conn *c);
/* Forget the connection (libmicrohttpd is about to close it). */
void conns_close(struct conns *t, struct conn *c);

/* A request began arriving: its deadline is now + request_us. */
void conn_request_begin(struct conns *t, struct conn *c, int64_t now_us);
/* A request ended: the connection is idle again (deadline now + idle_us + request_us). */
void conn_request_end(struct conns *t, struct conn *c, int64_t now_us);
/* The request was answered or parked: no deadline until it ends (streams, long polls). */
void conn_request_exempt(struct conn *c);
/* The connection was handed over (WebSocket): never touched again, and no longer counted. */
void conn_upgraded(struct conns *t, struct conn *c);

/* Connections held by `key` now (tests, logs). */
unsigned conns_count(struct conns *t, const char *key);

/*
 * End every connection past its deadline: a request that had begun gets a 408 problem
 * (best effort) before the socket is shut down. Returns how many were ended. Also drains
 * and closes refused sockets (conns_refuse).
 */
int conns_sweep(struct conns *t, int64_t now_us);

#endif
