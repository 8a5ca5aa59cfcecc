/* auth.c — see auth.h. */
#include "services/auth.h"
#include "config/config.h"
#include "core/arena.h"
#include "core/error.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "core/uuid.h"
#include "services/validate.h"
#include "store/store.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECRET_FILE "jwt.secret"

/* ---- start-up ---- */

static int load_secret_file(struct auth *au, const char *dir)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, SECRET_FILE);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		/* Generate it; O_EXCL settles a race with a second instance starting at once. */
		struct arena a;
		arena_init(&a);
		char *text = token_refresh_new(&a); /* 43 url-safe characters of 256 random bits */
		int wfd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (wfd >= 0) {
			size_t n = strlen(text);
			int ok = write(wfd, text, n) == (ssize_t)n && write(wfd, "\n", 1) == 1 &&
				 fsync(wfd) == 0;
			close(wfd);
			if (!ok) {
				arena_release(&a);
				fprintf(stderr, "tandem: cannot write the JWT secret \"%s\": %s\n",
					path, strerror(errno));
				return -1;
			}
			log_json(LOG_INFO,
				 "generated a JWT secret (set TANDEM_JWT_SECRET to share one "
				 "between instances)",
				 json_pack("{s:s}", "path", path));
		} else if (errno != EEXIST) {
			arena_release(&a);
			fprintf(stderr, "tandem: cannot create the JWT secret \"%s\": %s\n", path,
				strerror(errno));
			return -1;
		}
		arena_release(&a);
		fd = open(path, O_RDONLY | O_CLOEXEC);
	}
	if (fd < 0) {
		fprintf(stderr, "tandem: cannot read the JWT secret \"%s\": %s\n", path,
			strerror(errno));
		return -1;
	}
	struct stat stt;
	if (fstat(fd, &stt) == 0 && (stt.st_mode & 077)) {
		log_warn("the JWT secret %s is readable by others; restricting it to mode 0600",
			 path);
		fchmod(fd, 0600);
	}
	ssize_t n = read(fd, au->key.secret, sizeof(au->key.secret));
	close(fd);
	while (n > 0 && isspace(au->key.secret[n - 1]))
		n--;
	if (n < 32) {
		fprintf(stderr, "tandem: the JWT secret in \"%s\" is shorter than 32 bytes\n",
			path);
		return -1;
	}
	au->key.len = (size_t)n;
	return 0;
}

int auth_init(struct auth *au, const struct config *cfg)
{
	memset(au, 0, sizeof(*au));
	au->access_ttl_s = cfg->access_token_ttl_s;
	au->refresh_ttl_s = cfg->refresh_token_ttl_s;
	au->bcrypt_cost = cfg->bcrypt_cost;
	if (cfg->jwt_secret) {
		size_t n = strlen(cfg->jwt_secret);
		if (n > sizeof(au->key.secret)) {
			fprintf(stderr, "tandem: invalid setting TANDEM_JWT_SECRET (--jwt-secret): "
					"longer than 256 bytes\n");
			return -1;
		}
		memcpy(au->key.secret, cfg->jwt_secret, n);
		au->key.len = n;
	} else {
		if (mkdir(cfg->data_dir, 0700) < 0 && errno != EEXIST) {
			fprintf(stderr,
				"tandem: invalid setting TANDEM_DATA_DIR (--data-dir) = "
				"\"%s\": %s\n",
				cfg->data_dir, strerror(errno));
			return -1;
		}
		if (load_secret_file(au, cfg->data_dir) < 0)
			return -1;
	}
	/* Unknown users are checked against this, so they cost what a real check costs. */
	if (password_hash("tandem-dummy-password", au->bcrypt_cost, au->dummy_hash) < 0) {
		fprintf(stderr, "tandem: bcrypt is not available\n");
		return -1;
	}
	return 0;
}

/* ---- JSON ---- */

json_t *user_json(const struct user *u, bool with_email)
{
	char created[TIME_RFC3339_LEN];
	time_format_ms(u->created_at, created);
	json_t *o = json_pack("{s:s, s:s, s:s, s:b, s:b, s:s}", "id", u->id, "username",
			      u->username, "display_name", u->display_name, "is_active",
			      u->is_active, "is_admin", u->is_admin, "created_at", created);
	if (with_email)
		json_object_set_new(o, "email", json_string(u->email));
	return o;
}

