/*
 * test_notify.c — services/notify.c: what a committed transaction tells the sink. Project
 * notes are hints and capped; a user note (EVENT_NOTE_USER_REVOKED) is never dropped,
 * however many notes the transaction made, and a rollback sends nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "core/uuid.h"
#include "services/notify.h"

static int nuser, nproject;
static char users[64][UUID_STR_LEN];

static void sink(void *cls, const char *id, int64_t seq, enum event_note note)
{
	(void)cls;
	(void)seq;
	if (note == EVENT_NOTE_USER_REVOKED) {
		snprintf(users[nuser % 64], UUID_STR_LEN, "%s", id);
		nuser++;
	} else {
		nproject++;
	}
}

static void reset(void)
{
	nuser = nproject = 0;
	notify_set_sink(sink, NULL);
}

static void id_of(int i, char out[UUID_STR_LEN])
{
	snprintf(out, UUID_STR_LEN, "00000000-0000-7000-8000-%012d", i);
}

static void user_notes_are_never_dropped(void **state)
{
	(void)state;
	reset();
	char id[UUID_STR_LEN];
	for (int i = 0; i < 40; i++) { /* more projects than the pending list keeps */
		id_of(i, id);
		notify_pending(id, 1, EVENT_NOTE_APPENDED);
	}
	for (int i = 0; i < 40; i++) {
		id_of(1000 + i, id);
		notify_pending(id, 0, EVENT_NOTE_USER_REVOKED);
	}
	notify_commit();
	assert_int_equal(nuser, 40);
	assert_true(nproject > 0 && nproject < 40);
	id_of(1039, id);
	assert_string_equal(users[39], id);
}

static void a_user_note_is_sent_once_per_transaction(void **state)
{
	(void)state;
	reset();
	char id[UUID_STR_LEN];
	id_of(7, id);
	notify_pending(id, 0, EVENT_NOTE_USER_REVOKED);
	notify_pending(id, 0, EVENT_NOTE_USER_REVOKED);
	notify_commit();
	assert_int_equal(nuser, 1);
	notify_commit(); /* nothing left over for the next transaction */
	assert_int_equal(nuser, 1);
}

static void a_rollback_sends_no_user_note(void **state)
{
	(void)state;
	reset();
	char id[UUID_STR_LEN];
	id_of(8, id);
	notify_pending(id, 0, EVENT_NOTE_USER_REVOKED);
	notify_discard();
	notify_commit();
	assert_int_equal(nuser, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(user_notes_are_never_dropped),
	    cmocka_unit_test(a_user_note_is_sent_once_per_transaction),
	    cmocka_unit_test(a_rollback_sends_no_user_note),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
