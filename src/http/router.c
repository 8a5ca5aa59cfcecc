/* router.c — segment-by-segment matching of the static route table. */
#include "http/router.h"
#include "core/arena.h"
#include "http/request.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/*
 * Match `path` against `pattern`; on success store the {name} parameters in req (names point
 * into the static pattern, values into the arena).
 */
static bool match(struct request *req, const char *pattern, const char *path, bool capture)
{
	const char *p = pattern, *u = path;
	int n = 0;

	while (*p && *u) {
		if (*p == '{') {
			const char *close = strchr(p, '}');
			const char *seg_end = strchr(u, '/');
			size_t seg = seg_end ? (size_t)(seg_end - u) : strlen(u);
			if (seg == 0 || n >= ROUTE_MAX_PARAMS)
				return false;
			if (capture) {
				req->param_names[n] =
				    arena_strndup(&req->arena, p + 1, (size_t)(close - p - 1));
				req->param_values[n] = arena_strndup(&req->arena, u, seg);
			}
			n++;
			p = close + 1;
			u += seg;
			continue;
		}
		if (*p != *u)
			return false;
		p++;
		u++;
	}
	if (*p || *u)
		return false;
	if (capture)
		req->nparams = n;
	return true;
}

enum router_result router_match(struct request *req, const char *method, const char *path,
				char *allow, size_t allow_len)
{
	bool path_known = false;
	const char *want = strcmp(method, "HEAD") == 0 ? "GET" : method;
	size_t used = 0;

	allow[0] = '\0';
	for (size_t i = 0; i < routes_count; i++) {
		const struct route *r = &routes[i];
		if (!match(req, r->pattern, path, false))
			continue;
		if (strcmp(r->method, want) == 0) {
			match(req, r->pattern, path, true);
			req->route = r;
			return ROUTER_FOUND;
		}
		path_known = true;
		int w = snprintf(allow + used, allow_len - used, "%s%s%s", used ? ", " : "",
				 r->method, strcmp(r->method, "GET") == 0 ? ", HEAD" : "");
		if (w > 0 && (size_t)w < allow_len - used)
			used += (size_t)w;
	}
	return path_known ? ROUTER_METHOD_NOT_ALLOWED : ROUTER_NOT_FOUND;
}

const struct route_param *router_params(const struct route *r)
{
	for (size_t i = 0; r && i < route_queries_count; i++)
		if (!strcmp(route_queries[i].method, r->method) &&
		    !strcmp(route_queries[i].pattern, r->pattern))
			return route_queries[i].params;
	return NULL;
}

bool router_path_methods(const char *path, char *out, size_t out_len)
{
	size_t used = 0;
	bool known = false;

	out[0] = '\0';
	for (size_t i = 0; i < routes_count; i++) {
		if (!match(NULL, routes[i].pattern, path, false))
			continue;
		known = true;
		int w = snprintf(out + used, out_len - used, "%s%s", used ? ", " : "",
				 routes[i].method);
		if (w > 0 && (size_t)w < out_len - used)
			used += (size_t)w;
	}
	return known;
}
