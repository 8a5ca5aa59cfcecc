/*
 * test_tasks.c — the task object as responses write it (task_write_json) and as events carry
 * it (task_json(), read back from that text): it parses, and jansson's dump of it is the same
 * text byte for byte (keys in order, values and types, nulls), for tasks with and without the
 * optional fields and with text that needs escaping.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/jsonw.h"
#include "services/tasks.h"

/* Both spellings of t: jansson's dump of task_json() and the writer's text. */
static void assert_same_json(const struct task *t)
{
	json_t *want = task_json(t);
	assert_non_null(want);
	char *want_text = json_dumps(want, JSON_COMPACT);

	struct jsonw w;
	size_t len;
	jsonw_init(&w, 0);
	task_write_json(&w, t);
	char *got_text = jsonw_finish(&w, &len);

	json_error_t e;
	json_t *got = json_loads(got_text, JSON_REJECT_DUPLICATES, &e);
	if (!got)
		fail_msg("jansson rejects %s: %s", got_text, e.text);
	assert_true(json_equal(got, want));
	/* Key order too: it is task_json()'s, so the texts match byte for byte. */
	assert_string_equal(got_text, want_text);

	json_decref(got);
	json_decref(want);
	free(got_text);
	free(want_text);
}

static const struct task base = {
    .id = "01a213e1-0c2d-7a10-9a55-1f0d6c1e2b3c",
    .project_id = "01a213e0-fb4e-7271-8914-516e0bd82c1b",
    .title = "Write the launch announcement",
    .description = "",
    .status = "todo",
    .priority = 2,
    .created_by = "01a213e0-5f52-76f4-a588-601da21178a6",
    .created_at = 1705329000000,
    .updated_at = 1705329000123,
    .version = 1,
};

static void task_without_assignee_or_due_date_has_nulls(void **state)
{
	struct task t = base;
	assert_same_json(&t);
}

static void task_with_assignee_and_due_date(void **state)
{
	struct task t = base;
	t.assignee_id = "01a213e0-5f52-76f4-a588-601da21178a7";
	t.has_due = true;
	t.due_date = 1709308800000;
	t.status = "in_progress";
	t.priority = 3;
	t.version = 9007199254740993; /* beyond a double's exact integers */
	assert_same_json(&t);
}

static void text_that_needs_escaping(void **state)
{
	struct task t = base;
	t.title =
	    "quote \" backslash \\ slash / tab \t nl \n ctl \x01\x1f caf\xc3\xa9 \xf0\x9f\x98\x80";
	t.description = "line one\r\nline two\b\f";
	assert_same_json(&t);
}

static void every_priority_and_status(void **state)
{
	static const char *const statuses[] = {"todo", "in_progress", "done"};
	struct task t = base;
	for (int p = 0; p < 4; p++)
		for (int s = 0; s < 3; s++) {
			t.priority = p;
			t.status = statuses[s];
			assert_same_json(&t);
		}
}

static void due_date_at_the_ends_of_the_range(void **state)
{
	struct task t = base;
	t.has_due = true;
	t.due_date = -62135596800000LL; /* 0001-01-01T00:00:00.000Z */
	assert_same_json(&t);
	t.due_date = 253402300799999LL; /* 9999-12-31T23:59:59.999Z */
	assert_same_json(&t);
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
