/*
 * server.h — the HTTP server: libmicrohttpd with an epoll thread pool, explicit limits,
 * request ids, the access log and graceful shutdown.
 *
 * struct app is what handlers reach through req->app: the configuration and the store,
 * both created before the server starts and freed after it stops.
 */
#ifndef TANDEM_HTTP_SERVER_H
#define TANDEM_HTTP_SERVER_H

#include <stdbool.h>

struct config;
struct store;
struct server;

struct request;
struct auth;
struct limits;
struct redis;
struct hub;
struct cors;

struct app {
	const struct config *cfg;
	struct store *store;
	struct auth *auth;
	struct limits *limits; /* rate limits and trusted proxies (handlers/ratelimit.h) */
	struct redis *redis;   /* NULL: no Redis configured */
	const char *version;
	/*
	 * Called before the handler of every route not marked ROUTE_PUBLIC: sets req->user or
	 * returns a negative error kind (answered as the problem).
	 */
	int (*authenticate)(struct request *req);
	/* Called once when shutdown begins: end streams, wake parked requests, close sockets. */
	void (*drain)(struct app *app);
	struct hub *hub; /* real-time delivery */
	/* The CORS policy (http/cors.h); NULL: CORS off. */
	const struct cors *cors;
	/* Rate limiting, after authentication: 0 or -ERR_RATE_LIMITED (headers added). */
	int (*rate_limit)(struct request *req);
	/*
	 * Whether a TCP peer (numeric address) is a trusted proxy: its connections carry many
	 * clients (X-Forwarded-For), so the per-client connection limit does not count them.
	 * NULL: none is.
	 */
	bool (*trusted_peer)(const struct app *app, const char *ip);
	/* Runs the handler of a ROUTE_IDEMPOTENT route under its Idempotency-Key. */
	int (*idempotent)(struct request *req, int (*handler)(struct request *));
};

/* Start listening and serving. Returns 0, or -1 with a log line (e.g. port in use). */
int server_start(struct app *app, struct server **out);
/* The port actually bound (useful with port 0). */
unsigned server_port(const struct server *s);
/*
 * Graceful stop: stop accepting, let in-flight requests finish (at most cfg->shutdown_timeout
 * seconds; responses sent meanwhile carry Connection: close), then close everything.
 */
void server_stop(struct server *s);

#endif
