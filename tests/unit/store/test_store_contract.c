/*
 * test_store_contract.c — the driver contract (db.h, store.h): migrations, parameters and
 * values, constraint errors, transactions, concurrent writers, connections and statements,
 * run unchanged against both backends (fixture.h). The store's shared SQL (users.c,
 * projects.c, tasks.c, idempotency.c) has its suite in test_store_sql.c.
 *
 * Statements are cached by the address of their SQL text (db.h), so every SQL string given
 * to db_query/db_exec here is a literal; SQL whose text varies goes through the driver's
 * exec_script, which does not cache.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdbool.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/arena.h"
#include "core/error.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "core/uuid.h"
#include "store/db.h"
#include "store/store.h"
#include "store/tickets.h"
#include "fixture.h"

/* ---- migrations --------------------------------------------------------------------- */

static void test_migrate_applies_every_migration_once(void **state)
{
	struct fixture *f = *state;
	int count, applied = -1;
	migrations_for(store_dialect(f->s), &count);
	assert_true(count >= 1);
	/* The fixture migrated already: a second run finds nothing to do. */
	ok(f, store_migrate(f->s, &applied, &f->err), "store_migrate");
	assert_int_equal(applied, 0);
	/* A fresh store on the same database agrees. */
	struct store *s2;
	ok(f, store_create(f->url, &s2, &f->err), "store_create");
	applied = -1;
	int rc = store_migrate(s2, &applied, &f->err);
	store_free(s2);
	ok(f, rc, "store_migrate on a second store");
	assert_int_equal(applied, 0);
}

static void test_migrate_on_an_empty_database_applies_all(void **state)
{
	struct fixture *f = *state;
	int count, applied = -1;
	migrations_for(store_dialect(f->s), &count);
	/* The fixture's migration ran through the same call; redo it on a clean slate. */
	ok(f, db_exec(f->c, "DROP TABLE schema_migrations", NULL, 0, &f->err), "drop");
	static const char *const drops[] = {
	    "DROP TABLE stream_tickets", "DROP TABLE idempotency_keys",
	    "DROP TABLE events",	 "DROP TABLE tasks",
	    "DROP TABLE memberships",	 "DROP TABLE projects",
	    "DROP TABLE refresh_tokens", "DROP TABLE users",
	};
	for (size_t i = 0; i < sizeof(drops) / sizeof(drops[0]); i++)
		ok(f, db_exec(f->c, drops[i], NULL, 0, &f->err), drops[i]);
	ok(f, store_migrate(f->s, &applied, &f->err), "store_migrate");
	assert_int_equal(applied, count);
	assert_int_equal(count_users(f, f->c), 0);
}

static void test_schema_migrations_has_one_row_per_migration(void **state)
{
	struct fixture *f = *state;
	int count;
	const struct migration *m = migrations_for(store_dialect(f->s), &count);
	struct db_rows r;
	ok(f,
	   db_query(f->c, &f->a,
		    "SELECT version, name, applied_at FROM schema_migrations ORDER BY "
		    "version",
		    NULL, 0, &r, &f->err),
	   "select");
	assert_int_equal(r.nrows, count);
	assert_int_equal(r.ncols, 3);
	int64_t now = time_now_ms();
	for (int i = 0; i < count; i++) {
		assert_int_equal(db_int(&r, i, 0), m[i].version);
		assert_string_equal(db_val(&r, i, 1), m[i].name);
		assert_true(db_int(&r, i, 2) > now - 600000 && db_int(&r, i, 2) <= now);
	}
}

static void test_migrations_are_numbered_alike_in_both_dialects(void **state)
{
	int nl, np;
	const struct migration *l = migrations_for(DB_SQLITE, &nl);
	const struct migration *p = migrations_for(DB_POSTGRES, &np);
	assert_int_equal(nl, np);
	for (int i = 0; i < nl; i++) {
		assert_int_equal(l[i].version, p[i].version);
		assert_string_equal(l[i].name, p[i].name);
		if (i > 0)
			assert_true(l[i].version > l[i - 1].version);
	}
}

struct migrator {
	const char *url;
	int rc, applied;
	struct error err;
};

static void *migrate_thread(void *p)
{
	struct migrator *m = p;
	struct store *s;
	m->rc = store_create(m->url, &s, &m->err);
	if (m->rc == 0) {
		m->rc = store_migrate(s, &m->applied, &m->err);
		store_free(s);
	}
	return NULL;
}

static void test_concurrent_migrations_apply_each_migration_once(void **state)
{
	struct fixture *f = *state;
	int count;
	migrations_for(store_dialect(f->s), &count);
	ok(f, db_exec(f->c, "DROP TABLE schema_migrations", NULL, 0, &f->err), "drop");
	static const char *const drops[] = {
	    "DROP TABLE stream_tickets", "DROP TABLE idempotency_keys",
	    "DROP TABLE events",	 "DROP TABLE tasks",
	    "DROP TABLE memberships",	 "DROP TABLE projects",
	    "DROP TABLE refresh_tokens", "DROP TABLE users",
	};
	for (size_t i = 0; i < sizeof(drops) / sizeof(drops[0]); i++)
		ok(f, db_exec(f->c, drops[i], NULL, 0, &f->err), drops[i]);

	enum { N = 4 };
	struct migrator m[N];
	pthread_t t[N];
	for (int i = 0; i < N; i++) {
		m[i] = (struct migrator){.url = f->url, .applied = -1};
		assert_int_equal(pthread_create(&t[i], NULL, migrate_thread, &m[i]), 0);
	}
	int total = 0;
	for (int i = 0; i < N; i++)
		pthread_join(t[i], NULL); /* all of them before any check can end the test */
	for (int i = 0; i < N; i++) {
		if (m[i].rc < 0)
			fail_msg("migrator %d failed (%d): %s", i, m[i].rc, m[i].err.detail);
		error_release(&m[i].err);
		total += m[i].applied;
	}
	assert_int_equal(total, count);
	assert_int_equal(count_rows(f, f->c, "SELECT COUNT(*) FROM schema_migrations"), count);
}

/*
 * A migration that fails part-way. The suite is linked with -Wl,--wrap=migrations_for
 * (tests/unit/meson.build), so every caller, store_migrate() included, gets the embedded
 * migrations from here, plus, while `with_failing_migration` is set, one more whose first
 * statements succeed (a table created, rows inserted into it and into users) and whose last
 * one fails (a duplicate key). Nothing of it may remain.
 */
const struct migration *__real_migrations_for(enum db_dialect d, int *count);
const struct migration *__wrap_migrations_for(enum db_dialect d, int *count);

enum { FAILING_VERSION = 9001 };
static bool with_failing_migration;

const struct migration *__wrap_migrations_for(enum db_dialect d, int *count)
{
	static struct migration list[2][64];
	const struct migration *real = __real_migrations_for(d, count);
	if (!with_failing_migration)
		return real;
	assert_true(*count < 64);
	struct migration *m = list[d == DB_SQLITE ? 0 : 1];
	memcpy(m, real, sizeof(*m) * (size_t)*count);
	m[(*count)++] = (struct migration){
	    .version = FAILING_VERSION,
	    .name = "test_fails_late",
	    .sql = "CREATE TABLE test_late (id INTEGER PRIMARY KEY, note TEXT NOT NULL);\n"
		   "INSERT INTO test_late (id, note) VALUES (1, 'first');\n"
		   "INSERT INTO test_late (id, note) VALUES (2, 'second');\n"
		   "INSERT INTO users (id, username, email, password_hash, created_at, "
		   "updated_at) VALUES ('01900000-0000-7000-8000-000000000001', 'migrant', "
		   "'migrant@example.com', 'x', 1, 1);\n"
		   "INSERT INTO test_late (id, note) VALUES (1, 'again');\n",
	};
	return m;
}

