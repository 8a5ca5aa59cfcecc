/*
 * docs.c — GET /openapi.json and GET /docs: the API document and its rendered reference,
 * both embedded in the binary at build time (see docs_data.h). Stateless and thread-safe.
 */
#include "handlers/docs_data.h"
#include "handlers/handlers.h"
#include "http/reply.h"
#include "http/request.h"

#include <stdbool.h>
#include <string.h>

/* The content only changes with the binary; a short max-age keeps upgrades visible. */
#define DOCS_CACHE_CONTROL "public, max-age=300"

/* True when If-None-Match lists `etag` (weakly compared, as RFC 9110 wants for GET) or "*". */
static bool not_modified(struct request *req, const char *etag)
{
	const char *h = request_header(req, "If-None-Match");
	size_t elen = strlen(etag);
	if (!h)
		return false;
	for (const char *p = h; *p;) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		const char *end = p;
		while (*end && *end != ',')
			end++;
		size_t len = (size_t)(end - p);
		while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		const char *tag = p;
		if (len >= 2 && tag[0] == 'W' && tag[1] == '/') {
			tag += 2;
			len -= 2;
		}
		if ((len == 1 && *tag == '*') || (len == elen && !memcmp(tag, etag, elen)))
			return true;
		p = end;
	}
	return false;
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
