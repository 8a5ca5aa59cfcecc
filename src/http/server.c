/*
 * server.c — libmicrohttpd glue.
 *
 * Threads: libmicrohttpd's internal epoll thread pool runs everything here; each request is
 * handled start to finish on one pool thread. The shared state is the atomic count of
 * requests in flight and the draining flag, used by graceful shutdown, and the connection
 * table (http/conns.h: per-client counts, request deadlines), which the acceptor and the
 * sweeper thread also use.
 *
 * A request object is created in the URI log callback (the earliest moment, so durations
 * include header parsing, and the request deadline starts), is routed and authenticated on
 * the first call from its headers (a 404, 405 or 401 to a request announcing a body is
 * answered then, unread), collects the body over the next access-handler calls, and is
 * answered on the final call (queuing earlier would make libmicrohttpd drop keep-alive),
 * and is logged and freed in the completion callback.
 */
#include "http/server.h"
#include "config/config.h"
#include "core/jsonw.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "core/uuid.h"
#include "core/xalloc.h"
#include "http/clientkey.h"
#include "http/conns.h"
#include "http/cors.h"
#include "http/reply.h"
#include "http/request.h"
#include "http/router.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

struct server {
	struct MHD_Daemon *daemon;
	struct app *app;
	atomic_int inflight;
	atomic_bool draining;
	unsigned port;
	int listen_fd;
	pthread_t acceptor;
	struct conns *conns;
	pthread_t sweeper;
	/* The sweeper sleeps on sweeper_wake between rounds, so that stopping it is immediate
	 * (a plain sleep made every shutdown wait for the rest of its 200 ms round). */
	pthread_mutex_t sweeper_lock;
	pthread_cond_t sweeper_wake;
	bool stop_sweeper; /* under sweeper_lock */
};

/*
 * libmicrohttpd's own messages are warnings, except its reports that a client went away
 * while its answer was being sent: a browser closing an event stream (a page left, a tab
 * closed) does exactly that every time, so they are routine (issue 15: debug, not warn).
 */
static bool peer_gone(const char *msg)
{
	static const char *const causes[] = {
	    "The socket is no longer available for sending",
	    "The connection was forcibly closed by remote peer",
	    "The socket is not connected",
	};
	for (size_t i = 0; i < sizeof(causes) / sizeof(causes[0]); i++)
		if (strstr(msg, causes[i]))
			return true;
	return false;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[512];
	(void)cls;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	buf[strcspn(buf, "\n")] = '\0';
	log_json(peer_gone(buf) ? LOG_DEBUG : LOG_WARN, buf,
		 json_pack("{s:s}", "component", "http"));
}

static bool sane_request_id(const char *s)
{
	size_t n = 0;
	for (; s[n]; n++) {
		char c = s[n];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.' || c == ':'))
			return false;
		if (n >= 128)
			return false;
	}
	return n > 0;
}

static void *uri_logger(void *cls, const char *uri, struct MHD_Connection *conn)
{
	struct server *s = cls;
	struct request *req = xcalloc(1, sizeof(*req));
	(void)uri;
	arena_init(&req->arena);
	req->app = s->app;
	req->conn = conn;
	req->start_us = time_mono_us();
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	req->tracked = ci ? ci->socket_context : NULL;
	if (req->tracked)
		conn_request_begin(s->conns, req->tracked, req->start_us);
	atomic_fetch_add(&s->inflight, 1);
	return req;
}

/*
 * Whether the TCP peer is a trusted proxy (app->trusted_peer): behind a load balancer every
 * connection comes from it, so the per-client connection limit must not count them (the
 * rate limits and live-channel caps key on the forwarded client instead).
 */
static bool from_proxy(const struct server *s, const struct sockaddr *sa)
{
	char ip[INET6_ADDRSTRLEN];
	if (!s->app->trusted_peer || !sa)
		return false;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip, sizeof(ip));
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, ip, sizeof(ip));
	else
		return false;
	return s->app->trusted_peer(s->app, ip);
}

/* Connections enter the table when libmicrohttpd starts them and leave it before it closes
 * their socket (the two notifications pair up, unlike MHD_add_connection's outcome). */