static int teardown_without_failing_migration(void **state)
{
	with_failing_migration = false;
	return teardown(state);
}

static void test_failed_migration_is_reported_and_rolled_back(void **state)
{
	struct fixture *f = *state;
	int applied = -1, count;
	migrations_for(store_dialect(f->s), &count);
	with_failing_migration = true;
	int rc = store_migrate(f->s, &applied, &f->err);
	with_failing_migration = false;
	assert_true(rc < 0);
	assert_int_equal(applied, 0);
	/* The detail names the migration once, then the database's reason. */
	static const char prefix[] = "migration 9001_test_fails_late failed: ";
	const char *d = f->err.detail;
	if (strncmp(d, prefix, sizeof(prefix) - 1) != 0 ||
	    strstr(d + sizeof(prefix) - 1, "migration") || strlen(d) <= sizeof(prefix) - 1)
		fail_msg("detail \"%s\"", d);
	/* Nothing half-applied: not recorded, its table and its rows gone, the earlier
	 * migrations still recorded. */
	assert_int_equal(
	    count_rows(f, f->c, "SELECT COUNT(*) FROM schema_migrations WHERE version = 9001"), 0);
	assert_int_equal(count_rows(f, f->c, "SELECT COUNT(*) FROM schema_migrations"), count);
	assert_int_equal(
	    count_rows(f, f->c,
		       f->backend == SQLITE
			   ? "SELECT COUNT(*) FROM sqlite_master WHERE name = 'test_late'"
			   : "SELECT COUNT(*) FROM information_schema.tables "
			     "WHERE table_name = 'test_late'"),
	    0);
	assert_int_equal(count_users(f, f->c), 0);
	/* The connection is usable afterwards, and the migrator too. */
	must_insert_user(f, "after", NULL);
	ok(f, store_migrate(f->s, &applied, &f->err), "store_migrate without the failing one");
	assert_int_equal(applied, 0);
}

/* ---- parameters and values ---------------------------------------------------------- */

static void test_parameters_used_out_of_order_bind_by_number(void **state)
{
	struct fixture *f = *state;
	struct db_rows r;
	struct db_param p[] = {DB_TEXT("first"), DB_TEXT("second")};
	ok(f, db_query(f->c, &f->a, "SELECT $2, $1", p, 2, &r, &f->err), "select");
	assert_int_equal(r.nrows, 1);
	assert_int_equal(r.ncols, 2);
	assert_string_equal(db_val(&r, 0, 0), "second");
	assert_string_equal(db_val(&r, 0, 1), "first");
}

static void test_parameter_used_twice_and_out_of_order_in_a_write(void **state)
{
	struct fixture *f = *state;
	char id[UUID_STR_LEN];
	uuid_v7(id);
	struct db_param p[] = {DB_INT(1234), DB_TEXT("pw"), DB_TEXT("mail@example.com"),
			       DB_TEXT("name"), txt(id)};
	ok(f,
	   db_exec(f->c,
		   "INSERT INTO users (id, username, email, password_hash, created_at, updated_at) "
		   "VALUES ($5, $4, $3, $2, $1, $1)",
		   p, 5, &f->err),
	   "insert");
	struct db_rows r;
	struct db_param q[] = {txt(id)};
	ok(f,
	   db_query(f->c, &f->a,
		    "SELECT username, email, password_hash, created_at, updated_at FROM users "
		    "WHERE id = $1",
		    q, 1, &r, &f->err),
	   "select");
	assert_int_equal(r.nrows, 1);
	assert_string_equal(db_val(&r, 0, 0), "name");
	assert_string_equal(db_val(&r, 0, 1), "mail@example.com");
	assert_string_equal(db_val(&r, 0, 2), "pw");
	assert_int_equal(db_int(&r, 0, 3), 1234);
	assert_int_equal(db_int(&r, 0, 4), 1234);
}

static void test_null_parameters_and_null_results(void **state)
{
	struct fixture *f = *state;
	struct db_rows r;
	struct db_param p[] = {DB_NULLP, DB_TEXT(NULL), DB_TEXT("")};
	ok(f, db_query(f->c, &f->a, "SELECT $1, $2, $3, NULL", p, 3, &r, &f->err), "select");
	assert_int_equal(r.nrows, 1);
	assert_null(db_val(&r, 0, 0));
	assert_null(db_val(&r, 0, 1));
	assert_non_null(db_val(&r, 0, 2)); /* an empty string is not NULL */
	assert_string_equal(db_val(&r, 0, 2), "");
	assert_null(db_val(&r, 0, 3));
	assert_int_equal(db_int(&r, 0, 0), 0);
	assert_false(db_bool(&r, 0, 0));
}

static void test_null_stored_in_a_nullable_column_reads_back_as_null(void **state)
{
	struct fixture *f = *state;
	char uid[UUID_STR_LEN], tid[UUID_STR_LEN];
	must_insert_user(f, "owner", uid);
	uuid_v7(tid);
	struct db_param p[] = {txt(tid), txt(uid), DB_TEXT("h"), DB_INT(1), DB_INT(2), DB_NULLP};
	ok(f,
	   db_exec(f->c,
		   "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, created_at, "
		   "expires_at, used_at) VALUES ($1, $2, $1, $3, $4, $5, $6)",
		   p, 6, &f->err),
	   "insert");
	struct db_rows r;
	ok(f,
	   db_query(f->c, &f->a,
		    "SELECT used_at, revoked_at, expires_at FROM refresh_tokens WHERE used_at IS "
		    "NULL",
		    NULL, 0, &r, &f->err),
	   "select");
	assert_int_equal(r.nrows, 1);
	assert_null(db_val(&r, 0, 0));
	assert_null(db_val(&r, 0, 1));
	assert_int_equal(db_int(&r, 0, 2), 2);
}

static void test_int64_values_round_trip(void **state)
{
	struct fixture *f = *state;
	static const int64_t values[] = {
	    0,
	    1,
	    -1,
	    INT64_C(2147483647),
	    INT64_C(2147483648),
	    INT64_C(-2147483649),
	    INT64_C(9007199254740993), /* 2^53 + 1: not exact as a double */
	    INT64_C(253402300799999),
	    INT64_C(-62135596800000),
	    INT64_MAX,
	    INT64_MIN,
	};
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		struct db_rows r;
		struct db_param p[] = {DB_INT(values[i])};
		ok(f, db_query(f->c, &f->a, "SELECT CAST($1 AS BIGINT)", p, 1, &r, &f->err),
		   "select");
		if (db_int(&r, 0, 0) != values[i])
			fail_msg("%" PRId64 " came back as %s", values[i], db_val(&r, 0, 0));

		/* Through a BIGINT column, and compared as a number, not as text. */
		char id[UUID_STR_LEN], name[32];
		snprintf(name, sizeof(name), "u%zu", i);
		ok(f, insert_user(f, f->c, NULL, name, id), "insert");
		struct db_param u[] = {DB_INT(values[i]), txt(id)};
		ok(f,
		   db_exec(f->c, "UPDATE users SET created_at = $1 WHERE id = $2", u, 2, &f->err),
		   "update");
		struct db_param q[] = {txt(id)};
		ok(f,
		   db_query(f->c, &f->a, "SELECT created_at FROM users WHERE id = $1", q, 1, &r,
			    &f->err),
		   "select");
		assert_int_equal(db_int(&r, 0, 0), values[i]);
	}
	struct db_rows r;
	struct db_param p[] = {DB_INT(0)};
	ok(f,
	   db_query(f->c, &f->a, "SELECT COUNT(*) FROM users WHERE created_at < $1", p, 1, &r,
		    &f->err),
	   "count");
	assert_int_equal(db_int(&r, 0, 0), 4); /* the four negative values */
}