json_t *session_json(const struct session *s)
{
	return json_pack("{s:o, s:s, s:s, s:s, s:I}", "user", user_json(&s->user, true),
			 "access_token", s->access_token, "refresh_token", s->refresh_token,
			 "token_type", "Bearer", "expires_in", (json_int_t)s->expires_in);
}

/* ---- helpers ---- */

static const char *lower(struct arena *a, const char *s)
{
	char *out = arena_strdup(a, s);
	for (char *p = out; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return out;
}

static const char *str(json_t *body, const char *key)
{
	return json_string_value(json_object_get(body, key));
}

static struct db_conn *conn(struct store *st, struct error *err)
{
	return store_conn(st, err);
}

/* Issue an access token and a new refresh token in `family` (inside the caller's tx). */
static int new_session(const struct auth *au, struct db_conn *c, struct arena *a,
		       const struct user *u, const char *family, struct session *out,
		       struct error *err)
{
	char id[UUID_STR_LEN];
	int64_t now = time_now_ms();
	uuid_v7(id);
	const char *refresh = token_refresh_new(a);
	struct refresh_token t = {
	    .id = id,
	    .user_id = u->id,
	    .family_id = family ? family : id,
	    .token_hash = token_hash(a, refresh),
	    .created_at = now,
	    .expires_at = now + au->refresh_ttl_s * 1000,
	};
	int rc = store_refresh_insert(c, &t, err);
	if (rc < 0)
		return rc;
	out->user = *u;
	out->refresh_token = refresh;
	out->access_token = token_issue(a, &au->key, u->id, u->token_version, au->access_ttl_s);
	out->expires_in = au->access_ttl_s;
	return 0;
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

/* ---- register / create ---- */

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

static int create_user(const struct auth *au, struct db_conn *c, struct arena *a,
		       const char *username, const char *email, const char *password,
		       const char *display_name, bool is_admin, struct user *out, struct error *err)
{
	char id[UUID_STR_LEN], hash[PASSWORD_HASH_MAX];
	bool email_taken, username_taken;
	int rc;

	if ((rc = store_user_taken(c, a, email, username, NULL, &email_taken, &username_taken,
				   err)) < 0)
		return rc;
	if (email_taken || username_taken)
		return conflict(err, email_taken, username_taken);
	if ((rc = password_hash(password, au->bcrypt_cost, hash)) < 0)
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

int auth_register(const struct auth *au, struct store *st, struct arena *a, json_t *body,
		  struct session *out, struct error *err)
{
	int rc;
	if ((rc = validate_object(body, register_fields, 8, err)) < 0)
		return rc;
	const char *email = lower(a, str(body, "email")),
		   *username = lower(a, str(body, "username"));
	check_profile_formats(email, username, err);
	if (error_field_count(err))
		return -ERR_VALIDATION_FAILED;

	struct db_conn *c = conn(st, err);
	struct user u;
	if (!c)
		return -ERR_UNAVAILABLE;
	if ((rc = db_begin(c, true, err)) < 0)
		return rc;
	if ((rc = create_user(au, c, a, username, email, str(body, "password"),
			      str(body, "display_name"), false, &u, err)) < 0 ||
	    (rc = new_session(au, c, a, &u, NULL, out, err)) < 0) {
		db_rollback(c);
		return rc;
	}
	return db_commit(c, err);
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
	if ((rc = validate_object(body, register_fields, 8, err)) < 0)
		return rc;
	email = lower(a, email);
	username = lower(a, username);
	check_profile_formats(email, username, err);
	if (error_field_count(err))
		return -ERR_VALIDATION_FAILED;
	struct db_conn *c = conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	if ((rc = db_begin(c, true, err)) < 0)
		return rc;
	if ((rc = create_user(au, c, a, username, email, password, NULL, is_admin, out, err)) < 0) {
		db_rollback(c);
		return rc;
	}
	return db_commit(c, err);
}

/* ---- login ---- */

static const struct field_spec login_fields[] = {
    {"login", FIELD_STRING, true, false, 1, 254, NULL},
    {"password", FIELD_STRING, true, false, 1, 1024, NULL},
};

int auth_login(const struct auth *au, struct store *st, struct arena *a, json_t *body,
	       struct session *out, struct error *err)
{
	struct user u;
	int rc;

	if ((rc = validate_object(body, login_fields, 2, err)) < 0)
		return rc;
	const char *login = lower(a, str(body, "login")), *password = str(body, "password");
	struct db_conn *c = conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	rc = store_user_find_login(c, a, login, &u, err);
	if (rc < 0 && rc != -ERR_NOT_FOUND)
		return rc;
	/* Same work and the same answer for an unknown user, a wrong password, a deactivated
	 * account. */
	bool ok = password_verify(password, rc == 0 ? u.password_hash : au->dummy_hash);
	if (rc < 0 || !ok || !u.is_active) {
		error_release(err);
		return error_set(err, ERR_INVALID_CREDENTIALS, "login or password is incorrect");
	}
	if ((rc = db_begin(c, true, err)) < 0)
		return rc;
	if (password_hash_cost(u.password_hash) != au->bcrypt_cost) {
		/* The configured cost changed: upgrade the stored hash now that we have the
		 * password. */
		char hash[PASSWORD_HASH_MAX];
		if (password_hash(password, au->bcrypt_cost, hash) == 0 &&
		    store_user_set_password(c, u.id, hash, false, time_now_ms(), err) == 0)
			u.password_hash = arena_strdup(a, hash);
	}
	if ((rc = new_session(au, c, a, &u, NULL, out, err)) < 0) {
		db_rollback(c);
		return rc;
	}
	return db_commit(c, err);
}

/* ---- refresh / logout ---- */

static const struct field_spec refresh_fields[] = {
    {"refresh_token", FIELD_STRING, true, false, 1, 512, NULL},
};

int auth_refresh(const struct auth *au, struct store *st, struct arena *a, json_t *body,
		 struct session *out, struct error *err)
{
	struct refresh_token t;
	struct user u;
	int rc;

	if ((rc = validate_object(body, refresh_fields, 1, err)) < 0)
		return rc;
	const char *hash = token_hash(a, str(body, "refresh_token"));
	int64_t now = time_now_ms();
	struct db_conn *c = conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	if ((rc = db_begin(c, true, err)) < 0)
		return rc;
	rc = store_refresh_claim(c, a, hash, now, &t, err);
	if (rc == -ERR_NOT_FOUND) {
		/* Not live: unknown, expired, revoked, or already rotated. A rotated token shown
		 * again means it was copied: revoke its whole family, the thief's and the
		 * owner's newest token alike. */
		rc = store_refresh_get(c, a, hash, &t, err);
		if (rc == 0 && t.used_at && !t.revoked_at) {
			if ((rc = store_refresh_revoke_family(c, t.family_id, now, err)) < 0)
				goto fail;
			if ((rc = db_commit(c, err)) < 0)
				return rc;
			log_json(LOG_WARN, "refresh token reuse: family revoked",
				 json_pack("{s:s, s:s}", "user_id", t.user_id, "family_id",
					   t.family_id));
		} else {
			db_rollback(c);
		}
		error_release(err);
		return error_set(err, ERR_UNAUTHENTICATED, "the refresh token is not valid");
	}
	if (rc < 0)
		goto fail;
	if ((rc = store_user_get(c, a, t.user_id, &u, err)) < 0)
		goto fail;
	if (!u.is_active) {
		db_rollback(c);
		error_release(err);
		return error_set(err, ERR_UNAUTHENTICATED, "the refresh token is not valid");
	}
	if ((rc = new_session(au, c, a, &u, t.family_id, out, err)) < 0)
		goto fail;
	return db_commit(c, err);
fail:
	db_rollback(c);
	return rc;
}

int auth_logout(const struct auth *au, struct store *st, struct arena *a, json_t *body,
		struct error *err)
{
	struct refresh_token t;
	int rc;
	(void)au;

	if ((rc = validate_object(body, refresh_fields, 1, err)) < 0)
		return rc;
	struct db_conn *c = conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	rc = store_refresh_get(c, a, token_hash(a, str(body, "refresh_token")), &t, err);
	if (rc == -ERR_NOT_FOUND) {
		/* Logging out with a token that is not ours changes nothing and reveals nothing. */
		error_release(err);
		return 0;
	}
	if (rc < 0)
		return rc;
	return store_refresh_revoke_family(c, t.family_id, time_now_ms(), err);
}

/* ---- bearer tokens ---- */

int auth_authenticate(const struct auth *au, struct store *st, struct arena *a,
		      const char *authorization, struct user *out, struct error *err)
{
	struct access_claims claims;
	int rc;

	if (!authorization || !*authorization)
		return error_set(err, ERR_UNAUTHENTICATED, "this request needs a bearer token");
	if (strncasecmp(authorization, "Bearer ", 7) != 0)
		return error_set(err, ERR_UNAUTHENTICATED,
				 "the Authorization header must be \"Bearer <token>\"");
	const char *token = authorization + 7;
	while (*token == ' ')
		token++;
	if ((rc = token_verify(a, &au->key, token, &claims, err)) < 0)
		return rc;
	struct db_conn *c = conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	rc = store_user_get(c, a, claims.sub, out, err);
	if (rc == -ERR_NOT_FOUND ||
	    (rc == 0 && (!out->is_active || claims.ver != out->token_version))) {
		error_release(err);
		return error_set(err, ERR_UNAUTHENTICATED, "the access token has been revoked");
	}
	return rc;
}

/* ---- the caller's own account ---- */

static const struct field_spec password_fields[] = {
    {"current_password", FIELD_STRING, true, false, 1, 1024, NULL},
    {"new_password", FIELD_STRING, true, false, 8, 128, NULL},
};

int auth_change_password(const struct auth *au, struct store *st, struct arena *a,
			 const struct user *me, json_t *body, struct error *err)
{
	char hash[PASSWORD_HASH_MAX];
	int rc;

	if ((rc = validate_object(body, password_fields, 2, err)) < 0)
		return rc;
	if (!password_verify(str(body, "current_password"), me->password_hash)) {
		error_field(err, "current_password", "incorrect", "is not the current password");
		return -ERR_VALIDATION_FAILED;
	}
	if (password_hash(str(body, "new_password"), au->bcrypt_cost, hash) < 0)
		return error_set(err, ERR_INTERNAL, "password hashing failed");
	struct db_conn *c = conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	int64_t now = time_now_ms();
	if ((rc = db_begin(c, true, err)) < 0)
		return rc;
	if ((rc = store_user_set_password(c, me->id, hash, true, now, err)) < 0 ||
	    (rc = store_refresh_revoke_user(c, me->id, now, err)) < 0) {
		db_rollback(c);
		return rc;
	}
	return db_commit(c, err);
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

int auth_update_profile(struct store *st, struct arena *a, const struct user *me, json_t *body,
			struct user *out, struct error *err)
{
	bool email_taken, username_taken;
	int rc;

	if ((rc = validate_object(body, profile_fields, 8, err)) < 0)
		return rc;
	*out = *me;
	if (str(body, "email"))
		out->email = lower(a, str(body, "email"));
	if (str(body, "username"))
		out->username = lower(a, str(body, "username"));
	if (json_object_get(body, "display_name"))
		out->display_name = str(body, "display_name") ? str(body, "display_name") : "";
	check_profile_formats(str(body, "email") ? out->email : NULL,
			      str(body, "username") ? out->username : NULL, err);
	if (error_field_count(err))
		return -ERR_VALIDATION_FAILED;
	struct db_conn *c = conn(st, err);
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
	if (!q || utf8_length(q) < 2) {
		error_field(err, "q", "too_short", "at least 2 characters");
		return -ERR_VALIDATION_FAILED;
	}
	if (utf8_length(q) > 100) {
		error_field(err, "q", "too_long", "at most 100 characters");
		return -ERR_VALIDATION_FAILED;
	}
	struct db_conn *c = conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	return store_user_search(c, a, q, limit, out, count, err);
}
