/*
 * test_sessions.c — sessions against a real store on both backends (store/fixture.h): what
 * ends a session ends its access tokens too (logout, refresh reuse, password change), every
 * such end tells the real-time side after commit (EVENT_NOTE_USER_REVOKED through the notify
 * sink, nothing for a refusal), a session's absolute lifetime, and a refresh token issued
 * under a token version that has since moved on.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "core/arena.h"
#include "core/error.h"
#include "core/timeutil.h"
#include "services/accounts.h"
#include "services/auth.h"
#include "services/notify.h"
#include "services/sessions.h"
#include "store/db.h"
#include "store/store.h"
#include "../store/fixture.h"

#define SECRET "0123456789abcdef0123456789abcdef-test-secret"

static struct auth au;

/* What the notify sink received. */
static struct {
	int n;
	char id[8][64];
	enum event_note note[8];
} sunk;

static void sink(void *cls, const char *id, int64_t seq, enum event_note note)
{
	(void)cls;
	(void)seq;
	if (sunk.n < 8) {
		snprintf(sunk.id[sunk.n], sizeof(sunk.id[0]), "%s", id);
		sunk.note[sunk.n] = note;
	}
	sunk.n++;
}

static void auth_setup_grace(int64_t max_age_s, int64_t grace_s)
{
	struct config cfg = {.access_token_ttl_s = 900,
			     .refresh_token_ttl_s = 86400,
			     .session_max_age_s = max_age_s,
			     .refresh_grace_s = grace_s,
			     .bcrypt_cost = 4};
	assert_int_equal(auth_init(&au, &cfg, SECRET, strlen(SECRET)), 0);
	memset(&sunk, 0, sizeof(sunk));
	notify_set_sink(sink, NULL);
}

/* Without a grace window: a rotated token shown again is reuse at once. */
static void auth_setup(int64_t max_age_s)
{
	auth_setup_grace(max_age_s, 0);
}

static void expect_revoked_note(const char *user_id)
{
	assert_int_equal(sunk.n, 1);
	assert_string_equal(sunk.id[0], user_id);
	assert_int_equal(sunk.note[0], EVENT_NOTE_USER_REVOKED);
	sunk.n = 0;
}

static void signup(struct fixture *f, const char *name, struct session *s)
{
	json_t *body = arena_json(&f->a, json_pack("{s:s, s:s, s:s}", "username", name, "email",
						   arena_printf(&f->a, "%s@example.com", name),
						   "password", "password-1"));
	ok(f, auth_register(&au, f->s, &f->a, body, s, &f->err), "register");
}

static int do_refresh(struct fixture *f, const char *token, struct session *out)
{
	json_t *body = arena_json(&f->a, json_pack("{s:s}", "refresh_token", token));
	int rc = auth_refresh(&au, f->s, &f->a, body, out, &f->err);
	error_release(&f->err);
	return rc;
}

static int token_user(struct fixture *f, const char *token)
{
	struct user u;
	int rc = auth_token_user(&au, f->s, &f->a, token, &u, &f->err);
	error_release(&f->err);
	return rc;
}

static void test_logout_ends_that_sessions_access_tokens_and_tells_the_hub(void **state)
{
	struct fixture *f = *state;
	struct session a, b, rotated;
	auth_setup(30 * 86400);
	signup(f, "ann", &a);
	json_t *login =
	    arena_json(&f->a, json_pack("{s:s, s:s}", "login", "ann", "password", "password-1"));
	ok(f, auth_login(&au, f->s, &f->a, login, NULL, &b, &f->err), "second device");
	assert_int_equal(do_refresh(f, a.refresh_token, &rotated), 0);
	assert_int_equal(sunk.n, 0); /* register, login and refresh end nothing */
	assert_int_equal(token_user(f, a.access_token), 0);

	json_t *body =
	    arena_json(&f->a, json_pack("{s:s}", "refresh_token", rotated.refresh_token));
	ok(f, auth_logout(&au, f->s, &f->a, body, &f->err), "logout");
	expect_revoked_note(a.user.id);
	/* Both access tokens of the session (before and after rotation) are dead... */
	assert_int_equal(token_user(f, a.access_token), -ERR_UNAUTHENTICATED);
	assert_int_equal(token_user(f, rotated.access_token), -ERR_UNAUTHENTICATED);
	/* ...the other device's session is not. */
	assert_int_equal(token_user(f, b.access_token), 0);
	assert_int_equal(do_refresh(f, b.refresh_token, &rotated), 0);

	/* Logging out with a token nobody has changes nothing and tells nobody. */
	body = arena_json(&f->a, json_pack("{s:s}", "refresh_token", "not-a-token"));
	ok(f, auth_logout(&au, f->s, &f->a, body, &f->err), "logout unknown");
	assert_int_equal(sunk.n, 0);
}