static void test_text_with_unicode_and_quotes_round_trips(void **state)
{
	struct fixture *f = *state;
	static const char *const texts[] = {
	    "O'Brien",
	    "say \"hi\"",
	    "back\\slash and ''doubled'' quotes",
	    "Robert'); DROP TABLE users;--",
	    "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x8e\x89", /* café 日本語 🎉 */
	    "tab\there\nnewline",
	    "$1 and ?1 are not parameters here",
	};
	char id[UUID_STR_LEN];
	must_insert_user(f, "quoted", id);
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		struct db_param u[] = {DB_TEXT(texts[i]), txt(id)};
		ok(f,
		   db_exec(f->c, "UPDATE users SET display_name = $1 WHERE id = $2", u, 2, &f->err),
		   "update");
		struct db_rows r;
		struct db_param q[] = {txt(id)};
		ok(f,
		   db_query(f->c, &f->a,
			    "SELECT display_name, LENGTH(display_name) FROM users WHERE id = $1", q,
			    1, &r, &f->err),
		   "select");
		assert_string_equal(db_val(&r, 0, 0), texts[i]);
		/* Stored as characters, not bytes: both databases count characters. */
		size_t chars = 0;
		for (const unsigned char *p = (const unsigned char *)texts[i]; *p; p++)
			chars += (*p & 0xc0) != 0x80;
		assert_int_equal(db_int(&r, 0, 1), chars);
	}
	assert_int_equal(count_users(f, f->c), 1);
}

static void test_db_bool_reads_both_dialects_booleans(void **state)
{
	struct fixture *f = *state;
	char id[UUID_STR_LEN];
	must_insert_user(f, "flags", id);
	struct db_rows r;
	struct db_param q[] = {txt(id)};
	ok(f,
	   db_query(f->c, &f->a, "SELECT is_active, is_admin FROM users WHERE id = $1", q, 1, &r,
		    &f->err),
	   "select");
	assert_true(db_bool(&r, 0, 0));	 /* DEFAULT true / 1 */
	assert_false(db_bool(&r, 0, 1)); /* DEFAULT false / 0 */

	struct db_param u[] = {DB_BOOL(false), DB_BOOL(true), txt(id)};
	ok(f,
	   db_exec(f->c, "UPDATE users SET is_active = $1, is_admin = $2 WHERE id = $3", u, 3,
		   &f->err),
	   "update");
	ok(f,
	   db_query(f->c, &f->a, "SELECT is_active, is_admin FROM users WHERE id = $1", q, 1, &r,
		    &f->err),
	   "select");
	assert_false(db_bool(&r, 0, 0));
	assert_true(db_bool(&r, 0, 1));

	struct db_param w[] = {DB_BOOL(true)};
	ok(f,
	   db_query(f->c, &f->a, "SELECT COUNT(*) FROM users WHERE is_admin = $1", w, 1, &r,
		    &f->err),
	   "where");
	assert_int_equal(db_int(&r, 0, 0), 1);
}

/* ---- constraint violations ---------------------------------------------------------- */

static void test_duplicate_primary_key_is_a_conflict(void **state)
{
	struct fixture *f = *state;
	char id[UUID_STR_LEN];
	must_insert_user(f, "alice", id);
	assert_int_equal(insert_user(f, f->c, id, "alice2", NULL), -ERR_CONFLICT);
	assert_int_equal(f->err.kind, ERR_CONFLICT);
	assert_true(f->err.detail[0] != '\0');
	assert_int_equal(count_users(f, f->c), 1);
}

/* Insert a user with an explicit username and email. */
static int insert_named(struct fixture *f, const char *username, const char *email)
{
	char id[UUID_STR_LEN];
	uuid_v7(id);
	struct db_param p[] = {txt(id), DB_TEXT(username), DB_TEXT(email)};
	return db_exec(f->c,
		       "INSERT INTO users (id, username, email, password_hash, created_at, "
		       "updated_at) VALUES ($1, $2, $3, 'x', 1, 1)",
		       p, 3, &f->err);
}

static void test_duplicate_unique_email_is_a_conflict_naming_it(void **state)
{
	struct fixture *f = *state;
	ok(f, insert_named(f, "bob", "bob@example.com"), "insert");
	assert_int_equal(insert_named(f, "robert", "bob@example.com"), -ERR_CONFLICT);
	assert_int_equal(f->err.kind, ERR_CONFLICT);
	/* The detail names the constraint, so services can tell which field collided. */
	if (!strstr(f->err.detail, "email") || strstr(f->err.detail, "username"))
		fail_msg("detail \"%s\" does not name the email constraint alone", f->err.detail);
	assert_int_equal(count_users(f, f->c), 1);
	/* The connection carries on normally after the failure. */
	ok(f, insert_named(f, "carol", "carol@example.com"), "insert after conflict");
	assert_int_equal(count_users(f, f->c), 2);
}

static void test_duplicate_unique_username_is_a_conflict_naming_it(void **state)
{
	struct fixture *f = *state;
	ok(f, insert_named(f, "bob", "bob@example.com"), "insert");
	assert_int_equal(insert_named(f, "bob", "other@example.com"), -ERR_CONFLICT);
	if (!strstr(f->err.detail, "username") || strstr(f->err.detail, "email"))
		fail_msg("detail \"%s\" does not name the username constraint alone",
			 f->err.detail);
	assert_int_equal(count_users(f, f->c), 1);
}

static void test_foreign_key_violation_is_a_conflict(void **state)
{
	struct fixture *f = *state;
	char pid[UUID_STR_LEN], ghost[UUID_STR_LEN];
	uuid_v7(pid);
	uuid_v7(ghost);
	struct db_param p[] = {txt(pid), DB_TEXT("p"), txt(ghost), DB_INT(1)};
	assert_int_equal(
	    db_exec(f->c,
		    "INSERT INTO projects (id, name, owner_id, created_at, updated_at) "
		    "VALUES ($1, $2, $3, $4, $4)",
		    p, 4, &f->err),
	    -ERR_CONFLICT);
	assert_int_equal(f->err.kind, ERR_CONFLICT);
	assert_int_equal(count_rows(f, f->c, "SELECT COUNT(*) FROM projects"), 0);
}

static void test_foreign_key_cascade_deletes_dependents(void **state)
{
	struct fixture *f = *state;
	char uid[UUID_STR_LEN], tid[UUID_STR_LEN];
	must_insert_user(f, "dave", uid);
	uuid_v7(tid);
	struct db_param p[] = {txt(tid), txt(uid)};
	ok(f,
	   db_exec(f->c,
		   "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, created_at, "
		   "expires_at) VALUES ($1, $2, $1, 'hash', 1, 2)",
		   p, 2, &f->err),
	   "insert token");
	struct db_param d[] = {txt(uid)};
	ok(f, db_exec(f->c, "DELETE FROM users WHERE id = $1", d, 1, &f->err), "delete user");
	assert_int_equal(count_rows(f, f->c, "SELECT COUNT(*) FROM refresh_tokens"), 0);
}

static void test_a_stream_ticket_is_taken_once_and_expired_ones_are_purged(void **state)
{
	struct fixture *f = *state;
	char uid[UUID_STR_LEN];
	must_insert_user(f, "tina", uid);
	struct stream_ticket live = {"hash-live", uid, uid, 1, 9000, 1000, 5000};
	struct stream_ticket old = {"hash-old", uid, uid, 1, 9000, 1000, 2000};
	ok(f, store_ticket_insert(f->c, &live, &f->err), "insert live");
	ok(f, store_ticket_insert(f->c, &old, &f->err), "insert old");

	/* Another connection (another instance) takes it; then nobody can. */
	struct store *s2;
	ok(f, store_create(f->url, &s2, &f->err), "store_create");
	struct db_conn *c2 = store_conn(s2, &f->err);
	assert_non_null(c2);
	struct stream_ticket got;
	int rc = store_ticket_take(c2, &f->a, "hash-live", &got, &f->err);
	store_free(s2);
	assert_int_equal(rc, 0);
	assert_string_equal(got.user_id, uid);
	assert_int_equal(got.token_version, 1);
	assert_int_equal(got.access_expires_at, 9000);
	assert_int_equal(got.expires_at, 5000);
	error_release(&f->err);
	assert_int_equal(store_ticket_take(f->c, &f->a, "hash-live", &got, &f->err),
			 -ERR_NOT_FOUND);
	error_release(&f->err);

	int64_t n = -1;
	ok(f, store_ticket_insert(f->c, &live, &f->err), "insert live again");
	ok(f, store_ticket_purge(f->c, 3000, 500, &n, &f->err), "purge");
	assert_int_equal(n, 1);
	assert_int_equal(count_rows(f, f->c, "SELECT COUNT(*) FROM stream_tickets"), 1);
	ok(f, store_ticket_take(f->c, &f->a, "hash-live", &got, &f->err), "live stays");
}

