/*
 * test_store_sql.c — the store's shared SQL (users.c, projects.c, tasks.c, idempotency.c),
 * written once for both dialects, run unchanged against both backends (fixture.h). Each
 * case calls the real store functions and reads back what they stored: the parity of the
 * two databases for this SQL is checked here, not only through the HTTP API.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/error.h"
#include "core/uuid.h"
#include "store/db.h"
#include "store/idempotency.h"
#include "store/projects.h"
#include "store/query.h"
#include "store/stmtcache.h"
#include "store/store.h"
#include "store/tasks.h"
#include "store/users.h"
#include "fixture.h"

/* ---- helpers ------------------------------------------------------------------------ */

static char *new_id(struct fixture *f)
{
	char id[UUID_STR_LEN];
	uuid_v7(id);
	return arena_strdup(&f->a, id);
}

/* A user `name` (e-mail name@example.com) through store_user_insert; returns its id. */
static const char *add_user(struct fixture *f, const char *name)
{
	struct user u = {.id = new_id(f),
			 .username = name,
			 .email = arena_printf(&f->a, "%s@example.com", name),
			 .display_name = "",
			 .password_hash = "hash",
			 .is_active = true,
			 .token_version = 1,
			 .created_at = 1000,
			 .updated_at = 1000};
	ok(f, store_user_insert(f->c, &u, &f->err), "store_user_insert");
	return u.id;
}

/* A project owned (and joined as owner) by owner_id; returns its id. */
static const char *add_project(struct fixture *f, const char *owner_id, const char *name)
{
	struct project p = {.id = new_id(f),
			    .name = name,
			    .description = "",
			    .owner_id = owner_id,
			    .created_at = 2000,
			    .updated_at = 2000};
	ok(f, store_project_insert(f->c, &p, &f->err), "store_project_insert");
	ok(f, store_member_insert(f->c, p.id, owner_id, "owner", 2000, &f->err),
	   "store_member_insert");
	return p.id;
}

/* ---- users -------------------------------------------------------------------------- */

static void test_user_insert_then_get_reads_back_every_field(void **state)
{
	struct fixture *f = *state;
	struct user u = {.id = new_id(f),
			 .username = "alice",
			 .email = "alice@example.com",
			 .display_name = "Alice L\xc3\xa9vy",
			 .password_hash = "$2b$12$abc",
			 .is_active = true,
			 .is_admin = true,
			 .token_version = 3,
			 .created_at = 1700000000123,
			 .updated_at = 1700000000456},
		    got;
	ok(f, store_user_insert(f->c, &u, &f->err), "insert");
	ok(f, store_user_get(f->c, &f->a, u.id, &got, &f->err), "get");
	assert_string_equal(got.id, u.id);
	assert_string_equal(got.username, "alice");
	assert_string_equal(got.email, "alice@example.com");
	assert_string_equal(got.display_name, "Alice L\xc3\xa9vy");
	assert_string_equal(got.password_hash, "$2b$12$abc");
	assert_true(got.is_active);
	assert_true(got.is_admin);
	assert_int_equal(got.token_version, 3);
	assert_int_equal(got.created_at, 1700000000123);
	assert_int_equal(got.updated_at, 1700000000456);
	assert_int_equal(got.version, 1);

	assert_int_equal(store_user_get(f->c, &f->a, new_id(f), &got, &f->err), -ERR_NOT_FOUND);
}

static void test_user_find_login_by_email_or_username_matches_exactly(void **state)
{
	struct fixture *f = *state;
	struct user got;
	const char *id = add_user(f, "bob");
	add_user(f, "bobby");
	ok(f, store_user_find_login(f->c, &f->a, "bob", &got, &f->err), "by username");
	assert_string_equal(got.id, id);
	ok(f, store_user_find_login(f->c, &f->a, "bob@example.com", &got, &f->err), "by email");
	assert_string_equal(got.id, id);
	assert_string_equal(got.password_hash, "hash");
	/* The service lower-cases the login; the store compares exactly, on both databases. */
	assert_int_equal(store_user_find_login(f->c, &f->a, "Bob", &got, &f->err), -ERR_NOT_FOUND);
	assert_int_equal(store_user_find_login(f->c, &f->a, "BOB@example.com", &got, &f->err),
			 -ERR_NOT_FOUND);
	/* An e-mail is looked up as an e-mail only: "bob" is no e-mail address. */
	assert_int_equal(store_user_find_login(f->c, &f->a, "bob@", &got, &f->err), -ERR_NOT_FOUND);
	assert_int_equal(store_user_find_login(f->c, &f->a, "bo", &got, &f->err), -ERR_NOT_FOUND);
}

static void test_user_insert_taken_name_or_email_is_a_conflict_naming_the_field(void **state)
{
	struct fixture *f = *state;
	add_user(f, "carol");
	struct user u = {.id = new_id(f),
			 .username = "carol",
			 .email = "other@example.com",
			 .display_name = "",
			 .password_hash = "x",
			 .is_active = true,
			 .created_at = 1,
			 .updated_at = 1};
	assert_int_equal(store_user_insert(f->c, &u, &f->err), -ERR_CONFLICT);
	assert_string_equal(f->err.detail, "username");
	u.username = "carol2";
	u.email = "carol@example.com";
	assert_int_equal(store_user_insert(f->c, &u, &f->err), -ERR_CONFLICT);
	assert_string_equal(f->err.detail, "email");
	assert_int_equal(count_users(f, f->c), 1);
}

static void test_user_taken_reports_each_field_except_the_user_himself(void **state)
{
	struct fixture *f = *state;
	bool email, name;
	const char *dan = add_user(f, "dan");
	add_user(f, "erin");
	ok(f,
	   store_user_taken(f->c, &f->a, "dan@example.com", "erin", NULL, &email, &name, &f->err),
	   "taken");
	assert_true(email);
	assert_true(name);
	ok(f, store_user_taken(f->c, &f->a, "dan@example.com", "dan", dan, &email, &name, &f->err),
	   "taken except dan");
	assert_false(email);
	assert_false(name);
	ok(f, store_user_taken(f->c, &f->a, "new@example.com", "erin", dan, &email, &name, &f->err),
	   "taken by erin");
	assert_false(email);
	assert_true(name);
	ok(f,
	   store_user_taken(f->c, &f->a, "new@example.com", "nobody", NULL, &email, &name, &f->err),
	   "free");
	assert_false(email);
	assert_false(name);
}

static void test_user_update_profile_bumps_version_and_names_a_conflict(void **state)
{
	struct fixture *f = *state;
	struct user got;
	const char *id = add_user(f, "fay");
	add_user(f, "gus");
	struct user u = {.id = id,
			 .username = "faye",
			 .email = "faye@example.com",
			 .display_name = "Faye",
			 .updated_at = 5000};
	ok(f, store_user_update_profile(f->c, &u, &f->err), "update");
	ok(f, store_user_get(f->c, &f->a, id, &got, &f->err), "get");
	assert_string_equal(got.username, "faye");
	assert_string_equal(got.email, "faye@example.com");
	assert_string_equal(got.display_name, "Faye");
	assert_int_equal(got.updated_at, 5000);
	assert_int_equal(got.version, 2);
	assert_string_equal(got.password_hash, "hash");

	u.email = "gus@example.com";
	assert_int_equal(store_user_update_profile(f->c, &u, &f->err), -ERR_CONFLICT);
	assert_string_equal(f->err.detail, "email");
	ok(f, store_user_get(f->c, &f->a, id, &got, &f->err), "get after conflict");
	assert_string_equal(got.email, "faye@example.com");
	assert_int_equal(got.version, 2);
}

static void test_user_set_password_bumps_the_token_version_only_when_asked(void **state)
{
	struct fixture *f = *state;
	struct user got;
	const char *id = add_user(f, "hal");
	ok(f, store_user_set_password(f->c, id, "rehash", false, 7000, &f->err), "rehash");
	ok(f, store_user_get(f->c, &f->a, id, &got, &f->err), "get");
	assert_string_equal(got.password_hash, "rehash");
	assert_int_equal(got.token_version, 1);
	assert_int_equal(got.updated_at, 7000);
	ok(f, store_user_set_password(f->c, id, "changed", true, 8000, &f->err), "change");
	ok(f, store_user_get(f->c, &f->a, id, &got, &f->err), "get");
	assert_string_equal(got.password_hash, "changed");
	assert_int_equal(got.token_version, 2);
	assert_int_equal(store_user_set_password(f->c, new_id(f), "x", true, 1, &f->err),
			 -ERR_NOT_FOUND);

	ok(f, store_user_set_flags(f->c, id, false, true, 9000, &f->err), "flags");
	ok(f, store_user_get(f->c, &f->a, id, &got, &f->err), "get");
	assert_false(got.is_active);
	assert_true(got.is_admin);
	assert_int_equal(got.token_version, 3);
	assert_int_equal(got.version, 2);
	assert_int_equal(store_user_set_flags(f->c, new_id(f), true, false, 1, &f->err),
			 -ERR_NOT_FOUND);
}

