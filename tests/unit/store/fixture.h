/*
 * fixture.h — what the store suites share: a fresh, migrated database per test on either
 * backend, the PostgreSQL group set-up, a main() that runs one suite against both backends,
 * and a few helpers.
 *
 * For SQLite each test gets a new file in a new temporary directory; for PostgreSQL a new
 * database created through a maintenance connection to the server at $TANDEM_TEST_PG_URL
 * and dropped afterwards. The PostgreSQL group fails when that variable is unset, unless
 * TANDEM_TEST_PG_OPTIONAL=1: a backend that is silently skipped is a backend that is not
 * tested. Everything here runs on the test's main thread (cmocka is single-threaded).
 *
 * Include after <cmocka.h>.
 */
#ifndef TANDEM_TESTS_STORE_FIXTURE_H
#define TANDEM_TESTS_STORE_FIXTURE_H

#include <stdint.h>

#include "core/arena.h"
#include "core/error.h"
#include "core/uuid.h"
#include "store/db.h"

enum backend { SQLITE, POSTGRES };

struct fixture {
	enum backend backend;
	char url[1024];	 /* the test database */
	char dir[256];	 /* SQLite: temporary directory */
	char dbname[64]; /* PostgreSQL: test database */
	struct store *s;
	struct db_conn *c; /* the main thread's connection */
	struct arena a;
	struct error err;
};

/* cmocka setups and teardown of one test, and of the PostgreSQL group. */
int setup_sqlite(void **state);
int setup_pg(void **state);
int teardown(void **state);
int group_setup_pg(void **state);
int group_teardown_pg(void **state);

/*
 * Run `sqlite` as "<name>: sqlite" and `pg` as "<name>: postgres" (both arrays of n tests,
 * the same tests with setup_sqlite and setup_pg). Returns main()'s exit status.
 */
int store_suite_main(const char *name, const struct CMUnitTest *sqlite, const struct CMUnitTest *pg,
		     size_t n);

/* DB_TEXT for a char array (the macro's NULL test trips -Waddress on an array). */
struct db_param txt(const char *s);
/* Fail the test with f->err's detail when rc < 0. */
void ok(struct fixture *f, int rc, const char *what);
/* The one integer a one-row query (literal SQL) returns. */
int64_t count_rows(struct fixture *f, struct db_conn *c, const char *sql);
int64_t count_users(struct fixture *f, struct db_conn *c);
/* Insert a user named `name` with raw SQL; id may be NULL for a fresh one. db_exec's rc. */
int insert_user(struct fixture *f, struct db_conn *c, const char *id, const char *name,
		char out_id[UUID_STR_LEN]);
void must_insert_user(struct fixture *f, const char *name, char out_id[UUID_STR_LEN]);

#endif