static void test_check_constraint_violation_is_not_a_conflict(void **state)
{
	struct fixture *f = *state;
	char uid[UUID_STR_LEN], pid[UUID_STR_LEN];
	must_insert_user(f, "erin", uid);
	uuid_v7(pid);
	struct db_param p[] = {txt(pid), txt(uid)};
	ok(f,
	   db_exec(f->c,
		   "INSERT INTO projects (id, name, owner_id, created_at, updated_at) "
		   "VALUES ($1, 'p', $2, 1, 1)",
		   p, 2, &f->err),
	   "insert project");
	int rc = db_exec(f->c,
			 "INSERT INTO memberships (project_id, user_id, role, joined_at) "
			 "VALUES ($1, $2, 'emperor', 1)",
			 p, 2, &f->err);
	assert_int_equal(rc, -ERR_INTERNAL);
}

/* ---- transactions ------------------------------------------------------------------- */

static void test_rolled_back_transaction_leaves_nothing(void **state)
{
	struct fixture *f = *state;
	ok(f, db_begin(f->c, true, &f->err), "begin");
	assert_int_equal(f->c->tx_depth, 1);
	must_insert_user(f, "ghost1", NULL);
	must_insert_user(f, "ghost2", NULL);
	assert_int_equal(count_users(f, f->c), 2); /* visible inside */
	db_rollback(f->c);
	assert_int_equal(f->c->tx_depth, 0);
	assert_int_equal(count_users(f, f->c), 0);
}

static void test_committed_transaction_persists_for_other_connections(void **state)
{
	struct fixture *f = *state;
	ok(f, db_begin(f->c, true, &f->err), "begin");
	must_insert_user(f, "kept1", NULL);
	must_insert_user(f, "kept2", NULL);
	ok(f, db_commit(f->c, &f->err), "commit");
	assert_int_equal(f->c->tx_depth, 0);

	/* Re-read through a different store (another connection, as another process would). */
	struct store *s2;
	ok(f, store_create(f->url, &s2, &f->err), "store_create");
	struct db_conn *c2 = store_conn(s2, &f->err);
	assert_non_null(c2);
	assert_ptr_not_equal(c2, f->c);
	int64_t n = count_users(f, c2);
	store_free(s2);
	assert_int_equal(n, 2);
}

static void test_uncommitted_writes_are_invisible_to_other_connections(void **state)
{
	struct fixture *f = *state;
	struct store *s2;
	ok(f, store_create(f->url, &s2, &f->err), "store_create");
	struct db_conn *c2 = store_conn(s2, &f->err);
	assert_non_null(c2);
	ok(f, db_begin(f->c, true, &f->err), "begin");
	must_insert_user(f, "pending", NULL);
	int64_t seen = count_users(f, c2);
	db_rollback(f->c);
	store_free(s2);
	assert_int_equal(seen, 0);
}

static void test_failed_statement_in_a_transaction_then_rollback_recovers(void **state)
{
	struct fixture *f = *state;
	char id[UUID_STR_LEN];
	must_insert_user(f, "before", id);
	ok(f, db_begin(f->c, true, &f->err), "begin");
	must_insert_user(f, "inside", NULL);
	assert_int_equal(insert_user(f, f->c, id, "dup", NULL), -ERR_CONFLICT);
	db_rollback(f->c);
	assert_int_equal(count_users(f, f->c), 1);
	must_insert_user(f, "after", NULL);
	assert_int_equal(count_users(f, f->c), 2);
}

/* ---- concurrent writers -------------------------------------------------------------- */

/* A one-row counter, so that writers contend on one row (PostgreSQL) as well as on the
 * database (SQLite). */
static void create_counter(struct fixture *f)
{
	ok(f,
	   f->c->driver->exec_script(f->c,
				     "CREATE TABLE test_counter (id INTEGER PRIMARY KEY, "
				     "n BIGINT NOT NULL); INSERT INTO test_counter VALUES (1, 0)",
				     &f->err),
	   "create counter");
}

struct writer {
	struct store *s;
	int rounds;
	int64_t got; /* the counter value this writer's last increment produced */
	int rc;
	struct error err;
	sem_t *started; /* posted right before the writer asks for the write lock */
};

/* One write transaction: increment the counter and insert a user; *got is the new count. */
static int write_once(struct db_conn *c, struct arena *a, int64_t *got, struct error *err)
{
	struct db_rows r;
	char id[UUID_STR_LEN], name[64];
	int rc;
	if ((rc = db_begin(c, true, err)) < 0)
		return rc;
	if ((rc = db_query(c, a, "UPDATE test_counter SET n = n + 1 WHERE id = 1 RETURNING n", NULL,
			   0, &r, err)) < 0)
		goto fail;
	*got = db_int(&r, 0, 0);
	uuid_v7(id);
	snprintf(name, sizeof(name), "w%s", id);
	struct db_param p[] = {txt(id), txt(name), txt(name), DB_INT(time_now_ms())};
	if ((rc = db_exec(c,
			  "INSERT INTO users (id, username, email, password_hash, created_at, "
			  "updated_at) VALUES ($1, $2, $3, 'x', $4, $4)",
			  p, DB_NPARAMS(p), err)) < 0)
		goto fail;
	return db_commit(c, err);
fail:
	db_rollback(c);
	return rc;
}

static void *writer_thread(void *p)
{
	struct writer *w = p;
	struct arena a;
	arena_init(&a);
	struct db_conn *c = store_conn(w->s, &w->err);
	w->rc = c ? 0 : -ERR_UNAVAILABLE;
	if (w->started)
		sem_post(w->started);
	for (int i = 0; c && i < w->rounds && w->rc == 0; i++)
		w->rc = write_once(c, &a, &w->got, &w->err);
	arena_release(&a);
	return NULL;
}

static void test_many_concurrent_writers_all_succeed(void **state)
{
	struct fixture *f = *state;
	enum { N = 12, ROUNDS = 25 };
	struct writer w[N];
	pthread_t t[N];
	create_counter(f);
	for (int i = 0; i < N; i++) {
		w[i] = (struct writer){.s = f->s, .rounds = ROUNDS};
		assert_int_equal(pthread_create(&t[i], NULL, writer_thread, &w[i]), 0);
	}
	/* Autocommit writes from this thread go between the others' transactions. */
	for (int i = 0; i < ROUNDS; i++) {
		char name[32];
		snprintf(name, sizeof(name), "main%d", i);
		must_insert_user(f, name, NULL);
	}
	for (int i = 0; i < N; i++)
		pthread_join(t[i], NULL); /* all of them before any check can end the test */
	for (int i = 0; i < N; i++) {
		if (w[i].rc < 0)
			fail_msg("writer %d failed (%d): %s", i, w[i].rc, w[i].err.detail);
		error_release(&w[i].err);
	}
	assert_int_equal(count_rows(f, f->c, "SELECT n FROM test_counter"), N * ROUNDS);
	assert_int_equal(count_users(f, f->c), N * ROUNDS + ROUNDS);
}

