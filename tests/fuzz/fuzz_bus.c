/*
 * fuzz_bus.c — the event bus's message parser (realtime/bus.c, bus_parse): what arrives on the
 * Redis channel, which anyone who can PUBLISH to that Redis writes.
 *
 * Properties beyond the sanitizers: an accepted message has a known letter, a normalised
 * UUID and a seq within int64, and printing it the way bus_publish does gives a message that
 * parses to the same; a user note (revocation) carries seq 0 when the publisher wrote it.
 */
#include "fuzz.h"
#include "core/uuid.h"
#include "realtime/bus.h"

#include <stdio.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char id[UUID_STR_LEN], id2[UUID_STR_LEN];
	int64_t seq, seq2;
	enum event_note note, note2;
	if (bus_parse((const char *)data, size, id, &seq, &note) < 0)
		return 0;
	FUZZ_CHECK(note == EVENT_NOTE_APPENDED || note == EVENT_NOTE_PROJECT_DELETED ||
		   note == EVENT_NOTE_USER_REVOKED);
	FUZZ_CHECK(uuid_valid(id) && strlen(id) == 36);
	FUZZ_CHECK(seq >= 0);
	char again[64];
	char letter = note == EVENT_NOTE_PROJECT_DELETED ? 'd'
		      : note == EVENT_NOTE_USER_REVOKED	 ? 'u'
							 : 'e';
	int n = snprintf(again, sizeof(again), "%c:%s:%lld", letter, id, (long long)seq);
	FUZZ_CHECK(n > 0 && (size_t)n < sizeof(again));
	FUZZ_CHECK(bus_parse(again, (size_t)n, id2, &seq2, &note2) == 0);
	FUZZ_CHECK(!strcmp(id, id2) && seq == seq2 && note == note2);
	return 0;
}
