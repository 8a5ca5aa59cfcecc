/*
 * test_paging.c — the paging helper every list uses (services/paging.h): ?limit= parsing
 * (1–200, default 50, 422 naming "limit" otherwise), cursors bound to their list's scope and
 * key count, the limit + 1 fetch and what it says about a next page, and whole walks over a
 * synthetic sorted list, done the way a service does them, that must visit every row once
 * and in order.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/cursor.h"
#include "core/error.h"
#include "services/paging.h"

struct fixture {
	struct arena a;
	struct error err;
};

#define TEST_SECRET "unit-test secret for paging, long enough"

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	arena_init(&f->a);
	cursor_set_key(TEST_SECRET, strlen(TEST_SECRET));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	arena_release(&f->a);
	error_release(&f->err);
	free(f);
	return 0;
}

/* ---- ?limit= ---- */

static void test_absent_limit_is_the_default_of_50(void **state)
{
	struct fixture *f = *state;
	int limit = -1;
	assert_int_equal(paging_limit(NULL, &limit, &f->err), 0);
	assert_int_equal(limit, 50);
	assert_int_equal(f->err.kind, ERR_OK);
}

static void test_limits_from_1_to_200_are_taken(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char *s;
		int want;
	} ok[] = {{"1", 1}, {"2", 2}, {"50", 50}, {"199", 199}, {"200", 200}};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		int limit = -1;
		assert_int_equal(paging_limit(ok[i].s, &limit, &f->err), 0);
		assert_int_equal(limit, ok[i].want);
	}
	assert_int_equal(error_field_count(&f->err), 0);
}

static void test_limit_out_of_range_or_not_a_number_is_422_naming_limit(void **state)
{
	(void)state;
	static const char *const bad[] = {
	    "0", "201", "-1", "abc", "", "10x", "1.5", "1e2", "99999999999999999999", "0x10",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct error err = ERROR_INIT;
		int limit = -1;
		int rc = paging_limit(bad[i], &limit, &err);
		if (rc != -ERR_VALIDATION_FAILED)
			fail_msg("limit \"%s\": rc %d (limit %d), want -ERR_VALIDATION_FAILED",
				 bad[i], rc, limit);
		assert_int_equal(err.kind, ERR_VALIDATION_FAILED);
		assert_int_equal(error_status(rc), 422);
		assert_int_equal(error_field_count(&err), 1);
		json_t *e = json_array_get(err.fields, 0);
		assert_string_equal(json_string_value(json_object_get(e, "field")), "limit");
		assert_string_equal(json_string_value(json_object_get(e, "code")), "out_of_range");
		/* The message tells the client the range. */
		const char *msg = json_string_value(json_object_get(e, "message"));
		assert_non_null(strstr(msg, "1"));
		assert_non_null(strstr(msg, "200"));
		error_release(&err);
	}
}

static void test_bad_limit_without_an_error_struct_is_still_refused(void **state)
{
	(void)state;
	int limit = -1;
	assert_int_equal(paging_limit("0", &limit, NULL), -ERR_VALIDATION_FAILED);
	assert_int_equal(paging_limit("abc", &limit, NULL), -ERR_VALIDATION_FAILED);
}

/* ---- cursors ---- */

static void test_first_page_has_no_cursor_keys(void **state)
{
	struct fixture *f = *state;
	struct paging pg;
	memset(&pg, 0xff, sizeof(pg)); /* garbage, as on the stack */
	assert_int_equal(paging_begin(&pg, &f->a, "members:p1", "", 1, NULL, NULL, &f->err), 0);
	assert_string_equal(pg.scope, "members:p1");
	assert_int_equal(pg.limit, 50);
	assert_null(pg.after);

	assert_int_equal(paging_begin(&pg, &f->a, "members:p1", "", 1, "7", NULL, &f->err), 0);
	assert_int_equal(pg.limit, 7);
	assert_null(pg.after);
}

static void test_paging_cursor_without_cursor_clears_keys_and_keeps_scope_and_limit(void **state)
{
	struct fixture *f = *state;
	struct paging pg = {.scope = "tasks:-created_at",
			    .limit = 12,
			    .after = arena_json(&f->a, json_pack("[i]", 1))};
	assert_int_equal(paging_cursor(&pg, &f->a, NULL, 2, &f->err), 0);
	assert_null(pg.after);
	assert_string_equal(pg.scope, "tasks:-created_at");
	assert_int_equal(pg.limit, 12);
}