/*
 * Wait until exactly `n` writers wait for the write lock: in SQLite's writer queue, or on
 * PostgreSQL for a lock (seen through `monitor`, another connection: pg_stat_activity
 * keeps one snapshot per transaction). Polls what the database shows, not the clock.
 */
static void writers_waiting(struct fixture *f, struct db_conn *monitor, int n)
{
	for (;;) {
		int64_t waiting;
		if (f->backend == SQLITE) {
			int w;
			uint64_t waits;
			assert_int_equal(db_sqlite_queue_state(f->c, &w, &waits), 0);
			waiting = w;
		} else {
			waiting =
			    count_rows(f, monitor,
				       "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = "
				       "current_database() AND backend_type = 'client backend' "
				       "AND wait_event_type = 'Lock'");
		}
		assert_true(waiting <= n);
		if (waiting == n)
			return;
		usleep(1000); /* a poll interval: nothing assumes how long the wait takes */
	}
}

/*
 * Writers that wait for the write lock get it in the order they asked for it. SQLite's
 * busy handler alone polls with back-off, so the order after the holder commits is a race
 * (issue 7: seconds of tail latency); the driver queues them. PostgreSQL promises no order
 * here (after the holder commits, READ COMMITTED waiters race for the new row version), so
 * there every writer must only get through, each once.
 */
static void test_waiting_writers_get_the_lock_in_arrival_order(void **state)
{
	struct fixture *f = *state;
	enum { N = 4 };
	struct writer w[N];
	pthread_t t[N];
	sem_t started;
	struct db_rows r;
	struct store *s2;
	create_counter(f);
	sem_init(&started, 0, 0);
	/* PostgreSQL: a connection of its own watches the others wait (pg_stat_activity). */
	ok(f, store_create(f->url, &s2, &f->err), "store_create");
	struct db_conn *monitor = store_conn(s2, &f->err);
	assert_non_null(monitor);
	ok(f, db_begin(f->c, true, &f->err), "begin");
	ok(f,
	   db_query(f->c, &f->a, "UPDATE test_counter SET n = n + 1 WHERE id = 1 RETURNING n", NULL,
		    0, &r, &f->err),
	   "update");
	for (int i = 0; i < N; i++) {
		w[i] = (struct writer){.s = f->s, .rounds = 1, .started = &started};
		assert_int_equal(pthread_create(&t[i], NULL, writer_thread, &w[i]), 0);
		sem_wait(&started);
		writers_waiting(f, monitor, i + 1); /* it is waiting now */
	}
	ok(f, db_commit(f->c, &f->err), "commit");
	for (int i = 0; i < N; i++)
		pthread_join(t[i], NULL); /* all of them before any check can end the test */
	for (int i = 0; i < N; i++) {
		if (w[i].rc < 0)
			fail_msg("writer %d failed (%d): %s", i, w[i].rc, w[i].err.detail);
		error_release(&w[i].err);
	}
	sem_destroy(&started);
	store_free(s2);
	int64_t served = 0;
	for (int i = 0; i < N; i++)
		served |= (int64_t)1 << w[i].got;
	assert_int_equal(served, ((1 << N) - 1) << 2); /* 2, 3, ..., N + 1 */
	for (int i = 0; f->backend == SQLITE && i < N; i++)
		if (w[i].got != i + 2)
			fail_msg("writer %d, which came %s, was served as number %" PRId64 " of %d",
				 i, i == 0 ? "first" : "later", w[i].got - 1, N);
}

/*
 * A write returns only once the WAL holds it on stable storage.
 *
 * SQLite (group commit): COMMIT itself (synchronous=NORMAL) no longer flushes; every thread
 * checks, after each commit, that the flushed mark covers its own write; flushes are never
 * more than the writes. (How many commits share a flush depends on timing, and is what
 * bench/ measures.)
 *
 * PostgreSQL flushes its WAL at COMMIT itself, unless the session turned synchronous_commit
 * off: each thread reads the WAL insert position as the last statement of its transaction
 * and checks, after COMMIT returned, that the server's flushed position is past it.
 */
struct durable_writer {
	struct store *s;
	int rounds;
	int rc;
	uint64_t not_covered; /* commits that returned before their write was flushed */
	struct error err;
};

/* write_once() on PostgreSQL, with the WAL check around its COMMIT. */
static int pg_durable_write(struct db_conn *c, struct arena *a, bool *covered, struct error *err)
{
	struct db_rows r;
	int rc;
	if ((rc = db_begin(c, true, err)) < 0)
		return rc;
	if ((rc = db_exec(c, "UPDATE test_counter SET n = n + 1 WHERE id = 1", NULL, 0, err)) < 0)
		goto fail;
	if ((rc = db_query(c, a, "SELECT pg_current_wal_insert_lsn()::text", NULL, 0, &r, err)) < 0)
		goto fail;
	struct db_param p[] = {DB_TEXT(db_val(&r, 0, 0))};
	if ((rc = db_commit(c, err)) < 0)
		return rc;
	if ((rc = db_query(c, a, "SELECT pg_current_wal_flush_lsn() >= CAST($1 AS pg_lsn)", p, 1,
			   &r, err)) < 0)
		return rc;
	*covered = db_bool(&r, 0, 0);
	return 0;
fail:
	db_rollback(c);
	return rc;
}

static void *durable_writer_thread(void *p)
{
	struct durable_writer *w = p;
	struct arena a;
	int64_t got;
	bool covered;
	uint64_t prev = 0, ticket, synced, flushes;
	arena_init(&a);
	struct db_conn *c = store_conn(w->s, &w->err);
	w->rc = c ? 0 : -ERR_UNAVAILABLE;
	for (int i = 0; c && i < w->rounds && w->rc == 0; i++) {
		if (c->dialect == DB_POSTGRES) {
			w->rc = pg_durable_write(c, &a, &covered, &w->err);
			if (w->rc == 0 && !covered)
				w->not_covered++;
			continue;
		}
		w->rc = write_once(c, &a, &got, &w->err);
		if (w->rc == 0 && (db_sqlite_sync_state(c, &ticket, &synced, &flushes) != 0 ||
				   ticket <= prev || synced < ticket))
			w->not_covered++;
		prev = ticket;
	}
	arena_release(&a);
	return NULL;
}

static void test_commit_returns_after_the_wal_is_flushed(void **state)
{
	struct fixture *f = *state;
	enum { N = 8, ROUNDS = 40 };
	struct durable_writer w[N];
	pthread_t t[N];
	uint64_t ticket, synced, flushes;
	create_counter(f);
	for (int i = 0; i < N; i++) {
		w[i] = (struct durable_writer){.s = f->s, .rounds = ROUNDS};
		assert_int_equal(pthread_create(&t[i], NULL, durable_writer_thread, &w[i]), 0);
	}
	for (int i = 0; i < N; i++)
		pthread_join(t[i], NULL); /* all of them before any check can end the test */
	for (int i = 0; i < N; i++) {
		if (w[i].rc < 0)
			fail_msg("writer %d failed (%d): %s", i, w[i].rc, w[i].err.detail);
		if (w[i].not_covered)
			fail_msg("writer %d: %" PRIu64
				 " commits returned before the WAL was flushed",
				 i, w[i].not_covered);
		error_release(&w[i].err);
	}
	assert_int_equal(count_rows(f, f->c, "SELECT n FROM test_counter"), N * ROUNDS);
	if (f->backend == POSTGRES)
		return;
	/* An autocommit write from this thread too. */
	must_insert_user(f, "solo", NULL);
	assert_int_equal(db_sqlite_sync_state(f->c, &ticket, &synced, &flushes), 0);
	assert_true(synced >= ticket && ticket >= N * ROUNDS);
	assert_true(flushes >= 1 && flushes <= ticket);
	print_message("group commit: %" PRIu64 " writes, %" PRIu64 " WAL flushes\n", ticket,
		      flushes);
}

