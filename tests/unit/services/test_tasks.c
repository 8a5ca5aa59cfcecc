/*
 * test_tasks.c — the task object as responses write it (task_write_json) and as events carry
 * it (task_json(), read back from that text), checked against expectations written here by
 * hand: the exact text (keys in API.md's order, RFC 3339 times with milliseconds, nulls,
 * escapes) and the same object built with json_pack, so that nothing expected comes from the
 * module under test. Tasks with and without the optional fields, every status and priority,
 * the ends of the due-date range, text that needs escaping.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jsonw.h"
#include "services/tasks.h"

#define ID	   "01a213e1-0c2d-7a10-9a55-1f0d6c1e2b3c"
#define PROJECT_ID "01a213e0-fb4e-7271-8914-516e0bd82c1b"
#define CREATOR	   "01a213e0-5f52-76f4-a588-601da21178a6"
#define ASSIGNEE   "01a213e0-5f52-76f4-a588-601da21178a7"

/*
 * t written by task_write_json is exactly want_text, which jansson reads (duplicates
 * rejected) as want; task_json(t) is want too. Steals want.
 */
static void assert_task_json(const struct task *t, const char *want_text, json_t *want)
{
	assert_non_null(want);

	struct jsonw w;
	size_t len;
	jsonw_init(&w, 0);
	task_write_json(&w, t);
	char *got_text = jsonw_finish(&w, &len);
	assert_int_equal(strlen(got_text), len);
	assert_string_equal(got_text, want_text);

	json_error_t e;
	json_t *got = json_loads(got_text, JSON_REJECT_DUPLICATES, &e);
	if (!got)
		fail_msg("jansson rejects %s: %s", got_text, e.text);
	assert_true(json_equal(got, want));

	json_t *event = task_json(t);
	assert_non_null(event);
	assert_true(json_equal(event, want));

	json_decref(event);
	json_decref(got);
	json_decref(want);
	free(got_text);
}

static const struct task base = {
    .id = ID,
    .project_id = PROJECT_ID,
    .title = "Write the launch announcement",
    .description = "",
    .status = "todo",
    .priority = 2,
    .created_by = CREATOR,
    .created_at = 1705329000000, /* 2024-01-15T14:30:00.000Z */
    .updated_at = 1705329000123, /* 2024-01-15T14:30:00.123Z */
    .version = 1,
};

static void task_without_assignee_or_due_date_has_nulls(void **state)
{
	struct task t = base;
	assert_task_json(
	    &t,
	    "{\"id\":\"" ID "\",\"project_id\":\"" PROJECT_ID "\","
	    "\"title\":\"Write the launch announcement\",\"description\":\"\","
	    "\"status\":\"todo\",\"priority\":\"high\",\"assignee_id\":null,\"due_date\":null,"
	    "\"created_by\":\"" CREATOR "\",\"created_at\":\"2024-01-15T14:30:00.000Z\","
	    "\"updated_at\":\"2024-01-15T14:30:00.123Z\",\"version\":1}",
	    json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:n, s:n, s:s, s:s, s:s, s:I}", "id", ID,
		      "project_id", PROJECT_ID, "title", "Write the launch announcement",
		      "description", "", "status", "todo", "priority", "high", "assignee_id",
		      "due_date", "created_by", CREATOR, "created_at", "2024-01-15T14:30:00.000Z",
		      "updated_at", "2024-01-15T14:30:00.123Z", "version", (json_int_t)1));
}

static void task_with_assignee_and_due_date(void **state)
{
	struct task t = base;
	t.assignee_id = ASSIGNEE;
	t.has_due = true;
	t.due_date = 1709308800000; /* 2024-03-01T16:00:00.000Z */
	t.status = "in_progress";
	t.priority = 3;
	t.version = 9007199254740993; /* beyond a double's exact integers */
	assert_task_json(
	    &t,
	    "{\"id\":\"" ID "\",\"project_id\":\"" PROJECT_ID "\","
	    "\"title\":\"Write the launch announcement\",\"description\":\"\","
	    "\"status\":\"in_progress\",\"priority\":\"urgent\",\"assignee_id\":\"" ASSIGNEE "\","
	    "\"due_date\":\"2024-03-01T16:00:00.000Z\","
	    "\"created_by\":\"" CREATOR "\",\"created_at\":\"2024-01-15T14:30:00.000Z\","
	    "\"updated_at\":\"2024-01-15T14:30:00.123Z\",\"version\":9007199254740993}",
	    json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "id", ID,
		      "project_id", PROJECT_ID, "title", "Write the launch announcement",
		      "description", "", "status", "in_progress", "priority", "urgent",
		      "assignee_id", ASSIGNEE, "due_date", "2024-03-01T16:00:00.000Z", "created_by",
		      CREATOR, "created_at", "2024-01-15T14:30:00.000Z", "updated_at",
		      "2024-01-15T14:30:00.123Z", "version", (json_int_t)9007199254740993LL));
}