static void connection_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
			      enum MHD_ConnectionNotificationCode code)
{
	struct server *s = cls;
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *fd =
		    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		const union MHD_ConnectionInfo *addr =
		    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		char key[CLIENT_KEY_LEN];
		bool over;
		const struct sockaddr *sa = addr ? addr->client_addr : NULL;
		client_key_addr(sa, key);
		*socket_context = conns_open(s->conns, from_proxy(s, sa) ? NULL : key,
					     fd ? fd->connect_fd : -1, time_mono_us(), &over);
	} else if (code == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context) {
		conns_close(s->conns, *socket_context);
		*socket_context = NULL;
	}
}

/* Whether s is valid UTF-8 (no overlongs, surrogates or code points above U+10FFFF). */
static bool utf8_valid(const unsigned char *s)
{
	while (*s) {
		unsigned c = *s, n;
		uint32_t cp;
		if (c < 0x80) {
			s++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			n = 1, cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2, cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			n = 3, cp = c & 0x07;
		} else {
			return false;
		}
		for (unsigned i = 1; i <= n; i++) {
			if ((s[i] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i] & 0x3f);
		}
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		s += n + 1;
	}
	return true;
}

/*
 * One JSON line per request, written directly (jsonw) rather than through a jansson tree:
 * the access log runs for every request, and building, dumping and freeing a json_t object
 * was a visible share of a cheap read. A method or path that is not valid UTF-8 (a path is
 * percent-decoded, so it can hold any byte) is logged as "-" so the line stays JSON.
 */
static void access_log(struct request *req)
{
	char ts[TIME_RFC3339_LEN];
	struct jsonw w;
	const char *method =
	    req->method && utf8_valid((const unsigned char *)req->method) ? req->method : "-";
	const char *path =
	    req->path && utf8_valid((const unsigned char *)req->path) ? req->path : "-";

	time_format_ms(time_now_ms(), ts);
	jsonw_init(&w, 256);
	jsonw_object_begin(&w);
	jsonw_key(&w, "time");
	jsonw_string(&w, ts);
	jsonw_key(&w, "type");
	jsonw_string(&w, "access");
	jsonw_key(&w, "request_id");
	jsonw_string(&w, req->id);
	jsonw_key(&w, "method");
	jsonw_string(&w, method);
	jsonw_key(&w, "path");
	jsonw_string(&w, path);
	jsonw_key(&w, "status");
	jsonw_int(&w, req->status);
	jsonw_key(&w, "duration_us");
	jsonw_int(&w, time_mono_us() - req->start_us);
	jsonw_key(&w, "bytes");
	jsonw_int(&w, (int64_t)req->resp_len);
	jsonw_object_end(&w);
	size_t len;
	char *line = jsonw_finish(&w, &len);
	log_line(line, len);
	free(line);
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
		      enum MHD_RequestTerminationCode toe)
{
	struct server *s = cls;
	struct request *req = *con_cls;
	(void)conn;
	if (!req)
		return;
	if (!req->queued || toe == MHD_REQUEST_TERMINATED_CLIENT_ABORT)
		req->status = 499; /* the client went away before the answer was sent */
	if (req->tracked)
		conn_request_end(s->conns, req->tracked, time_mono_us());
	if (s->app->cfg->access_log && req->method && log_get_level() <= LOG_INFO)
		access_log(req);
	free(req->resp_body);
	error_release(&req->err);
	arena_release(&req->arena);
	free(req);
	*con_cls = NULL;
	atomic_fetch_sub(&s->inflight, 1);
}

void http_suspend(struct request *req)
{
	/* A parked request waits by design: the request deadline does not apply to it. */
	if (req->tracked)
		conn_request_exempt(req->tracked);
	MHD_suspend_connection(req->conn);
	req->suspended = true;
}

void http_resume(struct request *req)
{
	MHD_resume_connection(req->conn);
}

void http_upgrade_close(void *handle)
{
	MHD_upgrade_action(handle, MHD_UPGRADE_ACTION_CLOSE);
}

/*
 * A streamed response outlives its request: libmicrohttpd runs the completion callback (which
 * frees the request) before it destroys the response. So the response's closure is a copy of
 * what it needs, freed with the response; `req` is used only while the stream is read, when
 * the request is certainly alive.
 */