static void test_user_search_is_a_literal_case_insensitive_prefix_of_active_users(void **state)
{
	struct fixture *f = *state;
	struct user *u;
	int n;
	add_user(f, "al_x");
	add_user(f, "alan");
	const char *zed = add_user(f, "zed");
	const char *gone = add_user(f, "alma");
	struct user disp = {.id = zed,
			    .username = "zed",
			    .email = "zed@example.com",
			    .display_name = "ALbert Zed",
			    .updated_at = 2};
	ok(f, store_user_update_profile(f->c, &disp, &f->err), "display name");
	ok(f, store_user_set_flags(f->c, gone, false, false, 3, &f->err), "deactivate");

	ok(f, store_user_search(f->c, &f->a, "Al", 10, &u, &n, &f->err), "search");
	assert_int_equal(n, 3); /* al_x, alan, zed (by display name); alma is inactive */
	assert_string_equal(u[0].username, "al_x");
	assert_string_equal(u[1].username, "alan");
	assert_string_equal(u[2].username, "zed");
	/* '_' is taken literally, not as LIKE's any-character. */
	ok(f, store_user_search(f->c, &f->a, "al_", 10, &u, &n, &f->err), "search al_");
	assert_int_equal(n, 1);
	assert_string_equal(u[0].username, "al_x");
	ok(f, store_user_search(f->c, &f->a, "%", 10, &u, &n, &f->err), "search %");
	assert_int_equal(n, 0);
	ok(f, store_user_search(f->c, &f->a, "a", 2, &u, &n, &f->err), "limit");
	assert_int_equal(n, 2);
	assert_string_equal(u[0].username, "al_x");
	assert_string_equal(u[1].username, "alan");
}

/* ---- refresh tokens ----------------------------------------------------------------- */

static void add_refresh(struct fixture *f, const char *user_id, const char *family,
			const char *hash, int64_t expires_at)
{
	struct refresh_token t = {.id = new_id(f),
				  .user_id = user_id,
				  .family_id = family ? family : new_id(f),
				  .token_hash = hash,
				  .created_at = 100,
				  .expires_at = expires_at,
				  .family_created_at = 50,
				  .token_version = 1}; /* add_user's */
	ok(f, store_refresh_insert(f->c, &t, &f->err), "store_refresh_insert");
}

static void test_refresh_claim_is_single_use(void **state)
{
	struct fixture *f = *state;
	struct refresh_token t, got;
	const char *uid = add_user(f, "ivy");
	const char *family = new_id(f);
	add_refresh(f, uid, family, "h1", 10000);
	ok(f, store_refresh_claim(f->c, &f->a, "h1", 5000, &t, &f->err), "claim");
	assert_string_equal(t.user_id, uid);
	assert_string_equal(t.family_id, family);
	assert_string_equal(t.token_hash, "h1");
	assert_int_equal(t.created_at, 100);
	assert_int_equal(t.expires_at, 10000);
	assert_int_equal(t.used_at, 5000);
	assert_int_equal(t.revoked_at, 0);
	assert_int_equal(t.family_created_at, 50);
	assert_int_equal(t.token_version, 1);
	/* The second claim finds no live token; the row tells why. */
	assert_int_equal(store_refresh_claim(f->c, &f->a, "h1", 5001, &t, &f->err), -ERR_NOT_FOUND);
	ok(f, store_refresh_get(f->c, &f->a, "h1", &got, &f->err), "get");
	assert_int_equal(got.used_at, 5000);
	assert_int_equal(store_refresh_get(f->c, &f->a, "nope", &got, &f->err), -ERR_NOT_FOUND);
	assert_int_equal(store_refresh_claim(f->c, &f->a, "nope", 1, &t, &f->err), -ERR_NOT_FOUND);
}

static void test_refresh_purge_deletes_expired_and_revoked_tokens_only(void **state)
{
	struct fixture *f = *state;
	struct refresh_token t;
	int64_t n;
	const char *uid = add_user(f, "dee");
	const char *family = new_id(f);
	add_refresh(f, uid, NULL, "expired", 5000);
	add_refresh(f, uid, family, "revoked", 90000);
	add_refresh(f, uid, NULL, "used", 90000);
	add_refresh(f, uid, NULL, "live", 90000);
	ok(f, store_refresh_revoke_family(f->c, family, 6000, &f->err), "revoke");
	ok(f, store_refresh_claim(f->c, &f->a, "used", 6000, &t, &f->err), "use");
	/* Before anything is past: nothing goes. */
	ok(f, store_refresh_purge(f->c, 5000, 10, &n, &f->err), "purge early");
	assert_int_equal(n, 0);
	/* Expired or revoked before 7000: one per batch here. */
	ok(f, store_refresh_purge(f->c, 7000, 1, &n, &f->err), "purge 1");
	assert_int_equal(n, 1);
	ok(f, store_refresh_purge(f->c, 7000, 1, &n, &f->err), "purge 2");
	assert_int_equal(n, 1);
	ok(f, store_refresh_purge(f->c, 7000, 1, &n, &f->err), "purge 3");
	assert_int_equal(n, 0);
	/* A used token that is still live stays: presenting it again is how reuse shows. */
	ok(f, store_refresh_get(f->c, &f->a, "used", &t, &f->err), "used stays");
	ok(f, store_refresh_get(f->c, &f->a, "live", &t, &f->err), "live stays");
	assert_int_equal(count_rows(f, f->c, "SELECT COUNT(*) FROM refresh_tokens"), 2);
}

static void test_refresh_claim_refuses_expired_and_revoked_tokens(void **state)
{
	struct fixture *f = *state;
	struct refresh_token t, got;
	const char *uid = add_user(f, "jo");
	const char *other = add_user(f, "kim");
	const char *family = new_id(f);
	add_refresh(f, uid, NULL, "old", 5000);
	add_refresh(f, uid, family, "a", 90000);
	add_refresh(f, uid, family, "b", 90000);
	add_refresh(f, uid, NULL, "c", 90000);
	add_refresh(f, other, NULL, "k", 90000);

	/* Expired: expires_at must be after now. */
	assert_int_equal(store_refresh_claim(f->c, &f->a, "old", 5000, &t, &f->err),
			 -ERR_NOT_FOUND);
	ok(f, store_refresh_get(f->c, &f->a, "old", &got, &f->err), "get old");
	assert_int_equal(got.used_at, 0);

	ok(f, store_refresh_revoke_family(f->c, family, 6000, &f->err), "revoke family");
	assert_int_equal(store_refresh_claim(f->c, &f->a, "a", 6001, &t, &f->err), -ERR_NOT_FOUND);
	assert_int_equal(store_refresh_claim(f->c, &f->a, "b", 6001, &t, &f->err), -ERR_NOT_FOUND);
	ok(f, store_refresh_get(f->c, &f->a, "b", &got, &f->err), "get b");
	assert_int_equal(got.revoked_at, 6000);
	assert_int_equal(got.used_at, 0);
	/* A second revocation keeps the first time. */
	ok(f, store_refresh_revoke_family(f->c, family, 7000, &f->err), "revoke again");
	ok(f, store_refresh_get(f->c, &f->a, "a", &got, &f->err), "get a");
	assert_int_equal(got.revoked_at, 6000);

	ok(f, store_refresh_revoke_user(f->c, uid, 8000, &f->err), "revoke user");
	assert_int_equal(store_refresh_claim(f->c, &f->a, "c", 8001, &t, &f->err), -ERR_NOT_FOUND);
	ok(f, store_refresh_get(f->c, &f->a, "c", &got, &f->err), "get c");
	assert_int_equal(got.revoked_at, 8000);
	/* Another user's token is untouched. */
	ok(f, store_refresh_claim(f->c, &f->a, "k", 8001, &t, &f->err), "claim k");
	assert_string_equal(t.user_id, other);
}

/*
 * A token issued under an older token version (a refresh that raced a password change and
 * committed after it) is never claimed, even though nothing revoked it.
 */