static void test_next_cursor_decodes_to_the_same_keys_on_the_same_scope(void **state)
{
	struct fixture *f = *state;
	struct paging pg = {.scope = "tasks:p1:-due_date", .limit = 3, .after = NULL};
	json_t *keys = json_pack("[s, n, I]", "2024-01-15T14:30:00.000Z", (json_int_t)42);
	json_t *want = json_deep_copy(keys);
	const char *c = paging_next(&pg, &f->a, keys); /* keys stolen */
	assert_non_null(c);

	struct paging next;
	assert_int_equal(paging_begin(&next, &f->a, "tasks:p1:-due_date", "", 3, "3", c, &f->err),
			 0);
	assert_non_null(next.after);
	assert_true(json_equal(next.after, want));
	assert_int_equal(next.limit, 3);

	/* paging_cursor() alone does the same for a list that parsed its own limit. */
	struct paging again = {.scope = "tasks:p1:-due_date", .limit = 9, .after = NULL};
	assert_int_equal(paging_cursor(&again, &f->a, c, 3, &f->err), 0);
	assert_true(json_equal(again.after, want));
	assert_int_equal(again.limit, 9);
	json_decref(want);
}

/* A cursor for scope "members:p1" with one key. */
static const char *members_cursor(struct fixture *f)
{
	struct paging pg = {.scope = "members:p1", .limit = 2, .after = NULL};
	return paging_next(&pg, &f->a, json_pack("[s]", "01890a5d-ac96-774b-bcce-b302099a8057"));
}

static void assert_cursor_refused(struct fixture *f, const char *scope, size_t nkeys,
				  const char *cursor)
{
	struct paging pg;
	struct error err = ERROR_INIT;
	int rc = paging_begin(&pg, &f->a, scope, "", nkeys, "10", cursor, &err);
	if (rc != -ERR_BAD_REQUEST)
		fail_msg("cursor \"%.60s\" on %s/%zu keys: rc %d, want -ERR_BAD_REQUEST", cursor,
			 scope, nkeys, rc);
	assert_int_equal(err.kind, ERR_BAD_REQUEST);
	assert_int_equal(error_status(rc), 400);
	assert_null(err.fields);
	assert_null(pg.after);
	error_release(&err);
}

static void test_cursor_of_another_scope_is_refused(void **state)
{
	struct fixture *f = *state;
	const char *c = members_cursor(f);
	assert_cursor_refused(f, "members:p2", 1, c);	/* another project's members */
	assert_cursor_refused(f, "projects", 1, c);	/* another list */
	assert_cursor_refused(f, "members:p1:x", 1, c); /* not a prefix match */
	assert_cursor_refused(f, "members:p", 1, c);	/* nor the other way */
	/* The control: the same cursor on its own scope is taken. */
	struct paging pg;
	assert_int_equal(paging_begin(&pg, &f->a, "members:p1", "", 1, "10", c, &f->err), 0);
}

static void test_cursor_is_bound_to_the_query_but_not_to_the_limit(void **state)
{
	struct fixture *f = *state;
	struct paging pg = {.scope = "tasks:p1", .query = "status=todo", .limit = 2};
	const char *c = paging_next(&pg, &f->a, json_pack("[s]", "id-1"));
	struct paging next;
	struct error err = ERROR_INIT;
	/* Another limit on the next page is taken: only the filters and sort are bound. */
	assert_int_equal(paging_begin(&next, &f->a, "tasks:p1", "status=todo", 1, "7", c, &err), 0);
	assert_int_equal(next.limit, 7);
	assert_string_equal(json_string_value(json_array_get(next.after, 0)), "id-1");
	assert_int_equal(
	    paging_begin(&next, &f->a, "tasks:p1", "status=todo,done", 1, "2", c, &err),
	    -ERR_BAD_REQUEST);
	assert_non_null(strstr(err.detail, "cursor was made for another query"));
	assert_null(next.after);
	assert_int_equal(paging_begin(&next, &f->a, "tasks:p2", "status=todo", 1, "2", c, &err),
			 -ERR_BAD_REQUEST);
	assert_string_equal(err.detail, "cursor was made for another list");
	error_release(&err);
}

static void test_cursor_with_the_wrong_number_of_keys_is_refused(void **state)
{
	struct fixture *f = *state;
	const char *c = members_cursor(f);
	assert_cursor_refused(f, "members:p1", 0, c);
	assert_cursor_refused(f, "members:p1", 2, c);
}