struct stream_closure {
	long (*reader)(void *cls, struct request *req, char *buf, size_t max);
	void (*release)(void *cls);
	void *cls;
	struct request *req;
};

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct stream_closure *sc = cls;
	(void)pos;
	long n = sc->reader(sc->cls, sc->req, buf, max);
	if (n < 0)
		return MHD_CONTENT_READER_END_OF_STREAM;
	return (ssize_t)n;
}

static void stream_free(void *cls)
{
	struct stream_closure *sc = cls;
	if (sc->release)
		sc->release(sc->cls);
	free(sc);
}

/* Like streams, the upgrade handler gets a copy of what it needs, not the request. */
struct upgrade_closure {
	void (*upgraded)(void *cls, int fd, const char *extra, size_t extra_len, void *handle);
	void *cls;
};

static void upgraded(void *cls, struct MHD_Connection *conn, void *con_cls, const char *extra,
		     size_t extra_len, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
	struct upgrade_closure *uc = cls;
	(void)conn;
	(void)con_cls;
	uc->upgraded(uc->cls, sock, extra, extra_len, urh);
	free(uc);
}

/* Whether answer_options() answered this request (it adds its own CORS headers). */
static bool answered_options(const struct request *req)
{
	return req->method && !strcmp(req->method, "OPTIONS") &&
	       req->routed == ROUTER_METHOD_NOT_ALLOWED && req->status == 204;
}

/*
 * The CORS headers of an actual response (errors, streams and early refusals included, so a
 * browser script can read why it was refused): Vary: Origin whenever CORS is on, since the
 * answer depends on it, and the grant when the request's origin is allowed. A protocol
 * switch gets none: it is not read by a script.
 */
static void add_cors(struct server *s, struct request *req, struct MHD_Response *resp)
{
	const struct cors *c = s->app->cors;
	if (!c || req->special.upgraded || answered_options(req))
		return;
	MHD_add_response_header(resp, "Vary", "Origin");
	const char *origin =
	    cors_allow_origin(c, MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Origin"));
	if (!origin)
		return;
	MHD_add_response_header(resp, "Access-Control-Allow-Origin", origin);
	MHD_add_response_header(resp, "Access-Control-Expose-Headers", CORS_EXPOSE_HEADERS);
}

static enum MHD_Result queue(struct server *s, struct request *req)
{
	struct MHD_Response *resp;

	if (req->special.reader) {
		struct stream_closure *sc = xmalloc(sizeof(*sc));
		*sc = (struct stream_closure){req->special.reader, req->special.release,
					      req->special.cls, req};
		resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, sc,
							 stream_free);
	} else if (req->special.upgraded) {
		struct upgrade_closure *uc = xmalloc(sizeof(*uc));
		*uc = (struct upgrade_closure){req->special.upgraded, req->special.cls};
		resp = MHD_create_response_for_upgrade(upgraded, uc);
	} else if (req->resp_body) {
		resp = MHD_create_response_from_buffer(req->resp_len, req->resp_body,
						       MHD_RESPMEM_MUST_FREE);
		req->resp_body = NULL; /* libmicrohttpd owns it now */
	} else {
		resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	}
	if (!resp)
		return MHD_NO;
	if (req->content_type)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, req->content_type);
	MHD_add_response_header(resp, "X-Request-Id", req->id);
	/* Everything under /v1/auth is uncacheable, also the answers no handler wrote. */
	if (!strncmp(req->path ? req->path : "", "/v1/auth", 8) &&
	    !MHD_get_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL)) {
		bool set = false;
		for (int i = 0; i < req->nheaders; i++)
			set |= !strcasecmp(req->headers[i].name, "Cache-Control");
		if (!set)
			MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	}
	for (int i = 0; i < req->nheaders; i++)
		MHD_add_response_header(resp, req->headers[i].name, req->headers[i].value);
	add_cors(s, req, resp);
	if (atomic_load(&s->draining))
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	enum MHD_Result r = MHD_queue_response(req->conn, (unsigned)req->status, resp);
	MHD_destroy_response(resp);
	req->queued = r == MHD_YES; /* the access log must not claim an answer never sent */
	/* The request has arrived; a stream or a WebSocket lives on past any deadline. */
	if (req->tracked && req->special.upgraded)
		conn_upgraded(s->conns, req->tracked);
	else if (req->tracked)
		conn_request_exempt(req->tracked);
	return r;
}

