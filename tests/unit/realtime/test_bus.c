/*
 * test_bus.c — the event bus's message parser (realtime/bus.c, bus_parse): the three letters
 * it carries between instances ('e' events, 'd' a deleted project, 'u' a user's revoked
 * tokens) and everything else on the Redis channel refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "realtime/bus.h"

#define ID "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"

static int parse(const char *m, char id[UUID_STR_LEN], int64_t *seq, enum event_note *note)
{
	return bus_parse(m, strlen(m), id, seq, note);
}

static void each_letter_gives_its_note(void **state)
{
	(void)state;
	char id[UUID_STR_LEN];
	int64_t seq;
	enum event_note note;
	assert_int_equal(parse("e:" ID ":42", id, &seq, &note), 0);
	assert_int_equal(note, EVENT_NOTE_APPENDED);
	assert_string_equal(id, ID);
	assert_int_equal(seq, 42);
	assert_int_equal(parse("d:" ID ":0", id, &seq, &note), 0);
	assert_int_equal(note, EVENT_NOTE_PROJECT_DELETED);
	assert_int_equal(parse("u:" ID ":0", id, &seq, &note), 0);
	assert_int_equal(note, EVENT_NOTE_USER_REVOKED);
	assert_string_equal(id, ID);
	assert_int_equal(seq, 0);
}

static void the_id_is_normalised(void **state)
{
	(void)state;
	char id[UUID_STR_LEN];
	int64_t seq;
	enum event_note note;
	assert_int_equal(parse("u:0190A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A5B:0", id, &seq, &note), 0);
	assert_string_equal(id, ID);
}

static void anything_else_is_refused(void **state)
{
	(void)state;
	static const char *bad[] = {
	    "",
	    "u",
	    "u:",
	    "x:" ID ":1",		    /* unknown letter */
	    "U:" ID ":1",		    /* letters are lower case */
	    "u:" ID,			    /* no seq */
	    "u:" ID ":",		    /* empty seq */
	    "u:" ID ":-1",		    /* sign */
	    "u:" ID ":+1",		    /* sign */
	    "u:" ID ": 1",		    /* space */
	    "u:" ID ":1 ",		    /* trailing space */
	    "u:" ID ":12x",		    /* junk after the seq */
	    "u:" ID ":1234567890123456789", /* 19 digits */
	    "u:" ID "::1",
	    "u;" ID ":1",
	    "u:0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5:1",	 /* 35 characters */
	    "u:0190a1b2xc3d4-7e5f-8a9b-0c1d2e3f4a5b:1",	 /* not a uuid */
	    "u:0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5g:1",	 /* not hex */
	    "u:0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5bb:1", /* 37 characters */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char id[UUID_STR_LEN];
		int64_t seq;
		enum event_note note;
		if (parse(bad[i], id, &seq, &note) != -1)
			fail_msg("accepted %s", bad[i]);
	}
}

static void an_embedded_nul_is_refused(void **state)
{
	(void)state;
	static const char m[] = "u:" ID ":1\0"
				"2";
	char id[UUID_STR_LEN];
	int64_t seq;
	enum event_note note;
	assert_int_equal(bus_parse(m, sizeof(m) - 1, id, &seq, &note), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(each_letter_gives_its_note),
	    cmocka_unit_test(the_id_is_normalised),
	    cmocka_unit_test(anything_else_is_refused),
	    cmocka_unit_test(an_embedded_nul_is_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