static void test_refresh_claim_refuses_a_token_behind_the_users_token_version(void **state)
{
	struct fixture *f = *state;
	struct refresh_token t, got;
	const char *uid = add_user(f, "nia");
	add_refresh(f, uid, NULL, "behind", 90000);
	add_refresh(f, uid, NULL, "fresh", 90000);
	ok(f, store_user_set_password(f->c, uid, "hash2", true, 2000, &f->err), "bump");
	assert_int_equal(store_refresh_claim(f->c, &f->a, "behind", 5000, &t, &f->err),
			 -ERR_NOT_FOUND);
	error_release(&f->err);
	ok(f, store_refresh_get(f->c, &f->a, "behind", &got, &f->err), "get");
	assert_int_equal(got.used_at, 0);
	assert_int_equal(got.revoked_at, 0);
	/* Issued under the new version, a token is claimed as before. */
	struct refresh_token n = {.id = new_id(f),
				  .user_id = uid,
				  .family_id = new_id(f),
				  .token_hash = "current",
				  .created_at = 3000,
				  .expires_at = 90000,
				  .family_created_at = 3000,
				  .token_version = 2};
	ok(f, store_refresh_insert(f->c, &n, &f->err), "insert");
	ok(f, store_refresh_claim(f->c, &f->a, "current", 5000, &t, &f->err), "claim current");
	assert_int_equal(t.token_version, 2);
}

/* A session (refresh family) is live while one of its tokens is neither revoked nor expired. */
static void test_user_get_session_tells_whether_the_family_is_live(void **state)
{
	struct fixture *f = *state;
	struct refresh_token t;
	struct user u;
	bool live = true;
	const char *uid = add_user(f, "ola"), *other = add_user(f, "pia");
	const char *fam = new_id(f), *gone = new_id(f), *theirs = new_id(f);
	add_refresh(f, uid, fam, "f1", 90000);
	add_refresh(f, uid, fam, "f2", 9000);
	add_refresh(f, uid, gone, "g1", 90000);
	add_refresh(f, other, theirs, "t1", 90000);
	ok(f, store_user_get_session(f->c, &f->a, uid, fam, 5000, &u, &live, &f->err), "get");
	assert_string_equal(u.username, "ola");
	assert_true(live);
	/* Rotation: the used token still belongs to the family; the new one keeps it live. */
	ok(f, store_refresh_claim(f->c, &f->a, "f1", 5000, &t, &f->err), "claim");
	ok(f, store_user_get_session(f->c, &f->a, uid, fam, 5001, &u, &live, &f->err), "get");
	assert_true(live);
	/* Every token of the family expired. */
	ok(f, store_user_get_session(f->c, &f->a, uid, fam, 90000, &u, &live, &f->err), "get");
	assert_false(live);
	/* Revoked (logout, reuse). */
	ok(f, store_refresh_revoke_family(f->c, gone, 6000, &f->err), "revoke");
	ok(f, store_user_get_session(f->c, &f->a, uid, gone, 6001, &u, &live, &f->err), "get");
	assert_false(live);
	/* Another user's family, an unknown one. */
	ok(f, store_user_get_session(f->c, &f->a, uid, theirs, 6001, &u, &live, &f->err), "get");
	assert_false(live);
	ok(f, store_user_get_session(f->c, &f->a, uid, new_id(f), 6001, &u, &live, &f->err), "get");
	assert_false(live);
	assert_int_equal(
	    store_user_get_session(f->c, &f->a, new_id(f), fam, 6001, &u, &live, &f->err),
	    -ERR_NOT_FOUND);
}

struct claimer {
	struct store *s;
	pthread_barrier_t *go;
	int rc;
	struct error err;
};

static void *claim_thread(void *p)
{
	struct claimer *c = p;
	struct arena a;
	struct refresh_token t;
	arena_init(&a);
	struct db_conn *conn = store_conn(c->s, &c->err);
	pthread_barrier_wait(c->go);
	c->rc = conn ? store_refresh_claim(conn, &a, "race", 5000, &t, &c->err) : -ERR_UNAVAILABLE;
	arena_release(&a);
	return NULL;
}

static void test_refresh_concurrent_claims_have_one_winner(void **state)
{
	struct fixture *f = *state;
	enum { N = 4 };
	struct claimer c[N];
	pthread_t t[N];
	pthread_barrier_t go;
	add_refresh(f, add_user(f, "lou"), NULL, "race", 90000);
	pthread_barrier_init(&go, NULL, N);
	for (int i = 0; i < N; i++) {
		c[i] = (struct claimer){.s = f->s, .go = &go};
		assert_int_equal(pthread_create(&t[i], NULL, claim_thread, &c[i]), 0);
	}
	int won = 0;
	for (int i = 0; i < N; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < N; i++) {
		if (c[i].rc == 0)
			won++;
		else if (c[i].rc != -ERR_NOT_FOUND)
			fail_msg("claimer %d failed (%d): %s", i, c[i].rc, c[i].err.detail);
		error_release(&c[i].err);
	}
	pthread_barrier_destroy(&go);
	assert_int_equal(won, 1);
}

/* ---- idempotency keys --------------------------------------------------------------- */

static const struct idem_record idem_req = {.method = "POST",
					    .path = "/v1/projects",
					    .request_hash = "rh1",
					    .created_at = 1000,
					    .expires_at = 90000};

static void test_idem_claim_running_then_completed_replays_the_answer(void **state)
{
	struct fixture *f = *state;
	struct idem_record ex;
	bool claimed;
	const char *uid = add_user(f, "mia");
	ok(f, store_idem_claim(f->c, &f->a, uid, "k1", &idem_req, &claimed, &ex, &f->err), "claim");
	assert_true(claimed);
	/* A second request while the first runs sees the claim, without an answer yet. */
	struct idem_record again = idem_req;
	again.request_hash = "rh2";
	ok(f, store_idem_claim(f->c, &f->a, uid, "k1", &again, &claimed, &ex, &f->err), "again");
	assert_false(claimed);
	assert_int_equal(ex.status, 0);
	assert_string_equal(ex.method, "POST");
	assert_string_equal(ex.path, "/v1/projects");
	assert_string_equal(ex.request_hash, "rh1");
	assert_null(ex.headers);
	assert_null(ex.body);
	assert_int_equal(ex.created_at, 1000);
	assert_int_equal(ex.expires_at, 90000);

	ok(f,
	   store_idem_complete(f->c, uid, "k1", 201, "{\"Location\":\"/v1/projects/x\"}",
			       "{\"id\":\"x\"}", &f->err),
	   "complete");
	ok(f, store_idem_claim(f->c, &f->a, uid, "k1", &again, &claimed, &ex, &f->err), "replay");
	assert_false(claimed);
	assert_int_equal(ex.status, 201);
	assert_string_equal(ex.headers, "{\"Location\":\"/v1/projects/x\"}");
	assert_string_equal(ex.body, "{\"id\":\"x\"}");
	assert_string_equal(ex.request_hash, "rh1");

	/* Keys belong to a user: another user's same key is a claim of its own. */
	ok(f,
	   store_idem_claim(f->c, &f->a, add_user(f, "ned"), "k1", &idem_req, &claimed, &ex,
			    &f->err),
	   "other user");
	assert_true(claimed);
	assert_int_equal(count_rows(f, f->c, "SELECT COUNT(*) FROM idempotency_keys"), 2);
}

static void test_idem_release_forgets_only_a_running_claim(void **state)
{
	struct fixture *f = *state;
	struct idem_record ex;
	bool claimed;
	const char *uid = add_user(f, "ola");
	ok(f, store_idem_claim(f->c, &f->a, uid, "run", &idem_req, &claimed, &ex, &f->err),
	   "claim");
	ok(f, store_idem_release(f->c, uid, "run", &f->err), "release");
	assert_int_equal(count_rows(f, f->c, "SELECT COUNT(*) FROM idempotency_keys"), 0);
	ok(f, store_idem_claim(f->c, &f->a, uid, "run", &idem_req, &claimed, &ex, &f->err),
	   "claim again");
	assert_true(claimed);

	ok(f, store_idem_complete(f->c, uid, "run", 200, "{}", "done", &f->err), "complete");
	ok(f, store_idem_release(f->c, uid, "run", &f->err), "release a completed one");
	ok(f, store_idem_claim(f->c, &f->a, uid, "run", &idem_req, &claimed, &ex, &f->err),
	   "replay");
	assert_false(claimed);
	assert_int_equal(ex.status, 200);
	assert_string_equal(ex.body, "done");
}