/* Answer now, before the body was read: libmicrohttpd then closes the connection. */
static enum MHD_Result reject_early(struct server *s, struct request *req, int kind,
				    const char *detail)
{
	error_set(&req->err, kind, "%s", detail);
	reply_error(req, kind);
	return queue(s, req);
}

/*
 * Route and authenticate from the headers alone, on the first call: a request for no route,
 * or by a caller who is not authenticated, is answered before its body is read.
 */
static void route_early(struct request *req)
{
	char allow[128];
	req->routed = router_match(req, req->method, req->path, allow, sizeof(allow));
	/* Every known path answers OPTIONS (answer_options), so Allow lists it too. */
	if (req->routed == ROUTER_METHOD_NOT_ALLOWED)
		req->allow = arena_printf(&req->arena, "%s, OPTIONS", allow);
	if (req->routed == ROUTER_FOUND && !(req->route->flags & ROUTE_PUBLIC) &&
	    req->app->authenticate)
		req->auth_rc = req->app->authenticate(req);
}

/* Whether the request announces a body (Content-Length above 0, or chunked). */
static bool body_announced(struct MHD_Connection *conn)
{
	const char *cl =
	    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	return (cl && strtoull(cl, NULL, 10) > 0) ||
	       MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
					   MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL;
}

/*
 * OPTIONS on a known path: 204 with Allow (what HTTP clients expect), before authentication,
 * rate limits and any body. A CORS preflight (Origin and Access-Control-Request-Method) from
 * an allowed origin, for a method the path has and request headers the API reads, also gets
 * the grant; any other preflight gets none, and the browser then refuses the call.
 */
static void answer_options(struct request *req)
{
	const struct cors *c = req->app->cors;
	const char *origin = request_header(req, "Origin");
	const char *method = request_header(req, "Access-Control-Request-Method");
	char methods[128], headers[256];

	reply_header(req, "Allow", req->allow);
	if (c)
		reply_header(req, "Vary", CORS_PREFLIGHT_VARY);
	const char *allow_origin = cors_allow_origin(c, origin);
	if (allow_origin && method && router_path_methods(req->path, methods, sizeof(methods)) &&
	    cors_method_listed(methods, method) &&
	    cors_allow_headers(request_header(req, "Access-Control-Request-Headers"), headers,
			       sizeof(headers)) == 0) {
		reply_header(req, "Access-Control-Allow-Origin", allow_origin);
		reply_header(req, "Access-Control-Allow-Methods",
			     arena_strdup(&req->arena, methods));
		if (headers[0])
			reply_header(req, "Access-Control-Allow-Headers",
				     arena_strdup(&req->arena, headers));
		reply_header(req, "Access-Control-Max-Age", CORS_MAX_AGE);
	}
	reply_empty(req, 204);
}

/* Whether the request asks for a WebSocket (Upgrade: websocket). */
static bool wants_websocket(struct request *req)
{
	const char *up = request_header(req, "Upgrade");
	return up && !strcasecmp(up, "websocket");
}

