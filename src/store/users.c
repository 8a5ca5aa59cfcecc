/* users.c — see users.h. SQL written once for both dialects. */
#include "store/users.h"
#include "core/arena.h"
#include "core/error.h"
#include "store/db.h"

#include <string.h>

#define USER_COLUMNS                                                                               \
	"id, username, email, display_name, password_hash, is_active, is_admin, token_version, "   \
	"created_at, updated_at, version"

void store_user_read(const struct db_rows *r, int row, int col, struct user *u)
{
	u->id = db_val(r, row, col);
	u->username = db_val(r, row, col + 1);
	u->email = db_val(r, row, col + 2);
	u->display_name = db_val(r, row, col + 3);
	u->password_hash = db_val(r, row, col + 4);
	u->is_active = db_bool(r, row, col + 5);
	u->is_admin = db_bool(r, row, col + 6);
	u->token_version = db_int(r, row, col + 7);
	u->created_at = db_int(r, row, col + 8);
	u->updated_at = db_int(r, row, col + 9);
	u->version = db_int(r, row, col + 10);
}

static int conflict_field(int rc, struct error *err)
{
	if (rc != -ERR_CONFLICT || !err)
		return rc;
	/* SQLite names the column ("users.email"), PostgreSQL the index (users_email_key). */
	const char *field = strstr(err->detail, "email") ? "email" : "username";
	return error_set(err, ERR_CONFLICT, "%s", field);
}

int store_user_insert(struct db_conn *c, const struct user *u, struct error *err)
{
	struct db_param p[] = {
	    DB_TEXT(u->id),	      DB_TEXT(u->username),	 DB_TEXT(u->email),
	    DB_TEXT(u->display_name), DB_TEXT(u->password_hash), DB_BOOL(u->is_active),
	    DB_BOOL(u->is_admin),     DB_INT(u->token_version),	 DB_INT(u->created_at),
	    DB_INT(u->updated_at)};
	int rc = db_exec(c,
			 "INSERT INTO users (" USER_COLUMNS ") VALUES "
			 "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 1)",
			 p, DB_NPARAMS(p), err);
	return conflict_field(rc, err);
}

static int get_one(struct db_conn *c, struct arena *a, const char *sql, const char *key,
		   struct user *out, struct error *err)
{
	struct db_rows r;
	struct db_param p[] = {DB_TEXT(key)};
	int rc = db_query(c, a, sql, p, 1, &r, err);
	if (rc < 0)
		return rc;
	if (r.nrows == 0)
		return error_set(err, ERR_NOT_FOUND, "no such user");
	store_user_read(&r, 0, 0, out);
	return 0;
}

int store_user_get(struct db_conn *c, struct arena *a, const char *id, struct user *out,
		   struct error *err)
{
	return get_one(c, a, "SELECT " USER_COLUMNS " FROM users WHERE id = $1", id, out, err);
}

int store_user_get_session(struct db_conn *c, struct arena *a, const char *id, const char *sid,
			   int64_t now, struct user *out, bool *session_live, struct error *err)
{
	struct db_rows r;
	struct db_param p[] = {DB_TEXT(id), DB_TEXT(sid), DB_INT(now)};
	/* One statement, so checking the session costs no extra round trip: an index probe on
	 * refresh_tokens (family_id) beside the primary-key read of the user. */
	int rc = db_query(c, a,
			  "SELECT " USER_COLUMNS ", EXISTS (SELECT 1 FROM refresh_tokens t "
			  "WHERE t.family_id = $2 AND t.user_id = $1 AND t.revoked_at IS NULL "
			  "AND t.expires_at > $3) FROM users WHERE id = $1",
			  p, DB_NPARAMS(p), &r, err);
	if (rc < 0)
		return rc;
	if (r.nrows == 0)
		return error_set(err, ERR_NOT_FOUND, "no such user");
	store_user_read(&r, 0, 0, out);
	*session_live = db_bool(&r, 0, 11);
	return 0;
}

int store_user_find_login(struct db_conn *c, struct arena *a, const char *login, struct user *out,
			  struct error *err)
{
	const char *sql = strchr(login, '@') ? "SELECT " USER_COLUMNS " FROM users WHERE email = $1"
					     : "SELECT " USER_COLUMNS
					       " FROM users WHERE username = $1";
	return get_one(c, a, sql, login, out, err);
}