static void test_idem_purge_removes_expired_and_stale_claims_only(void **state)
{
	struct fixture *f = *state;
	struct idem_record ex;
	bool claimed;
	const char *uid = add_user(f, "pat");
	struct idem_record r = idem_req;
	ok(f, store_idem_claim(f->c, &f->a, uid, "done", &r, &claimed, &ex, &f->err), "claim");
	ok(f, store_idem_complete(f->c, uid, "done", 201, "{}", "b", &f->err), "complete");
	ok(f, store_idem_claim(f->c, &f->a, uid, "running", &r, &claimed, &ex, &f->err), "claim");

	/* Neither expired nor stale: both stay. */
	ok(f, store_idem_purge(f->c, uid, "done", 89999, 1000, &f->err), "purge done");
	ok(f, store_idem_purge(f->c, uid, "running", 89999, 1000, &f->err), "purge running");
	assert_int_equal(count_rows(f, f->c, "SELECT COUNT(*) FROM idempotency_keys"), 2);
	/* A claim older than stale_before that never completed goes; a completed one stays. */
	ok(f, store_idem_purge(f->c, uid, "running", 5000, 1001, &f->err), "purge stale");
	ok(f, store_idem_purge(f->c, uid, "done", 5000, 1001, &f->err), "purge completed");
	assert_int_equal(count_rows(f, f->c, "SELECT COUNT(*) FROM idempotency_keys"), 1);
	/* Expired (expires_at <= now) goes, answer or not. */
	ok(f, store_idem_purge(f->c, uid, "done", 90000, 0, &f->err), "purge expired");
	assert_int_equal(count_rows(f, f->c, "SELECT COUNT(*) FROM idempotency_keys"), 0);
	ok(f, store_idem_claim(f->c, &f->a, uid, "done", &r, &claimed, &ex, &f->err), "reclaim");
	assert_true(claimed);
}

static void test_idem_purge_expired_deletes_in_batches_and_keeps_live_rows(void **state)
{
	struct fixture *f = *state;
	struct idem_record ex, live = idem_req;
	bool claimed;
	int64_t n;
	const char *uid = add_user(f, "bea"), *other = add_user(f, "cy");
	for (int i = 0; i < 5; i++) {
		char key[8];
		snprintf(key, sizeof(key), "k%d", i);
		ok(f,
		   store_idem_claim(f->c, &f->a, i % 2 ? uid : other, key, &idem_req, &claimed, &ex,
				    &f->err),
		   "claim");
		ok(f, store_idem_complete(f->c, i % 2 ? uid : other, key, 201, "{}", "b", &f->err),
		   "complete");
	}
	live.expires_at = 200000;
	ok(f, store_idem_claim(f->c, &f->a, uid, "live", &live, &claimed, &ex, &f->err), "live");
	ok(f, store_idem_complete(f->c, uid, "live", 201, "{}", "b", &f->err), "complete");
	/* Nothing expired yet, nothing stale. */
	ok(f, store_idem_purge_expired(f->c, 89999, 0, 2, &n, &f->err), "purge early");
	assert_int_equal(n, 0);
	/* Expired: whoever's, two at a time. */
	int64_t batches[] = {2, 2, 1, 0};
	for (size_t i = 0; i < sizeof(batches) / sizeof(batches[0]); i++) {
		ok(f, store_idem_purge_expired(f->c, 90000, 0, 2, &n, &f->err), "purge");
		assert_int_equal(n, batches[i]);
	}
	assert_int_equal(count_rows(f, f->c, "SELECT COUNT(*) FROM idempotency_keys"), 1);
	/* A claim that never completed goes once stale, though not expired. */
	ok(f, store_idem_claim(f->c, &f->a, uid, "stuck", &live, &claimed, &ex, &f->err), "stuck");
	ok(f, store_idem_purge_expired(f->c, 90000, 1001, 10, &n, &f->err), "purge stale");
	assert_int_equal(n, 1);
	assert_int_equal(count_rows(f, f->c, "SELECT COUNT(*) FROM idempotency_keys"), 1);
}

/* ---- projects and members ----------------------------------------------------------- */

static void test_project_insert_reads_back_for_members_only(void **state)
{
	struct fixture *f = *state;
	struct project p;
	int64_t seq = -1;
	const char *owner = add_user(f, "quin");
	const char *stranger = add_user(f, "rae");
	struct project in = {.id = new_id(f),
			     .name = "Launch",
			     .description = "the \"big\" one",
			     .owner_id = owner,
			     .created_at = 3000,
			     .updated_at = 3001};
	ok(f, store_project_insert(f->c, &in, &f->err), "insert");
	assert_int_equal(store_project_get_for(f->c, &f->a, in.id, owner, &p, &f->err),
			 -ERR_NOT_FOUND); /* not a member yet */
	ok(f, store_member_insert(f->c, in.id, owner, "owner", 3000, &f->err), "member");
	ok(f, store_project_get_for(f->c, &f->a, in.id, owner, &p, &f->err), "get");
	assert_string_equal(p.id, in.id);
	assert_string_equal(p.name, "Launch");
	assert_string_equal(p.description, "the \"big\" one");
	assert_string_equal(p.owner_id, owner);
	assert_string_equal(p.role, "owner");
	assert_int_equal(p.created_at, 3000);
	assert_int_equal(p.updated_at, 3001);
	assert_int_equal(p.version, 1);
	assert_int_equal(p.event_seq, 0);
	assert_int_equal(store_project_get_for(f->c, &f->a, in.id, stranger, &p, &f->err),
			 -ERR_NOT_FOUND);
	ok(f, store_project_seq(f->c, &f->a, in.id, &seq, &f->err), "seq");
	assert_int_equal(seq, 0);
	assert_int_equal(store_project_seq(f->c, &f->a, new_id(f), &seq, &f->err), -ERR_NOT_FOUND);

	/* Locking is a no-op on SQLite, a row lock on PostgreSQL: both succeed in a write. */
	ok(f, db_begin(f->c, true, &f->err), "begin");
	ok(f, store_project_lock(f->c, in.id, &f->err), "lock");
	ok(f, db_commit(f->c, &f->err), "commit");
}

static void test_project_update_checks_the_version(void **state)
{
	struct fixture *f = *state;
	struct project p;
	bool updated;
	const char *owner = add_user(f, "sam");
	const char *id = add_project(f, owner, "Old");
	struct project in = {.id = id, .name = "New", .description = "d", .updated_at = 4000};
	ok(f, store_project_update(f->c, &in, 1, &updated, &f->err), "update");
	assert_true(updated);
	ok(f, store_project_get_for(f->c, &f->a, id, owner, &p, &f->err), "get");
	assert_string_equal(p.name, "New");
	assert_string_equal(p.description, "d");
	assert_int_equal(p.updated_at, 4000);
	assert_int_equal(p.version, 2);
	in.name = "Stale";
	ok(f, store_project_update(f->c, &in, 1, &updated, &f->err), "stale update");
	assert_false(updated);
	ok(f, store_project_get_for(f->c, &f->a, id, owner, &p, &f->err), "get");
	assert_string_equal(p.name, "New");
	assert_int_equal(p.version, 2);
	ok(f, store_project_update(f->c, &in, 0, &updated, &f->err), "any version");
	assert_true(updated);
	ok(f, store_project_get_for(f->c, &f->a, id, owner, &p, &f->err), "get");
	assert_string_equal(p.name, "Stale");
	assert_int_equal(p.version, 3);
	in.id = new_id(f);
	ok(f, store_project_update(f->c, &in, 0, &updated, &f->err), "missing");
	assert_false(updated);

	const char *heir = add_user(f, "tess");
	ok(f, store_project_set_owner(f->c, id, heir, 5000, &f->err), "set owner");
	ok(f, store_project_get_for(f->c, &f->a, id, owner, &p, &f->err), "get");
	assert_string_equal(p.owner_id, heir);
	assert_int_equal(p.version, 4);
	ok(f, store_project_delete(f->c, id, &f->err), "delete");
	assert_int_equal(store_project_get_for(f->c, &f->a, id, owner, &p, &f->err),
			 -ERR_NOT_FOUND);
	assert_int_equal(count_rows(f, f->c, "SELECT COUNT(*) FROM memberships"), 0);
}

static int cmp_desc(const void *a, const void *b)
{
	return strcmp(*(const char *const *)b, *(const char *const *)a);
}