static void dispatch(struct request *req)
{
	if (req->routed == ROUTER_METHOD_NOT_ALLOWED && !strcmp(req->method, "OPTIONS")) {
		answer_options(req);
		return;
	}
	switch (req->routed) {
	case ROUTER_NOT_FOUND:
		reply_fail(req, ERR_NOT_FOUND, "no route for %s", req->path);
		return;
	case ROUTER_METHOD_NOT_ALLOWED:
		reply_header(req, "Allow", req->allow);
		reply_fail(req, ERR_METHOD_NOT_ALLOWED, "%s does not accept %s", req->path,
			   req->method);
		return;
	default:
		break;
	}
	/* With CORS on, a browser page from an origin not listed may not open a WebSocket
	 * either (browsers always send Origin on the upgrade; other clients send none). */
	const char *origin = request_header(req, "Origin");
	if (req->app->cors && origin && !cors_allow_origin(req->app->cors, origin) &&
	    wants_websocket(req)) {
		reply_fail(
		    req, ERR_FORBIDDEN,
		    "WebSocket upgrades from origin %s are not allowed (TANDEM_CORS_ORIGINS)",
		    origin);
		return;
	}
	int rc = req->auth_rc;
	/* Limits apply whatever authentication said: a refusal has no effect at all. */
	if (!req->dispatched && req->app->rate_limit) {
		int lrc = req->app->rate_limit(req);
		if (lrc < 0)
			rc = lrc;
	}
	req->dispatched = true;
	/* After authentication and limits: a stranger learns nothing of a route's parameters,
	 * and a refused query still spends the budget. */
	if (rc == 0)
		rc = request_check_query(req);
	if (rc == 0 && (req->route->flags & ROUTE_IDEMPOTENT) && req->app->idempotent)
		rc = req->app->idempotent(req, req->route->handler);
	else if (rc == 0)
		rc = req->route->handler(req);
	if (rc < 0 && !req->replied)
		reply_error(req, rc);
	if (req->suspended && !req->replied)
		return;
	if (!req->replied) {
		log_error("handler for %s %s returned without replying", req->method, req->path);
		reply_fail(req, ERR_INTERNAL, "no reply");
	}
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
			      const char *method, const char *version, const char *upload_data,
			      size_t *upload_data_size, void **con_cls)
{
	struct server *s = cls;
	struct request *req = *con_cls;
	(void)version;

	if (!req->method) {
		/* First call: the headers are in. */
		req->method = arena_strdup(&req->arena, method);
		req->path = arena_strdup(&req->arena, url);
		const char *rid =
		    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
		if (rid && sane_request_id(rid))
			snprintf(req->id, sizeof(req->id), "%s", rid);
		else
			uuid_v7(req->id);
		if (req->tracked && conn_over_limit(req->tracked)) {
			reply_header(req, "Retry-After", "1");
			reply_header(req, "Connection", "close");
			req->limit_policy = "connections";
			return reject_early(s, req, ERR_RATE_LIMITED,
					    "too many open connections from this client");
		}
		const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
							     MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl && strtoull(cl, NULL, 10) > s->app->cfg->max_body_bytes)
			return reject_early(s, req, ERR_PAYLOAD_TOO_LARGE,
					    "request body is larger than the limit");
		route_early(req);
		/* No route, or no right to it: answer without reading the body (libmicrohttpd
		 * then closes the connection, which is what a sender of an unwanted body gets). */
		if (body_announced(conn) && (req->routed != ROUTER_FOUND || req->auth_rc < 0)) {
			dispatch(req);
			reply_header(req, "Connection", "close");
			return queue(s, req);
		}
		return MHD_YES;
	}
	if (req->queued)
		return MHD_YES; /* answered early; libmicrohttpd discards the rest */
	if (*upload_data_size) {
		size_t n = *upload_data_size;
		*upload_data_size = 0;
		/* A body without Content-Length that grows too large: libmicrohttpd cannot answer
		 * in the middle of an upload, so the rest is read and dropped, and the 413 goes
		 * out on the final call. */
		if (req->body_too_large || req->body_len + n > s->app->cfg->max_body_bytes) {
			req->body_too_large = true;
			return MHD_YES;
		}
		if (req->body_len + n + 1 > req->body_cap) {
			size_t cap = req->body_cap ? req->body_cap : 1024;
			while (cap < req->body_len + n + 1)
				cap *= 2;
			char *nb = arena_alloc(&req->arena, cap);
			if (req->body_len)
				memcpy(nb, req->body, req->body_len);
			req->body = nb;
			req->body_cap = cap;
		}
		memcpy(req->body + req->body_len, upload_data, n);
		req->body_len += n;
		req->body[req->body_len] = '\0';
		return MHD_YES;
	}
	/* Final call: the whole request is here (or a parked request was resumed). The deadline
	 * bounds its arrival, not the handler's work (a database wait must not cut an answer). */
	if (req->tracked)
		conn_request_exempt(req->tracked);
	if (req->body_too_large) {
		error_set(&req->err, ERR_PAYLOAD_TOO_LARGE,
			  "request body is larger than the limit");
		reply_error(req, ERR_PAYLOAD_TOO_LARGE);
		return queue(s, req);
	}
	req->suspended = false;
	dispatch(req);
	if (req->suspended)
		return MHD_YES; /* parked; libmicrohttpd calls us again once resumed */
	return queue(s, req);
}

