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

/* Answer `status` with a JSON body (`body` is stolen). Returns 0. */
int reply_json(struct request *req, int status, json_t *body);
/* Answer with a raw body of the given content type (copied). Returns 0. */
int reply_raw(struct request *req, int status, const char *content_type, const char *body,
	      size_t len);
/* Answer with no body (204, 304). Returns 0. */
int reply_empty(struct request *req, int status);

/*
 * Answer the error `kind` (negative or positive) as problem+json using req->err's detail and
 * field errors. A 5xx never shows its detail to the client; it is logged with the request id.
 */
int reply_error(struct request *req, int kind);

/* Record an error and answer it at once: reply_fail(req, ERR_NOT_FOUND, "no task %s", id). */
int reply_fail(struct request *req, int kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
