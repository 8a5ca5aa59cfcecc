/*
 * timeutil.h — wall-clock time as int64 milliseconds since the Unix epoch (UTC), and
 * RFC 3339 formatting/parsing. Stored timestamps are these integers in both backends, so
 * they sort and compare the same everywhere. Pure functions, thread-safe.
 */
#ifndef TANDEM_CORE_TIMEUTIL_H
#define TANDEM_CORE_TIMEUTIL_H

#include <stdint.h>
#include <time.h>

/* "2024-01-15T14:30:00.000Z" plus NUL */
#define TIME_RFC3339_LEN 25

int64_t time_now_ms(void);
/* Monotonic clock in microseconds, for durations. */
int64_t time_mono_us(void);
/* The CLOCK_MONOTONIC time `ms` from now, as pthread_cond_timedwait wants it (a condition
 * whose attribute sets that clock). */
struct timespec time_mono_after_ms(int64_t ms);

/* Format ms since epoch as RFC 3339 UTC with milliseconds. out has TIME_RFC3339_LEN bytes. */
void time_format_ms(int64_t ms, char out[TIME_RFC3339_LEN]);

/*
 * Parse an RFC 3339 date-time ("YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)", 't'/'z' and a space
 * for 'T' accepted) into ms since epoch, normalised to UTC. Fractions beyond milliseconds
 * are truncated. Returns 0, or -1 when the text is not a valid date-time (including
 * impossible dates such as February 30 and years outside 0001–9999).
 */
int time_parse_rfc3339(const char *s, int64_t *out_ms);

#endif