/*
 * The listening socket is ours, not libmicrohttpd's: an acceptor thread accepts and hands each
 * connection to libmicrohttpd (MHD_add_connection, which applies the connection limits).
 * Graceful shutdown must stop listening while in-flight requests finish, and
 * MHD_quiesce_daemon() cannot do that safely with a thread pool in 0.9.75: it removes the
 * listening socket from each worker's epoll set while the workers may be doing the same,
 * and the loser aborts the process ("Failed to remove listen FD from epoll set", seen under
 * load on SIGTERM). With our own socket, shutdown is: stop the acceptor, close the socket
 * (new connections are refused at once), drain, stop libmicrohttpd.
 */
static void *acceptor_main(void *arg)
{
	struct server *s = arg;
	bool said_full = false;
	for (;;) {
		struct sockaddr_storage peer;
		socklen_t len = sizeof(peer);
		int fd = accept4(s->listen_fd, (struct sockaddr *)&peer, &len,
				 SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			if (atomic_load(&s->draining))
				return NULL; /* server_stop() shut the socket down */
			if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN)
				continue; /* a signal, or a peer that went away before accept */
			/* Out of descriptors or memory (or anything unexpected): leave the
			 * connection queued, say so once, and try again soon rather than spin. */
			if (!said_full)
				log_warn("cannot accept a connection: %s", strerror(errno));
			said_full = true;
			struct timespec ts = {0, 10 * 1000000};
			nanosleep(&ts, NULL);
			continue;
		}
		said_full = false;
		/* Past its client's connection limit: a problem answer, and closed, without ever
		 * reaching libmicrohttpd. */
		char key[CLIENT_KEY_LEN];
		client_key_addr((struct sockaddr *)&peer, key);
		if (!from_proxy(s, (struct sockaddr *)&peer) && !conns_has_room(s->conns, key)) {
			conns_refuse(s->conns, fd, time_mono_us());
			continue;
		}
		/* On failure libmicrohttpd closes the socket (limits reached, no memory). */
		MHD_add_connection(s->daemon, fd, (struct sockaddr *)&peer, len);
	}
}

/* Ends connections whose request ran past TANDEM_REQUEST_TIMEOUT (http/conns.h). */
static void *sweeper_main(void *arg)
{
	struct server *s = arg;
	pthread_mutex_lock(&s->sweeper_lock);
	while (!s->stop_sweeper) {
		struct timespec until = time_mono_after_ms(200);
		pthread_cond_timedwait(&s->sweeper_wake, &s->sweeper_lock, &until);
		if (s->stop_sweeper)
			break;
		pthread_mutex_unlock(&s->sweeper_lock);
		conns_sweep(s->conns, time_mono_us());
		pthread_mutex_lock(&s->sweeper_lock);
	}
	pthread_mutex_unlock(&s->sweeper_lock);
	return NULL;
}

/* Start the sweeper thread; its clock is CLOCK_MONOTONIC like the deadlines it checks. */
static int sweeper_start(struct server *s)
{
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&s->sweeper_wake, &attr);
	pthread_condattr_destroy(&attr);
	pthread_mutex_init(&s->sweeper_lock, NULL);
	if (pthread_create(&s->sweeper, NULL, sweeper_main, s) == 0)
		return 0;
	pthread_cond_destroy(&s->sweeper_wake);
	pthread_mutex_destroy(&s->sweeper_lock);
	return -1;
}

static void sweeper_stop(struct server *s)
{
	pthread_mutex_lock(&s->sweeper_lock);
	s->stop_sweeper = true;
	pthread_cond_signal(&s->sweeper_wake);
	pthread_mutex_unlock(&s->sweeper_lock);
	pthread_join(s->sweeper, NULL);
	pthread_cond_destroy(&s->sweeper_wake);
	pthread_mutex_destroy(&s->sweeper_lock);
}

