/* common.c — see common.h. */
#include "handlers/common.h"
#include "core/arena.h"
#include "core/error.h"
#include "core/hlist.h"
#include "core/jsonw.h"
#include "core/uuid.h"
#include "http/reply.h"
#include "http/request.h"
#include "services/paging.h"
#include "services/precondition.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *param_uuid(struct request *req, const char *name)
{
	const char *v = request_param(req, name);
	char *out = arena_alloc(&req->arena, UUID_STR_LEN);
	return v && uuid_normalize(v, out) ? out : NULL;
}

/* Parse one entity tag "12" or W/"12" whose opaque part is a version of ours ("1", "2", ...). */
static bool parse_tag(const char *s, size_t len, bool *weak, int64_t *out)
{
	*weak = len >= 2 && s[0] == 'W' && s[1] == '/';
	if (*weak) {
		s += 2;
		len -= 2;
	}
	/* Tags compare octet by octet, so only the form we send can match: no leading zero. */
	if (len < 3 || s[0] != '"' || s[len - 1] != '"' || s[1] == '0')
		return false;
	int64_t v = 0;
	for (size_t i = 1; i + 1 < len; i++) {
		if (s[i] < '0' || s[i] > '9' || v > (INT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return v > 0;
}

struct if_match_walk {
	struct precondition *pre;
	int elements;
	bool star;
};

static bool add_if_match_tag(const char *s, size_t len, void *cls)
{
	struct if_match_walk *w = cls;
	struct precondition *pre = w->pre;
	bool weak;
	int64_t v;
	w->elements++;
	if (len == 1 && *s == '*')
		w->star = true;
	else if (!parse_tag(s, len, &weak, &v))
		pre->malformed = true;
	else if (weak)
		pre->weak = true; /* strong comparison (RFC 9110 §13.1.1): never a match */
	else if (pre->nversions < PRECONDITION_MAX_VERSIONS)
		pre->versions[pre->nversions++] = v;
	return true;
}

void if_match(struct request *req, struct precondition *out)
{
	const char *h = request_header(req, "If-Match");
	*out = (struct precondition){.any = !h};
	if (!h)
		return;
	struct if_match_walk w = {.pre = out};
	hlist_each(h, add_if_match_tag, &w);
	if (w.star && w.elements == 1) {
		*out = (struct precondition){.any = true};
		return;
	}
	if (w.star)
		out->malformed = true; /* the grammar allows "*" only alone */
	if (!out->nversions && !out->weak)
		out->malformed = true; /* an empty header names nothing either */
}

int if_match_refused(struct request *req, int rc, const struct precondition *pre)
{
	if (rc == -ERR_PRECONDITION_FAILED && pre->current > 0)
		set_etag(req, pre->current);
	return rc;
}

struct none_match {
	int64_t version;
	bool found;
};

static bool find_none_match_tag(const char *s, size_t len, void *cls)
{
	struct none_match *m = cls;
	bool weak;
	int64_t v;
	if ((len == 1 && *s == '*') || (parse_tag(s, len, &weak, &v) && v == m->version))
		m->found = true;
	return !m->found;
}

bool if_none_match(struct request *req, int64_t version)
{
	struct none_match m = {.version = version};
	hlist_each(request_header(req, "If-None-Match"), find_none_match_tag, &m);
	return m.found;
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
