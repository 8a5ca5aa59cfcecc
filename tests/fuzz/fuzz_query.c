/*
 * fuzz_query.c — the request line and the query string as our code reads them: the router
 * (http/router.c) and the list parameters (the task filters and sorts of services/tasks.c,
 * ?limit= of services/paging.c, the cursors and ?q= of the project and member lists).
 *
 * Also the event seq of ?after= and of the SSE Last-Event-ID header (services/events.c),
 * given here as the query key Last-Event-ID.
 *
 * The arguments go through query_check (http/query.c) against each list's declared
 * parameters first, repeats and unknown names included, as the server does before a handler.
 *
 * Input: "METHOD PATH\nk=v&k=v...". libmicrohttpd splits and percent-decodes the query string
 * before our code sees it, so the harness hands values over as they are (any byte but NUL).
 * The lists run against the fake store (fake_store.c): their parsing runs for real, the
 * database never answers. Properties beyond the sanitizers: a route found rebuilds to the
 * path it matched; a 405 names the methods allowed; ?limit= is accepted exactly when it is
 * a number from 1 to 200 in plain digits; a seq exactly when it is plain digits within int64,
 * read back as written; a list refuses with 400 or 422 (a field named) or
 * reaches the store, never anything else; query_check refuses as unknown exactly when a name
 * is not declared, and otherwise gives each name once, lists joined in order, other names
 * only when given once.
 */
#include "fuzz.h"
#include "core/arena.h"
#include "core/error.h"
#include "core/uuid.h"
#include "http/query.h"
#include "http/request.h"
#include "http/router.h"
#include "services/events.h"
#include "services/members.h"
#include "services/paging.h"
#include "services/projects.h"
#include "services/tasks.h"
#include "store/db.h"
#include "store/users.h"

#include <string.h>

static const char PROJECT[] = "01900000-0000-7000-8000-000000000001";

static struct user me = {.id = "01900000-0000-7000-8000-000000000003",
			 .username = "alice",
			 .email = "alice@example.com",
			 .display_name = "",
			 .password_hash = "*0",
			 .is_active = true};

static void route(const char *line)
{
	struct request req;
	char allow[128];
	memset(&req, 0, sizeof(req));
	arena_init(&req.arena);
	const char *sp = strchr(line, ' ');
	const char *method = sp ? arena_strndup(&req.arena, line, (size_t)(sp - line)) : "GET";
	const char *path = sp ? sp + 1 : line;
	enum router_result r = router_match(&req, method, path, allow, sizeof(allow));
	FUZZ_CHECK(memchr(allow, '\0', sizeof(allow)) != NULL);
	if (r == ROUTER_FOUND) {
		FUZZ_CHECK(req.route && req.nparams >= 0 && req.nparams <= ROUTE_MAX_PARAMS);
		/* The pattern with its parameters filled in is the path. */
		char *rebuilt = "";
		const char *p = req.route->pattern;
		int n = 0;
		while (*p) {
			if (*p == '{') {
				FUZZ_CHECK(n < req.nparams);
				const char *v = req.param_values[n++];
				FUZZ_CHECK(*v && !strchr(v, '/'));
				rebuilt = arena_printf(&req.arena, "%s%s", rebuilt, v);
				p = strchr(p, '}') + 1;
			} else {
				rebuilt = arena_printf(&req.arena, "%s%c", rebuilt, *p++);
			}
		}
		FUZZ_CHECK(n == req.nparams && strcmp(rebuilt, path) == 0);
		FUZZ_CHECK(!strcmp(req.route->method, method) ||
			   (!strcmp(method, "HEAD") && !strcmp(req.route->method, "GET")));
	} else if (r == ROUTER_METHOD_NOT_ALLOWED) {
		FUZZ_CHECK(allow[0] != '\0');
	} else {
		FUZZ_CHECK(r == ROUTER_NOT_FOUND);
	}
	arena_release(&req.arena);
}

