/*
 * request.h — one HTTP request as handlers see it, and the reply they build.
 *
 * A struct request lives from the moment libmicrohttpd reads the request line until it
 * reports the request complete; everything allocated for it lives in req->arena. A request
 * is handled by one worker thread. Handlers never touch libmicrohttpd: they read through
 * the request_* accessors and answer through reply.h.
 */
#ifndef TANDEM_HTTP_REQUEST_H
#define TANDEM_HTTP_REQUEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/error.h"

#define ROUTE_MAX_PARAMS    4
#define REQUEST_MAX_HEADERS 16

struct app;
struct conn;
struct MHD_Connection;
struct route;
struct user;

struct reply_header {
	const char *name, *value;
};

struct request {
	struct arena arena;
	struct app *app;
	struct MHD_Connection *conn;
	const char *method;
	const char *path;
	char id[130];
	int64_t start_us;

	struct conn *tracked; /* the connection's entry in the connection table (http/conns.h) */

	/* Filled by the router, from the headers alone (before any body is read). */
	int routed; /* enum router_result */
	const char *allow;
	int auth_rc; /* what authentication said (0 on public routes) */
	const struct route *route;
	const char *param_names[ROUTE_MAX_PARAMS];
	const char *param_values[ROUTE_MAX_PARAMS];
	int nparams;

	/* The body as received. */
	char *body;
	size_t body_len, body_cap;
	bool body_too_large;

	/* The caller, once authenticated (NULL on public routes). */
	struct user *user;
	/* The access token the caller was authenticated with when it came as a stream ticket
	 * (?ticket=, services/tickets.h), in the arena; NULL otherwise. */
	const char *ticket_token;

	/* The reply being built. */
	int status;
	char *resp_body; /* malloc'd; handed to libmicrohttpd */
	size_t resp_len;
	const char *content_type;
	struct reply_header headers[REQUEST_MAX_HEADERS];
	int nheaders;
	bool replied;
	bool queued;
	bool suspended;	 /* parked by http_suspend(); the handler runs again when resumed */
	bool dispatched; /* authenticated and rate limited already (a resumed request) */
	void *state;	 /* a parked handler's own notes, in the arena */

	/* A streamed answer (reply_stream) or a protocol switch (reply_upgrade). */
	struct reply_special {
		long (*reader)(void *cls, struct request *req, char *buf, size_t max);
		void (*release)(void *cls);
		void (*upgraded)(void *cls, int fd, const char *extra, size_t extra_len,
				 void *handle);
		void *cls;
	} special;

	struct error err;
};

/* A request header, or NULL. Names are case-insensitive. */
const char *request_header(struct request *req, const char *name);
/*
 * Every line of a header that may be repeated (X-Forwarded-For), joined with ", " in the
 * order received (RFC 9110 section 5.3), in the arena; NULL when absent.
 */
const char *request_header_all(struct request *req, const char *name);
/* A query-string argument, or NULL. */
const char *request_query(struct request *req, const char *name);
/* A path parameter by name ("id" for "{id}"); NULL when the route has none. */
const char *request_param(struct request *req, const char *name);
/*
 * This request's path and query string with `key` set to `value` (added or replaced),
 * percent-encoded, in the arena: the target of a Link: rel="next" header.
 */
const char *request_url_with(struct request *req, const char *key, const char *value);
/* The client's address as text, in the arena. */
const char *request_peer(struct request *req);

/*
 * The body as a JSON object. Checks Content-Type (application/json, charset utf-8 if any:
 * else -ERR_UNSUPPORTED_MEDIA_TYPE) and syntax (-ERR_MALFORMED_JSON); a body that is valid
 * JSON but not an object is -ERR_VALIDATION_FAILED. *out is owned by the request arena.
 */
int request_json(struct request *req, json_t **out);

/*
 * Park the request: libmicrohttpd stops processing its connection until http_resume().
 * Only from a handler or a stream reader, on the worker thread. A parked handler is called
 * again, from the start, after it is resumed; it must then answer or park again.
 */
void http_suspend(struct request *req);
/* Wake a parked request. From any thread; only for a request that is parked. */
void http_resume(struct request *req);
/* Close a connection handed over by reply_upgrade(). From any thread. */
void http_upgrade_close(void *handle);

#endif
