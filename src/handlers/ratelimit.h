/*
 * ratelimit.h (handlers) — applying the rate-limit policies to HTTP requests: which policy
 * and keys a request falls under, the client address behind trusted proxies, and the
 * RateLimit-Policy / RateLimit / Retry-After header fields.
 */
#ifndef TANDEM_HANDLERS_RATELIMIT_H
#define TANDEM_HANDLERS_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>

struct arena;
struct config;
struct limits;
struct login_limit;
struct redis;
struct request;
struct rl_result;

/*
 * Build the limiter from the configuration. Returns NULL with a one-line message on stderr
 * for an invalid policy or proxy list. With rate limiting off *out still holds the trusted
 * proxies (client_ip() needs them) and limits nothing (limits_on() is false).
 */
int limits_create(const struct config *cfg, struct redis *redis, struct limits **out);
void limits_free(struct limits *l);
/* Whether rate limiting is on. */
bool limits_on(const struct limits *l);
/* Whether ip (numeric text) is one of the trusted proxies (--trusted-proxies). */
bool limits_trusted_peer(const struct limits *l, const char *ip);

/*
 * Check the request (after authentication, so req->user is known where there is one). Adds
 * the headers; returns 0 or -ERR_RATE_LIMITED.
 */
int handlers_rate_limit(struct request *req);

/*
 * The failed-login limit for this login request (services/sessions.h), with `res` as its
 * result storage; lim->rl is NULL when rate limiting is off. After auth_login(),
 * handlers_login_limited() puts what it decided into the RateLimit fields: the bucket that
 * refused a 429, or the login bucket after a failure when it is the more constrained one.
 */
void handlers_login_limit(struct request *req, struct login_limit *lim, struct rl_result *res);
void handlers_login_limited(struct request *req, const struct login_limit *lim);

/* The client address: the TCP peer, or the right-most untrusted X-Forwarded-For entry when
 * the peer is a trusted proxy. In the request arena. */
const char *client_ip(struct request *req, const struct limits *l);
/* The X-Forwarded-For walk of client_ip() for a peer that is a trusted proxy: `xff` is every
 * line of the header joined with ", "; the answer is in `a` (or is `peer`). Pure (fuzzed). */
const char *forwarded_client(struct arena *a, const struct limits *l, const char *peer,
			     const char *xff);

#endif