/* A list call's outcome: refused as a client error, or it reached the (absent) store. */
static void check(int rc, struct error *err)
{
	FUZZ_CHECK(rc == -ERR_BAD_REQUEST || rc == -ERR_VALIDATION_FAILED ||
		   rc == -ERR_UNAVAILABLE || rc == -ERR_NOT_FOUND);
	FUZZ_CHECK(err->kind == -rc);
	FUZZ_CHECK(fuzz_fake_conn()->tx_depth == 0);
	if (rc == -ERR_VALIDATION_FAILED)
		FUZZ_CHECK(error_field_count(err) > 0);
	error_release(err);
}

static void limit(const char *s)
{
	struct error err = ERROR_INIT;
	int v = -1;
	bool digits = *s && strspn(s, "0123456789") == strlen(s);
	if (paging_limit(s, &v, &err) == 0) {
		FUZZ_CHECK(digits && v >= 1 && v <= PAGING_MAX_LIMIT);
	} else {
		FUZZ_CHECK(error_field_count(&err) == 1);
		FUZZ_CHECK(!digits || strlen(s) > 3 || atoi(s) < 1 || atoi(s) > PAGING_MAX_LIMIT);
	}
	error_release(&err);
}

static void seq(const char *s)
{
	int64_t v = -1;
	bool digits = *s && strspn(s, "0123456789") == strlen(s);
	if (events_seq_parse(s, &v)) {
		FUZZ_CHECK(digits && v >= 0);
		char back[32];
		snprintf(back, sizeof(back), "%lld", (long long)v);
		size_t zeros = strspn(s, "0");
		FUZZ_CHECK(!strcmp(back, s[zeros] ? s + zeros : "0"));
	} else {
		/* Refused: not plain digits, or more than int64 holds (19 digits at least). */
		FUZZ_CHECK(!digits || strlen(s + strspn(s, "0")) >= 19);
	}
}

#define MAX_ARGS 64

/* The route of `method path` in the real table, or NULL. */
static const struct route *find_route(const char *method, const char *path)
{
	for (size_t i = 0; i < routes_count; i++)
		if (!strcmp(routes[i].method, method) && !strcmp(routes[i].pattern, path))
			return &routes[i];
	return NULL;
}

static const struct route_param *declared(const struct route_param *params, const char *name,
					  size_t len)
{
	for (const struct route_param *p = params; p && p->name; p++)
		if (strlen(p->name) == len && !memcmp(p->name, name, len))
			return p;
	return NULL;
}

/*
 * query_check of the arguments against one route's table, and its properties: refused as
 * unknown exactly when a name is not declared; otherwise each declared name given comes out
 * once, a list as its values joined with ',' in order, anything else only when given once.
 * On success *out and *nout hold the checked arguments (arena).
 */
static int checked(struct arena *a, const struct route_param *params, const struct query_arg *in,
		   int n, struct query_arg **out, int *nout)
{
	struct error err = ERROR_INIT;
	bool any_unknown = false;
	for (int i = 0; i < n; i++)
		any_unknown |= !(in[i].name_len == 0 && !in[i].value) && /* an empty segment */
			       !declared(params, in[i].name, in[i].name_len);
	int rc = query_check(a, params, in, n, out, nout, &err);
	FUZZ_CHECK(rc == 0 || rc == -ERR_UNKNOWN_PARAMETER || rc == -ERR_VALIDATION_FAILED);
	FUZZ_CHECK((rc == -ERR_UNKNOWN_PARAMETER) == any_unknown);
	if (rc < 0) {
		FUZZ_CHECK(err.kind == -rc && error_field_count(&err) > 0 && *out == NULL);
		error_release(&err);
		return rc;
	}
	FUZZ_CHECK(err.kind == 0 && *nout <= n);
	for (int j = 0; j < *nout; j++) {
		const struct route_param *p =
		    declared(params, (*out)[j].name, strlen((*out)[j].name));
		FUZZ_CHECK(p != NULL);
		for (int k = 0; k < j; k++)
			FUZZ_CHECK(strcmp((*out)[k].name, (*out)[j].name) != 0);
		char *want = NULL;
		int times = 0;
		for (int i = 0; i < n; i++) {
			if (in[i].name_len != strlen(p->name) ||
			    memcmp(in[i].name, p->name, in[i].name_len))
				continue;
			const char *v = in[i].value ? in[i].value : "";
			want = times++ ? arena_printf(a, "%s,%s", want, v) : arena_strdup(a, v);
		}
		FUZZ_CHECK(times >= 1 && (times == 1 || (p->flags & PARAM_LIST)));
		FUZZ_CHECK(!strcmp(query_get(*out, *nout, p->name), want));
	}
	return 0;
}

