/*
 * uuid.h — UUIDv7 (RFC 9562): 48-bit Unix milliseconds, version 7, 12 bits of a per-process
 * monotonic counter seeded randomly each millisecond, variant, 62 random bits. Ids made by
 * one process sort in creation order even within one millisecond. Thread-safe.
 */
#ifndef TANDEM_CORE_UUID_H
#define TANDEM_CORE_UUID_H

#include <stdbool.h>
#include <stdint.h>

/* 36 characters plus NUL */
#define UUID_STR_LEN 37

/* A new UUIDv7 in canonical lower-case form. */
void uuid_v7(char out[UUID_STR_LEN]);
/* The same, for a given time (tests). */
void uuid_v7_at(int64_t unix_ms, char out[UUID_STR_LEN]);

/* True when s is a canonical UUID (8-4-4-4-12 hex digits, either case). */
bool uuid_valid(const char *s);
/* Copy a valid UUID in lower case; returns false when s is not a UUID. */
bool uuid_normalize(const char *s, char out[UUID_STR_LEN]);
/* The millisecond timestamp of a v7 UUID (undefined for other versions). */
int64_t uuid_v7_time(const char *s);

#endif