static void test_refresh_reuse_ends_the_familys_access_tokens_and_tells_the_hub(void **state)
{
	struct fixture *f = *state;
	struct session s, thief, again;
	auth_setup(30 * 86400);
	signup(f, "bea", &s);
	assert_int_equal(do_refresh(f, s.refresh_token, &thief), 0);
	assert_int_equal(sunk.n, 0);
	assert_int_equal(token_user(f, thief.access_token), 0);
	/* The owner shows the rotated token again: the family is revoked, committed. */
	assert_int_equal(do_refresh(f, s.refresh_token, &again), -ERR_SESSION_REVOKED);
	expect_revoked_note(s.user.id);
	assert_int_equal(token_user(f, thief.access_token), -ERR_UNAUTHENTICATED);
	assert_int_equal(token_user(f, s.access_token), -ERR_UNAUTHENTICATED);
	assert_int_equal(do_refresh(f, thief.refresh_token, &again), -ERR_SESSION_REVOKED);
	assert_int_equal(sunk.n, 0); /* already revoked: nothing new to tell */
}

static void test_password_change_tells_the_hub_only_when_it_commits(void **state)
{
	struct fixture *f = *state;
	struct session s;
	struct user me;
	auth_setup(30 * 86400);
	signup(f, "cid", &s);
	ok(f, store_user_get(f->c, &f->a, s.user.id, &me, &f->err), "get");
	json_t *wrong = arena_json(&f->a, json_pack("{s:s, s:s}", "current_password", "nope",
						    "new_password", "password-2"));
	assert_int_equal(auth_change_password(&au, f->s, &f->a, &me, wrong, &f->err),
			 -ERR_VALIDATION_FAILED);
	error_release(&f->err);
	assert_int_equal(sunk.n, 0);
	json_t *right = arena_json(&f->a, json_pack("{s:s, s:s}", "current_password", "password-1",
						    "new_password", "password-2"));
	ok(f, auth_change_password(&au, f->s, &f->a, &me, right, &f->err), "change");
	expect_revoked_note(s.user.id);
	assert_int_equal(token_user(f, s.access_token), -ERR_UNAUTHENTICATED);
}

/*
 * The state a refresh leaves when it races a password change on PostgreSQL and commits after
 * it: a new, unrevoked refresh token issued under the old token version (the change's revoke
 * did not see the row). It must not be usable.
 */
static void test_refresh_token_issued_under_an_old_token_version_is_dead(void **state)
{
	struct fixture *f = *state;
	struct session s, out;
	auth_setup(30 * 86400);
	signup(f, "dee", &s);
	ok(f, store_user_set_password(f->c, s.user.id, "other-hash", true, time_now_ms(), &f->err),
	   "bump the version without revoking");
	assert_int_equal(do_refresh(f, s.refresh_token, &out), -ERR_SESSION_REVOKED);
	assert_int_equal(
	    count_rows(f, f->c, "SELECT count(*) FROM refresh_tokens WHERE used_at IS NOT NULL"),
	    0);
}

static void test_a_session_ends_at_its_absolute_lifetime(void **state)
{
	struct fixture *f = *state;
	struct session s, out;
	auth_setup(3600);
	signup(f, "eve", &s);
	/* Nothing issued in it outlives the session's end. */
	assert_true(s.expires_in <= 3600);
	assert_true(count_rows(f, f->c,
			       "SELECT count(*) FROM refresh_tokens "
			       "WHERE expires_at > family_created_at + 3600000") == 0);
	/* A session that began more than the lifetime ago is not refreshed any more. */
	ok(f,
	   db_exec(f->c,
		   "UPDATE refresh_tokens SET family_created_at = family_created_at - 3601000",
		   NULL, 0, &f->err),
	   "age the session");
	assert_int_equal(do_refresh(f, s.refresh_token, &out), -ERR_UNAUTHENTICATED);
	assert_int_equal(
	    count_rows(f, f->c, "SELECT count(*) FROM refresh_tokens WHERE used_at IS NOT NULL"),
	    0);
}

static void expect_same(const struct session *a, const struct session *b)
{
	assert_string_equal(a->refresh_token, b->refresh_token);
	assert_string_equal(a->access_token, b->access_token);
	assert_string_equal(a->user.id, b->user.id);
}

