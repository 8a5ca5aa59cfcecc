/*
 * reply.h — building the answer to a request. The only place where an error kind becomes an
 * HTTP response (problem+json, RFC 9457). Handlers call one reply_* function, or return a
 * negative error kind with detail in req->err and let the server call reply_error().
 */
#ifndef TANDEM_HTTP_REPLY_H
#define TANDEM_HTTP_REPLY_H

#include <jansson.h>

struct request;

/* Add a response header; name and value must live as long as the request (arena or static). */
void reply_header(struct request *req, const char *name, const char *value);
/* The same, replacing the value of a header of that name added before (if any). */
void reply_header_set(struct request *req, const char *name, const char *value);

/* Answer `status` with a JSON body (`body` is stolen). Returns 0. */
int reply_json(struct request *req, int status, json_t *body);
/*
 * Answer `status` with a body that is already serialised JSON (e.g. by core/jsonw): the same
 * answer as reply_json() gives for the value it denotes. `body` is malloc'd, NUL-terminated
 * (idempotent replays store it as a string) and `len` bytes long without the NUL; it is
 * stolen. Returns 0.
 */
int reply_json_text(struct request *req, int status, char *body, size_t len);
/* Answer with a raw body of the given content type (copied). Returns 0. */
int reply_raw(struct request *req, int status, const char *content_type, const char *body,
	      size_t len);
/* Answer with no body (204, 304). Returns 0. */
int reply_empty(struct request *req, int status);

/*
 * Answer with a body produced over time (Server-Sent Events). `reader` returns the bytes it
 * put in buf (> 0), 0 after parking the request with http_suspend() when it has nothing now,
 * or -1 at the end of the stream. `release` runs when the response is gone.
 */
int reply_stream(struct request *req, const char *content_type,
		 long (*reader)(void *cls, struct request *req, char *buf, size_t max),
		 void (*release)(void *cls), void *cls);

/*
 * Answer 101 Switching Protocols (headers added by the caller) and hand the connection to
 * `upgraded` once the answer is on the wire: it receives the socket, bytes the client sent
 * early, and a handle for http_upgrade_close(). It must not block.
 */
int reply_upgrade(struct request *req,
		  void (*upgraded)(void *cls, int fd, const char *extra, size_t extra_len,
				   void *handle),
		  void *cls);

/*
 * Answer the error `kind` (negative or positive) as problem+json using req->err's detail and
 * field errors. A 5xx never shows its detail to the client; it is logged with the request id.
 */
int reply_error(struct request *req, int kind);

/* Record an error and answer it at once: reply_fail(req, ERR_NOT_FOUND, "no task %s", id). */
int reply_fail(struct request *req, int kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
