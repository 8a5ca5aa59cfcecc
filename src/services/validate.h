/*
 * validate.h — strict validation of JSON request bodies against a field table.
 *
 * Every writable resource declares its fields once (name, type, limits, whether required,
 * nullable or read-only). validate_object() checks a body against that table and records one
 * error per offending field in a struct error: unknown fields, read-only fields, wrong
 * types, missing required fields, lengths and enumerations. Nothing is silently ignored —
 * this is the mass-assignment defence of API.md. Pure functions, thread-safe.
 */
#ifndef TANDEM_SERVICES_VALIDATE_H
#define TANDEM_SERVICES_VALIDATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct error;

enum field_type {
	FIELD_STRING,
	FIELD_ENUM,	 /* a string from `choices` */
	FIELD_UUID,	 /* a UUID string */
	FIELD_TIMESTAMP, /* an RFC 3339 date-time string */
	FIELD_INTEGER,
	FIELD_BOOLEAN,
	FIELD_READ_ONLY, /* present in the resource, never accepted in a body */
};

struct field_spec {
	const char *name;
	enum field_type type;
	bool required;
	bool nullable;
	size_t min_len, max_len;    /* in characters (code points), FIELD_STRING */
	const char *const *choices; /* NULL-terminated, FIELD_ENUM */
};

/*
 * Check `body` (a JSON object) against `specs`. Returns 0, or -ERR_VALIDATION_FAILED with one
 * field error per problem in err. Formats beyond length (e-mail, username) are checked by the
 * caller afterwards with error_field().
 */
int validate_object(json_t *body, const struct field_spec *specs, size_t nspecs, struct error *err);

/* The string value of body[key], or NULL when absent, null or not a string (borrowed). */
const char *body_string(json_t *body, const char *key);

/* Number of Unicode code points in a UTF-8 string (jansson strings are valid UTF-8). */
size_t utf8_length(const char *s);

/* An e-mail address we accept: local@domain.tld, no spaces or controls, at most 254 bytes. */
bool valid_email(const char *s);

/* A username of 3–32 characters from [a-z0-9_.-] (already lower-cased). */
bool valid_username(const char *s);

#endif
