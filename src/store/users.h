/*
 * users.h — users and refresh tokens in the store. SQL only: rules live in services/auth.c.
 * Every function takes the caller's connection so that services can group calls into one
 * transaction; results are allocated in the arena.
 */
#ifndef TANDEM_STORE_USERS_H
#define TANDEM_STORE_USERS_H

#include <stdbool.h>
#include <stdint.h>

struct arena;
struct db_conn;
struct error;

struct user {
	const char *id, *username, *email, *display_name, *password_hash;
	bool is_active, is_admin;
	int64_t token_version, created_at, updated_at, version;
};

struct db_rows;

/*
 * Read a user from the 11 columns starting at `col` of a row selected in this order: id,
 * username, email, display_name, password_hash, is_active, is_admin, token_version,
 * created_at, updated_at, version (store/users.c's USER_COLUMNS; other tables' queries that
 * join users select the same list).
 */
void store_user_read(const struct db_rows *r, int row, int col, struct user *u);

/* Insert; -ERR_CONFLICT with the detail naming "email" or "username" when taken. */
int store_user_insert(struct db_conn *c, const struct user *u, struct error *err);
/* By id; -ERR_NOT_FOUND when absent. */
int store_user_get(struct db_conn *c, struct arena *a, const char *id, struct user *out,
		   struct error *err);
/*
 * By id, and in the same statement whether the refresh family `sid` of that user is live (one
 * of its tokens is neither revoked nor expired at `now`): what checking an access token needs.
 * -ERR_NOT_FOUND when the user is absent.
 */
int store_user_get_session(struct db_conn *c, struct arena *a, const char *id, const char *sid,
			   int64_t now, struct user *out, bool *session_live, struct error *err);
/* By lower-cased e-mail or username; -ERR_NOT_FOUND when absent. */
int store_user_find_login(struct db_conn *c, struct arena *a, const char *login, struct user *out,
			  struct error *err);
/* Which of email/username are taken by someone other than `except_id` (may be NULL). */
int store_user_taken(struct db_conn *c, struct arena *a, const char *email, const char *username,
		     const char *except_id, bool *email_taken, bool *username_taken,
		     struct error *err);
/* Write username, email, display_name, updated_at and version+1 of u (matched by id). */
int store_user_update_profile(struct db_conn *c, const struct user *u, struct error *err);
/* Replace the hash; when bump is set the token version goes up (old access tokens die). */
int store_user_set_password(struct db_conn *c, const char *id, const char *hash, bool bump,
			    int64_t now, struct error *err);
int store_user_set_flags(struct db_conn *c, const char *id, bool is_active, bool is_admin,
			 int64_t now, struct error *err);
/* Active users whose username or display name starts with `prefix` (case-insensitive). */
int store_user_search(struct db_conn *c, struct arena *a, const char *prefix, int limit,
		      struct user **out, int *count, struct error *err);

struct refresh_token {
	const char *id, *user_id, *family_id, *token_hash;
	int64_t created_at, expires_at, used_at, revoked_at; /* 0 = not set */
	int64_t family_created_at; /* when the login that began the family happened */
	int64_t token_version;	   /* the user's token version when issued */
};

int store_refresh_insert(struct db_conn *c, const struct refresh_token *t, struct error *err);
/*
 * Mark the live token with this hash as used, atomically: exactly one of two concurrent
 * callers wins. Live: not used, not revoked, not expired, and issued under the user's current
 * token version. Returns 0 with *out filled when this call claimed it, or -ERR_NOT_FOUND
 * (then store_refresh_get tells why).
 */
int store_refresh_claim(struct db_conn *c, struct arena *a, const char *hash, int64_t now,
			struct refresh_token *out, struct error *err);
int store_refresh_get(struct db_conn *c, struct arena *a, const char *hash,
		      struct refresh_token *out, struct error *err);
/* Revoke every token of a family, or of a user. */
int store_refresh_revoke_family(struct db_conn *c, const char *family_id, int64_t now,
				struct error *err);
int store_refresh_revoke_user(struct db_conn *c, const char *user_id, int64_t now,
			      struct error *err);

/*
 * Delete at most `limit` refresh tokens that expired, or were revoked, before `before`;
 * *deleted says how many went. A used token that is still live is kept: presenting it again
 * is how reuse is detected.
 */
int store_refresh_purge(struct db_conn *c, int64_t before, int limit, int64_t *deleted,
			struct error *err);

#endif