/*
 * Inside the grace window a rotated token shown again answers the pair its rotation gave,
 * identical and without writing anything; after tab A rotated again, the newest pair (the
 * chain is followed); after the window it is reuse: the family is revoked.
 */
static void test_refresh_grace_replays_the_same_pair_then_reuse_revokes(void **state)
{
	struct fixture *f = *state;
	struct session s, r1, again, r2, late;
	auth_setup_grace(30 * 86400, 10);
	signup(f, "fay", &s);
	assert_int_equal(do_refresh(f, s.refresh_token, &r1), 0);
	assert_int_equal(do_refresh(f, s.refresh_token, &again), 0);
	expect_same(&r1, &again);
	assert_int_equal(count_rows(f, f->c, "SELECT count(*) FROM refresh_tokens"), 2);
	assert_int_equal(token_user(f, again.access_token), 0);
	/* Tab A rotates again: the old token and the first successor both lead to the head. */
	assert_int_equal(do_refresh(f, r1.refresh_token, &r2), 0);
	assert_string_not_equal(r2.refresh_token, r1.refresh_token);
	assert_int_equal(do_refresh(f, s.refresh_token, &again), 0);
	expect_same(&r2, &again);
	assert_int_equal(do_refresh(f, r1.refresh_token, &again), 0);
	expect_same(&r2, &again);
	assert_int_equal(count_rows(f, f->c, "SELECT count(*) FROM refresh_tokens"), 3);
	assert_int_equal(sunk.n, 0);
	/* Past the window the first token is reuse: the family ends, the head with it. */
	ok(f,
	   db_exec(f->c, "UPDATE refresh_tokens SET used_at = used_at - 11000", NULL, 0, &f->err),
	   "age the rotations");
	assert_int_equal(do_refresh(f, s.refresh_token, &late), -ERR_SESSION_REVOKED);
	expect_revoked_note(s.user.id);
	assert_int_equal(do_refresh(f, r2.refresh_token, &late), -ERR_SESSION_REVOKED);
	assert_int_equal(token_user(f, r2.access_token), -ERR_UNAUTHENTICATED);
	assert_int_equal(
	    count_rows(f, f->c, "SELECT count(*) FROM refresh_tokens WHERE revoked_at IS NULL"), 0);
}

/* A family ended inside the window (logout) is not replayed: the session is over. */
static void test_refresh_grace_does_not_revive_an_ended_session(void **state)
{
	struct fixture *f = *state;
	struct session s, r1, again;
	auth_setup_grace(30 * 86400, 10);
	signup(f, "gus", &s);
	assert_int_equal(do_refresh(f, s.refresh_token, &r1), 0);
	json_t *body = arena_json(&f->a, json_pack("{s:s}", "refresh_token", r1.refresh_token));
	ok(f, auth_logout(&au, f->s, &f->a, body, &f->err), "logout");
	expect_revoked_note(s.user.id);
	assert_int_equal(do_refresh(f, s.refresh_token, &again), -ERR_SESSION_REVOKED);
	assert_int_equal(do_refresh(f, r1.refresh_token, &again), -ERR_SESSION_REVOKED);
	/* An unknown token keeps its own answer. */
	assert_int_equal(do_refresh(f, "not-a-token", &again), -ERR_UNAUTHENTICATED);
	assert_int_equal(sunk.n, 0);
}

#define T(name, setup) cmocka_unit_test_setup_teardown(name, setup, teardown)
#define TESTS(setup)                                                                               \
	T(test_logout_ends_that_sessions_access_tokens_and_tells_the_hub, setup),                  \
	    T(test_refresh_reuse_ends_the_familys_access_tokens_and_tells_the_hub, setup),         \
	    T(test_password_change_tells_the_hub_only_when_it_commits, setup),                     \
	    T(test_refresh_token_issued_under_an_old_token_version_is_dead, setup),                \
	    T(test_a_session_ends_at_its_absolute_lifetime, setup),                                \
	    T(test_refresh_grace_replays_the_same_pair_then_reuse_revokes, setup),                 \
	    T(test_refresh_grace_does_not_revive_an_ended_session, setup)

int main(void)
{
	const struct CMUnitTest sqlite_tests[] = {TESTS(setup_sqlite)};
	const struct CMUnitTest pg_tests[] = {TESTS(setup_pg)};
	return store_suite_main("sessions", sqlite_tests, pg_tests,
				sizeof(sqlite_tests) / sizeof(sqlite_tests[0]));
}