/* How many writers ever waited in SQLite's writer queue (0 on PostgreSQL). */
static uint64_t queue_waits(struct fixture *f)
{
	int waiting;
	uint64_t waits = 0;
	if (f->backend == SQLITE)
		assert_int_equal(db_sqlite_queue_state(f->c, &waiting, &waits), 0);
	return waits;
}

/*
 * A write on a connection of its own (another store): it must not wait for f->c. Checked on
 * what the database shows, not on the clock: on PostgreSQL f->c's session is idle (no
 * transaction left open, so no lock held) before the write; on SQLite the write took the
 * writer queue without waiting.
 */
static void other_connection_can_write(struct fixture *f)
{
	struct store *s2;
	struct db_rows r;
	int64_t got = 0;
	ok(f, store_create(f->url, &s2, &f->err), "store_create");
	struct db_conn *c2 = store_conn(s2, &f->err);
	assert_non_null(c2);
	if (f->backend == POSTGRES) {
		ok(f, db_query(f->c, &f->a, "SELECT pg_backend_pid()", NULL, 0, &r, &f->err),
		   "pid");
		struct db_param p[] = {DB_INT(db_int(&r, 0, 0))};
		ok(f,
		   db_query(c2, &f->a, "SELECT state FROM pg_stat_activity WHERE pid = $1", p, 1,
			    &r, &f->err),
		   "state");
		assert_int_equal(r.nrows, 1);
		assert_string_equal(db_val(&r, 0, 0), "idle");
	}
	uint64_t waits = queue_waits(f);
	int rc = write_once(c2, &f->a, &got, &f->err);
	store_free(s2);
	ok(f, rc, "write on another connection");
	assert_int_equal(queue_waits(f), waits);
}

static void test_write_lock_is_released_after_errors(void **state)
{
	struct fixture *f = *state;
	char id[UUID_STR_LEN];
	create_counter(f);
	must_insert_user(f, "first", id);

	/* A write statement outside a transaction that fails. */
	assert_int_equal(insert_user(f, f->c, id, "dup", NULL), -ERR_CONFLICT);
	other_connection_can_write(f);

	/* A failed statement in a write transaction, then rollback. */
	ok(f, db_begin(f->c, true, &f->err), "begin");
	assert_int_equal(insert_user(f, f->c, id, "dup", NULL), -ERR_CONFLICT);
	db_rollback(f->c);
	other_connection_can_write(f);

	/* A script that fails. */
	assert_true(
	    f->c->driver->exec_script(f->c, "INSERT INTO no_such_table VALUES (1)", &f->err) < 0);
	other_connection_can_write(f);

	/* A commit that fails: a deferred foreign key is checked only then. */
	ok(f,
	   f->c->driver->exec_script(
	       f->c,
	       f->backend == SQLITE ? "CREATE TABLE test_child (user_id TEXT REFERENCES users (id) "
				      "DEFERRABLE INITIALLY DEFERRED)"
				    : "CREATE TABLE test_child (user_id uuid REFERENCES users (id) "
				      "DEFERRABLE INITIALLY DEFERRED)",
	       &f->err),
	   "create child");
	ok(f, db_begin(f->c, true, &f->err), "begin");
	ok(f,
	   db_exec(f->c, "INSERT INTO test_child (user_id) VALUES ($1)",
		   (struct db_param[]){DB_TEXT("00000000-0000-7000-8000-000000000000")}, 1,
		   &f->err),
	   "insert child");
	assert_int_equal(db_commit(f->c, &f->err), -ERR_CONFLICT);
	assert_int_equal(f->c->tx_depth, 0);
	other_connection_can_write(f);
	assert_int_equal(count_rows(f, f->c, "SELECT COUNT(*) FROM test_child"), 0);

	/* A connection closed in the middle of a write transaction. */
	struct store *s3;
	int64_t got;
	ok(f, store_create(f->url, &s3, &f->err), "store_create");
	struct db_conn *c3 = store_conn(s3, &f->err);
	assert_non_null(c3);
	ok(f, db_begin(c3, true, &f->err), "begin on a connection about to close");
	ok(f, db_exec(c3, "UPDATE test_counter SET n = n + 100 WHERE id = 1", NULL, 0, &f->err),
	   "update");
	store_free(s3);
	ok(f, write_once(f->c, &f->a, &got, &f->err), "write after the other closed");

	/* And the connection that had all these errors still writes. */
	ok(f, write_once(f->c, &f->a, &got, &f->err), "write");
	assert_int_equal(got, 6); /* five successful increments; the closed one rolled back */
}

/* Readers never wait for a writer: read statements and read transactions run beside it. */
static void test_readers_do_not_wait_for_a_writer(void **state)
{
	struct fixture *f = *state;
	struct store *s2;
	must_insert_user(f, "visible", NULL);
	ok(f, store_create(f->url, &s2, &f->err), "store_create");
	struct db_conn *c2 = store_conn(s2, &f->err);
	assert_non_null(c2);
	ok(f, db_begin(f->c, true, &f->err), "begin");
	must_insert_user(f, "pending", NULL);

	/* A reader that queued behind this thread's write would never get through (SQLite:
	 * not before the busy timeout, then with an error). */
	uint64_t waits = queue_waits(f);
	int64_t plain = count_users(f, c2);
	ok(f, db_begin(c2, false, &f->err), "begin read");
	int64_t in_tx = count_users(f, c2);
	ok(f, db_commit(c2, &f->err), "commit read");
	assert_int_equal(queue_waits(f), waits);

	ok(f, db_commit(f->c, &f->err), "commit");
	int64_t after = count_users(f, c2);
	store_free(s2);
	assert_int_equal(plain, 1);
	assert_int_equal(in_tx, 1);
	assert_int_equal(after, 2);
}

/* ---- connections -------------------------------------------------------------------- */

struct other_thread {
	struct store *s;
	struct db_conn *c;
	char identity[64]; /* PostgreSQL: the server process serving this connection */
	struct error err;
	pthread_barrier_t ready, done;
};

static void *use_store(void *p)
{
	struct other_thread *t = p;
	struct arena a;
	struct db_rows r;
	arena_init(&a);
	t->c = store_conn(t->s, &t->err);
	if (t->c && store_conn(t->s, &t->err) != t->c)
		t->c = NULL; /* a thread must get the same connection every time */
	if (t->c && t->c->dialect == DB_POSTGRES &&
	    db_query(t->c, &a, "SELECT pg_backend_pid()", NULL, 0, &r, &t->err) == 0)
		snprintf(t->identity, sizeof(t->identity), "%s", db_val(&r, 0, 0));
	arena_release(&a);
	pthread_barrier_wait(&t->ready);
	/* Stay alive until the main thread has compared: the connection closes at exit. */
	pthread_barrier_wait(&t->done);
	return NULL;
}

static void test_two_threads_get_two_connections(void **state)
{
	struct fixture *f = *state;
	struct other_thread t = {.s = f->s};
	pthread_t th;
	char mine_id[64] = "";
	pthread_barrier_init(&t.ready, NULL, 2);
	pthread_barrier_init(&t.done, NULL, 2);
	assert_int_equal(pthread_create(&th, NULL, use_store, &t), 0);

	struct db_conn *mine = store_conn(f->s, &f->err);
	pthread_barrier_wait(&t.ready);
	struct db_conn *other = t.c;
	if (f->backend == POSTGRES && mine) {
		struct db_rows r;
		if (db_query(mine, &f->a, "SELECT pg_backend_pid()", NULL, 0, &r, &f->err) == 0)
			snprintf(mine_id, sizeof(mine_id), "%s", db_val(&r, 0, 0));
	}
	pthread_barrier_wait(&t.done);
	pthread_join(th, NULL);
	pthread_barrier_destroy(&t.ready);
	pthread_barrier_destroy(&t.done);
	if (!other)
		fail_msg("the other thread got no connection: %s", t.err.detail);
	error_release(&t.err);

	assert_non_null(mine);
	assert_ptr_equal(mine, f->c);
	assert_ptr_not_equal(mine, other);
	if (f->backend == POSTGRES) {
		assert_true(mine_id[0] != '\0');
		assert_true(t.identity[0] != '\0');
		assert_string_not_equal(mine_id, t.identity);
	}
	/* The main thread's connection is untouched by the other thread's exit. */
	assert_int_equal(count_users(f, f->c), 0);
}

