/*
 * test_query.c — query_check (http/query.c): the query string against a route's declared
 * parameters. Unknown names (with the accepted ones and a likely meant one), a route that
 * takes none, repeats refused or merged for lists, names without '=', and values that hold a
 * NUL byte or are not UTF-8; and the tables of routes.c through router_params.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/error.h"
#include "http/query.h"
#include "http/router.h"

struct fixture {
	struct arena a;
	struct error err;
	struct query_arg *out;
	int nout;
};

static const struct route_param tasks[] = {{"status", PARAM_LIST},
					   {"priority", PARAM_LIST},
					   {"sort", PARAM_LIST},
					   {"limit", 0},
					   {"cursor", 0},
					   {"q", 0},
					   {NULL, 0}};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	arena_init(&f->a);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	error_release(&f->err);
	arena_release(&f->a);
	free(f);
	return 0;
}

/* Arguments from "k=v" texts; "k" alone is a name without '='. */
static int check(struct fixture *f, const struct route_param *params, int n, ...)
{
	struct query_arg in[16];
	va_list ap;
	va_start(ap, n);
	for (int i = 0; i < n; i++) {
		const char *kv = va_arg(ap, const char *);
		const char *eq = strchr(kv, '=');
		in[i] =
		    (struct query_arg){kv, eq ? eq + 1 : NULL, eq ? (size_t)(eq - kv) : strlen(kv),
				       eq ? strlen(eq + 1) : 0};
	}
	va_end(ap);
	error_release(&f->err);
	return query_check(&f->a, params, in, n, &f->out, &f->nout, &f->err);
}

static const char *field_at(struct fixture *f, size_t i, const char *key)
{
	return json_string_value(json_object_get(json_array_get(f->err.fields, i), key));
}

static void test_declared_parameters_pass_through(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(check(f, tasks, 3, "limit=5", "status=todo", "q=a b"), 0);
	assert_int_equal(f->nout, 3);
	assert_string_equal(query_get(f->out, f->nout, "limit"), "5");
	assert_string_equal(query_get(f->out, f->nout, "status"), "todo");
	assert_string_equal(query_get(f->out, f->nout, "q"), "a b");
	assert_null(query_get(f->out, f->nout, "cursor"));
	assert_int_equal(check(f, tasks, 0), 0);
	assert_int_equal(f->nout, 0);
}

static void test_unknown_parameter_is_named_with_a_hint_and_the_accepted_names(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char *arg, *name, *hint;
	} cases[] = {
	    {"priorty=high", "priorty", "priority"}, /* a letter left out */
	    {"stauts=todo", "stauts", "status"},     /* two swapped */
	    {"Status=todo", "Status", "status"},     /* case */
	    {"per_page=2", "per_page", "limit"},     /* another API's name */
	    {"order=desc", "order", "sort"},
	    {"offset=10", "offset", "cursor"},
	    {"xyz=1", "xyz", NULL}, /* nothing close */
	    {"Q=1", "Q", "q"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(check(f, tasks, 2, "limit=1", cases[i].arg),
				 -ERR_UNKNOWN_PARAMETER);
		assert_int_equal(f->err.kind, ERR_UNKNOWN_PARAMETER);
		assert_null(f->out);
		assert_int_equal(error_field_count(&f->err), 1);
		assert_string_equal(field_at(f, 0, "field"), cases[i].name);
		assert_string_equal(field_at(f, 0, "code"), "unknown_parameter");
		const char *msg = field_at(f, 0, "message");
		if (cases[i].hint) {
			char want[128];
			snprintf(want, sizeof(want),
				 "is not a parameter of this route; did you mean '%s'?",
				 cases[i].hint);
			assert_string_equal(msg, want);
		} else {
			assert_string_equal(msg, "is not a parameter of this route");
		}
		assert_non_null(strstr(f->err.detail, cases[i].name));
		assert_non_null(
		    strstr(f->err.detail, "accepted: status, priority, sort, limit, cursor, q"));
	}
}

static void test_several_unknown_are_each_named_once(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(check(f, tasks, 5, "a=1", "status=todo", "b", "a=2", "a"),
			 -ERR_UNKNOWN_PARAMETER);
	assert_int_equal(error_field_count(&f->err), 2);
	assert_string_equal(field_at(f, 0, "field"), "a");
	assert_string_equal(field_at(f, 1, "field"), "b");
	assert_non_null(strstr(f->err.detail, "2 unknown query parameters"));
}

static void test_a_route_without_parameters_refuses_any(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(check(f, NULL, 0), 0);
	assert_int_equal(check(f, NULL, 1, "x=1"), -ERR_UNKNOWN_PARAMETER);
	assert_string_equal(field_at(f, 0, "message"), "this route takes no parameters");
	assert_non_null(strstr(f->err.detail, "this route takes no query parameters"));
	assert_int_equal(check(f, NULL, 1, "="), -ERR_UNKNOWN_PARAMETER); /* an empty name */
	/* Empty segments ("?a=1&&b=2", a trailing '&') say nothing and are skipped. */
	assert_int_equal(check(f, NULL, 2, "", ""), 0);
	assert_int_equal(check(f, tasks, 3, "limit=2", "", "q=x"), 0);
	assert_int_equal(f->nout, 2);
}

