/*
 * query.h — a request's query string checked against its route's parameters (struct
 * route_param in router.h), as strictly as validate.h checks bodies.
 *
 * libmicrohttpd splits and percent-decodes the query string (a '+' becomes a space); its
 * lookup returns the first of repeated keys only. query_check() sees every argument in the
 * order received and refuses what the route does not declare, so that a misspelt filter is
 * an error instead of a list that silently ignores it. Pure functions, thread-safe.
 */
#ifndef TANDEM_HTTP_QUERY_H
#define TANDEM_HTTP_QUERY_H

#include <stddef.h>

struct arena;
struct error;
struct route_param;

/* One argument as decoded. A '=' missing: value NULL. A NUL byte decoded from %00 makes the
 * length larger than strlen(), which is how it is noticed. */
struct query_arg {
	const char *name, *value;
	size_t name_len, value_len;
};

/*
 * Check the `n` arguments `in` against `params` (a route's table ending with {NULL}, or NULL
 * for a route that takes none). On success *out (arena) holds each parameter given once, in
 * the order first seen, a list's repeated values joined with ',' in the order received, and
 * "" for a name without '='. Empty segments ("a=1&&b=2", a trailing '&') are skipped.
 *
 * -ERR_UNKNOWN_PARAMETER: names not in the table, each in err's fields (code
 * unknown_parameter, with a "did you mean" when one is close) and the accepted names in the
 * detail. Otherwise -ERR_VALIDATION_FAILED: a parameter given twice that is not a list (code
 * repeated), a value that holds a NUL byte or is not UTF-8 (code invalid).
 */
int query_check(struct arena *a, const struct route_param *params, const struct query_arg *in,
		int n, struct query_arg **out, int *nout, struct error *err);

/* The value of `name` in a checked query (query_check's *out), or NULL. */
const char *query_get(const struct query_arg *args, int n, const char *name);

/* The accepted names of `params`, ", "-separated ("none" when there are none), in the arena. */
const char *query_accepted(struct arena *a, const struct route_param *params);

#endif
