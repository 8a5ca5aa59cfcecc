/* sessions.c — see sessions.h. */
#include "services/sessions.h"
#include "core/arena.h"
#include "core/error.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "core/uuid.h"
#include "services/accounts.h"
#include "services/notify.h"
#include "services/ratelimit.h"
#include "services/tx.h"
#include "services/validate.h"
#include "store/store.h"

#include <string.h>
#include <strings.h>

json_t *session_json(const struct session *s)
{
	json_t *j = json_pack("{s:o, s:s, s:s, s:s, s:I}", "user", user_json(&s->user, true),
			      "access_token", s->access_token, "refresh_token", s->refresh_token,
			      "token_type", "Bearer", "expires_in", (json_int_t)s->expires_in);
	if (s->device_token)
		json_object_set_new(j, "device_token", json_string(s->device_token));
	return j;
}

/*
 * The access token that goes with refresh-token row `t`, made from the row alone: its id is
 * the `jti`, its creation the `iat`, and it never outlives the row. So the pair a rotation
 * issued can be issued again, byte for byte, inside the grace window (auth_refresh()).
 * *exp_s is its expiry (Unix seconds).
 */
static const char *access_for(const struct auth *au, struct arena *a, const struct refresh_token *t,
			      int64_t *exp_s)
{
	int64_t iat = t->created_at / 1000, left = (t->expires_at - t->created_at) / 1000;
	int64_t ttl = au->access_ttl_s < left ? au->access_ttl_s : (left > 0 ? left : 1);
	*exp_s = iat + ttl;
	return token_issue_at(a, &au->key, t->user_id, t->token_version, t->family_id, t->id, iat,
			      *exp_s);
}

/*
 * Issue an access token and a new refresh token (inside the caller's tx): in a new family, or
 * in the family of `prev`, the token this refresh rotates, whose text is `presented`. A
 * rotation's new refresh token is derived from the one presented (token_refresh_next), so the
 * grace window can find it again. A family never outlives au->session_max_age_s from its
 * login, and its access tokens never outlive it; the refresh token carries the user's token
 * version, so one issued under a version that a concurrent password change has just raised
 * can never be used (store_refresh_claim checks).
 */
static int new_session(const struct auth *au, struct db_conn *c, struct arena *a,
		       const struct user *u, const struct refresh_token *prev,
		       const char *presented, struct session *out, struct error *err)
{
	char id[UUID_STR_LEN];
	int64_t now = time_now_ms(), exp;
	uuid_v7(id);
	const char *refresh =
	    prev ? token_refresh_next(a, &au->key, presented) : token_refresh_new(a);
	int64_t began = prev ? prev->family_created_at : now;
	int64_t ends = began + au->session_max_age_s * 1000;
	struct refresh_token t = {
	    .id = id,
	    .user_id = u->id,
	    .family_id = prev ? prev->family_id : arena_strdup(a, id),
	    .token_hash = token_hash(a, refresh),
	    .created_at = now,
	    .expires_at = now + au->refresh_ttl_s * 1000,
	    .family_created_at = began,
	    .token_version = u->token_version,
	};
	if (t.expires_at > ends)
		t.expires_at = ends;
	if (t.expires_at <= now) /* the claim just checked it: only a clock step gets here */
		return error_set(err, ERR_UNAUTHENTICATED, "the session has ended");
	int rc = store_refresh_insert(c, &t, err);
	if (rc < 0)
		return rc;
	out->user = *u;
	out->device_token = NULL;
	out->refresh_token = refresh;
	out->access_token = access_for(au, a, &t, &exp);
	out->expires_in = exp - now / 1000;
	return 0;
}

int auth_register(const struct auth *au, struct store *st, struct arena *a, json_t *body,
		  struct session *out, struct error *err)
{
	struct user u;
	int rc;
	struct db_conn *c = store_conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	if ((rc = db_begin(c, true, err)) < 0)
		return rc;
	if ((rc = account_create(au, c, a, body, false, &u, err)) < 0)
		goto out;
	rc = new_session(au, c, a, &u, NULL, NULL, out, err);
out:
	return tx_finish(c, rc, err);
}

