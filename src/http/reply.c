/* reply.c — see reply.h. */
#include "http/reply.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "http/request.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Seconds a client should wait after a 503 before it retries. */
#define REPLY_RETRY_AFTER_S "1"

void reply_header(struct request *req, const char *name, const char *value)
{
	if (req->nheaders >= REQUEST_MAX_HEADERS) {
		log_error("too many response headers for %s %s", req->method, req->path);
		return;
	}
	req->headers[req->nheaders].name = name;
	req->headers[req->nheaders].value = value;
	req->nheaders++;
}

void reply_header_set(struct request *req, const char *name, const char *value)
{
	for (int i = 0; i < req->nheaders; i++) {
		if (strcasecmp(req->headers[i].name, name) == 0) {
			req->headers[i].value = value;
			return;
		}
	}
	reply_header(req, name, value);
}

static void set_body(struct request *req, int status, const char *ct, char *body, size_t len)
{
	free(req->resp_body);
	req->status = status;
	req->content_type = ct;
	req->resp_body = body;
	req->resp_len = len;
	req->replied = true;
}

int reply_json(struct request *req, int status, json_t *body)
{
	char *s = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (!s)
		abort(); /* only possible on allocation failure */
	set_body(req, status, "application/json", s, strlen(s));
	return 0;
}

int reply_json_text(struct request *req, int status, char *body, size_t len)
{
	/* Everything reply_json() sets: the headers come from the server, the type from here. */
	set_body(req, status, "application/json", body, len);
	return 0;
}

int reply_raw(struct request *req, int status, const char *content_type, const char *body,
	      size_t len)
{
	char *copy = xmalloc(len + 1);
	memcpy(copy, body, len);
	copy[len] = '\0';
	set_body(req, status, content_type, copy, len);
	return 0;
}

int reply_empty(struct request *req, int status)
{
	set_body(req, status, NULL, NULL, 0);
	return 0;
}

int reply_stream(struct request *req, const char *content_type,
		 long (*reader)(void *cls, struct request *req, char *buf, size_t max),
		 void (*release)(void *cls), void *cls)
{
	set_body(req, 200, content_type, NULL, 0);
	req->special.reader = reader;
	req->special.release = release;
	req->special.cls = cls;
	return 0;
}

int reply_upgrade(struct request *req,
		  void (*upgraded)(void *cls, int fd, const char *extra, size_t extra_len,
				   void *handle),
		  void *cls)
{
	set_body(req, 101, NULL, NULL, 0);
	req->special.upgraded = upgraded;
	req->special.cls = cls;
	return 0;
}

int reply_error(struct request *req, int kind)
{
	if (kind < 0)
		kind = -kind;
	int status = error_status(kind);
	const char *code = error_code(kind);
	const char *detail = req->err.detail[0] ? req->err.detail : error_title(kind);

	if (status >= 500) {
		log_json(LOG_ERROR, "request failed",
			 json_pack("{s:s, s:s, s:s, s:i, s:s}", "request_id", req->id, "method",
				   req->method ? req->method : "-", "path",
				   req->path ? req->path : "-", "status", status, "detail",
				   req->err.detail));
		detail = status == 503 ? "the service is temporarily unavailable; retry later"
				       : "an unexpected error occurred; it has been logged";
	}
	/* A 503 is a dependency that went away (the database reconnects with a back-off of
	 * at most a second or two): say when trying again is worth it (RFC 9110 10.2.3). */
	if (status == 503)
		reply_header(req, "Retry-After", REPLY_RETRY_AFTER_S);
	json_t *p = json_pack("{s:s+, s:s, s:i, s:s, s:s, s:s}", "type", "/problems/", code,
			      "title", error_title(kind), "status", status, "detail", detail,
			      "instance", req->id, "code", code);
	if (!p) /* a detail that is not valid UTF-8 (it quoted client input) */
		p = json_pack("{s:s+, s:s, s:i, s:s, s:s, s:s}", "type", "/problems/", code,
			      "title", error_title(kind), "status", status, "detail",
			      error_title(kind), "instance", req->id, "code", code);
	/* A 429 says which limit refused it (the RateLimit field names it too). */
	if (kind == ERR_RATE_LIMITED && req->limit_policy)
		json_object_set_new(p, "policy", json_string(req->limit_policy));
	if (req->err.fields && status < 500) {
		json_object_set(p, "errors", req->err.fields);
		if (req->err.nfields > json_array_size(req->err.fields))
			json_object_set_new(p, "truncated", json_true());
	}
	char *s = json_dumps(p, JSON_COMPACT);
	json_decref(p);
	set_body(req, status, "application/problem+json", s, strlen(s));
	return 0;
}

int reply_fail(struct request *req, int kind, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(req->err.detail, sizeof(req->err.detail), fmt, ap);
	va_end(ap);
	req->err.kind = kind < 0 ? -kind : kind;
	return reply_error(req, kind);
}
