/*
 * docs.c — GET /openapi.json and GET /docs: the API document and its rendered reference,
 * both embedded in the binary at build time (see docs_data.h). Stateless and thread-safe.
 */
#include "core/hlist.h"
#include "handlers/docs_data.h"
#include "handlers/handlers.h"
#include "http/reply.h"
#include "http/request.h"

#include <stdbool.h>
#include <string.h>

/* The content only changes with the binary; a short max-age keeps upgrades visible. */
#define DOCS_CACHE_CONTROL "public, max-age=300"

struct tag_match {
	const char *etag;
	bool found;
};

static bool match_tag(const char *tag, size_t len, void *cls)
{
	struct tag_match *m = cls;
	if (len >= 2 && tag[0] == 'W' && tag[1] == '/') {
		tag += 2;
		len -= 2;
	}
	m->found =
	    (len == 1 && *tag == '*') || (len == strlen(m->etag) && !memcmp(tag, m->etag, len));
	return !m->found;
}

/* True when If-None-Match lists `etag` (weakly compared, as RFC 9110 wants for GET) or "*". */
static bool not_modified(struct request *req, const char *etag)
{
	struct tag_match m = {.etag = etag};
	hlist_each(request_header(req, "If-None-Match"), match_tag, &m);
	return m.found;
}

static int reply_static(struct request *req, const char *content_type, const char *body, size_t len,
			const char *etag)
{
	reply_header(req, "ETag", etag);
	reply_header(req, "Cache-Control", DOCS_CACHE_CONTROL);
	if (not_modified(req, etag))
		return reply_empty(req, 304);
	return reply_raw(req, 200, content_type, body, len);
}

/* GET /openapi.json -> 200 the OpenAPI 3.1 document, ETag | 304 */
int handle_openapi_json(struct request *req)
{
	return reply_static(req, "application/json", openapi_json, openapi_json_len,
			    openapi_json_etag);
}

/* GET /docs -> 200 the HTML reference (no network needed to render it), ETag | 304 */
int handle_docs(struct request *req)
{
	reply_header(req, "Content-Security-Policy", docs_csp);
	reply_header(req, "X-Content-Type-Options", "nosniff");
	reply_header(req, "Referrer-Policy", "no-referrer");
	return reply_static(req, "text/html; charset=utf-8", docs_html, docs_html_len,
			    docs_html_etag);
}