static void test_tampered_cursor_is_refused(void **state)
{
	struct fixture *f = *state;
	const char *c = members_cursor(f);
	size_t len = strlen(c);
	/* Change one character in each part, the document and the signature, in its high bit
	 * (a low bit of the signature's last character may be padding). */
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	for (size_t at = 0; at < len; at += len - 1) {
		char *t = arena_strdup(&f->a, c);
		const char *p = strchr(alphabet, t[at]);
		assert_non_null(p);
		t[at] = alphabet[(p - alphabet) ^ 32];
		assert_cursor_refused(f, "members:p1", 1, t);
	}
	assert_cursor_refused(f, "members:p1", 1, arena_strndup(&f->a, c, len - 1));
	assert_cursor_refused(f, "members:p1", 1, arena_printf(&f->a, "%sA", c));
	assert_cursor_refused(f, "members:p1", 1, "");
	assert_cursor_refused(f, "members:p1", 1, "not-a-cursor");
}

static void test_limit_is_checked_before_the_cursor(void **state)
{
	/* A bad limit is a 422 naming "limit" even when the cursor is bad too. */
	struct fixture *f = *state;
	struct paging pg;
	assert_int_equal(paging_begin(&pg, &f->a, "s", "", 1, "0", "junk", &f->err),
			 -ERR_VALIDATION_FAILED);
	assert_int_equal(error_field_count(&f->err), 1);
}

/* ---- limit + 1 ---- */

static void test_fetch_is_one_more_than_the_limit(void **state)
{
	(void)state;
	static const int limits[] = {1, 2, 50, 199, 200};
	for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
		struct paging pg = {.scope = "s", .limit = limits[i], .after = NULL};
		assert_int_equal(paging_fetch(&pg), limits[i] + 1);
	}
}

static void test_shown_and_more_below_at_and_above_the_limit(void **state)
{
	(void)state;
	struct paging pg = {.scope = "s", .limit = 10, .after = NULL};
	static const struct {
		int fetched, shown;
		bool more;
	} cases[] = {
	    {0, 0, false},   {1, 1, false}, {9, 9, false},
	    {10, 10, false}, /* exactly the limit: the last page, nothing after it */
	    {11, 10, true},  /* the extra row: one more page */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (paging_shown(&pg, cases[i].fetched) != cases[i].shown ||
		    paging_more(&pg, cases[i].fetched) != cases[i].more)
			fail_msg("limit 10, fetched %d: shown %d more %d, want %d %d",
				 cases[i].fetched, paging_shown(&pg, cases[i].fetched),
				 paging_more(&pg, cases[i].fetched), cases[i].shown, cases[i].more);
	}
	struct paging one = {.scope = "s", .limit = 1, .after = NULL};
	assert_int_equal(paging_shown(&one, 1), 1);
	assert_false(paging_more(&one, 1));
	assert_int_equal(paging_shown(&one, 2), 1);
	assert_true(paging_more(&one, 2));
}

/* ---- whole walks ---- */

/*
 * The synthetic list: rows sorted by (rank, id) with ties on rank, as tasks are sorted by a
 * key and then their id. Row i has rank i / 3 and id "row-<i>" (zero-padded, so sorted).
 */
struct row {
	int rank;
	char id[16];
};

static void make_rows(struct row *rows, int n)
{
	for (int i = 0; i < n; i++) {
		rows[i].rank = i / 3;
		snprintf(rows[i].id, sizeof(rows[i].id), "row-%05d", i);
	}
}

static int row_after(const struct row *r, json_t *after)
{
	json_int_t rank = json_integer_value(json_array_get(after, 0));
	const char *id = json_string_value(json_array_get(after, 1));
	assert_true(json_is_integer(json_array_get(after, 0)) && id);
	return r->rank > rank || (r->rank == rank && strcmp(r->id, id) > 0);
}

/* What a store does: up to `fetch` rows strictly after the keys (all rows when NULL). */
static int store_list(const struct row *rows, int n, json_t *after, int fetch,
		      const struct row **out)
{
	int i = 0, count = 0;
	if (after)
		while (i < n && !row_after(&rows[i], after))
			i++;
	for (; i < n && count < fetch; i++)
		out[count++] = &rows[i];
	return count;
}

/* Walk all of rows[0..n) in pages of `limit` (0: the default) and check every row is seen
 * once, in order, in the number of pages expected. */
