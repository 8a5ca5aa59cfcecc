/*
 * idempotency.c — runs a POST handler under its Idempotency-Key: claims the key, runs the
 * handler, stores what it answered in the same transaction as the handler's change (the
 * service's transaction is held open until then, services/tx.h), and replays a stored answer
 * byte for byte.
 */
#include "handlers/handlers.h"
#include "config/config.h"
#include "core/log.h"
#include "http/reply.h"
#include "http/request.h"
#include "http/server.h"
#include "services/idempotency.h"
#include "store/users.h"

#include <stdlib.h>
#include <string.h>

/* Response headers worth replaying (the rest are per-response: request id, date). */
static const char *const kept[] = {"Location", "ETag", "Cache-Control", NULL};

/* Forget the headers that described a created resource (its Location, its ETag). */
static void drop_headers(struct request *req)
{
	int n = 0;
	for (int i = 0; i < req->nheaders; i++) {
		bool keep = true;
		for (int k = 0; kept[k]; k++)
			keep &= strcmp(req->headers[i].name, kept[k]) != 0;
		if (keep)
			req->headers[n++] = req->headers[i];
	}
	req->nheaders = n;
}

int handlers_idempotent(struct request *req, int (*handler)(struct request *))
{
	const char *key = request_header(req, "Idempotency-Key");
	enum idem_outcome outcome;
	struct idem_response stored;
	int rc;

	if (!key)
		return handler(req);
	if (!idem_key_valid(key))
		return error_set(&req->err, ERR_BAD_REQUEST,
				 "Idempotency-Key must be 1 to 255 printable ASCII characters");
	if ((rc = idem_begin(req->app->store, &req->arena, req->user->id, key, req->method,
			     req->path, req->body, req->body_len,
			     (int64_t)req->app->cfg->idempotency_ttl_s * 1000, &outcome, &stored,
			     &req->err)) < 0)
		return rc;
	if (outcome == IDEM_REPLAY) {
		json_t *h = arena_json(&req->arena,
				       json_loads(stored.headers ? stored.headers : "{}", 0, NULL));
		const char *name;
		json_t *v;
		const char *ct = "application/json";
		json_object_foreach(h, name, v)
		{
			if (!strcmp(name, "Content-Type"))
				ct = json_string_value(v);
			else
				reply_header(req, arena_strdup(&req->arena, name),
					     json_string_value(v));
		}
		reply_header(req, "Idempotent-Replayed", "true");
		if (!stored.body[0])
			return reply_empty(req, stored.status);
		return reply_raw(req, stored.status, arena_strdup(&req->arena, ct), stored.body,
				 strlen(stored.body));
	}

	idem_run_begin();
	rc = handler(req);
	if (rc < 0 && !req->replied)
		reply_error(req, rc);
	json_t *h = json_object();
	if (req->content_type)
		json_object_set_new(h, "Content-Type", json_string(req->content_type));
	for (int i = 0; i < req->nheaders; i++)
		for (int k = 0; kept[k]; k++)
			if (!strcmp(req->headers[i].name, kept[k]))
				json_object_set_new(h, kept[k], json_string(req->headers[i].value));
	char *htext = json_dumps(h, JSON_COMPACT);
	json_decref(h);
	struct idem_response resp = {
	    .status = req->status, .headers = htext, .body = req->resp_body ? req->resp_body : ""};
	struct error err = ERROR_INIT;
	bool undone;
	rc = idem_finish(req->app->store, req->user->id, key, &resp, &undone, &err);
	free(htext);
	if (rc < 0 && undone) {
		/* Nothing was stored after all: the answer built for the change is void. */
		error_release(&req->err);
		req->err = err;
		drop_headers(req);
		return reply_error(req, rc);
	}
	if (rc < 0)
		log_json(LOG_ERROR, "cannot store an idempotent response",
			 json_pack("{s:s, s:s}", "request_id", req->id, "detail", err.detail));
	error_release(&err);
	return 0;
}
