/* request.c — the request accessors of request.h over libmicrohttpd. */
#include "http/request.h"
#include "core/arena.h"
#include "http/query.h"
#include "http/router.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>

const char *request_header(struct request *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

struct header_join {
	struct request *req;
	const char *name;
	char *out;
};

static enum MHD_Result join_header(void *cls, enum MHD_ValueKind kind, const char *key,
				   const char *value)
{
	struct header_join *j = cls;
	(void)kind;
	if (strcasecmp(key, j->name) != 0 || !value)
		return MHD_YES;
	j->out = j->out ? arena_printf(&j->req->arena, "%s, %s", j->out, value)
			: arena_strdup(&j->req->arena, value);
	return MHD_YES;
}

const char *request_header_all(struct request *req, const char *name)
{
	struct header_join j = {req, name, NULL};
	MHD_get_connection_values(req->conn, MHD_HEADER_KIND, join_header, &j);
	return j.out;
}

struct query_collect {
	struct request *req;
	struct query_arg *args;
	int n, cap;
};

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key,
				   size_t key_size, const char *value, size_t value_size)
{
	struct query_collect *q = cls;
	(void)kind;
	if (q->n == q->cap) {
		int cap = q->cap ? q->cap * 2 : 16;
		struct query_arg *na = arena_alloc(&q->req->arena, sizeof(*na) * (size_t)cap);
		if (q->n)
			memcpy(na, q->args, sizeof(*na) * (size_t)q->n);
		q->args = na;
		q->cap = cap;
	}
	q->args[q->n++] = (struct query_arg){key, value, key_size, value ? value_size : 0};
	return MHD_YES;
}

int request_check_query(struct request *req)
{
	struct query_collect q = {.req = req};
	if (req->query_checked)
		return 0;
	MHD_get_connection_values_n(req->conn, MHD_GET_ARGUMENT_KIND, collect_arg, &q);
	int rc = query_check(&req->arena, router_params(req->route), q.args, q.n, &req->query,
			     &req->nquery, &req->err);
	if (rc == 0)
		req->query_checked = true;
	return rc;
}

const char *request_query(struct request *req, const char *name)
{
	if (req->query_checked)
		return query_get(req->query, req->nquery, name);
	return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *request_param(struct request *req, const char *name)
{
	for (int i = 0; i < req->nparams; i++)
		if (!strcmp(req->param_names[i], name))
			return req->param_values[i];
	return NULL;
}

struct url_build {
	struct request *req;
	const char *key, *value;
	char *buf;
	size_t len, cap;
};

static void url_append(struct url_build *b, const char *s, bool encode)
{
	static const char hex[] = "0123456789ABCDEF";
	if (!b->cap) { /* the terminator needs room even when s is empty */
		b->cap = 256;
		b->buf = arena_alloc(&b->req->arena, b->cap);
	}
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		bool plain = !encode || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			     (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
			     c == '~' || c == ',';
		if (b->len + 4 > b->cap) {
			size_t cap = b->cap ? b->cap * 2 : 256;
			char *nb = arena_alloc(&b->req->arena, cap);
			if (b->len)
				memcpy(nb, b->buf, b->len);
			b->buf = nb;
			b->cap = cap;
		}
		if (plain) {
			b->buf[b->len++] = (char)c;
		} else {
			b->buf[b->len++] = '%';
			b->buf[b->len++] = hex[c >> 4];
			b->buf[b->len++] = hex[c & 15];
		}
	}
	b->buf[b->len] = '\0';
}

static enum MHD_Result url_arg(void *cls, enum MHD_ValueKind kind, const char *key,
			       const char *value)
{
	struct url_build *b = cls;
	(void)kind;
	if (!strcmp(key, b->key))
		return MHD_YES;
	url_append(b, b->len && strchr(b->buf, '?') ? "&" : "?", false);
	url_append(b, key, true);
	if (value) {
		url_append(b, "=", false);
		url_append(b, value, true);
	}
	return MHD_YES;
}

const char *request_url_with(struct request *req, const char *key, const char *value)
{
	struct url_build b = {.req = req, .key = key, .value = value};
	url_append(&b, req->path, true);
	/* The path was decoded by libmicrohttpd; re-encoding keeps its slashes as they were. */
	for (size_t i = 0; i + 2 < b.len; i++)
		if (b.buf[i] == '%' && b.buf[i + 1] == '2' && b.buf[i + 2] == 'F') {
			b.buf[i] = '/';
			memmove(b.buf + i + 1, b.buf + i + 3, b.len - i - 2);
			b.len -= 2;
		}
	MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, url_arg, &b);
	url_append(&b, strchr(b.buf, '?') ? "&" : "?", false);
	url_append(&b, key, true);
	url_append(&b, "=", false);
	url_append(&b, value, true);
	return b.buf;
}

const char *request_peer(struct request *req)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	char buf[INET6_ADDRSTRLEN] = "-";
	if (ci && ci->client_addr) {
		if (ci->client_addr->sa_family == AF_INET)
			inet_ntop(AF_INET, &((const struct sockaddr_in *)ci->client_addr)->sin_addr,
				  buf, sizeof(buf));
		else if (ci->client_addr->sa_family == AF_INET6)
			inet_ntop(AF_INET6,
				  &((const struct sockaddr_in6 *)ci->client_addr)->sin6_addr, buf,
				  sizeof(buf));
	}
	return arena_strdup(&req->arena, buf);
}

/* application/json, optionally with parameters; only a UTF-8 charset is accepted. */
static bool json_content_type(const char *ct)
{
	if (!ct)
		return false;
	while (*ct == ' ')
		ct++;
	size_t n = strlen("application/json");
	if (strncasecmp(ct, "application/json", n) != 0)
		return false;
	const char *rest = ct + n;
	while (*rest == ' ')
		rest++;
	if (*rest == '\0')
		return true;
	if (*rest != ';')
		return false;
	const char *cs = strcasestr(rest, "charset=");
	if (!cs)
		return true;
	cs += strlen("charset=");
	if (*cs == '"')
		cs++;
	return strncasecmp(cs, "utf-8", 5) == 0 || strncasecmp(cs, "utf8", 4) == 0;
}

int request_json(struct request *req, json_t **out)
{
	json_error_t jerr;

	if (!json_content_type(request_header(req, MHD_HTTP_HEADER_CONTENT_TYPE)))
		return error_set(&req->err, ERR_UNSUPPORTED_MEDIA_TYPE,
				 "the body must be application/json");
	if (req->body_len == 0)
		return error_set(&req->err, ERR_MALFORMED_JSON, "the body is empty");
	json_t *j =
	    json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!j)
		return error_set(&req->err, ERR_MALFORMED_JSON, "%s at line %d column %d",
				 jerr.text, jerr.line, jerr.column);
	arena_json(&req->arena, j);
	if (!json_is_object(j)) {
		error_field(&req->err, "", "type", "the body must be a JSON object");
		return -ERR_VALIDATION_FAILED;
	}
	*out = j;
	return 0;
}