int store_user_taken(struct db_conn *c, struct arena *a, const char *email, const char *username,
		     const char *except_id, bool *email_taken, bool *username_taken,
		     struct error *err)
{
	struct db_rows r;
	struct db_param p[] = {DB_TEXT(email), DB_TEXT(username), DB_TEXT(except_id)};
	int rc = db_query(c, a,
			  c->dialect == DB_POSTGRES
			      ? "SELECT email = $1, username = $2 FROM users "
				"WHERE (email = $1 OR username = $2) "
				"AND ($3::uuid IS NULL OR id <> $3::uuid)"
			      : "SELECT email = $1, username = $2 FROM users "
				"WHERE (email = $1 OR username = $2) AND ($3 IS NULL OR id <> $3)",
			  p, 3, &r, err);
	if (rc < 0)
		return rc;
	*email_taken = *username_taken = false;
	for (int i = 0; i < r.nrows; i++) {
		*email_taken |= db_bool(&r, i, 0);
		*username_taken |= db_bool(&r, i, 1);
	}
	return 0;
}

int store_user_update_profile(struct db_conn *c, const struct user *u, struct error *err)
{
	struct db_param p[] = {DB_TEXT(u->id), DB_TEXT(u->username), DB_TEXT(u->email),
			       DB_TEXT(u->display_name), DB_INT(u->updated_at)};
	int rc = db_exec(c,
			 "UPDATE users SET username = $2, email = $3, display_name = $4, "
			 "updated_at = $5, version = version + 1 WHERE id = $1",
			 p, DB_NPARAMS(p), err);
	return conflict_field(rc, err);
}

static int expect_one(struct db_conn *c, const char *sql, struct db_param *p, int np,
		      struct error *err)
{
	struct arena a;
	struct db_rows r;
	arena_init(&a);
	int rc = db_query(c, &a, sql, p, np, &r, err);
	if (rc == 0 && r.affected == 0)
		rc = error_set(err, ERR_NOT_FOUND, "no such user");
	arena_release(&a);
	return rc;
}

int store_user_set_password(struct db_conn *c, const char *id, const char *hash, bool bump,
			    int64_t now, struct error *err)
{
	struct db_param p[] = {DB_TEXT(id), DB_TEXT(hash), DB_INT(bump ? 1 : 0), DB_INT(now)};
	return expect_one(
	    c,
	    "UPDATE users SET password_hash = $2, token_version = token_version + $3, "
	    "updated_at = $4 WHERE id = $1",
	    p, DB_NPARAMS(p), err);
}

int store_user_set_flags(struct db_conn *c, const char *id, bool is_active, bool is_admin,
			 int64_t now, struct error *err)
{
	struct db_param p[] = {DB_TEXT(id), DB_BOOL(is_active), DB_BOOL(is_admin), DB_INT(now)};
	/* Deactivation bumps the token version too, so outstanding tokens die at once. */
	return expect_one(c,
			  "UPDATE users SET is_active = $2, is_admin = $3, updated_at = $4, "
			  "token_version = token_version + 1, version = version + 1 WHERE id = $1",
			  p, DB_NPARAMS(p), err);
}

int store_user_search(struct db_conn *c, struct arena *a, const char *prefix, int limit,
		      struct user **out, int *count, struct error *err)
{
	struct db_rows r;
	/* Escape LIKE's metacharacters so the prefix is taken literally. */
	size_t n = strlen(prefix);
	char *pat = arena_alloc(a, 2 * n + 2), *q = pat;
	for (const char *s = prefix; *s; s++) {
		if (*s == '%' || *s == '_' || *s == '\\')
			*q++ = '\\';
		*q++ = *s;
	}
	*q++ = '%';
	struct db_param p[] = {DB_TEXT(pat), DB_INT(limit), DB_BOOL(true)};
	int rc = db_query(c, a,
			  "SELECT " USER_COLUMNS " FROM users WHERE "
			  "is_active = $3 AND (username LIKE lower($1) ESCAPE '\\' "
			  "OR lower(display_name) LIKE lower($1) ESCAPE '\\') "
			  "ORDER BY username LIMIT $2",
			  p, DB_NPARAMS(p), &r, err);
	if (rc < 0)
		return rc;
	*out = arena_alloc(a, sizeof(struct user) * (size_t)(r.nrows + 1));
	for (int i = 0; i < r.nrows; i++)
		store_user_read(&r, i, 0, &(*out)[i]);
	*count = r.nrows;
	return 0;
}