/*
 * The configured bcrypt cost changed since `u`'s hash was made: store a new hash now that we
 * have the password. Its own small transaction after the login committed, so that a failure
 * here (logged) never turns a correct password into an error.
 */
static void rehash(const struct auth *au, struct db_conn *c, const struct user *u,
		   const char *password)
{
	char hash[PASSWORD_HASH_MAX];
	struct error err = ERROR_INIT;
	int rc;
	if (password_hash(password, au->bcrypt_cost, hash) < 0)
		return;
	if ((rc = db_begin(c, true, &err)) == 0) {
		rc = store_user_set_password(c, u->id, hash, false, time_now_ms(), &err);
		rc = tx_finish(c, rc, &err);
	}
	if (rc < 0)
		log_warn("could not upgrade the password hash of user %s: %s", u->id,
			 err.detail[0] ? err.detail : "unknown error");
	error_release(&err);
}

static const struct field_spec login_fields[] = {
    {"login", FIELD_STRING, true, false, 1, 254, NULL},
    {"password", FIELD_STRING, true, false, 1, 1024, NULL},
    {"device_token", FIELD_STRING, false, false, 1, 512, NULL},
};

/*
 * Take a token from the bucket this login counts against (struct login_limit). `user` is the
 * resolved account or NULL for an unknown name. Fills key (in a) for the refund.
 */
static int login_take(const struct auth *au, struct arena *a, struct login_limit *lim,
		      const char *login, const struct user *user, const char *device_token,
		      struct rl_key *key, struct error *err)
{
	struct device_claims dc;
	if (user && device_token &&
	    token_device_verify(a, &au->key, device_token, au->device_ttl_s, time_now_ms() / 1000,
				&dc) == 0 &&
	    strcmp(dc.sub, user->id) == 0)
		*key = (struct rl_key){lim->device, arena_printf(a, "device:%s", dc.nonce)};
	else if (user)
		*key = (struct rl_key){lim->account, arena_printf(a, "user:%s", user->id)};
	else /* hashed: Redis never holds what someone typed (a password in the wrong field) */
		*key = (struct rl_key){lim->account,
				       arena_printf(a, "name:%.32s", token_hash(a, login))};
	ratelimit_check(lim->rl, key, 1, true, lim->result);
	lim->checked = true;
	if (lim->result->allowed)
		return 0;
	return error_set(err, ERR_RATE_LIMITED, "too many failed logins %s; retry in %lld s",
			 key->policy == lim->device ? "with this device token" : "for this account",
			 (long long)lim->result->retry_after_s);
}

int auth_login(const struct auth *au, struct store *st, struct arena *a, json_t *body,
	       struct login_limit *lim, struct session *out, struct error *err)
{
	struct user u;
	struct rl_key key;
	int rc;

	if ((rc = validate_object(body, login_fields, 3, err)) < 0)
		return rc;
	const char *login = arena_strdup_lower(a, body_string(body, "login")),
		   *password = body_string(body, "password");
	struct db_conn *c = store_conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	rc = store_user_find_login(c, a, login, &u, err);
	if (rc < 0 && rc != -ERR_NOT_FOUND)
		return rc;
	bool found = rc == 0;
	error_release(err);
	if (lim && lim->rl &&
	    (rc = login_take(au, a, lim, login, found ? &u : NULL,
			     body_string(body, "device_token"), &key, err)) < 0)
		return rc;
	/* Same work and the same answer for an unknown user, a wrong password, a deactivated
	 * account. */
	bool ok = password_verify(password, found ? u.password_hash : au->dummy_hash);
	if (!found || !ok || !u.is_active) {
		if (lim && lim->checked)
			lim->kept = true;
		return error_set(err, ERR_INVALID_CREDENTIALS, "login or password is incorrect");
	}
	/* The password was right: this attempt costs the bucket nothing. */
	if (lim && lim->checked)
		ratelimit_refund(lim->rl, &key, lim->result);
	if ((rc = db_begin(c, true, err)) < 0)
		return rc;
	rc = tx_finish(c, new_session(au, c, a, &u, NULL, NULL, out, err), err);
	if (rc < 0)
		return rc;
	out->device_token = token_device_issue(a, &au->key, u.id);
	if (password_hash_cost(u.password_hash) != au->bcrypt_cost)
		rehash(au, c, &u, password);
	return 0;
}

