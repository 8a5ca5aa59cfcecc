/*
 * test_router.c — router_match against the real route table of routes.c: fixed routes,
 * unknown paths, 405 with the Allow list, HEAD served by GET routes, and {param} capture.
 *
 * The table grows as resources are added, so besides a few fixed routes the tests walk the
 * table itself: every route must be reachable by its own method, and every path must answer
 * 405 with exactly the methods the table lists for it. A request is a zeroed struct request
 * with an initialised arena, which is all the router touches.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "handlers/handlers.h"
#include "http/request.h"
#include "http/router.h"

#define ALLOW_LEN 128

static int setup(void **state)
{
	struct request *req = calloc(1, sizeof(*req));
	if (!req)
		return -1;
	arena_init(&req->arena);
	*state = req;
	return 0;
}

static int teardown(void **state)
{
	struct request *req = *state;
	arena_release(&req->arena);
	free(req);
	return 0;
}

static void reset(struct request *req)
{
	arena_release(&req->arena);
	memset(req, 0, sizeof(*req));
	arena_init(&req->arena);
}

static enum router_result route(struct request *req, const char *method, const char *path,
				char allow[ALLOW_LEN])
{
	reset(req);
	return router_match(req, method, path, allow, ALLOW_LEN);
}

/* A concrete path for a pattern: the i-th {name} becomes "v<i>-<name>". */
static char *concrete_path(struct arena *a, const char *pattern)
{
	size_t cap = strlen(pattern) * 2 + 64, o = 0;
	char *out = arena_alloc(a, cap);
	int n = 0;
	for (const char *p = pattern; *p && o < cap - 1;) {
		if (*p == '{') {
			const char *close = strchr(p, '}');
			assert_non_null(close);
			int w = snprintf(out + o, cap - o, "v%d-%.*s", n++, (int)(close - p - 1),
					 p + 1);
			assert_true(w > 0 && (size_t)w < cap - o);
			o += (size_t)w;
			p = close + 1;
		} else {
			out[o++] = *p++;
		}
	}
	out[o] = '\0';
	return out;
}

/* Patterns that match the same paths: equal once every {name} is read as {}. */
static bool same_shape(const char *x, const char *y)
{
	while (*x && *y) {
		if (*x == '{' && *y == '{') {
			x = strchr(x, '}') + 1;
			y = strchr(y, '}') + 1;
			continue;
		}
		if (*x++ != *y++)
			return false;
	}
	return *x == *y;
}

static int count_params(const char *pattern)
{
	int n = 0;
	for (const char *p = pattern; (p = strchr(p, '{')) != NULL; p++)
		n++;
	return n;
}

static void test_healthz_is_found(void **state)
{
	struct request *req = *state;
	char allow[ALLOW_LEN];
	assert_int_equal(route(req, "GET", "/healthz", allow), ROUTER_FOUND);
	assert_non_null(req->route);
	assert_ptr_equal(req->route->handler, handle_healthz);
	assert_string_equal(req->route->method, "GET");
	assert_true(req->route->flags & ROUTE_PUBLIC);
	assert_int_equal(req->nparams, 0);
}

static void test_readyz_is_found(void **state)
{
	struct request *req = *state;
	char allow[ALLOW_LEN];
	assert_int_equal(route(req, "GET", "/readyz", allow), ROUTER_FOUND);
	assert_ptr_equal(req->route->handler, handle_readyz);
}

static void test_v1_is_found(void **state)
{
	struct request *req = *state;
	char allow[ALLOW_LEN];
	assert_int_equal(route(req, "GET", "/v1", allow), ROUTER_FOUND);
	assert_ptr_equal(req->route->handler, handle_v1_info);
}

static void test_head_matches_the_get_route(void **state)
{
	struct request *req = *state;
	char allow[ALLOW_LEN];
	assert_int_equal(route(req, "HEAD", "/healthz", allow), ROUTER_FOUND);
	assert_ptr_equal(req->route->handler, handle_healthz);
	assert_int_equal(route(req, "HEAD", "/v1", allow), ROUTER_FOUND);
	assert_ptr_equal(req->route->handler, handle_v1_info);
}

