/*
 * fuzz_query.c — the request line and the query string as our code reads them: the router
 * (http/router.c) and the list parameters (the task filters and sorts of services/tasks.c,
 * ?limit= of services/paging.c, the cursors and ?q= of the project and member lists).
 *
 * Also the event seq of ?after= and of the SSE Last-Event-ID header (services/events.c),
 * given here as the query key Last-Event-ID.
 *
 * Input: "METHOD PATH\nk=v&k=v...". libmicrohttpd splits and percent-decodes the query string
 * before our code sees it, so the harness hands values over as they are (any byte but NUL).
 * The lists run against the fake store (fake_store.c): their parsing runs for real, the
 * database never answers. Properties beyond the sanitizers: a route found rebuilds to the
 * path it matched; a 405 names the methods allowed; ?limit= is accepted exactly when it is
 * a number from 1 to 200 in plain digits; a seq exactly when it is plain digits within int64,
 * read back as written; a list refuses with 400 or 422 (a field named) or
 * reaches the store, never anything else.
 */
#include "fuzz.h"
#include "core/arena.h"
#include "core/error.h"
#include "core/uuid.h"
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

static void lists(char *query)
{
	struct task_query q;
	struct arena a;
	struct error err = ERROR_INIT;
	struct task_page tp;
	struct page page;
	const char *after = NULL, *last_event_id = NULL;
	json_t *feed;
	memset(&q, 0, sizeof(q));
	arena_init(&a);
	/* The last value of a repeated key wins, as with MHD_lookup_connection_value's first
	 * match: either way one value per key. */
	char *save = NULL;
	for (char *kv = strtok_r(query, "&", &save); kv; kv = strtok_r(NULL, "&", &save)) {
		char *eq = strchr(kv, '=');
		const char *v = eq ? eq + 1 : "";
		if (eq)
			*eq = '\0';
		const char **slot = NULL;
		if (!strcmp(kv, "project_id"))
			slot = &q.project_id;
		else if (!strcmp(kv, "status"))
			slot = &q.status;
		else if (!strcmp(kv, "priority"))
			slot = &q.priority;
		else if (!strcmp(kv, "assignee_id"))
			slot = &q.assignee_id;
		else if (!strcmp(kv, "due_before"))
			slot = &q.due_before;
		else if (!strcmp(kv, "due_after"))
			slot = &q.due_after;
		else if (!strcmp(kv, "updated_since"))
			slot = &q.updated_since;
		else if (!strcmp(kv, "q"))
			slot = &q.q;
		else if (!strcmp(kv, "sort"))
			slot = &q.sort;
		else if (!strcmp(kv, "cursor"))
			slot = &q.cursor;
		else if (!strcmp(kv, "limit"))
			slot = &q.limit;
		else if (!strcmp(kv, "after"))
			slot = &after;
		else if (!strcmp(kv, "Last-Event-ID"))
			slot = &last_event_id;
		if (slot)
			*slot = v;
	}
	if (q.limit)
		limit(q.limit);
	if (after)
		seq(after);
	if (last_event_id)
		seq(last_event_id);
	check(events_feed(NULL, &a, &me, PROJECT, after, q.limit, &feed, &err), &err);
	check(task_list(NULL, &a, &me, &q, false, &tp, &err), &err);
	q.project_id = PROJECT;
	check(task_list(NULL, &a, &me, &q, true, &tp, &err), &err);
	check(project_list(NULL, &a, &me, q.q, q.limit, q.cursor, &page, &err), &err);
	check(member_list(NULL, &a, &me, PROJECT, q.limit, q.cursor, &page, &err), &err);
	if (q.assignee_id) {
		char id[UUID_STR_LEN];
		if (uuid_normalize(q.assignee_id, id))
			FUZZ_CHECK(uuid_valid(id));
	}
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