static void test_same_thread_gets_the_same_connection(void **state)
{
	struct fixture *f = *state;
	assert_ptr_equal(store_conn(f->s, &f->err), f->c);
	assert_ptr_equal(store_conn(f->s, &f->err), f->c);
	assert_int_equal(store_conn(f->s, &f->err)->dialect,
			 f->backend == SQLITE ? DB_SQLITE : DB_POSTGRES);
}

static void test_ping_answers(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(store_ping(f->s, &f->err), 0);
	assert_int_equal(store_ping(f->s, NULL), 0);
}

static void test_ping_reports_an_unreachable_database(void **state)
{
	struct fixture *f = *state;
	char url[1100];
	if (f->backend == SQLITE)
		snprintf(url, sizeof(url), "sqlite:%s/no/such/dir/x.db", f->dir);
	else
		snprintf(url, sizeof(url),
			 "host=/nonexistent/socket-dir dbname=x connect_timeout=2");
	struct store *s;
	ok(f, store_create(url, &s, &f->err), "store_create");
	struct error err = ERROR_INIT;
	int rc = store_ping(s, &err);
	assert_null(store_conn(s, NULL));
	store_free(s);
	assert_int_equal(rc, -ERR_UNAVAILABLE);
	assert_int_equal(err.kind, ERR_UNAVAILABLE);
	assert_true(err.detail[0] != '\0');
	error_release(&err);
}

static void test_store_create_rejects_unusable_urls(void **state)
{
	struct fixture *f = *state;
	struct store *s = NULL;
	assert_int_equal(store_create("mysql://x/y", &s, &f->err), -ERR_BAD_REQUEST);
	assert_int_equal(store_create("sqlite:", &s, &f->err), -ERR_BAD_REQUEST);
	assert_null(s);
	ok(f, store_create("sqlite:/tmp/x.db", &s, &f->err), "sqlite url");
	assert_string_equal(store_backend_name(s), "sqlite");
	assert_int_equal(store_dialect(s), DB_SQLITE);
	store_free(s);
	ok(f, store_create("postgresql:///x?host=/tmp", &s, &f->err), "postgres url");
	assert_string_equal(store_backend_name(s), "postgres");
	assert_int_equal(store_dialect(s), DB_POSTGRES);
	store_free(s);
}

/* ---- statements --------------------------------------------------------------------- */

static void test_statement_reused_many_times_keeps_working(void **state)
{
	struct fixture *f = *state;
	enum { N = 1000 };
	for (int i = 0; i < N; i++) {
		char name[32];
		snprintf(name, sizeof(name), "user%d", i);
		ok(f, insert_user(f, f->c, NULL, name, NULL), "insert");
		struct db_rows r;
		struct db_param q[] = {txt(name)};
		ok(f,
		   db_query(f->c, &f->a, "SELECT username FROM users WHERE username = $1", q, 1, &r,
			    &f->err),
		   "select");
		assert_int_equal(r.nrows, 1);
		assert_string_equal(db_val(&r, 0, 0), name);
		if (i % 250 == 249) {
			/* Results live in the arena: release it now and then, as requests do. */
			arena_release(&f->a);
		}
	}
	assert_int_equal(count_users(f, f->c), N);
}

static void test_statement_reused_after_an_error_keeps_working(void **state)
{
	struct fixture *f = *state;
	char id[UUID_STR_LEN];
	must_insert_user(f, "once", id);
	for (int i = 0; i < 50; i++) {
		assert_int_equal(insert_user(f, f->c, id, "once", NULL), -ERR_CONFLICT);
		char name[32];
		snprintf(name, sizeof(name), "again%d", i);
		ok(f, insert_user(f, f->c, NULL, name, NULL), "insert after error");
	}
	assert_int_equal(count_users(f, f->c), 51);
}

static void test_many_distinct_statements_share_the_cache(void **state)
{
	struct fixture *f = *state;
	enum { N = 300 };
	/* Static storage: cached statements are keyed by the address of their text. */
	static char sql[N][48];
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < N; i++) {
			if (round == 0)
				snprintf(sql[i], sizeof(sql[i]), "SELECT %d + CAST($1 AS BIGINT)",
					 i);
			struct db_rows r;
			struct db_param p[] = {DB_INT(round * 1000)};
			ok(f, db_query(f->c, &f->a, sql[i], p, 1, &r, &f->err), sql[i]);
			assert_int_equal(db_int(&r, 0, 0), i + round * 1000);
		}
	}
}

static void test_affected_rows_count_update_and_delete(void **state)
{
	struct fixture *f = *state;
	for (int i = 0; i < 5; i++) {
		char name[16];
		snprintf(name, sizeof(name), "n%d", i);
		must_insert_user(f, name, NULL);
	}
	struct db_rows r;
	struct db_param p[] = {DB_TEXT("renamed"), DB_TEXT("n%")};
	ok(f,
	   db_query(f->c, &f->a, "UPDATE users SET display_name = $1 WHERE username LIKE $2", p, 2,
		    &r, &f->err),
	   "update");
	assert_int_equal(r.affected, 5);
	assert_int_equal(r.nrows, 0);

	struct db_param none[] = {DB_TEXT("x"), DB_TEXT("nobody")};
	ok(f,
	   db_query(f->c, &f->a, "UPDATE users SET display_name = $1 WHERE username = $2", none, 2,
		    &r, &f->err),
	   "update none");
	assert_int_equal(r.affected, 0);

	struct db_param d[] = {DB_TEXT("n1"), DB_TEXT("n3")};
	ok(f,
	   db_query(f->c, &f->a, "DELETE FROM users WHERE username IN ($1, $2)", d, 2, &r, &f->err),
	   "delete");
	assert_int_equal(r.affected, 2);
	assert_int_equal(count_users(f, f->c), 3);
}

static void test_update_returning_gives_rows_and_count(void **state)
{
	struct fixture *f = *state;
	char id[UUID_STR_LEN];
	must_insert_user(f, "ver", id);
	struct db_rows r;
	struct db_param p[] = {txt(id), DB_INT(1)};
	ok(f,
	   db_query(f->c, &f->a,
		    "UPDATE users SET version = version + 1 WHERE id = $1 AND version = $2 "
		    "RETURNING version",
		    p, 2, &r, &f->err),
	   "update");
	assert_int_equal(r.nrows, 1);
	assert_int_equal(r.affected, 1);
	assert_int_equal(db_int(&r, 0, 0), 2);
	/* The same stale version again: optimistic concurrency finds nothing. */
	ok(f,
	   db_query(f->c, &f->a,
		    "UPDATE users SET version = version + 1 WHERE id = $1 AND version = $2 "
		    "RETURNING version",
		    p, 2, &r, &f->err),
	   "update stale");
	assert_int_equal(r.nrows, 0);
	assert_int_equal(r.affected, 0);
}

static void test_on_conflict_do_nothing_counts_zero(void **state)
{
	struct fixture *f = *state;
	char id[UUID_STR_LEN];
	must_insert_user(f, "upsert", id);
	struct db_rows r;
	struct db_param p[] = {txt(id)};
	ok(f,
	   db_query(
	       f->c, &f->a,
	       "INSERT INTO users (id, username, email, password_hash, created_at, updated_at) "
	       "VALUES ($1, 'other', 'other@example.com', 'x', 1, 1) ON CONFLICT (id) DO "
	       "NOTHING",
	       p, 1, &r, &f->err),
	   "insert on conflict");
	assert_int_equal(r.affected, 0);
	assert_int_equal(count_users(f, f->c), 1);
}