static void test_unknown_path_is_not_found(void **state)
{
	struct request *req = *state;
	char allow[ALLOW_LEN];
	static const char *const paths[] = {
	    "/nope",	 "/",	      "",	  "/healthz/", "/healthz/x", "/health",
	    "/healthzz", "//healthz", "/HEALTHZ", "/v1/",      "/v2",	     "/v1/no-such-resource",
	    "healthz",
	};
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		enum router_result r = route(req, "GET", paths[i], allow);
		if (r != ROUTER_NOT_FOUND)
			fail_msg("GET \"%s\" gave %d, want ROUTER_NOT_FOUND", paths[i], r);
		assert_null(req->route);
		assert_string_equal(allow, "");
	}
}

static void test_method_is_case_sensitive(void **state)
{
	struct request *req = *state;
	char allow[ALLOW_LEN];
	assert_int_equal(route(req, "get", "/healthz", allow), ROUTER_METHOD_NOT_ALLOWED);
}

static void test_wrong_method_is_405_with_allow(void **state)
{
	struct request *req = *state;
	char allow[ALLOW_LEN];
	assert_int_equal(route(req, "POST", "/healthz", allow), ROUTER_METHOD_NOT_ALLOWED);
	assert_string_equal(allow, "GET, HEAD");
	assert_null(req->route);
	assert_int_equal(route(req, "DELETE", "/v1", allow), ROUTER_METHOD_NOT_ALLOWED);
	assert_string_equal(allow, "GET, HEAD");
}

static void test_every_route_is_reachable_with_its_own_method(void **state)
{
	struct request *req = *state;
	char allow[ALLOW_LEN];
	assert_true(routes_count > 0);
	for (size_t i = 0; i < routes_count; i++) {
		const struct route *r = &routes[i];
		reset(req);
		char *path = concrete_path(&req->arena, r->pattern);
		enum router_result res = router_match(req, r->method, path, allow, ALLOW_LEN);
		if (res != ROUTER_FOUND)
			fail_msg("%s %s (pattern %s) gave %d", r->method, path, r->pattern, res);
		/* An earlier route may legitimately serve the same path (a literal before a
		 * {param}); it must then be for the same method. */
		assert_string_equal(req->route->method, r->method);
		assert_non_null(req->route->handler);
		if (req->route == r)
			assert_int_equal(req->nparams, count_params(r->pattern));
	}
}

static void test_every_path_answers_405_with_exactly_its_methods(void **state)
{
	struct request *req = *state;
	char allow[ALLOW_LEN], want[ALLOW_LEN];
	for (size_t i = 0; i < routes_count; i++) {
		const struct route *r = &routes[i];
		want[0] = '\0';
		for (size_t j = 0; j < routes_count; j++) {
			if (!same_shape(routes[j].pattern, r->pattern))
				continue;
			size_t used = strlen(want);
			snprintf(want + used, sizeof(want) - used, "%s%s%s", used ? ", " : "",
				 routes[j].method,
				 strcmp(routes[j].method, "GET") == 0 ? ", HEAD" : "");
		}
		reset(req);
		char *path = concrete_path(&req->arena, r->pattern);
		assert_int_equal(router_match(req, "TRACE", path, allow, ALLOW_LEN),
				 ROUTER_METHOD_NOT_ALLOWED);
		if (strcmp(allow, want) != 0)
			fail_msg("TRACE %s: Allow \"%s\", want \"%s\"", path, allow, want);
	}
}

static void test_head_is_allowed_wherever_get_is(void **state)
{
	struct request *req = *state;
	char allow[ALLOW_LEN];
	for (size_t i = 0; i < routes_count; i++) {
		if (strcmp(routes[i].method, "GET") != 0)
			continue;
		reset(req);
		char *path = concrete_path(&req->arena, routes[i].pattern);
		assert_int_equal(router_match(req, "HEAD", path, allow, ALLOW_LEN), ROUTER_FOUND);
		assert_string_equal(req->route->method, "GET");
	}
}

/* Match the concrete path of r and check each {name} came out as "v<i>-<name>". */
static void check_capture(struct request *req, const struct route *r)
{
	char allow[ALLOW_LEN], path[256], name[64], value[96];
	reset(req);
	snprintf(path, sizeof(path), "%s", concrete_path(&req->arena, r->pattern));
	assert_int_equal(router_match(req, r->method, path, allow, ALLOW_LEN), ROUTER_FOUND);
	if (req->route != r)
		return; /* served by an earlier route of the same shape: checked elsewhere */
	memset(path, '#', strlen(path)); /* values must be copies, not views of the path */
	assert_int_equal(req->nparams, count_params(r->pattern));
	const char *p = r->pattern;
	for (int n = 0; n < req->nparams; n++) {
		p = strchr(p, '{') + 1;
		snprintf(name, sizeof(name), "%.*s", (int)strcspn(p, "}"), p);
		snprintf(value, sizeof(value), "v%d-%s", n, name);
		assert_string_equal(req->param_names[n], name);
		assert_string_equal(req->param_values[n], value);
		assert_string_equal(request_param(req, name), value);
	}
	assert_null(request_param(req, "no-such-param"));
}

