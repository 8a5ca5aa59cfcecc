/* accounts.c — see accounts.h. */
#include "services/accounts.h"
#include "core/arena.h"
#include "core/error.h"
#include "core/timeutil.h"
#include "core/uuid.h"
#include "services/notify.h"
#include "services/tx.h"
#include "services/validate.h"
#include "store/store.h"

#include <string.h>

json_t *user_json(const struct user *u, bool full)
{
	char created[TIME_RFC3339_LEN];
	time_format_ms(u->created_at, created);
	json_t *o = json_pack("{s:s, s:s, s:s, s:b, s:s}", "id", u->id, "username", u->username,
			      "display_name", u->display_name, "is_active", u->is_active,
			      "created_at", created);
	/* Who the admins are is nobody else's business: a list of targets for phishing. */
	if (full) {
		json_object_set_new(o, "email", json_string(u->email));
		json_object_set_new(o, "is_admin", json_boolean(u->is_admin));
	}
	return o;
}

static void check_profile_formats(const char *email, const char *username, struct error *err)
{
	if (email && !valid_email(email))
		error_field(err, "email", "invalid", "must be a valid e-mail address");
	if (username && !valid_username(username))
		error_field(err, "username", "invalid",
			    "3 to 32 characters of a-z, 0-9, '_', '.' and '-'");
}

static int conflict(struct error *err, bool email, bool username)
{
	error_release(err);
	if (email)
		error_field(err, "email", "taken", "is already registered");
	if (username)
		error_field(err, "username", "taken", "is already taken");
	return error_set(err, ERR_CONFLICT, "%s already in use",
			 email && username ? "email and username are"
			 : email	   ? "email is"
					   : "username is");
}

/* Map a unique violation from the store (detail "email" or "username") to a 409. */
static int insert_conflict(int rc, struct error *err)
{
	if (rc != -ERR_CONFLICT)
		return rc;
	bool email = strstr(err->detail, "email") != NULL;
	return conflict(err, email, !email);
}

static const struct field_spec register_fields[] = {
    {"email", FIELD_STRING, true, false, 3, 254, NULL},
    {"username", FIELD_STRING, true, false, 3, 32, NULL},
    {"password", FIELD_STRING, true, false, 8, 128, NULL},
    {"display_name", FIELD_STRING, false, true, 0, 100, NULL},
    {"id", FIELD_READ_ONLY, false, false, 0, 0, NULL},
    {"is_active", FIELD_READ_ONLY, false, false, 0, 0, NULL},
    {"is_admin", FIELD_READ_ONLY, false, false, 0, 0, NULL},
    {"created_at", FIELD_READ_ONLY, false, false, 0, 0, NULL},
};
#define NREGISTER_FIELDS (sizeof(register_fields) / sizeof(register_fields[0]))

int account_create(const struct auth *au, struct db_conn *c, struct arena *a, json_t *body,
		   bool is_admin, struct user *out, struct error *err)
{
	char id[UUID_STR_LEN], hash[PASSWORD_HASH_MAX];
	bool email_taken, username_taken;
	int rc;

	if ((rc = validate_object(body, register_fields, NREGISTER_FIELDS, err)) < 0)
		return rc;
	const char *email = arena_strdup_lower(a, body_string(body, "email")),
		   *username = arena_strdup_lower(a, body_string(body, "username")),
		   *display_name = body_string(body, "display_name");
	check_profile_formats(email, username, err);
	if (error_field_count(err))
		return -ERR_VALIDATION_FAILED;
	if ((rc = store_user_taken(c, a, email, username, NULL, &email_taken, &username_taken,
				   err)) < 0)
		return rc;
	if (email_taken || username_taken)
		return conflict(err, email_taken, username_taken);
	if ((rc = password_hash(body_string(body, "password"), au->bcrypt_cost, hash)) < 0)
		return error_set(err, ERR_INTERNAL, "password hashing failed");
	uuid_v7(id);
	int64_t now = time_now_ms();
	*out = (struct user){
	    .id = arena_strdup(a, id),
	    .username = username,
	    .email = email,
	    .display_name = display_name ? display_name : "",
	    .password_hash = arena_strdup(a, hash),
	    .is_active = true,
	    .is_admin = is_admin,
	    .token_version = 1,
	    .created_at = now,
	    .updated_at = now,
	    .version = 1,
	};
	return insert_conflict(store_user_insert(c, out, err), err);
}