static const struct field_spec refresh_fields[] = {
    {"refresh_token", FIELD_STRING, true, false, 1, 512, NULL},
};

#define NOT_VALID "the refresh token is not valid"
#define ENDED                                                                                      \
	"the session has ended (logout, password change, or its refresh token was used twice): "   \
	"log in again"
#define CHAIN_MAX 16 /* rotations followed from a token inside the grace window */

/*
 * `t` (text `presented`) was rotated within the grace window: two tabs, or two instances,
 * refreshed with it at once. Answer with the family's live token reached by following the
 * rotations from it (each successor is derived from its predecessor), and the access token
 * that was issued with it, both identical to what the rotation returned: nothing is written.
 * A family ended meanwhile is -ERR_SESSION_REVOKED; a chain that ends in nothing live
 * (expired session, deactivated user, rotations from before derivation) is -ERR_UNAUTHENTICATED
 * and revokes nothing.
 */
static int replay(const struct auth *au, struct db_conn *c, struct arena *a,
		  const struct refresh_token *t, const char *presented, int64_t now,
		  struct session *out, struct error *err)
{
	struct refresh_token s;
	struct user u;
	const char *tok = presented;
	int rc;
	for (int i = 0; i < CHAIN_MAX; i++) {
		tok = token_refresh_next(a, &au->key, tok);
		rc = store_refresh_get(c, a, token_hash(a, tok), &s, err);
		if (rc == -ERR_NOT_FOUND || (rc == 0 && strcmp(s.family_id, t->family_id) != 0))
			break;
		if (rc < 0)
			return rc;
		if (s.revoked_at)
			return error_set(err, ERR_SESSION_REVOKED, ENDED);
		if (s.used_at)
			continue;
		if ((rc = store_user_get(c, a, s.user_id, &u, err)) < 0)
			return rc;
		if (s.token_version != u.token_version)
			return error_set(err, ERR_SESSION_REVOKED, ENDED);
		if (!u.is_active || s.expires_at <= now)
			break;
		int64_t exp, left;
		out->user = u;
		out->refresh_token = tok;
		out->access_token = access_for(au, a, &s, &exp);
		left = exp - now / 1000;
		out->expires_in = left > 0 ? left : 1; /* only when the access TTL < the grace */
		return 0;
	}
	error_release(err);
	return error_set(err, ERR_UNAUTHENTICATED, NOT_VALID);
}

/*
 * A refresh token that is not live: unknown, expired, revoked, issued under an old token
 * version, or already rotated. Rotated within the grace window: replay(). Rotated before it:
 * the token was copied, so revoke its whole family, the thief's and the owner's newest token
 * alike (in the caller's transaction, which then commits) and set *revoked.
 */
static int not_live(const struct auth *au, struct db_conn *c, struct arena *a,
		    const char *presented, const char *hash, int64_t now, struct session *out,
		    bool *revoked, struct error *err)
{
	struct refresh_token t;
	struct user u;
	int rc = store_refresh_get(c, a, hash, &t, err);
	if (rc == -ERR_NOT_FOUND) {
		error_release(err);
		return error_set(err, ERR_UNAUTHENTICATED, NOT_VALID);
	}
	if (rc < 0)
		return rc;
	if (t.revoked_at)
		return error_set(err, ERR_SESSION_REVOKED, ENDED);
	if (!t.used_at) {
		/* Expired, or left behind by a refresh that raced a password change. */
		if ((rc = store_user_get(c, a, t.user_id, &u, err)) < 0)
			return rc;
		return t.token_version != u.token_version
			   ? error_set(err, ERR_SESSION_REVOKED, ENDED)
			   : error_set(err, ERR_UNAUTHENTICATED, NOT_VALID);
	}
	if (now - t.used_at <= au->refresh_grace_s * 1000 && au->refresh_grace_s > 0)
		return replay(au, c, a, &t, presented, now, out, err);
	if ((rc = store_refresh_revoke_family(c, t.family_id, now, err)) < 0)
		return rc;
	*revoked = true;
	/* The family's access tokens die with it: live channels re-check theirs. */
	notify_pending(t.user_id, 0, EVENT_NOTE_USER_REVOKED);
	log_json(LOG_WARN, "refresh token reuse: family revoked",
		 json_pack("{s:s, s:s}", "user_id", t.user_id, "family_id", t.family_id));
	return 0;
}