static void lists(char *query)
{
	struct task_query q;
	struct arena a;
	struct error err = ERROR_INIT;
	struct task_page tp;
	struct page page;
	struct query_arg in[MAX_ARGS], *out;
	int n = 0, nout;
	json_t *feed;
	memset(&q, 0, sizeof(q));
	arena_init(&a);
	/* Arguments as libmicrohttpd hands them over, repeats and all. */
	char *save = NULL;
	for (char *kv = strtok_r(query, "&", &save); kv && n < MAX_ARGS;
	     kv = strtok_r(NULL, "&", &save)) {
		char *eq = strchr(kv, '=');
		if (eq)
			*eq = '\0';
		/* Last-Event-ID is a header, given here as a key: the seq parser alone sees it. */
		if (!strcmp(kv, "Last-Event-ID")) {
			if (eq)
				seq(eq + 1);
			continue;
		}
		in[n++] =
		    (struct query_arg){kv, eq ? eq + 1 : NULL, strlen(kv), eq ? strlen(eq + 1) : 0};
	}

	const struct route *r = find_route("GET", "/v1/projects/{id}/events");
	if (checked(&a, router_params(r), in, n, &out, &nout) == 0) {
		const char *after = query_get(out, nout, "after");
		if (query_get(out, nout, "limit"))
			limit(query_get(out, nout, "limit"));
		if (after)
			seq(after);
		check(events_feed(NULL, &a, &me, PROJECT, after, query_get(out, nout, "limit"),
				  &feed, &err),
		      &err);
	}
	static const char *const task_lists[] = {"/v1/tasks", "/v1/projects/{id}/tasks"};
	for (size_t t = 0; t < 2; t++) {
		r = find_route("GET", task_lists[t]);
		if (checked(&a, router_params(r), in, n, &out, &nout) < 0)
			continue;
		q = (struct task_query){
		    .project_id = t ? PROJECT : query_get(out, nout, "project_id"),
		    .status = query_get(out, nout, "status"),
		    .priority = query_get(out, nout, "priority"),
		    .assignee_id = query_get(out, nout, "assignee_id"),
		    .due_before = query_get(out, nout, "due_before"),
		    .due_after = query_get(out, nout, "due_after"),
		    .updated_since = query_get(out, nout, "updated_since"),
		    .q = query_get(out, nout, "q"),
		    .sort = query_get(out, nout, "sort"),
		    .cursor = query_get(out, nout, "cursor"),
		    .limit = query_get(out, nout, "limit"),
		};
		check(task_list(NULL, &a, &me, &q, t == 1, &tp, &err), &err);
		if (q.assignee_id) {
			char id[UUID_STR_LEN];
			if (uuid_normalize(q.assignee_id, id))
				FUZZ_CHECK(uuid_valid(id));
		}
	}
	r = find_route("GET", "/v1/projects");
	if (checked(&a, router_params(r), in, n, &out, &nout) == 0)
		check(project_list(NULL, &a, &me, query_get(out, nout, "q"),
				   query_get(out, nout, "limit"), query_get(out, nout, "cursor"),
				   &page, &err),
		      &err);
	r = find_route("GET", "/v1/projects/{id}/members");
	if (checked(&a, router_params(r), in, n, &out, &nout) == 0)
		check(member_list(NULL, &a, &me, PROJECT, query_get(out, nout, "limit"),
				  query_get(out, nout, "cursor"), &page, &err),
		      &err);
	/* A route without parameters takes none. */
	r = find_route("GET", "/healthz");
	if (checked(&a, router_params(r), in, n, &out, &nout) == 0)
		FUZZ_CHECK(n == 0 && nout == 0);
	arena_release(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_string(data, size);
	char *nl = strchr(text, '\n');
	if (nl)
		*nl = '\0';
	route(text);
	if (nl)
		lists(nl + 1);
	free(text);
	return 0;
}