static void text_that_needs_escaping(void **state)
{
	struct task t = base;
	t.title =
	    "quote \" backslash \\ slash / tab \t nl \n ctl \x01\x1f caf\xc3\xa9 \xf0\x9f\x98\x80";
	t.description = "line one\r\nline two\b\f";
	assert_task_json(
	    &t,
	    "{\"id\":\"" ID "\",\"project_id\":\"" PROJECT_ID "\","
	    "\"title\":\"quote \\\" backslash \\\\ slash / tab \\t nl \\n ctl \\u0001\\u001F "
	    "caf\xc3\xa9 \xf0\x9f\x98\x80\","
	    "\"description\":\"line one\\r\\nline two\\b\\f\","
	    "\"status\":\"todo\",\"priority\":\"high\",\"assignee_id\":null,\"due_date\":null,"
	    "\"created_by\":\"" CREATOR "\",\"created_at\":\"2024-01-15T14:30:00.000Z\","
	    "\"updated_at\":\"2024-01-15T14:30:00.123Z\",\"version\":1}",
	    json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:n, s:n, s:s, s:s, s:s, s:I}", "id", ID,
		      "project_id", PROJECT_ID, "title", t.title, "description", t.description,
		      "status", "todo", "priority", "high", "assignee_id", "due_date", "created_by",
		      CREATOR, "created_at", "2024-01-15T14:30:00.000Z", "updated_at",
		      "2024-01-15T14:30:00.123Z", "version", (json_int_t)1));
}

static void every_priority_and_status(void **state)
{
	/* API.md: rank 0..3 is low < medium < high < urgent. */
	static const char *const names[] = {"low", "medium", "high", "urgent"};
	static const char *const statuses[] = {"todo", "in_progress", "done"};
	struct task t = base;
	for (int p = 0; p < 4; p++)
		for (int s = 0; s < 3; s++) {
			char want[1024];
			t.priority = p;
			t.status = statuses[s];
			snprintf(want, sizeof(want),
				 "{\"id\":\"" ID "\",\"project_id\":\"" PROJECT_ID "\","
				 "\"title\":\"Write the launch announcement\",\"description\":\"\","
				 "\"status\":\"%s\",\"priority\":\"%s\",\"assignee_id\":null,"
				 "\"due_date\":null,\"created_by\":\"" CREATOR "\","
				 "\"created_at\":\"2024-01-15T14:30:00.000Z\","
				 "\"updated_at\":\"2024-01-15T14:30:00.123Z\",\"version\":1}",
				 statuses[s], names[p]);
			json_t *o = json_loads(want, JSON_REJECT_DUPLICATES, NULL);
			assert_non_null(o);
			assert_task_json(&t, want, o);
		}
}

static void due_date_at_the_ends_of_the_range(void **state)
{
	static const struct {
		int64_t ms;
		const char *text;
	} ends[] = {{-62135596800000LL, "0001-01-01T00:00:00.000Z"},
		    {253402300799999LL, "9999-12-31T23:59:59.999Z"}};
	struct task t = base;
	t.has_due = true;
	for (size_t i = 0; i < sizeof(ends) / sizeof(ends[0]); i++) {
		char want[1024];
		t.due_date = ends[i].ms;
		snprintf(want, sizeof(want),
			 "{\"id\":\"" ID "\",\"project_id\":\"" PROJECT_ID "\","
			 "\"title\":\"Write the launch announcement\",\"description\":\"\","
			 "\"status\":\"todo\",\"priority\":\"high\",\"assignee_id\":null,"
			 "\"due_date\":\"%s\",\"created_by\":\"" CREATOR "\","
			 "\"created_at\":\"2024-01-15T14:30:00.000Z\","
			 "\"updated_at\":\"2024-01-15T14:30:00.123Z\",\"version\":1}",
			 ends[i].text);
		json_t *o = json_loads(want, JSON_REJECT_DUPLICATES, NULL);
		assert_non_null(o);
		assert_task_json(&t, want, o);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(task_without_assignee_or_due_date_has_nulls),
	    cmocka_unit_test(task_with_assignee_and_due_date),
	    cmocka_unit_test(text_that_needs_escaping),
	    cmocka_unit_test(every_priority_and_status),
	    cmocka_unit_test(due_date_at_the_ends_of_the_range),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