/* With the n-th parameter's value removed (an empty segment), r must not match. */
static void check_empty_segment(struct request *req, const struct route *r, int n)
{
	char allow[ALLOW_LEN], path[256], tag[16];
	reset(req);
	snprintf(path, sizeof(path), "%s", concrete_path(&req->arena, r->pattern));
	snprintf(tag, sizeof(tag), "v%d-", n);
	char *seg = strstr(path, tag);
	assert_non_null(seg);
	size_t len = strcspn(seg, "/");
	memmove(seg, seg + len, strlen(seg + len) + 1);
	reset(req);
	if (router_match(req, r->method, path, allow, ALLOW_LEN) == ROUTER_FOUND && req->route == r)
		fail_msg("%s %s matched %s with an empty parameter", r->method, path, r->pattern);
}

static void test_params_are_captured_into_the_arena(void **state)
{
	struct request *req = *state;
	int seen = 0;
	for (size_t i = 0; i < routes_count; i++) {
		if (!strchr(routes[i].pattern, '{'))
			continue;
		seen++;
		check_capture(req, &routes[i]);
	}
	if (!seen) {
		print_message("the route table has no {param} route yet\n");
		skip();
	}
}

static void test_empty_segment_is_not_a_param_value(void **state)
{
	struct request *req = *state;
	int seen = 0;
	for (size_t i = 0; i < routes_count; i++)
		for (int n = 0; n < count_params(routes[i].pattern); n++, seen++)
			check_empty_segment(req, &routes[i], n);
	if (!seen) {
		print_message("the route table has no {param} route yet\n");
		skip();
	}
}

static void test_small_allow_buffer_is_truncated_not_overrun(void **state)
{
	struct request *req = *state;
	char allow[4];
	memset(allow, 'x', sizeof(allow));
	reset(req);
	assert_int_equal(router_match(req, "POST", "/healthz", allow, sizeof(allow)),
			 ROUTER_METHOD_NOT_ALLOWED);
	assert_true(memchr(allow, '\0', sizeof(allow)) != NULL);
}

static void test_path_methods_are_the_table_methods_without_head(void **state)
{
	char out[ALLOW_LEN];
	(void)state;
	assert_true(router_path_methods("/v1/projects/p1", out, sizeof(out)));
	assert_string_equal(out, "GET, PATCH, DELETE");
	assert_true(router_path_methods("/healthz", out, sizeof(out)));
	assert_string_equal(out, "GET");
	assert_true(router_path_methods("/v1/auth/login", out, sizeof(out)));
	assert_string_equal(out, "POST");
}

static void test_path_methods_of_an_unknown_path_are_none(void **state)
{
	char out[ALLOW_LEN];
	(void)state;
	memset(out, 'x', sizeof(out));
	assert_false(router_path_methods("/nowhere", out, sizeof(out)));
	assert_string_equal(out, "");
	assert_false(router_path_methods("/v1/projects/", out, sizeof(out)));
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_healthz_is_found),
	    T(test_readyz_is_found),
	    T(test_v1_is_found),
	    T(test_head_matches_the_get_route),
	    T(test_unknown_path_is_not_found),
	    T(test_method_is_case_sensitive),
	    T(test_wrong_method_is_405_with_allow),
	    T(test_every_route_is_reachable_with_its_own_method),
	    T(test_every_path_answers_405_with_exactly_its_methods),
	    T(test_head_is_allowed_wherever_get_is),
	    T(test_params_are_captured_into_the_arena),
	    T(test_empty_segment_is_not_a_param_value),
	    T(test_small_allow_buffer_is_truncated_not_overrun),
	    T(test_path_methods_are_the_table_methods_without_head),
	    T(test_path_methods_of_an_unknown_path_are_none),
	};
#undef T
	return cmocka_run_group_tests_name("http/router", tests, NULL, NULL);
}