static void test_project_list_pages_walk_every_project_once(void **state)
{
	struct fixture *f = *state;
	enum { N = 23, PAGE = 5 };
	const char *ids[N];
	const char *me = add_user(f, "uma");
	const char *other = add_user(f, "vic");
	for (int i = 0; i < N; i++)
		ids[i] = add_project(f, i % 3 ? me : other, arena_printf(&f->a, "P%02d", i));
	/* Projects of `other` that `me` joins count too; the rest are not listed. */
	int mine = 0;
	for (int i = 0; i < N; i++) {
		if (i % 3 == 0 && i % 2 == 0)
			ok(f, store_member_insert(f->c, ids[i], me, "viewer", 1, &f->err), "join");
		if (i % 3 || i % 2 == 0)
			ids[mine++] = ids[i];
	}
	qsort(ids, (size_t)mine, sizeof(ids[0]), cmp_desc);

	const char *after = NULL;
	int seen = 0, pages = 0;
	for (;;) {
		struct project *p;
		int n;
		ok(f, store_project_list_for(f->c, &f->a, me, NULL, after, PAGE, &p, &n, &f->err),
		   "list");
		pages++;
		for (int i = 0; i < n; i++) {
			assert_true(seen < mine);
			assert_string_equal(p[i].id, ids[seen]);
			assert_non_null(p[i].role);
			seen++;
		}
		if (n < PAGE)
			break;
		after = p[n - 1].id;
	}
	assert_int_equal(seen, mine);
	assert_int_equal(pages, mine / PAGE + 1);
	/* A cursor past the end: an empty page. */
	struct project *p;
	int n = -1;
	ok(f, store_project_list_for(f->c, &f->a, me, NULL, ids[mine - 1], PAGE, &p, &n, &f->err),
	   "past the end");
	assert_int_equal(n, 0);
}

static void test_project_list_filter_is_a_literal_case_insensitive_substring(void **state)
{
	struct fixture *f = *state;
	struct project *p;
	int n;
	const char *me = add_user(f, "wes");
	add_project(f, me, "Alpha Launch");
	add_project(f, me, "launch_pad");
	add_project(f, me, "Lunch");
	add_project(f, me, "100% done");
	add_project(f, me, "Ship it"); /* "h_p" with '_' as LIKE's wildcard would match it */
	ok(f, store_project_list_for(f->c, &f->a, me, "LAUNCH", NULL, 10, &p, &n, &f->err), "q");
	assert_int_equal(n, 2);
	ok(f, store_project_list_for(f->c, &f->a, me, "h_p", NULL, 10, &p, &n, &f->err), "q _");
	assert_int_equal(n, 1);
	assert_string_equal(p[0].name, "launch_pad");
	ok(f, store_project_list_for(f->c, &f->a, me, "0%", NULL, 10, &p, &n, &f->err), "q %");
	assert_int_equal(n, 1);
	assert_string_equal(p[0].name, "100% done");
	ok(f, store_project_list_for(f->c, &f->a, me, "", NULL, 10, &p, &n, &f->err), "q empty");
	assert_int_equal(n, 5);
}

static void test_members_insert_role_and_keyset_list(void **state)
{
	struct fixture *f = *state;
	enum { N = 12, PAGE = 5 };
	const char *users[N + 1];
	const char *role;
	const char *owner = add_user(f, "xan");
	const char *pid = add_project(f, owner, "Team");
	users[0] = owner;
	for (int i = 1; i <= N; i++) {
		users[i] = add_user(f, arena_printf(&f->a, "m%02d", i));
		ok(f,
		   store_member_insert(f->c, pid, users[i], i % 2 ? "member" : "viewer", 100 + i,
				       &f->err),
		   "member");
	}
	assert_int_equal(store_member_insert(f->c, pid, users[3], "viewer", 1, &f->err),
			 -ERR_CONFLICT);
	ok(f, store_member_role(f->c, &f->a, pid, users[3], &role, &f->err), "role");
	assert_string_equal(role, "member");
	ok(f, store_member_role(f->c, &f->a, pid, users[4], &role, &f->err), "role");
	assert_string_equal(role, "viewer");
	ok(f, store_member_set_role(f->c, pid, users[4], "member", &f->err), "set role");
	ok(f, store_member_role(f->c, &f->a, pid, users[4], &role, &f->err), "role");
	assert_string_equal(role, "member");
	const char *outsider = add_user(f, "yul");
	ok(f, store_member_role(f->c, &f->a, pid, outsider, &role, &f->err), "no role");
	assert_null(role);
	ok(f, store_member_role(f->c, &f->a, new_id(f), owner, &role, &f->err), "no project");
	assert_null(role);

	struct member m;
	ok(f, store_member_get(f->c, &f->a, pid, users[5], &m, &f->err), "get");
	assert_string_equal(m.user.id, users[5]);
	assert_string_equal(m.user.username, "m05");
	assert_string_equal(m.user.email, "m05@example.com");
	assert_null(m.user.password_hash);
	assert_string_equal(m.role, "member");
	assert_int_equal(m.joined_at, 105);
	assert_int_equal(store_member_get(f->c, &f->a, pid, outsider, &m, &f->err), -ERR_NOT_FOUND);

	/* Pages by user id walk every member once. */
	qsort(users, N + 1, sizeof(users[0]), cmp_desc);
	const char *after = NULL;
	int seen = 0;
	for (;;) {
		struct member *ms;
		int n;
		ok(f, store_member_list(f->c, &f->a, pid, after, PAGE, &ms, &n, &f->err), "list");
		for (int i = 0; i < n; i++) {
			assert_true(seen <= N);
			assert_string_equal(ms[i].user.id, users[N - seen]); /* ascending */
			seen++;
		}
		if (n < PAGE)
			break;
		after = ms[n - 1].user.id;
	}
	assert_int_equal(seen, N + 1);

	ok(f, store_member_delete(f->c, pid, users[0], &f->err), "delete");
	ok(f, store_member_role(f->c, &f->a, pid, users[0], &role, &f->err), "role");
	assert_null(role);
	assert_int_equal(count_rows(f, f->c, "SELECT COUNT(*) FROM memberships"), N);
}

/* ---- events ------------------------------------------------------------------------- */

static void test_events_append_gap_free_per_project_and_list_after(void **state)
{
	struct fixture *f = *state;
	int64_t seq;
	const char *u = add_user(f, "zoe");
	const char *p1 = add_project(f, u, "One");
	const char *p2 = add_project(f, u, "Two");
	for (int i = 1; i <= 10; i++) {
		ok(f,
		   store_event_append(f->c, p1, "task.created", u,
				      arena_printf(&f->a, "{\"n\":%d}", i), 100 + i, &seq, &f->err),
		   "append");
		assert_int_equal(seq, i);
	}
	ok(f, store_event_append(f->c, p2, "project.updated", NULL, "{}", 7, &seq, &f->err),
	   "append p2");
	assert_int_equal(seq, 1);
	ok(f, store_project_seq(f->c, &f->a, p1, &seq, &f->err), "seq");
	assert_int_equal(seq, 10);

	struct event *e;
	int n;
	ok(f, store_event_list(f->c, &f->a, p1, 3, 4, &e, &n, &f->err), "list");
	assert_int_equal(n, 4);
	for (int i = 0; i < n; i++) {
		assert_int_equal(e[i].seq, 4 + i);
		assert_string_equal(e[i].project_id, p1);
		assert_string_equal(e[i].type, "task.created");
		assert_string_equal(e[i].actor_id, u);
		assert_int_equal(e[i].created_at, 104 + i);
		assert_string_equal(e[i].data, arena_printf(&f->a, "{\"n\":%d}", 4 + i));
	}
	ok(f, store_event_list(f->c, &f->a, p1, 8, 100, &e, &n, &f->err), "tail");
	assert_int_equal(n, 2);
	assert_int_equal(e[1].seq, 10);
	ok(f, store_event_list(f->c, &f->a, p1, 10, 100, &e, &n, &f->err), "after the end");
	assert_int_equal(n, 0);
	ok(f, store_event_list(f->c, &f->a, p2, 0, 100, &e, &n, &f->err), "p2");
	assert_int_equal(n, 1);
	assert_null(e[0].actor_id);

	/* A missing project: not found, and nothing written. */
	assert_int_equal(store_event_append(f->c, new_id(f), "x", u, "{}", 1, &seq, &f->err),
			 -ERR_NOT_FOUND);
	assert_int_equal(count_rows(f, f->c, "SELECT COUNT(*) FROM events"), 11);
}

struct appender {
	struct store *s;
	const char *project_id;
	int rounds;
	int64_t *seqs; /* rounds entries */
	int rc;
	struct error err;
};

/* What a service does: lock the project, append, commit — each in its own transaction. */
static void *append_thread(void *p)
{
	struct appender *w = p;
	struct db_conn *c = store_conn(w->s, &w->err);
	w->rc = c ? 0 : -ERR_UNAVAILABLE;
	for (int i = 0; c && i < w->rounds && w->rc == 0; i++) {
		if ((w->rc = db_begin(c, true, &w->err)) < 0)
			break;
		if ((w->rc = store_project_lock(c, w->project_id, &w->err)) < 0 ||
		    (w->rc = store_event_append(c, w->project_id, "task.updated", NULL, "{}", 1,
						&w->seqs[i], &w->err)) < 0) {
			db_rollback(c);
			break;
		}
		w->rc = db_commit(c, &w->err);
	}
	return NULL;
}