static void test_a_repeated_list_is_merged_in_order(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(
	    check(f, tasks, 4, "status=todo", "limit=2", "status=done,in_progress", "status=todo"),
	    0);
	assert_int_equal(f->nout, 2);
	assert_string_equal(query_get(f->out, f->nout, "status"), "todo,done,in_progress,todo");
	assert_string_equal(query_get(f->out, f->nout, "limit"), "2");
	/* An empty value keeps its place, so the list check sees it and refuses it. */
	assert_int_equal(check(f, tasks, 3, "sort=", "sort=priority", "sort"), 0);
	assert_string_equal(query_get(f->out, f->nout, "sort"), ",priority,");
}

static void test_a_repeated_value_is_refused_once_per_name(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(
	    check(f, tasks, 5, "limit=1", "limit=2", "limit=3", "cursor=a", "cursor=a"),
	    -ERR_VALIDATION_FAILED);
	assert_null(f->out);
	assert_int_equal(error_field_count(&f->err), 2);
	assert_string_equal(field_at(f, 0, "field"), "limit");
	assert_string_equal(field_at(f, 0, "code"), "repeated");
	assert_string_equal(field_at(f, 0, "message"),
			    "must be given once (it is not a list): '1', then '2'");
	assert_string_equal(field_at(f, 1, "field"), "cursor");
}

static void test_a_name_without_a_value_is_empty(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(check(f, tasks, 1, "limit"), 0);
	assert_string_equal(query_get(f->out, f->nout, "limit"), "");
}

static void test_values_must_be_utf8_without_nul(void **state)
{
	struct fixture *f = *state;
	struct query_arg in[] = {{"q", "a\0b", 1, 3}};
	assert_int_equal(query_check(&f->a, tasks, in, 1, &f->out, &f->nout, &f->err),
			 -ERR_VALIDATION_FAILED);
	assert_string_equal(field_at(f, 0, "message"), "must not contain a NUL byte (%00)");
	static const char *const bad[] = {"\xff", "a\xc3", "\xc0\xaf", "\xed\xa0\x80",
					  "\xf4\x90\x80\x80"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char arg[16];
		snprintf(arg, sizeof(arg), "q=%s", bad[i]);
		assert_int_equal(check(f, tasks, 1, arg), -ERR_VALIDATION_FAILED);
		assert_string_equal(field_at(f, 0, "code"), "invalid");
	}
	assert_int_equal(check(f, tasks, 1, "q=\xc3\xa9t\xc3\xa9 \xf0\x9f\x99\x82"), 0);
}

static void test_unknown_names_that_are_not_utf8_are_quoted(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(check(f, tasks, 1, "\xff\x01=1"), -ERR_UNKNOWN_PARAMETER);
	assert_string_equal(field_at(f, 0, "field"), "\\xFF\\x01");
	char longname[300];
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(check(f, tasks, 1, longname), -ERR_UNKNOWN_PARAMETER);
	assert_true(strlen(f->err.detail) < sizeof(f->err.detail) - 1);
}

static void test_route_table_declares_the_lists(void **state)
{
	(void)state;
	const struct route_param *p = NULL;
	for (size_t i = 0; i < routes_count; i++)
		if (!strcmp(routes[i].method, "GET") && !strcmp(routes[i].pattern, "/v1/tasks"))
			p = router_params(&routes[i]);
	assert_non_null(p);
	int lists = 0;
	for (; p->name; p++)
		lists += (p->flags & PARAM_LIST) != 0;
	assert_int_equal(lists, 3); /* status, priority, sort */
	for (size_t i = 0; i < routes_count; i++)
		if (!strcmp(routes[i].pattern, "/healthz") || strcmp(routes[i].method, "GET"))
			assert_null(router_params(&routes[i]));
	/* Every entry of route_queries names a route that exists. */
	for (size_t i = 0; i < route_queries_count; i++) {
		bool found = false;
		for (size_t j = 0; j < routes_count; j++)
			found |= !strcmp(routes[j].method, route_queries[i].method) &&
				 !strcmp(routes[j].pattern, route_queries[i].pattern);
		assert_true(found);
	}
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_declared_parameters_pass_through),
	    T(test_unknown_parameter_is_named_with_a_hint_and_the_accepted_names),
	    T(test_several_unknown_are_each_named_once),
	    T(test_a_route_without_parameters_refuses_any),
	    T(test_a_repeated_list_is_merged_in_order),
	    T(test_a_repeated_value_is_refused_once_per_name),
	    T(test_a_name_without_a_value_is_empty),
	    T(test_values_must_be_utf8_without_nul),
	    T(test_unknown_names_that_are_not_utf8_are_quoted),
	    T(test_route_table_declares_the_lists),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