int auth_create_user(const struct auth *au, struct store *st, struct arena *a, const char *username,
		     const char *email, const char *password, bool is_admin, struct user *out,
		     struct error *err)
{
	json_t *body = arena_json(a, json_pack("{s:s, s:s, s:s}", "username", username, "email",
					       email, "password", password));
	int rc;
	if (!body)
		return error_set(err, ERR_VALIDATION_FAILED, "arguments must be valid UTF-8");
	struct db_conn *c = store_conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	if ((rc = db_begin(c, true, err)) < 0)
		return rc;
	rc = account_create(au, c, a, body, is_admin, out, err);
	return tx_finish(c, rc, err);
}

static const struct field_spec password_fields[] = {
    {"current_password", FIELD_STRING, true, false, 1, 1024, NULL},
    {"new_password", FIELD_STRING, true, false, 8, 128, NULL},
};

int auth_change_password(const struct auth *au, struct store *st, struct arena *a,
			 const struct user *me, json_t *body, struct error *err)
{
	char hash[PASSWORD_HASH_MAX];
	int rc;
	(void)a;

	if ((rc = validate_object(body, password_fields, 2, err)) < 0)
		return rc;
	if (!password_verify(body_string(body, "current_password"), me->password_hash)) {
		error_field(err, "current_password", "incorrect", "is not the current password");
		return -ERR_VALIDATION_FAILED;
	}
	if (password_hash(body_string(body, "new_password"), au->bcrypt_cost, hash) < 0)
		return error_set(err, ERR_INTERNAL, "password hashing failed");
	struct db_conn *c = store_conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	int64_t now = time_now_ms();
	if ((rc = db_begin(c, true, err)) < 0)
		return rc;
	/* A new token version ends every access token; the refresh tokens go too. */
	if ((rc = store_user_set_password(c, me->id, hash, true, now, err)) < 0)
		goto out;
	if ((rc = store_refresh_revoke_user(c, me->id, now, err)) < 0)
		goto out;
	notify_pending(me->id, 0, EVENT_NOTE_USER_REVOKED); /* published after the commit */
out:
	return tx_finish(c, rc, err);
}

static const struct field_spec profile_fields[] = {
    {"email", FIELD_STRING, false, false, 3, 254, NULL},
    {"username", FIELD_STRING, false, false, 3, 32, NULL},
    {"display_name", FIELD_STRING, false, true, 0, 100, NULL},
    {"id", FIELD_READ_ONLY, false, false, 0, 0, NULL},
    {"is_active", FIELD_READ_ONLY, false, false, 0, 0, NULL},
    {"is_admin", FIELD_READ_ONLY, false, false, 0, 0, NULL},
    {"created_at", FIELD_READ_ONLY, false, false, 0, 0, NULL},
    {"password", FIELD_READ_ONLY, false, false, 0, 0, NULL},
};
#define NPROFILE_FIELDS (sizeof(profile_fields) / sizeof(profile_fields[0]))

int auth_update_profile(struct store *st, struct arena *a, const struct user *me, json_t *body,
			struct user *out, struct error *err)
{
	bool email_taken, username_taken;
	int rc;

	if ((rc = validate_object(body, profile_fields, NPROFILE_FIELDS, err)) < 0)
		return rc;
	const char *email = body_string(body, "email"), *username = body_string(body, "username");
	*out = *me;
	if (email)
		out->email = arena_strdup_lower(a, email);
	if (username)
		out->username = arena_strdup_lower(a, username);
	if (json_object_get(body, "display_name")) {
		const char *display_name = body_string(body, "display_name");
		out->display_name = display_name ? display_name : "";
	}
	check_profile_formats(email ? out->email : NULL, username ? out->username : NULL, err);
	if (error_field_count(err))
		return -ERR_VALIDATION_FAILED;
	struct db_conn *c = store_conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	if ((rc = store_user_taken(c, a, out->email, out->username, me->id, &email_taken,
				   &username_taken, err)) < 0)
		return rc;
	if (email_taken || username_taken)
		return conflict(err, email_taken, username_taken);
	out->updated_at = time_now_ms();
	out->version = me->version + 1;
	return insert_conflict(store_user_update_profile(c, out, err), err);
}

int auth_search_users(struct store *st, struct arena *a, const char *q, int limit,
		      struct user **out, int *count, struct error *err)
{
	if (!q) {
		error_field(err, "q", "required", "is required (at least 2 characters)");
		return -ERR_VALIDATION_FAILED;
	}
	if (utf8_length(q) < 2) {
		error_field(err, "q", "too_short", "at least 2 characters");
		return -ERR_VALIDATION_FAILED;
	}
	if (utf8_length(q) > 100) {
		error_field(err, "q", "too_long", "at most 100 characters");
		return -ERR_VALIDATION_FAILED;
	}
	struct db_conn *c = store_conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	return store_user_search(c, a, q, limit, out, count, err);
}