static void test_events_appended_concurrently_are_gap_free(void **state)
{
	struct fixture *f = *state;
	enum { N = 4, ROUNDS = 25 };
	struct appender w[N];
	pthread_t t[N];
	int64_t seqs[N][ROUNDS];
	const char *pid = add_project(f, add_user(f, "abe"), "Busy");
	for (int i = 0; i < N; i++) {
		w[i] = (struct appender){
		    .s = f->s, .project_id = pid, .rounds = ROUNDS, .seqs = seqs[i]};
		assert_int_equal(pthread_create(&t[i], NULL, append_thread, &w[i]), 0);
	}
	bool taken[N * ROUNDS + 1] = {false};
	for (int i = 0; i < N; i++)
		pthread_join(t[i], NULL); /* all of them before any check can end the test */
	for (int i = 0; i < N; i++) {
		if (w[i].rc < 0)
			fail_msg("appender %d failed (%d): %s", i, w[i].rc, w[i].err.detail);
		error_release(&w[i].err);
		for (int j = 0; j < ROUNDS; j++) {
			assert_true(seqs[i][j] >= 1 && seqs[i][j] <= N * ROUNDS);
			assert_false(taken[seqs[i][j]]);
			taken[seqs[i][j]] = true;
			if (j)
				assert_true(seqs[i][j] > seqs[i][j - 1]);
		}
	}
	struct event *e;
	int n;
	ok(f, store_event_list(f->c, &f->a, pid, 0, 1000, &e, &n, &f->err), "list");
	assert_int_equal(n, N * ROUNDS);
	for (int i = 0; i < n; i++)
		assert_int_equal(e[i].seq, i + 1);
}

/* ---- tasks -------------------------------------------------------------------------- */

struct task_world {
	const char *me, *other;
	const char *p1, *p2, *p3; /* me owns p1, is a member of p2; p3 is not mine */
};

static const char *const statuses[] = {"todo", "in_progress", "done"};

static const char *add_task(struct fixture *f, const char *project, const char *creator,
			    const char *title, int i)
{
	struct task t = {.id = new_id(f),
			 .project_id = project,
			 .title = title,
			 .description = i % 4 == 0 ? "Has 50% Off" : "",
			 .status = statuses[i % 3],
			 .priority = (i * 7) % 4,
			 .assignee_id = NULL,
			 .has_due = i % 5 != 0,
			 .due_date = 100000 + (i * 13) % 9 * 1000,
			 .created_by = creator,
			 .created_at = 10000 + (i * 17) % 11 * 10, /* ties on purpose */
			 .updated_at = 20000 + i};
	ok(f, store_task_insert(f->c, &t, &f->err), "store_task_insert");
	return t.id;
}

static void task_world(struct fixture *f, struct task_world *w)
{
	w->me = add_user(f, "me");
	w->other = add_user(f, "other");
	w->p1 = add_project(f, w->me, "Mine");
	w->p2 = add_project(f, w->other, "Shared");
	w->p3 = add_project(f, w->other, "Theirs");
	ok(f, store_member_insert(f->c, w->p2, w->me, "member", 1, &f->err), "join p2");
}

static void test_task_insert_get_update_delete_read_back(void **state)
{
	struct fixture *f = *state;
	struct task_world w;
	struct task got;
	bool done;
	task_world(f, &w);
	struct task t = {.id = new_id(f),
			 .project_id = w.p1,
			 .title = "Write \"tests\"",
			 .description = "first",
			 .status = "in_progress",
			 .priority = 3,
			 .assignee_id = w.other,
			 .has_due = true,
			 .due_date = 1800000000000,
			 .created_by = w.me,
			 .created_at = 111,
			 .updated_at = 222};
	ok(f, store_task_insert(f->c, &t, &f->err), "insert");
	ok(f, store_task_get_for(f->c, &f->a, t.id, w.me, &got, &f->err), "get");
	assert_string_equal(got.id, t.id);
	assert_string_equal(got.project_id, w.p1);
	assert_string_equal(got.title, "Write \"tests\"");
	assert_string_equal(got.description, "first");
	assert_string_equal(got.status, "in_progress");
	assert_int_equal(got.priority, 3);
	assert_string_equal(got.assignee_id, w.other);
	assert_true(got.has_due);
	assert_int_equal(got.due_date, 1800000000000);
	assert_string_equal(got.created_by, w.me);
	assert_int_equal(got.created_at, 111);
	assert_int_equal(got.updated_at, 222);
	assert_int_equal(got.version, 1);
	assert_string_equal(got.role, "owner");
	/* A reader who is not a member gets the task without a role. */
	ok(f, store_task_get_for(f->c, &f->a, t.id, w.other, &got, &f->err), "get other");
	assert_null(got.role);
	assert_int_equal(store_task_get_for(f->c, &f->a, new_id(f), w.me, &got, &f->err),
			 -ERR_NOT_FOUND);

	t.title = "Renamed";
	t.status = "done";
	t.priority = 0;
	t.assignee_id = NULL;
	t.has_due = false;
	t.updated_at = 333;
	ok(f, store_task_update(f->c, &t, 1, &done, &f->err), "update");
	assert_true(done);
	ok(f, store_task_get_for(f->c, &f->a, t.id, w.me, &got, &f->err), "get");
	assert_string_equal(got.title, "Renamed");
	assert_string_equal(got.status, "done");
	assert_int_equal(got.priority, 0);
	assert_null(got.assignee_id);
	assert_false(got.has_due);
	assert_int_equal(got.updated_at, 333);
	assert_int_equal(got.version, 2);
	assert_int_equal(got.created_at, 111);
	t.title = "Stale";
	ok(f, store_task_update(f->c, &t, 1, &done, &f->err), "stale update");
	assert_false(done);
	ok(f, store_task_get_for(f->c, &f->a, t.id, w.me, &got, &f->err), "get");
	assert_string_equal(got.title, "Renamed");

	ok(f, store_task_delete(f->c, t.id, 1, &done, &f->err), "stale delete");
	assert_false(done);
	ok(f, store_task_delete(f->c, t.id, 2, &done, &f->err), "delete");
	assert_true(done);
	assert_int_equal(store_task_get_for(f->c, &f->a, t.id, w.me, &got, &f->err),
			 -ERR_NOT_FOUND);
	ok(f, store_task_delete(f->c, t.id, 0, &done, &f->err), "delete again");
	assert_false(done);
}

static void test_task_unassign_returns_the_changed_tasks(void **state)
{
	struct fixture *f = *state;
	struct task_world w;
	struct task *out, got;
	int n;
	task_world(f, &w);
	const char *ids[4];
	for (int i = 0; i < 4; i++)
		ids[i] = add_task(f, i < 3 ? w.p2 : w.p1, w.other, "t", i);
	for (int i = 0; i < 4; i++) {
		ok(f, store_task_get_for(f->c, &f->a, ids[i], w.me, &got, &f->err), "get");
		got.assignee_id = i == 1 ? w.other : w.me;
		bool done;
		ok(f, store_task_update(f->c, &got, 0, &done, &f->err), "assign");
	}
	ok(f, store_task_unassign(f->c, &f->a, w.p2, w.me, 777, &out, &n, &f->err), "unassign");
	assert_int_equal(n, 2); /* ids[0] and ids[2]; ids[1] is another's, ids[3] elsewhere */
	for (int i = 0; i < n; i++) {
		assert_true(!strcmp(out[i].id, ids[0]) || !strcmp(out[i].id, ids[2]));
		assert_null(out[i].assignee_id);
		assert_int_equal(out[i].updated_at, 777);
		assert_int_equal(out[i].version, 3);
	}
	ok(f, store_task_get_for(f->c, &f->a, ids[3], w.me, &got, &f->err), "elsewhere");
	assert_string_equal(got.assignee_id, w.me);
	ok(f, store_task_get_for(f->c, &f->a, ids[1], w.me, &got, &f->err), "another's");
	assert_string_equal(got.assignee_id, w.other);
}

/* The list order of f's sort, computed here, to compare the database's pages against. */
static const struct task_filter *sort_spec;

