/*
 * cors.h — Cross-Origin Resource Sharing for browser clients on another origin.
 *
 * Off unless TANDEM_CORS_ORIGINS lists the origins allowed (exact `scheme://host[:port]`
 * values, or the single value `*` for any origin). The policy is parsed once at start-up and
 * read-only after, so every function here is thread-safe. It knows nothing of
 * libmicrohttpd: server.c asks it what to answer and adds the headers.
 *
 * No answer ever carries Access-Control-Allow-Credentials: the API uses no cookies (a
 * browser client sends its bearer token itself), so a credentialed request is never needed,
 * and never granting one keeps `*` safe and means ambient browser credentials can never
 * ride a cross-origin call.
 */
#ifndef TANDEM_HTTP_CORS_H
#define TANDEM_HTTP_CORS_H

#include <stdbool.h>
#include <stddef.h>

struct cors;

/* Response headers a browser script may read (everything the server sends that is not
 * CORS-safelisted and that a client has a use for). */
#define CORS_EXPOSE_HEADERS                                                                        \
	"ETag, Location, Link, RateLimit, RateLimit-Policy, Retry-After, X-Request-Id, "           \
	"Idempotent-Replayed, WWW-Authenticate, Allow"
/* Seconds a browser may cache a preflight answer (Chromium caps it at 7200). */
#define CORS_MAX_AGE "600"
/* What a preflight answer varies on. */
#define CORS_PREFLIGHT_VARY "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"

/*
 * Parse a TANDEM_CORS_ORIGINS value. NULL or blank: CORS off, *out = NULL, returns 0.
 * Otherwise a comma-separated list of origins (`http://127.0.0.1:5173,https://app.example`;
 * spaces around items are ignored; scheme and host are compared lower-cased) or `*` alone.
 * Returns 0 with a policy to cors_free(), or -1 with a one-line reason in `why` (naming the
 * bad item) and *out = NULL.
 */
int cors_create(const char *spec, struct cors **out, char *why, size_t why_len);
void cors_free(struct cors *c);

/* Whether the policy allows any origin (`*`). */
bool cors_any(const struct cors *c);

/*
 * The Access-Control-Allow-Origin value for a request's Origin header: "*" in `*` mode, the
 * origin itself when it is listed, NULL when it is not (or c or origin is NULL). The
 * pointer is into c or static.
 */
const char *cors_allow_origin(const struct cors *c, const char *origin);

/*
 * The Access-Control-Allow-Headers value for a preflight's Access-Control-Request-Headers
 * (`requested`, a comma-separated list of names in any case; NULL or empty: none asked):
 * the asked names in their canonical spelling, ", "-separated, into out ("" when none was
 * asked). Returns -1 when one asked name is not among the headers the API reads
 * (Authorization, Content-Type, If-Match, If-None-Match, Idempotency-Key, Last-Event-ID,
 * X-Request-Id) or out is too small: the preflight then gets no grant.
 */
int cors_allow_headers(const char *requested, char *out, size_t out_len);

/*
 * Whether `method` (a preflight's Access-Control-Request-Method, compared exactly, as
 * methods are case-sensitive) is one of `methods` (a ", "-separated list from the route
 * table); HEAD counts where GET is listed.
 */
bool cors_method_listed(const char *methods, const char *method);

#endif