static void walk(struct fixture *f, int n, int limit)
{
	struct row *rows = calloc((size_t)n + 1, sizeof(*rows));
	const struct row **page = calloc(PAGING_MAX_LIMIT + 1, sizeof(*page));
	assert_non_null(rows);
	assert_non_null(page);
	make_rows(rows, n);
	const char *limit_s = limit ? arena_printf(&f->a, "%d", limit) : NULL;
	int size = limit ? limit : PAGING_DEFAULT_LIMIT;
	const char *cursor = NULL;
	int seen = 0, pages = 0;

	for (;;) {
		struct paging pg;
		assert_int_equal(paging_begin(&pg, &f->a, "walk", "", 2, limit_s, cursor, &f->err),
				 0);
		int count = store_list(rows, n, pg.after, paging_fetch(&pg), page);
		assert_true(count <= paging_fetch(&pg));
		pages++;
		int shown = paging_shown(&pg, count);
		for (int i = 0; i < shown; i++) {
			if (seen >= n || page[i] != &rows[seen])
				fail_msg("n %d limit %d page %d: row %d shown where row %d is next",
					 n, size, pages, (int)(page[i] - rows), seen);
			seen++;
		}
		if (!paging_more(&pg, count))
			break;
		/* A page that promises more is full: never an empty page before the end. */
		assert_int_equal(shown, size);
		const struct row *last = page[pg.limit - 1];
		cursor = paging_next(&pg, &f->a, json_pack("[i, s]", last->rank, last->id));
		assert_non_null(cursor);
		if (pages > n + 1)
			fail_msg("n %d limit %d: still walking after %d pages", n, size, pages);
	}
	if (seen != n)
		fail_msg("n %d limit %d: walked %d rows", n, size, seen);
	int want_pages = n == 0 ? 1 : (n + size - 1) / size;
	if (pages != want_pages)
		fail_msg("n %d limit %d: %d pages, want %d", n, size, pages, want_pages);
	free(page);
	free(rows);
}

static void test_walk_of_an_empty_list_is_one_empty_page(void **state)
{
	walk(*state, 0, 10);
	walk(*state, 0, 1);
	walk(*state, 0, 0);
}

static void test_walk_of_exactly_one_page_has_no_next_cursor(void **state)
{
	walk(*state, 10, 10);
	walk(*state, 1, 1);
	walk(*state, 50, 0);
	walk(*state, 200, 200);
}

static void test_walk_of_one_more_than_a_page_takes_two_pages(void **state)
{
	walk(*state, 11, 10);
	walk(*state, 2, 1);
	walk(*state, 51, 0);
	walk(*state, 201, 200);
}

static void test_walk_visits_every_row_once_in_order_for_many_sizes(void **state)
{
	static const int limits[] = {1, 2, 3, 7, 10, 0, 200};
	static const int sizes[] = {1, 2, 3, 5, 6, 9, 10, 20, 21, 37, 100, 101, 450};
	for (size_t l = 0; l < sizeof(limits) / sizeof(limits[0]); l++)
		for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++)
			walk(*state, sizes[s], limits[l]);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_absent_limit_is_the_default_of_50),
	    T(test_limits_from_1_to_200_are_taken),
	    T(test_limit_out_of_range_or_not_a_number_is_422_naming_limit),
	    T(test_bad_limit_without_an_error_struct_is_still_refused),
	    T(test_first_page_has_no_cursor_keys),
	    T(test_paging_cursor_without_cursor_clears_keys_and_keeps_scope_and_limit),
	    T(test_next_cursor_decodes_to_the_same_keys_on_the_same_scope),
	    T(test_cursor_of_another_scope_is_refused),
	    T(test_cursor_is_bound_to_the_query_but_not_to_the_limit),
	    T(test_cursor_with_the_wrong_number_of_keys_is_refused),
	    T(test_tampered_cursor_is_refused),
	    T(test_limit_is_checked_before_the_cursor),
	    T(test_fetch_is_one_more_than_the_limit),
	    T(test_shown_and_more_below_at_and_above_the_limit),
	    T(test_walk_of_an_empty_list_is_one_empty_page),
	    T(test_walk_of_exactly_one_page_has_no_next_cursor),
	    T(test_walk_of_one_more_than_a_page_takes_two_pages),
	    T(test_walk_visits_every_row_once_in_order_for_many_sizes),
	};
#undef T
	return cmocka_run_group_tests_name("services/paging", tests, NULL, NULL);
}
