/*
 * auth.h — accounts and sessions: register, login, refresh-token rotation, logout, password
 * change, profile, and authenticating a bearer token. The rules of API.md "Authentication"
 * live here; no HTTP, no SQL (that is store/users.c).
 *
 * struct auth is created once at start-up (it holds the JWT key and the dummy hash used to
 * make logins of unknown users take as long as real ones) and is read-only afterwards, so
 * every function here is safe to call from any worker thread.
 */
#ifndef TANDEM_SERVICES_AUTH_H
#define TANDEM_SERVICES_AUTH_H

#include <jansson.h>
#include <stdbool.h>

#include "services/password.h"
#include "services/token.h"
#include "store/users.h"

struct arena;
struct config;
struct error;
struct store;

struct auth {
	struct token_key key;
	int64_t access_ttl_s, refresh_ttl_s;
	int bcrypt_cost;
	char dummy_hash[PASSWORD_HASH_MAX];
};

/* What register, login and refresh answer with. */
struct session {
	struct user user;
	const char *access_token, *refresh_token;
	int64_t expires_in;
};

/*
 * Set up from the configuration: the JWT key comes from cfg->jwt_secret, or from
 * <data_dir>/jwt.secret, which is generated (mode 0600) when missing. Returns 0 or -1 after
 * printing one line to stderr.
 */
int auth_init(struct auth *au, const struct config *cfg);

/* POST /v1/auth/register, /login, /refresh, /logout bodies (validated here). */
int auth_register(const struct auth *au, struct store *st, struct arena *a, json_t *body,
		  struct session *out, struct error *err);
int auth_login(const struct auth *au, struct store *st, struct arena *a, json_t *body,
	       struct session *out, struct error *err);
int auth_refresh(const struct auth *au, struct store *st, struct arena *a, json_t *body,
		 struct session *out, struct error *err);
int auth_logout(const struct auth *au, struct store *st, struct arena *a, json_t *body,
		struct error *err);

/*
 * The user behind an Authorization header value ("Bearer <jwt>"). -ERR_UNAUTHENTICATED for a
 * missing, malformed, forged or revoked token, a deactivated or deleted user, or a token
 * older than the user's token version; -ERR_TOKEN_EXPIRED for an expired one.
 */
int auth_authenticate(const struct auth *au, struct store *st, struct arena *a,
		      const char *authorization, struct user *out, struct error *err);

/* PUT /v1/users/me/password: kills every refresh token and every earlier access token. */
int auth_change_password(const struct auth *au, struct store *st, struct arena *a,
			 const struct user *me, json_t *body, struct error *err);
/* PATCH /v1/users/me {username?, display_name?, email?}. */
int auth_update_profile(struct store *st, struct arena *a, const struct user *me, json_t *body,
			struct user *out, struct error *err);
/* GET /v1/users?q=: active users by username or display-name prefix, at most `limit`. */
int auth_search_users(struct store *st, struct arena *a, const char *q, int limit,
		      struct user **out, int *count, struct error *err);

/*
 * Create an account outside HTTP (the `tandem user create` command). Same validation as
 * register.
 */
int auth_create_user(const struct auth *au, struct store *st, struct arena *a, const char *username,
		     const char *email, const char *password, bool is_admin, struct user *out,
		     struct error *err);

/* The public user object; `email` only when with_email. New reference. */
json_t *user_json(const struct user *u, bool with_email);
/* {user, access_token, refresh_token, token_type, expires_in}. New reference. */
json_t *session_json(const struct session *s);

#endif
