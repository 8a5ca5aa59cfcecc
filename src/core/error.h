/*
 * error.h — the one table of error kinds.
 *
 * Every fallible function in tandem returns 0 or a negative error kind from this table and
 * may fill an optional struct error with a human detail and per-field errors. Only
 * http/reply.c turns a kind into an HTTP response (status, problem `code`, title), so the
 * table below is the single place where the wire contract of errors lives.
 */
#ifndef TANDEM_CORE_ERROR_H
#define TANDEM_CORE_ERROR_H

#include <jansson.h>
#include <stdarg.h>

/* X(ENUM, http status, stable problem code, title) */
#define ERROR_MAP(X)                                                                               \
	X(MALFORMED_JSON, 400, "malformed_json", "Malformed JSON")                                 \
	X(BAD_REQUEST, 400, "bad_request", "Bad request")                                          \
	X(UNAUTHENTICATED, 401, "unauthenticated", "Authentication required")                      \
	X(INVALID_CREDENTIALS, 401, "invalid_credentials", "Invalid credentials")                  \
	X(TOKEN_EXPIRED, 401, "token_expired", "Token expired")                                    \
	X(TICKET_INVALID, 401, "ticket_invalid", "Stream ticket invalid")                          \
	X(FORBIDDEN, 403, "forbidden", "Forbidden")                                                \
	X(NOT_FOUND, 404, "not_found", "Not found")                                                \
	X(METHOD_NOT_ALLOWED, 405, "method_not_allowed", "Method not allowed")                     \
	X(REQUEST_TIMEOUT, 408, "request_timeout", "Request timeout")                              \
	X(CONFLICT, 409, "conflict", "Conflict")                                                   \
	X(PRECONDITION_FAILED, 412, "precondition_failed", "Precondition failed")                  \
	X(PAYLOAD_TOO_LARGE, 413, "payload_too_large", "Payload too large")                        \
	X(UNSUPPORTED_MEDIA_TYPE, 415, "unsupported_media_type", "Unsupported media type")         \
	X(VALIDATION_FAILED, 422, "validation_failed", "Validation failed")                        \
	X(IDEMPOTENCY_KEY_REUSED, 422, "idempotency_key_reused", "Idempotency key reused")         \
	X(RATE_LIMITED, 429, "rate_limited", "Too many requests")                                  \
	X(INTERNAL, 500, "internal", "Internal server error")                                      \
	X(UNAVAILABLE, 503, "unavailable", "Service unavailable")

enum error_kind {
	ERR_OK = 0,
#define X(name, status, code, title) ERR_##name,
	ERROR_MAP(X)
#undef X
	    ERR__COUNT
};

/*
 * struct error — detail for a failed call. `detail` is safe to show to clients unless the
 * kind is ERR_INTERNAL or ERR_UNAVAILABLE, whose detail goes to the log only. `fields` is
 * NULL or a new JSON array of {field, code, message} objects owned by the error; it keeps the
 * first ERROR_MAX_FIELDS of them, `nfields` counts them all (more than kept: the answer says
 * it was truncated). A body of a million unknown fields must not make an answer of millions.
 */
#define ERROR_MAX_FIELDS     50
#define ERROR_MAX_FIELD_NAME 64 /* bytes of a field name kept: the limit of API.md */

struct error {
	int kind;
	char detail[512];
	json_t *fields;
	size_t nfields;
};

#define ERROR_INIT                                                                                 \
	{                                                                                          \
		0, {0}, NULL, 0                                                                    \
	}

/* The HTTP status, stable code and title of a (positive or negative) kind. */
int error_status(int kind);
const char *error_code(int kind);
const char *error_title(int kind);

/*
 * Record a failure: sets kind and a printf-style detail (err may be NULL) and returns
 * -kind, so that callers can write `return error_set(err, ERR_NOT_FOUND, "no task %s", id);`.
 * A later call overwrites the detail but keeps accumulated field errors.
 */
int error_set(struct error *err, int kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Add one field error ({field, code, message}) and set the kind to VALIDATION_FAILED. Past
 * ERROR_MAX_FIELDS entries only the count grows; a field name longer than
 * ERROR_MAX_FIELD_NAME bytes is cut to its first ERROR_MAX_FIELD_NAME bytes or fewer (at a
 * UTF-8 character boundary, so the entry stays valid JSON text).
 */
void error_field(struct error *err, const char *field, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Number of field errors recorded, also those past ERROR_MAX_FIELDS that were not kept. */
size_t error_field_count(const struct error *err);

/* Release what the error owns; it can be reused afterwards. */
void error_release(struct error *err);

#endif