static int cmp_key(const struct task *a, const struct task *b, enum task_sort_key k)
{
	int64_t x = 0, y = 0;
	switch (k) {
	case TASK_SORT_CREATED:
		x = a->created_at, y = b->created_at;
		break;
	case TASK_SORT_UPDATED:
		x = a->updated_at, y = b->updated_at;
		break;
	case TASK_SORT_PRIORITY:
		x = a->priority, y = b->priority;
		break;
	case TASK_SORT_DUE:
		x = a->due_date, y = b->due_date;
		break;
	}
	return x < y ? -1 : x > y;
}

static int cmp_task(const void *pa, const void *pb)
{
	const struct task *a = pa, *b = pb;
	bool last_desc = true;
	for (int i = 0; i < sort_spec->nsort; i++) {
		const struct task_sort *s = &sort_spec->sort[i];
		last_desc = s->desc;
		if (s->key == TASK_SORT_DUE && a->has_due != b->has_due)
			return a->has_due ? -1 : 1; /* no due date: last, either way */
		if (s->key == TASK_SORT_DUE && !a->has_due)
			continue;
		int c = cmp_key(a, b, s->key);
		if (c)
			return s->desc ? -c : c;
	}
	int c = strcmp(a->id, b->id);
	return last_desc ? -c : c;
}

/* Every page of f (limit `page`), walked with store_task_cursor_keys, against `want`. */
static void walk_pages(struct fixture *f, struct task_filter *tf, const struct task *want,
		       int nwant, int page)
{
	int seen = 0;
	tf->after = NULL;
	tf->limit = page;
	for (;;) {
		struct task *t;
		int n;
		ok(f, store_task_list(f->c, &f->a, tf, &t, &n, &f->err), "store_task_list");
		for (int i = 0; i < n; i++) {
			if (seen >= nwant || strcmp(t[i].id, want[seen].id) != 0)
				fail_msg("sort %d keys (first %d%s): row %d is %s, expected %s",
					 tf->nsort, tf->nsort ? (int)tf->sort[0].key : -1,
					 tf->nsort && tf->sort[0].desc ? " desc" : "", seen,
					 t[i].id, seen < nwant ? want[seen].id : "the end");
			seen++;
		}
		if (tf->after)
			json_decref(tf->after);
		tf->after = NULL;
		if (n < page)
			break;
		tf->after = store_task_cursor_keys(tf, &t[n - 1]);
	}
	assert_int_equal(seen, nwant);
}

enum { NTASKS = 40 };

/* Insert NTASKS tasks over p1, p2 and p3; *mine gets those of p1 and p2 (read back). */
static void seed_tasks(struct fixture *f, struct task_world *w, struct task *all, int *nall,
		       struct task *p1_only, int *np1)
{
	*nall = *np1 = 0;
	for (int i = 0; i < NTASKS; i++) {
		const char *pid = i % 4 == 3 ? w->p3 : i % 2 ? w->p2 : w->p1;
		const char *id = add_task(f, pid, w->other, arena_printf(&f->a, "Task %d", i), i);
		if (pid == w->p3)
			continue;
		struct task t;
		ok(f, store_task_get_for(f->c, &f->a, id, w->me, &t, &f->err), "get");
		all[(*nall)++] = t;
		if (pid == w->p1)
			p1_only[(*np1)++] = t;
	}
}

static void test_task_list_pages_walk_every_task_once_in_each_sort(void **state)
{
	struct fixture *f = *state;
	struct task_world w;
	struct task all[NTASKS], p1[NTASKS], want[NTASKS];
	int nall, np1;
	task_world(f, &w);
	seed_tasks(f, &w, all, &nall, p1, &np1);

	static const struct {
		int n;
		struct task_sort s[3];
	} sorts[] = {
	    {0, {{0}}},
	    {1, {{TASK_SORT_CREATED, false}}},
	    {1, {{TASK_SORT_CREATED, true}}},
	    {1, {{TASK_SORT_UPDATED, true}}},
	    {1, {{TASK_SORT_DUE, false}}},
	    {1, {{TASK_SORT_DUE, true}}},
	    {2, {{TASK_SORT_PRIORITY, true}, {TASK_SORT_CREATED, false}}},
	    {3, {{TASK_SORT_DUE, false}, {TASK_SORT_PRIORITY, true}, {TASK_SORT_CREATED, true}}},
	};
	for (size_t s = 0; s < sizeof(sorts) / sizeof(sorts[0]); s++) {
		for (int scope = 0; scope < 2; scope++) {
			struct task_filter tf = {.member_id = w.me,
						 .project_id = scope ? w.p1 : NULL};
			tf.nsort = sorts[s].n;
			memcpy(tf.sort, sorts[s].s, sizeof(sorts[s].s));
			int n = scope ? np1 : nall;
			memcpy(want, scope ? p1 : all, sizeof(struct task) * (size_t)n);
			sort_spec = &tf;
			qsort(want, (size_t)n, sizeof(want[0]), cmp_task);
			walk_pages(f, &tf, want, n, 7);
			walk_pages(f, &tf, want, n, n); /* one full page, then an empty one */
		}
	}
}

/* Tasks of `src` that pass `keep`, in the default order (newest id first). */
static int expect(const struct task *src, int n, bool (*keep)(const struct task *),
		  struct task *out)
{
	int m = 0;
	struct task_filter none = {0};
	for (int i = 0; i < n; i++)
		if (keep(&src[i]))
			out[m++] = src[i];
	sort_spec = &none;
	qsort(out, (size_t)m, sizeof(out[0]), cmp_task);
	return m;
}

static bool keep_open_urgent(const struct task *t)
{
	return strcmp(t->status, "done") != 0 && (t->priority == 3 || t->priority == 0);
}

static bool keep_due_window(const struct task *t)
{
	return t->has_due && t->due_date > 102000 && t->due_date < 106000;
}

static bool keep_updated_since(const struct task *t)
{
	return t->updated_at >= 20020;
}

static bool keep_words(const struct task *t)
{
	return strstr(t->description, "50%") != NULL;
}

static bool keep_unassigned(const struct task *t)
{
	return t->assignee_id == NULL;
}

static void test_task_list_filters_select_what_they_name(void **state)
{
	struct fixture *f = *state;
	struct task_world w;
	struct task all[NTASKS], p1[NTASKS], want[NTASKS];
	int nall, np1, n;
	task_world(f, &w);
	seed_tasks(f, &w, all, &nall, p1, &np1);

	struct task_filter tf = {.member_id = w.me,
				 .statuses = {"todo", "in_progress"},
				 .nstatuses = 2,
				 .priorities = {3, 0},
				 .npriorities = 2};
	n = expect(all, nall, keep_open_urgent, want);
	assert_true(n > 0 && n < nall);
	walk_pages(f, &tf, want, n, 3);

	tf = (struct task_filter){.member_id = w.me,
				  .has_due_after = true,
				  .due_after = 102000,
				  .has_due_before = true,
				  .due_before = 106000};
	n = expect(all, nall, keep_due_window, want);
	assert_true(n > 0 && n < nall);
	walk_pages(f, &tf, want, n, 3);

	tf = (struct task_filter){
	    .member_id = w.me, .has_updated_since = true, .updated_since = 20020};
	n = expect(all, nall, keep_updated_since, want);
	assert_true(n > 0 && n < nall);
	walk_pages(f, &tf, want, n, 4);

	/* Words: case-insensitive, LIKE's metacharacters literal, title or description. */
	tf = (struct task_filter){.member_id = w.me, .words = {"50%", "off"}, .nwords = 2};
	n = expect(all, nall, keep_words, want);
	assert_true(n > 0 && n < nall);
	walk_pages(f, &tf, want, n, 4);
	tf = (struct task_filter){.member_id = w.me, .words = {"5_%"}, .nwords = 1};
	walk_pages(f, &tf, want, 0, 4);
	struct task *t;
	ok(f,
	   store_task_list(f->c, &f->a,
			   &(struct task_filter){
			       .member_id = w.me, .words = {"TASK 1"}, .nwords = 1, .limit = 100},
			   &t, &n, &f->err),
	   "words");
	int titled = 0;
	for (int i = 0; i < nall; i++)
		titled += !strncmp(all[i].title, "Task 1", 6);
	assert_int_equal(n, titled);

	/* Assignee: one user, or none. */
	struct task a = all[0];
	bool done;
	a.assignee_id = w.me;
	ok(f, store_task_update(f->c, &a, 0, &done, &f->err), "assign");
	ok(f,
	   store_task_list(
	       f->c, &f->a,
	       &(struct task_filter){.member_id = w.me, .assignee_id = w.me, .limit = 100}, &t, &n,
	       &f->err),
	   "assignee");
	assert_int_equal(n, 1);
	assert_string_equal(t[0].id, a.id);
	all[0].assignee_id = w.me;
	tf = (struct task_filter){.member_id = w.me, .assignee_none = true};
	n = expect(all, nall, keep_unassigned, want);
	assert_int_equal(n, nall - 1);
	walk_pages(f, &tf, want, n, 9);
}

