/* common.c — see common.h. */
#include "handlers/common.h"
#include "core/arena.h"
#include "core/error.h"
#include "core/jsonw.h"
#include "core/uuid.h"
#include "http/reply.h"
#include "http/request.h"
#include "services/paging.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *param_uuid(struct request *req, const char *name)
{
	const char *v = request_param(req, name);
	char *out = arena_alloc(&req->arena, UUID_STR_LEN);
	return v && uuid_normalize(v, out) ? out : NULL;
}

/* Parse one entity tag: "12" or W/"12". */
static bool parse_tag(const char *s, size_t len, int64_t *out)
{
	if (len >= 2 && s[0] == 'W' && s[1] == '/') {
		s += 2;
		len -= 2;
	}
	if (len < 3 || s[0] != '"' || s[len - 1] != '"')
		return false;
	int64_t v = 0;
	for (size_t i = 1; i + 1 < len; i++) {
		if (s[i] < '0' || s[i] > '9' || v > (INT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return len > 2;
}

static const char *trim(const char *s, size_t *len)
{
	while (*len && (*s == ' ' || *s == '\t')) {
		s++;
		(*len)--;
	}
	while (*len && (s[*len - 1] == ' ' || s[*len - 1] == '\t'))
		(*len)--;
	return s;
}

int if_match_version(struct request *req, int64_t *out)
{
	const char *h = request_header(req, "If-Match");
	*out = 0;
	if (!h)
		return 0;
	size_t len = strlen(h);
	const char *s = trim(h, &len);
	if (len == 1 && *s == '*')
		return 0;
	if (strchr(s, ',') || !parse_tag(s, len, out) || *out <= 0)
		return error_set(&req->err, ERR_PRECONDITION_FAILED,
				 "If-Match must be the resource's ETag, e.g. \"3\"");
	return 0;
}

bool if_none_match(struct request *req, int64_t version)
{
	const char *h = request_header(req, "If-None-Match");
	if (!h)
		return false;
	const char *p = h;
	while (*p) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		const char *s = trim(p, &len);
		int64_t v;
		if ((len == 1 && *s == '*') || (parse_tag(s, len, &v) && v == version))
			return true;
		if (!comma)
			break;
		p = comma + 1;
	}
	return false;
}

void set_etag(struct request *req, int64_t version)
{
	reply_header(req, "ETag", arena_printf(&req->arena, "\"%lld\"", (long long)version));
}

static void set_link(struct request *req, const char *next_cursor)
{
	if (next_cursor)
		reply_header(req, "Link",
			     arena_printf(&req->arena, "<%s>; rel=\"next\"",
					  request_url_with(req, "cursor", next_cursor)));
}

int reply_page(struct request *req, const struct page *page)
{
	set_link(req, page->next_cursor);
	json_t *body = json_pack("{s:O, s:s?, s:b}", "data", page->data, "next_cursor",
				 page->next_cursor, "has_more", page->next_cursor != NULL);
	return reply_json(req, 200, body);
}

int reply_page_text(struct request *req, const char *data, size_t len, const char *next_cursor)
{
	struct jsonw w;
	size_t n;
	set_link(req, next_cursor);
	jsonw_init(&w, len + 128 + (next_cursor ? strlen(next_cursor) : 0));
	jsonw_object_begin(&w);
	jsonw_key(&w, "data");
	jsonw_raw(&w, data, len);
	jsonw_key(&w, "next_cursor");
	jsonw_string_or_null(&w, next_cursor);
	jsonw_key(&w, "has_more");
	jsonw_bool(&w, next_cursor != NULL);
	jsonw_object_end(&w);
	char *body = jsonw_finish(&w, &n);
	return reply_json_text(req, 200, body, n);
}