static void test_syntax_error_is_internal(void **state)
{
	struct fixture *f = *state;
	struct db_rows r;
	assert_int_equal(db_query(f->c, &f->a, "SELEC nothing", NULL, 0, &r, &f->err),
			 -ERR_INTERNAL);
	assert_int_equal(f->err.kind, ERR_INTERNAL);
	assert_int_equal(count_users(f, f->c), 0);
}

static void test_many_rows_are_all_returned(void **state)
{
	struct fixture *f = *state;
	ok(f, db_begin(f->c, true, &f->err), "begin");
	for (int i = 0; i < 300; i++) {
		char name[16];
		snprintf(name, sizeof(name), "r%03d", i);
		must_insert_user(f, name, NULL);
	}
	ok(f, db_commit(f->c, &f->err), "commit");
	struct db_rows r;
	ok(f,
	   db_query(f->c, &f->a, "SELECT username, id FROM users ORDER BY username", NULL, 0, &r,
		    &f->err),
	   "select");
	assert_int_equal(r.nrows, 300);
	assert_int_equal(r.ncols, 2);
	for (int i = 0; i < 300; i++) {
		char name[16];
		snprintf(name, sizeof(name), "r%03d", i);
		assert_string_equal(db_val(&r, i, 0), name);
		assert_true(uuid_valid(db_val(&r, i, 1)));
	}
}

/* ---- the suite, once per backend ---------------------------------------------------- */

#define CONTRACT_TESTS(setup)                                                                      \
	cmocka_unit_test_setup_teardown(test_migrate_applies_every_migration_once, setup,          \
					teardown),                                                 \
	    cmocka_unit_test_setup_teardown(test_migrate_on_an_empty_database_applies_all, setup,  \
					    teardown),                                             \
	    cmocka_unit_test_setup_teardown(test_schema_migrations_has_one_row_per_migration,      \
					    setup, teardown),                                      \
	    cmocka_unit_test_setup_teardown(test_migrations_are_numbered_alike_in_both_dialects,   \
					    setup, teardown),                                      \
	    cmocka_unit_test_setup_teardown(test_concurrent_migrations_apply_each_migration_once,  \
					    setup, teardown),                                      \
	    cmocka_unit_test_setup_teardown(test_failed_migration_is_reported_and_rolled_back,     \
					    setup, teardown_without_failing_migration),            \
	    cmocka_unit_test_setup_teardown(test_parameters_used_out_of_order_bind_by_number,      \
					    setup, teardown),                                      \
	    cmocka_unit_test_setup_teardown(test_parameter_used_twice_and_out_of_order_in_a_write, \
					    setup, teardown),                                      \
	    cmocka_unit_test_setup_teardown(test_null_parameters_and_null_results, setup,          \
					    teardown),                                             \
	    cmocka_unit_test_setup_teardown(                                                       \
		test_null_stored_in_a_nullable_column_reads_back_as_null, setup, teardown),        \
	    cmocka_unit_test_setup_teardown(test_int64_values_round_trip, setup, teardown),        \
	    cmocka_unit_test_setup_teardown(test_text_with_unicode_and_quotes_round_trips, setup,  \
					    teardown),                                             \
	    cmocka_unit_test_setup_teardown(test_db_bool_reads_both_dialects_booleans, setup,      \
					    teardown),                                             \
	    cmocka_unit_test_setup_teardown(test_duplicate_primary_key_is_a_conflict, setup,       \
					    teardown),                                             \
	    cmocka_unit_test_setup_teardown(test_duplicate_unique_email_is_a_conflict_naming_it,   \
					    setup, teardown),                                      \
	    cmocka_unit_test_setup_teardown(                                                       \
		test_duplicate_unique_username_is_a_conflict_naming_it, setup, teardown),          \
	    cmocka_unit_test_setup_teardown(test_foreign_key_violation_is_a_conflict, setup,       \
					    teardown),                                             \
	    cmocka_unit_test_setup_teardown(test_foreign_key_cascade_deletes_dependents, setup,    \
					    teardown),                                             \
	    cmocka_unit_test_setup_teardown(                                                       \
		test_a_stream_ticket_is_taken_once_and_expired_ones_are_purged, setup, teardown),  \
	    cmocka_unit_test_setup_teardown(test_check_constraint_violation_is_not_a_conflict,     \
					    setup, teardown),                                      \
	    cmocka_unit_test_setup_teardown(test_rolled_back_transaction_leaves_nothing, setup,    \
					    teardown),                                             \
	    cmocka_unit_test_setup_teardown(                                                       \
		test_committed_transaction_persists_for_other_connections, setup, teardown),       \
	    cmocka_unit_test_setup_teardown(                                                       \
		test_uncommitted_writes_are_invisible_to_other_connections, setup, teardown),      \
	    cmocka_unit_test_setup_teardown(                                                       \
		test_failed_statement_in_a_transaction_then_rollback_recovers, setup, teardown),   \
	    cmocka_unit_test_setup_teardown(test_many_concurrent_writers_all_succeed, setup,       \
					    teardown),                                             \
	    cmocka_unit_test_setup_teardown(test_waiting_writers_get_the_lock_in_arrival_order,    \
					    setup, teardown),                                      \
	    cmocka_unit_test_setup_teardown(test_commit_returns_after_the_wal_is_flushed, setup,   \
					    teardown),                                             \
	    cmocka_unit_test_setup_teardown(test_write_lock_is_released_after_errors, setup,       \
					    teardown),                                             \
	    cmocka_unit_test_setup_teardown(test_readers_do_not_wait_for_a_writer, setup,          \
					    teardown),                                             \
	    cmocka_unit_test_setup_teardown(test_two_threads_get_two_connections, setup,           \
					    teardown),                                             \
	    cmocka_unit_test_setup_teardown(test_same_thread_gets_the_same_connection, setup,      \
					    teardown),                                             \
	    cmocka_unit_test_setup_teardown(test_ping_answers, setup, teardown),                   \
	    cmocka_unit_test_setup_teardown(test_ping_reports_an_unreachable_database, setup,      \
					    teardown),                                             \
	    cmocka_unit_test_setup_teardown(test_store_create_rejects_unusable_urls, setup,        \
					    teardown),                                             \
	    cmocka_unit_test_setup_teardown(test_statement_reused_many_times_keeps_working, setup, \
					    teardown),                                             \
	    cmocka_unit_test_setup_teardown(test_statement_reused_after_an_error_keeps_working,    \
					    setup, teardown),                                      \
	    cmocka_unit_test_setup_teardown(test_many_distinct_statements_share_the_cache, setup,  \
					    teardown),                                             \
	    cmocka_unit_test_setup_teardown(test_affected_rows_count_update_and_delete, setup,     \
					    teardown),                                             \
	    cmocka_unit_test_setup_teardown(test_update_returning_gives_rows_and_count, setup,     \
					    teardown),                                             \
	    cmocka_unit_test_setup_teardown(test_on_conflict_do_nothing_counts_zero, setup,        \
					    teardown),                                             \
	    cmocka_unit_test_setup_teardown(test_syntax_error_is_internal, setup, teardown),       \
	    cmocka_unit_test_setup_teardown(test_many_rows_are_all_returned, setup, teardown)

int main(void)
{
	const struct CMUnitTest sqlite_tests[] = {CONTRACT_TESTS(setup_sqlite)};
	const struct CMUnitTest pg_tests[] = {CONTRACT_TESTS(setup_pg)};
	return store_suite_main("store contract", sqlite_tests, pg_tests,
				sizeof(sqlite_tests) / sizeof(sqlite_tests[0]));
}
