/*
 * test_access.c — access_check() against the permission table of API.md "Projects and
 * membership", written out here by hand from the document (not from access.c's table) so
 * that a change to either one shows: every role (owner, member, viewer, non-member) times
 * every action, the kind and HTTP status of each refusal, and what the detail tells the
 * client.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "services/access.h"

enum outcome {
	YES,	   /* allowed: 0 */
	FORBIDDEN, /* 403 */
	CONFLICT,  /* 409: the owner may not leave, transfer first */
	NOT_FOUND, /* 404: a non-member sees nothing */
};

/* API.md, "Projects and membership", row by row; the columns are owner, member, viewer,
 * non-member. */
static const struct {
	enum access_action action;
	const char *name;
	const char *word; /* what a refusal's detail should say the caller tried to do */
	enum outcome owner, member, viewer, none;
} table[] = {
    {ACCESS_READ, "see project, members, tasks, events", "see", YES, YES, YES, NOT_FOUND},
    {ACCESS_WRITE_TASKS, "create / edit / delete tasks", "task", YES, YES, FORBIDDEN, NOT_FOUND},
    {ACCESS_EDIT_PROJECT, "edit project name/description", "edit", YES, FORBIDDEN, FORBIDDEN,
     NOT_FOUND},
    {ACCESS_MANAGE_MEMBERS, "add / remove members, change roles", "members", YES, FORBIDDEN,
     FORBIDDEN, NOT_FOUND},
    {ACCESS_DELETE_PROJECT, "delete project", "delete", YES, FORBIDDEN, FORBIDDEN, NOT_FOUND},
    {ACCESS_LEAVE, "leave project", "leave", CONFLICT, YES, YES, NOT_FOUND},
};
#define NTABLE (sizeof(table) / sizeof(table[0]))

static const char *const outcome_name[] = {"allowed", "403", "409", "404"};

static enum outcome outcome_of(size_t row, const char *role)
{
	if (!role)
		return table[row].none;
	if (!strcmp(role, "owner"))
		return table[row].owner;
	if (!strcmp(role, "member"))
		return table[row].member;
	return table[row].viewer;
}

/* access_check(role, row's action) with a fresh error, checked against the table. */
static void check_one(size_t row, const char *role)
{
	static const struct {
		int rc, kind, status;
		const char *code;
	} want_of[] = {
	    [YES] = {0, ERR_OK, 0, NULL},
	    [FORBIDDEN] = {-ERR_FORBIDDEN, ERR_FORBIDDEN, 403, "forbidden"},
	    [CONFLICT] = {-ERR_CONFLICT, ERR_CONFLICT, 409, "conflict"},
	    [NOT_FOUND] = {-ERR_NOT_FOUND, ERR_NOT_FOUND, 404, "not_found"},
	};
	enum outcome o = outcome_of(row, role);
	struct error err = ERROR_INIT;
	int rc = access_check(role, table[row].action, &err);
	if (rc != want_of[o].rc)
		fail_msg("%s may \"%s\": got rc %d (%s), want %s", role ? role : "non-member",
			 table[row].name, rc, rc ? error_code(rc) : "allowed", outcome_name[o]);
	assert_int_equal(err.kind, want_of[o].kind);
	assert_null(err.fields); /* a permission refusal is not a validation failure */
	if (o == YES) {
		assert_string_equal(err.detail, "");
	} else {
		assert_int_equal(error_status(rc), want_of[o].status);
		assert_string_equal(error_code(rc), want_of[o].code);
		assert_true(err.detail[0] != '\0');
	}
	error_release(&err);
}

static void check_role(const char *role)
{
	for (size_t row = 0; row < NTABLE; row++)
		check_one(row, role);
}

static void test_table_covers_every_action(void **state)
{
	(void)state;
	/* A new action added to access.h must get a row here (and in API.md). */
	assert_int_equal(NTABLE, ACCESS__COUNT);
	for (size_t row = 0; row < NTABLE; row++)
		assert_int_equal(table[row].action, (enum access_action)row);
}

static void test_owner_may_do_everything_but_leave(void **state)
{
	(void)state;
	check_role("owner");
}

static void test_member_may_read_write_tasks_and_leave(void **state)
{
	(void)state;
	check_role("member");
}

static void test_viewer_may_only_read_and_leave(void **state)
{
	(void)state;
	check_role("viewer");
}

static void test_non_member_gets_not_found_for_every_action(void **state)
{
	(void)state;
	check_role(NULL);
}

static void test_forbidden_detail_names_the_role_and_the_action(void **state)
{
	(void)state;
	static const char *const roles[] = {"owner", "member", "viewer"};
	int seen = 0;
	for (size_t r = 0; r < 3; r++)
		for (size_t row = 0; row < NTABLE; row++) {
			if (outcome_of(row, roles[r]) != FORBIDDEN)
				continue;
			struct error err = ERROR_INIT;
			access_check(roles[r], table[row].action, &err);
			if (!strstr(err.detail, roles[r]) || !strstr(err.detail, table[row].word))
				fail_msg("a %s refused \"%s\": detail \"%s\" should name \"%s\" "
					 "and \"%s\"",
					 roles[r], table[row].name, err.detail, roles[r],
					 table[row].word);
			seen++;
			error_release(&err);
		}
	assert_int_equal(seen, 7); /* 3 refusals for a member, 4 for a viewer */
}

static void test_owner_leaving_is_told_to_transfer_ownership(void **state)
{
	(void)state;
	struct error err = ERROR_INIT;
	assert_int_equal(access_check("owner", ACCESS_LEAVE, &err), -ERR_CONFLICT);
	assert_non_null(strstr(err.detail, "owner"));
	assert_non_null(strstr(err.detail, "transfer"));
	error_release(&err);
}

static void test_non_member_detail_does_not_reveal_the_project(void **state)
{
	/* 404 "exactly as if the project did not exist": nothing about membership or roles. */
	(void)state;
	for (size_t row = 0; row < NTABLE; row++) {
		struct error err = ERROR_INIT;
		access_check(NULL, table[row].action, &err);
		assert_non_null(strstr(err.detail, "project"));
		assert_null(strstr(err.detail, "member"));
		assert_null(strstr(err.detail, "may not"));
		error_release(&err);
	}
}

static void test_check_without_an_error_struct_returns_the_same_kind(void **state)
{
	(void)state;
	static const char *const roles[] = {"owner", "member", "viewer", NULL};
	for (size_t r = 0; r < 4; r++)
		for (size_t row = 0; row < NTABLE; row++) {
			struct error err = ERROR_INIT;
			int with = access_check(roles[r], table[row].action, &err);
			assert_int_equal(access_check(roles[r], table[row].action, NULL), with);
			error_release(&err);
		}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table_covers_every_action),
	    cmocka_unit_test(test_owner_may_do_everything_but_leave),
	    cmocka_unit_test(test_member_may_read_write_tasks_and_leave),
	    cmocka_unit_test(test_viewer_may_only_read_and_leave),
	    cmocka_unit_test(test_non_member_gets_not_found_for_every_action),
	    cmocka_unit_test(test_forbidden_detail_names_the_role_and_the_action),
	    cmocka_unit_test(test_owner_leaving_is_told_to_transfer_ownership),
	    cmocka_unit_test(test_non_member_detail_does_not_reveal_the_project),
	    cmocka_unit_test(test_check_without_an_error_struct_returns_the_same_kind),
	};
	return cmocka_run_group_tests_name("services/access", tests, NULL, NULL);
}