static int listen_on(const struct config *cfg, unsigned *port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int one = 1;
	memset(&ss, 0, sizeof(ss));
	if (strchr(cfg->listen_host, ':')) {
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(cfg->listen_port);
		inet_pton(AF_INET6, cfg->listen_host, &a6->sin6_addr);
		len = sizeof(*a6);
	} else {
		struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
		a4->sin_family = AF_INET;
		a4->sin_port = htons(cfg->listen_port);
		inet_pton(AF_INET, cfg->listen_host, &a4->sin_addr);
		len = sizeof(*a4);
	}
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	/* SO_REUSEADDR: a restart binds at once despite TIME_WAIT. Not SO_REUSEPORT, which would
	 * let a second tandem start on the same port and silently take half the connections. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    (ss.ss_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) ||
	    bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 1024) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
		*port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						       : ((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}

int server_start(struct app *app, struct server **out)
{
	const struct config *cfg = app->cfg;
	struct server *s = xcalloc(1, sizeof(*s));
	unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG |
			 MHD_ALLOW_SUSPEND_RESUME | MHD_ALLOW_UPGRADE | MHD_USE_NO_LISTEN_SOCKET;

	s->app = app;
	s->port = cfg->listen_port;
	/* The per-client limit is ours, not MHD_OPTION_PER_IP_CONNECTION_LIMIT: libmicrohttpd
	 * keys on the whole address, and an IPv6 client holds a /64. */
	s->conns =
	    conns_create(cfg->max_connections_per_ip, (int64_t)cfg->request_timeout_s * 1000000,
			 (int64_t)cfg->connection_timeout_s * 1000000);
	s->listen_fd = listen_on(cfg, &s->port);
	if (s->listen_fd < 0) {
		log_error("cannot listen on %s:%u: %s", cfg->listen_host, cfg->listen_port,
			  strerror(errno));
		conns_free(s->conns);
		free(s);
		return -1;
	}
	s->daemon = MHD_start_daemon(
	    flags, 0, NULL, NULL, handle, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
	    s, /* first, so every message goes through it */
	    MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->threads, MHD_OPTION_CONNECTION_LIMIT,
	    (unsigned)cfg->max_connections, MHD_OPTION_NOTIFY_CONNECTION, connection_notify, s,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->connection_timeout_s,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)cfg->connection_memory,
	    MHD_OPTION_URI_LOG_CALLBACK, uri_logger, s, MHD_OPTION_NOTIFY_COMPLETED, completed, s,
	    MHD_OPTION_END);
	if (!s->daemon) {
		log_error("cannot start the HTTP server on %s:%u", cfg->listen_host, s->port);
		close(s->listen_fd);
		conns_free(s->conns);
		free(s);
		return -1;
	}
	if (sweeper_start(s) != 0) {
		log_error("cannot start the request deadline thread");
		MHD_stop_daemon(s->daemon);
		close(s->listen_fd);
		conns_free(s->conns);
		free(s);
		return -1;
	}
	if (pthread_create(&s->acceptor, NULL, acceptor_main, s) != 0) {
		log_error("cannot start the acceptor thread");
		sweeper_stop(s);
		MHD_stop_daemon(s->daemon);
		close(s->listen_fd);
		conns_free(s->conns);
		free(s);
		return -1;
	}
	*out = s;
	return 0;
}

unsigned server_port(const struct server *s)
{
	return s->port;
}

void server_stop(struct server *s)
{
	if (!s)
		return;
	/* Stop listening: shutdown() wakes the acceptor out of accept(); once it is gone, the
	 * socket closes and new connections are refused. */
	atomic_store(&s->draining, true);
	shutdown(s->listen_fd, SHUT_RDWR);
	pthread_join(s->acceptor, NULL);
	close(s->listen_fd);
	/* Long-lived answers (streams, parked polls, WebSockets) end first: libmicrohttpd must
	 * not be stopped while a connection is parked. */
	if (s->app->drain)
		s->app->drain(s->app);
	int64_t deadline = time_mono_us() + (int64_t)s->app->cfg->shutdown_timeout_s * 1000000;
	int64_t idle_since = 0;
	/*
	 * Wait until nothing has been in flight for a short moment: a keep-alive client may
	 * have a request on the wire that libmicrohttpd has not read yet.
	 */
	while (time_mono_us() < deadline) {
		if (atomic_load(&s->inflight) == 0) {
			if (!idle_since)
				idle_since = time_mono_us();
			else if (time_mono_us() - idle_since > 100000)
				break;
		} else {
			idle_since = 0;
		}
		struct timespec ts = {0, 5 * 1000000};
		nanosleep(&ts, NULL);
	}
	int left = atomic_load(&s->inflight);
	if (left > 0)
		log_warn("shutdown timeout: %d request(s) still in flight", left);
	/* The sweeper may shut down sockets only while libmicrohttpd owns them. */
	sweeper_stop(s);
	MHD_stop_daemon(s->daemon);
	conns_free(s->conns);
	free(s);
}
