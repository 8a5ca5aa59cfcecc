/*
 * sessions.h — sessions of API.md "Authentication": register (an account and its first
 * session), login, refresh-token rotation with reuse detection, logout, and authenticating a
 * bearer token. No HTTP, no SQL. Thread-safe.
 */
#ifndef TANDEM_SERVICES_SESSIONS_H
#define TANDEM_SERVICES_SESSIONS_H

#include <jansson.h>
#include <stdbool.h>

#include "services/auth.h"
#include "store/users.h"

struct arena;
struct error;
struct store;

/* What register, login and refresh answer with. */
struct session {
	struct user user;
	const char *access_token, *refresh_token;
	const char *device_token; /* a login's new device token; NULL for register and refresh */
	int64_t expires_in;
};

struct ratelimit;
struct rl_policy;
struct rl_result;

/*
 * The failed-login limit of a login (OWASP "Slow Down Online Guessing Attacks with Device
 * Cookies", the cookie sent as `device_token` in JSON). The bucket is chosen once the login
 * name is resolved: a valid device token of that account -> the device's own bucket (its
 * nonce); anything else -> the account's bucket (its user id; an unknown name: a hash of the
 * name as typed, lower-cased, so unknown and known names behave alike). A token is taken from
 * it before the password is verified and given back when the password was right, so only
 * failures cost and concurrent guesses can never outnumber the tokens in the bucket.
 */
struct login_limit {
	struct ratelimit *rl;		 /* NULL: logins are not limited */
	const struct rl_policy *account; /* "login-account" */
	const struct rl_policy *device;	 /* "login-device" */
	/* out: */
	bool checked;		  /* result holds the bucket's answer */
	bool kept;		  /* the login failed: the token stays spent */
	struct rl_result *result; /* caller's storage for the answer */
};

/*
 * POST /v1/auth/register, /login, /refresh, /logout bodies (validated here). Logout, and a
 * refresh that detects reuse, end a session: they announce EVENT_NOTE_USER_REVOKED for the
 * user (services/notify.h) once committed.
 *
 * Refresh: a token already rotated, presented again within au->refresh_grace_s of its
 * rotation, answers the family's newest pair (the one that rotation issued, unless the family
 * was rotated again since), identical byte for byte and without writing; after the window it
 * is reuse and revokes the family. A token of an ended family (reuse, logout, password
 * change) is -ERR_SESSION_REVOKED; an unknown or expired one, or a deactivated user's,
 * -ERR_UNAUTHENTICATED.
 */
int auth_register(const struct auth *au, struct store *st, struct arena *a, json_t *body,
		  struct session *out, struct error *err);
/* Login, with lim (may be NULL) as above: -ERR_RATE_LIMITED when its bucket is empty. */
int auth_login(const struct auth *au, struct store *st, struct arena *a, json_t *body,
	       struct login_limit *lim, struct session *out, struct error *err);
int auth_refresh(const struct auth *au, struct store *st, struct arena *a, json_t *body,
		 struct session *out, struct error *err);
int auth_logout(const struct auth *au, struct store *st, struct arena *a, json_t *body,
		struct error *err);

/*
 * The user behind an Authorization header value ("Bearer <jwt>"). -ERR_UNAUTHENTICATED for a
 * missing, malformed, forged or revoked token, a deactivated or deleted user, a token older
 * than the user's token version, or one whose session (its `sid`: a refresh family) ended by
 * logout, reuse detection, a password change or expiry; -ERR_TOKEN_EXPIRED for an expired one.
 */
int auth_authenticate(const struct auth *au, struct store *st, struct arena *a,
		      const char *authorization, struct user *out, struct error *err);
/* The same for the token itself (a WebSocket's `auth` message carries no header). */
int auth_token_user(const struct auth *au, struct store *st, struct arena *a, const char *token,
		    struct user *out, struct error *err);

/* {user, access_token, refresh_token, token_type, expires_in[, device_token]}. New reference. */
json_t *session_json(const struct session *s);

#endif