/* ---- fixed query shapes, bounded statement caches (issue 14 finding 6) -------------- */

static unsigned status_mask, priority_mask; /* bit i: statuses[i], priority i; 0: any */
static const char *const all_words[] = {"task", "50%", "OFF", "1"};
static unsigned word_mask;

static bool contains_folded(const char *hay, const char *needle)
{
	size_t n = strlen(needle);
	for (; *hay; hay++) {
		size_t i = 0;
		while (i < n && hay[i] && (hay[i] | 0x20) == (needle[i] | 0x20))
			i++;
		if (i == n)
			return true;
	}
	return n == 0;
}

static bool keep_masks(const struct task *t)
{
	if (status_mask) {
		int k = 0;
		while (strcmp(statuses[k], t->status) != 0)
			k++;
		if (!(status_mask & 1u << k))
			return false;
	}
	if (priority_mask && !(priority_mask & 1u << t->priority))
		return false;
	for (int i = 0; i < 4; i++)
		if (word_mask & 1u << i && !contains_folded(t->title, all_words[i]) &&
		    !contains_folded(t->description, all_words[i]))
			return false;
	return true;
}

static void filter_from_masks(struct task_filter *tf)
{
	for (int i = 0; i < 3; i++)
		if (status_mask & 1u << i)
			tf->statuses[tf->nstatuses++] = statuses[i];
	for (int i = 0; i < 4; i++)
		if (priority_mask & 1u << i)
			tf->priorities[tf->npriorities++] = i;
	for (int i = 0; i < 4; i++)
		if (word_mask & 1u << i)
			tf->words[tf->nwords++] = all_words[i];
}

static void test_task_list_shapes_do_not_depend_on_how_many_values(void **state)
{
	struct fixture *f = *state;
	struct task_world w;
	struct task all[NTASKS], p1[NTASKS], want[NTASKS];
	int nall, np1;
	task_world(f, &w);
	seed_tasks(f, &w, all, &nall, p1, &np1);

	size_t before = query_shape_count();
	for (int scope = 0; scope < 2; scope++) {
		for (unsigned m = 0; m < 8 * 16 + 16; m++) {
			/* Every subset of statuses x priorities, then every subset of the words. */
			status_mask = m < 128 ? m % 8 : 0;
			priority_mask = m < 128 ? m / 8 : 0;
			word_mask = m < 128 ? 0 : m - 128;
			struct task_filter tf = {.member_id = w.me,
						 .project_id = scope ? w.p1 : NULL};
			filter_from_masks(&tf);
			int n = expect(scope ? p1 : all, scope ? np1 : nall, keep_masks, want);
			walk_pages(f, &tf, want, n, 5);
		}
	}
	/* Scope x statuses or not x priorities or not x words or not x first page or not: the
	 * values and how many of them there are make no new shape. */
	size_t shapes = query_shape_count() - before;
	if (shapes > 2 * 2 * 2 * 2 * 2)
		fail_msg("%zu query shapes for one filter set", shapes);
}

static void test_many_list_shapes_keep_the_statement_cache_at_its_bound(void **state)
{
	struct fixture *f = *state;
	struct task_world w;
	struct task all[NTASKS], p1[NTASKS], want[NTASKS];
	int nall, np1, combos = 0;
	task_world(f, &w);
	seed_tasks(f, &w, all, &nall, p1, &np1);

	/* Every sort of one to three distinct keys, each either way: 248 orders, each a shape
	 * of its own (twice: first page and later ones), far more than the cache holds. */
	for (int len = 1; len <= 3; len++) {
		int nperm = 1;
		for (int i = 0; i < len; i++)
			nperm *= 8;
		for (int code = 0; code < nperm; code++) {
			struct task_filter tf = {.member_id = w.me, .project_id = w.p1};
			unsigned used = 0;
			int c = code;
			for (int i = 0; i < len; i++, c /= 8) {
				int key = c % 4;
				if (used & 1u << key)
					break;
				used |= 1u << key;
				tf.sort[tf.nsort++] = (struct task_sort){key, c % 8 >= 4};
			}
			if (tf.nsort != len)
				continue;
			memcpy(want, p1, sizeof(struct task) * (size_t)np1);
			sort_spec = &tf;
			qsort(want, (size_t)np1, sizeof(want[0]), cmp_task);
			walk_pages(f, &tf, want, np1, 7);
			assert_true(db_cached_statements(f->c) <= STMTCACHE_MAX);
			combos++;
		}
	}
	assert_int_equal(combos, 8 + 48 + 192);
	assert_int_equal(db_cached_statements(f->c), STMTCACHE_MAX);
	if (f->backend == POSTGRES) {
		/* Evicted statements are deallocated in the server's backend too. */
		int64_t n = count_rows(f, f->c, "SELECT count(*) FROM pg_prepared_statements");
		if (n > STMTCACHE_MAX)
			fail_msg("%lld statements prepared in the backend", (long long)n);
	}
	/* Statements evicted and prepared again still answer right: the first orders again. */
	struct task_filter tf = {
	    .member_id = w.me, .project_id = w.p1, .nsort = 1, .sort = {{TASK_SORT_CREATED, 0}}};
	memcpy(want, p1, sizeof(struct task) * (size_t)np1);
	sort_spec = &tf;
	qsort(want, (size_t)np1, sizeof(want[0]), cmp_task);
	walk_pages(f, &tf, want, np1, 7);
}

/* ---- the suite, once per backend ---------------------------------------------------- */

#define T(name, setup) cmocka_unit_test_setup_teardown(name, setup, teardown)
#define SQL_TESTS(setup)                                                                           \
	T(test_user_insert_then_get_reads_back_every_field, setup),                                \
	    T(test_user_find_login_by_email_or_username_matches_exactly, setup),                   \
	    T(test_user_insert_taken_name_or_email_is_a_conflict_naming_the_field, setup),         \
	    T(test_user_taken_reports_each_field_except_the_user_himself, setup),                  \
	    T(test_user_update_profile_bumps_version_and_names_a_conflict, setup),                 \
	    T(test_user_set_password_bumps_the_token_version_only_when_asked, setup),              \
	    T(test_user_search_is_a_literal_case_insensitive_prefix_of_active_users, setup),       \
	    T(test_refresh_claim_is_single_use, setup),                                            \
	    T(test_refresh_claim_refuses_expired_and_revoked_tokens, setup),                       \
	    T(test_refresh_concurrent_claims_have_one_winner, setup),                              \
	    T(test_refresh_claim_refuses_a_token_behind_the_users_token_version, setup),           \
	    T(test_user_get_session_tells_whether_the_family_is_live, setup),                      \
	    T(test_idem_claim_running_then_completed_replays_the_answer, setup),                   \
	    T(test_idem_release_forgets_only_a_running_claim, setup),                              \
	    T(test_idem_purge_removes_expired_and_stale_claims_only, setup),                       \
	    T(test_idem_purge_expired_deletes_in_batches_and_keeps_live_rows, setup),              \
	    T(test_refresh_purge_deletes_expired_and_revoked_tokens_only, setup),                  \
	    T(test_project_insert_reads_back_for_members_only, setup),                             \
	    T(test_project_update_checks_the_version, setup),                                      \
	    T(test_project_list_pages_walk_every_project_once, setup),                             \
	    T(test_project_list_filter_is_a_literal_case_insensitive_substring, setup),            \
	    T(test_members_insert_role_and_keyset_list, setup),                                    \
	    T(test_events_append_gap_free_per_project_and_list_after, setup),                      \
	    T(test_events_appended_concurrently_are_gap_free, setup),                              \
	    T(test_task_insert_get_update_delete_read_back, setup),                                \
	    T(test_task_unassign_returns_the_changed_tasks, setup),                                \
	    T(test_task_list_pages_walk_every_task_once_in_each_sort, setup),                      \
	    T(test_task_list_filters_select_what_they_name, setup),                                \
	    T(test_task_list_shapes_do_not_depend_on_how_many_values, setup),                      \
	    T(test_many_list_shapes_keep_the_statement_cache_at_its_bound, setup)

int main(void)
{
	const struct CMUnitTest sqlite_tests[] = {SQL_TESTS(setup_sqlite)};
	const struct CMUnitTest pg_tests[] = {SQL_TESTS(setup_pg)};
	return store_suite_main("store sql", sqlite_tests, pg_tests,
				sizeof(sqlite_tests) / sizeof(sqlite_tests[0]));
}
