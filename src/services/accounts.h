/*
 * accounts.h — user accounts: creating them (with the rules of API.md "Authentication" for
 * usernames, e-mail addresses and passwords), the caller's own profile and password, and
 * user search. No HTTP, no SQL (that is store/users.c). Sessions (services/sessions.h) build
 * on this; this knows nothing of sessions beyond revoking them on a password change.
 */
#ifndef TANDEM_SERVICES_ACCOUNTS_H
#define TANDEM_SERVICES_ACCOUNTS_H

#include <jansson.h>
#include <stdbool.h>

#include "services/auth.h"
#include "store/users.h"

struct arena;
struct db_conn;
struct error;
struct store;

/*
 * Validate a registration body {email, username, password, display_name?} and insert the
 * account in the caller's transaction. -ERR_VALIDATION_FAILED or -ERR_CONFLICT (409, naming
 * the taken fields).
 */
int account_create(const struct auth *au, struct db_conn *c, struct arena *a, json_t *body,
		   bool is_admin, struct user *out, struct error *err);

/*
 * Create an account outside HTTP (the `tandem user create` command). Same validation as
 * register.
 */
int auth_create_user(const struct auth *au, struct store *st, struct arena *a, const char *username,
		     const char *email, const char *password, bool is_admin, struct user *out,
		     struct error *err);

/*
 * PUT /v1/users/me/password: kills every refresh token and every earlier access token, and
 * announces EVENT_NOTE_USER_REVOKED for the user once committed.
 */
int auth_change_password(const struct auth *au, struct store *st, struct arena *a,
			 const struct user *me, json_t *body, struct error *err);
/* PATCH /v1/users/me {username?, display_name?, email?}. */
int auth_update_profile(struct store *st, struct arena *a, const struct user *me, json_t *body,
			struct user *out, struct error *err);
/* GET /v1/users?q=: active users by username or display-name prefix, at most `limit`. */
int auth_search_users(struct store *st, struct arena *a, const char *q, int limit,
		      struct user **out, int *count, struct error *err);

/*
 * The user object. `full` (the user themself, or an admin asking) adds `email` and
 * `is_admin`; without it, what any other user may see. New reference.
 */
json_t *user_json(const struct user *u, bool full);

#endif