/*
 * Rotation: claim the presented token (one of two concurrent claims wins, on any instance:
 * the row is the lock) and issue its successor. A token that cannot be claimed goes to
 * not_live(), which replays the successor inside the grace window.
 */
int auth_refresh(const struct auth *au, struct store *st, struct arena *a, json_t *body,
		 struct session *out, struct error *err)
{
	struct refresh_token t;
	struct user u;
	bool revoked = false;
	int rc;

	if ((rc = validate_object(body, refresh_fields, 1, err)) < 0)
		return rc;
	const char *presented = body_string(body, "refresh_token");
	const char *hash = token_hash(a, presented);
	int64_t now = time_now_ms();
	struct db_conn *c = store_conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	if ((rc = db_begin(c, true, err)) < 0)
		return rc;
	rc = store_refresh_claim(c, a, hash, now, &t, err);
	if (rc == -ERR_NOT_FOUND) {
		error_release(err);
		rc = not_live(au, c, a, presented, hash, now, out, &revoked, err);
		goto out;
	}
	if (rc < 0 || (rc = store_user_get(c, a, t.user_id, &u, err)) < 0)
		goto out;
	if (!u.is_active) {
		/* roll back: the token stays unused */
		rc = error_set(err, ERR_UNAUTHENTICATED, NOT_VALID);
		goto out;
	}
	rc = new_session(au, c, a, &u, &t, presented, out, err);
out:
	/* A revoked family is committed; any other refusal changes nothing. */
	rc = tx_finish(c, rc, err);
	if (rc == 0 && revoked)
		return error_set(err, ERR_SESSION_REVOKED, ENDED);
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
	struct db_conn *c = store_conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	if ((rc = db_begin(c, true, err)) < 0)
		return rc;
	rc = store_refresh_get(c, a, token_hash(a, body_string(body, "refresh_token")), &t, err);
	if (rc == -ERR_NOT_FOUND) {
		/* Logging out with a token that is not ours changes nothing and reveals nothing. */
		error_release(err);
		rc = 0;
		goto out;
	}
	if (rc < 0)
		goto out;
	/* The session's access tokens carry its family as `sid`: they end here too. */
	if ((rc = store_refresh_revoke_family(c, t.family_id, time_now_ms(), err)) < 0)
		goto out;
	notify_pending(t.user_id, 0, EVENT_NOTE_USER_REVOKED);
out:
	return tx_finish(c, rc, err);
}

int auth_authenticate(const struct auth *au, struct store *st, struct arena *a,
		      const char *authorization, struct user *out, struct error *err)
{
	if (!authorization || !*authorization)
		return error_set(err, ERR_UNAUTHENTICATED, "this request needs a bearer token");
	if (strncasecmp(authorization, "Bearer ", 7) != 0)
		return error_set(err, ERR_UNAUTHENTICATED,
				 "the Authorization header must be \"Bearer <token>\"");
	const char *token = authorization + 7;
	while (*token == ' ')
		token++;
	return auth_token_user(au, st, a, token, out, err);
}

int auth_token_user(const struct auth *au, struct store *st, struct arena *a, const char *token,
		    struct user *out, struct error *err)
{
	struct access_claims claims;
	int rc;

	if ((rc = token_verify(a, &au->key, token, &claims, err)) < 0)
		return rc;
	struct db_conn *c = store_conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	bool live = false;
	rc = store_user_get_session(c, a, claims.sub, claims.sid, time_now_ms(), out, &live, err);
	if (rc == -ERR_NOT_FOUND ||
	    (rc == 0 && (!out->is_active || claims.ver != out->token_version || !live))) {
		error_release(err);
		return error_set(err, ERR_UNAUTHENTICATED, "the access token has been revoked");
	}
	return rc;
}
