/*
 * router.h — the route table: method, path pattern with {name} parameters, handler.
 *
 * routes.c holds the one table of every route the server answers; router.c matches a
 * request against it. The table is static and read-only, so matching is thread-safe.
 */
#ifndef TANDEM_HTTP_ROUTER_H
#define TANDEM_HTTP_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

struct request;

typedef int (*handler_fn)(struct request *req);

/*
 * A query parameter a route accepts. Anything else in the query string is refused (422
 * unknown_parameter) before the handler runs; a parameter given twice is refused unless it is
 * a list, whose values are then joined with commas (`status=todo&status=done` is
 * `status=todo,done`).
 */
struct route_param {
	const char *name;
	unsigned flags;
};
#define PARAM_LIST 0x1 /* a comma-separated list: repeats are merged */

struct route {
	const char *method;  /* "GET", "POST", ... */
	const char *pattern; /* "/v1/tasks/{id}" */
	handler_fn handler;
	unsigned flags;
};

/* The query parameters of one route (routes.c): `params` ends with {NULL}. */
struct route_query {
	const char *method, *pattern;
	const struct route_param *params;
};

/* Route flags */
#define ROUTE_PUBLIC	 0x1 /* no authentication */
#define ROUTE_IDEMPOTENT 0x2 /* honours Idempotency-Key (POST that creates) */
#define ROUTE_AUTH_LIMIT 0x4 /* the strict per-IP and per-login rate limit */
#define ROUTE_UNLIMITED	 0x8 /* never rate limited (health probes) */
/* The strict limit per user and per IP when the body carries a password to check or an
 * e-mail address to look up. */
#define ROUTE_SENSITIVE 0x10
/* A live channel a browser opens: without an Authorization header, ?ticket= (a stream ticket,
 * services/tickets.h) authenticates it. */
#define ROUTE_TICKET 0x20

extern const struct route routes[];
extern const size_t routes_count;
extern const struct route_query route_queries[];
extern const size_t route_queries_count;

/* The query parameters route `r` accepts (ending with {NULL}), or NULL when it takes none. */
const struct route_param *router_params(const struct route *r);

enum router_result { ROUTER_FOUND, ROUTER_NOT_FOUND, ROUTER_METHOD_NOT_ALLOWED };

/*
 * Match method and path. ROUTER_FOUND sets req->route and its parameters (values point into
 * the arena). ROUTER_METHOD_NOT_ALLOWED fills `allow` (size allow_len) with the methods the
 * path does accept, e.g. "GET, HEAD, PATCH". HEAD matches GET routes.
 */
enum router_result router_match(struct request *req, const char *method, const char *path,
				char *allow, size_t allow_len);

/*
 * The methods the route table has for `path` (as in the table: no HEAD, no OPTIONS),
 * ", "-separated into out, e.g. "GET, PATCH, DELETE" for /v1/projects/{id}. Returns false
 * (out "") when no route has this path.
 */
bool router_path_methods(const char *path, char *out, size_t out_len);

#endif