#define REFRESH_COLUMNS                                                                            \
	"id, user_id, family_id, token_hash, created_at, expires_at, used_at, revoked_at, "        \
	"family_created_at, token_version"

static void read_refresh(const struct db_rows *r, int row, struct refresh_token *t)
{
	t->id = db_val(r, row, 0);
	t->user_id = db_val(r, row, 1);
	t->family_id = db_val(r, row, 2);
	t->token_hash = db_val(r, row, 3);
	t->created_at = db_int(r, row, 4);
	t->expires_at = db_int(r, row, 5);
	t->used_at = db_int(r, row, 6);
	t->revoked_at = db_int(r, row, 7);
	t->family_created_at = db_int(r, row, 8);
	t->token_version = db_int(r, row, 9);
}

int store_refresh_insert(struct db_conn *c, const struct refresh_token *t, struct error *err)
{
	struct db_param p[] = {DB_TEXT(t->id),
			       DB_TEXT(t->user_id),
			       DB_TEXT(t->family_id),
			       DB_TEXT(t->token_hash),
			       DB_INT(t->created_at),
			       DB_INT(t->expires_at),
			       DB_INT(t->family_created_at),
			       DB_INT(t->token_version)};
	return db_exec(
	    c,
	    "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, created_at, "
	    "expires_at, family_created_at, token_version) "
	    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
	    p, DB_NPARAMS(p), err);
}

int store_refresh_claim(struct db_conn *c, struct arena *a, const char *hash, int64_t now,
			struct refresh_token *out, struct error *err)
{
	struct db_rows r;
	struct db_param p[] = {DB_TEXT(hash), DB_INT(now)};
	int rc = db_query(c, a,
			  "UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1 "
			  "AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $2 "
			  "AND token_version = (SELECT u.token_version FROM users u "
			  "WHERE u.id = refresh_tokens.user_id) "
			  "RETURNING " REFRESH_COLUMNS,
			  p, 2, &r, err);
	if (rc < 0)
		return rc;
	if (r.nrows == 0)
		return error_set(err, ERR_NOT_FOUND, "no live refresh token");
	read_refresh(&r, 0, out);
	return 0;
}

int store_refresh_get(struct db_conn *c, struct arena *a, const char *hash,
		      struct refresh_token *out, struct error *err)
{
	struct db_rows r;
	struct db_param p[] = {DB_TEXT(hash)};
	int rc =
	    db_query(c, a, "SELECT " REFRESH_COLUMNS " FROM refresh_tokens WHERE token_hash = $1",
		     p, 1, &r, err);
	if (rc < 0)
		return rc;
	if (r.nrows == 0)
		return error_set(err, ERR_NOT_FOUND, "no such refresh token");
	read_refresh(&r, 0, out);
	return 0;
}

int store_refresh_revoke_family(struct db_conn *c, const char *family_id, int64_t now,
				struct error *err)
{
	struct db_param p[] = {DB_TEXT(family_id), DB_INT(now)};
	return db_exec(c,
		       "UPDATE refresh_tokens SET revoked_at = $2 "
		       "WHERE family_id = $1 AND revoked_at IS NULL",
		       p, 2, err);
}

int store_refresh_revoke_user(struct db_conn *c, const char *user_id, int64_t now,
			      struct error *err)
{
	struct db_param p[] = {DB_TEXT(user_id), DB_INT(now)};
	return db_exec(c,
		       "UPDATE refresh_tokens SET revoked_at = $2 "
		       "WHERE user_id = $1 AND revoked_at IS NULL",
		       p, 2, err);
}

int store_refresh_purge(struct db_conn *c, int64_t before, int limit, int64_t *deleted,
			struct error *err)
{
	struct db_param p[] = {DB_INT(before), DB_INT(limit)};
	return db_exec_affected(
	    c,
	    "DELETE FROM refresh_tokens WHERE id IN (SELECT id FROM refresh_tokens "
	    "WHERE expires_at < $1 OR revoked_at < $1 LIMIT $2)",
	    p, 2, deleted, err);
}
