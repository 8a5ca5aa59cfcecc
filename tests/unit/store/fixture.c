/* fixture.c — see fixture.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/timeutil.h"
#include "store/store.h"
#include "fixture.h"

/* PostgreSQL: the server from the environment and a connection to its maintenance db. */
static const char *pg_base_url;
static struct store *pg_admin;
static unsigned db_counter;

/* ---- fixtures ----------------------------------------------------------------------- */

static struct fixture *fixture_new(enum backend b)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->backend = b;
	arena_init(&f->a);
	return f;
}

static void fixture_free(struct fixture *f)
{
	arena_release(&f->a);
	error_release(&f->err);
	free(f);
}

static int open_and_migrate(struct fixture *f)
{
	int applied = -1;
	if (store_create(f->url, &f->s, &f->err) < 0) {
		print_error("store_create(%s): %s\n", f->url, f->err.detail);
		return -1;
	}
	if (store_migrate(f->s, &applied, &f->err) < 0) {
		print_error("store_migrate: %s\n", f->err.detail);
		return -1;
	}
	f->c = store_conn(f->s, &f->err);
	if (!f->c) {
		print_error("store_conn: %s\n", f->err.detail);
		return -1;
	}
	return 0;
}

/* cmocka skips the teardown of a test whose setup failed: clean up here instead. */
static int setup_done(void **state, int rc)
{
	if (rc < 0) {
		teardown(state);
		*state = NULL;
	}
	return rc;
}

int setup_sqlite(void **state)
{
	struct fixture *f = fixture_new(SQLITE);
	const char *tmp = getenv("TMPDIR");
	snprintf(f->dir, sizeof(f->dir), "%s/tandem-unit-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(f->dir)) {
		print_error("mkdtemp %s failed\n", f->dir);
		fixture_free(f);
		return -1;
	}
	snprintf(f->url, sizeof(f->url), "sqlite:%s/test.db", f->dir);
	*state = f;
	return setup_done(state, open_and_migrate(f));
}

/* Append key='value' to a libpq conninfo string, quoting as libpq wants. */
static void conninfo_add(char *out, size_t cap, const char *key, const char *val)
{
	size_t o = strlen(out);
	o += (size_t)snprintf(out + o, cap - o, "%s%s='", o ? " " : "", key);
	for (const char *v = val; *v && o + 3 < cap; v++) {
		if (*v == '\'' || *v == '\\')
			out[o++] = '\\';
		out[o++] = *v;
	}
	snprintf(out + o, cap - o, "'");
}

/* The conninfo of $TANDEM_TEST_PG_URL with another database name. */
static int pg_url_for(const char *dbname, char *out, size_t cap)
{
	char *msg = NULL;
	PQconninfoOption *opts = PQconninfoParse(pg_base_url, &msg);
	if (!opts) {
		print_error("TANDEM_TEST_PG_URL does not parse: %s\n", msg ? msg : "?");
		PQfreemem(msg);
		return -1;
	}
	out[0] = '\0';
	for (PQconninfoOption *o = opts; o->keyword; o++)
		if (o->val && *o->val && strcmp(o->keyword, "dbname") != 0)
			conninfo_add(out, cap, o->keyword, o->val);
	conninfo_add(out, cap, "dbname", dbname);
	PQconninfoFree(opts);
	return 0;
}

static int pg_admin_script(const char *sql, struct error *err)
{
	struct db_conn *c = store_conn(pg_admin, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	return c->driver->exec_script(c, sql, err);
}

int setup_pg(void **state)
{
	struct fixture *f = fixture_new(POSTGRES);
	char sql[160];
	*state = f;
	snprintf(f->dbname, sizeof(f->dbname), "tandem_unit_%ld_%u", (long)getpid(), ++db_counter);
	/* One statement per call: CREATE DATABASE refuses to share an implicit transaction. */
	snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", f->dbname);
	if (pg_admin_script(sql, &f->err) < 0)
		goto fail;
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", f->dbname);
	if (pg_admin_script(sql, &f->err) < 0)
		goto fail;
	if (pg_url_for(f->dbname, f->url, sizeof(f->url)) < 0)
		return setup_done(state, -1);
	return setup_done(state, open_and_migrate(f));
fail:
	print_error("cannot create test database %s: %s\n", f->dbname, f->err.detail);
	f->dbname[0] = '\0';
	return setup_done(state, -1);
}

static void remove_dir(const char *dir)
{
	static const char *const files[] = {"test.db", "test.db-wal", "test.db-shm",
					    "test.db-journal"};
	char path[300];
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		unlink(path);
	}
	rmdir(dir);
}

int teardown(void **state)
{
	struct fixture *f = *state;
	if (!f)
		return 0;
	store_free(f->s);
	if (f->backend == SQLITE && f->dir[0]) {
		remove_dir(f->dir);
	} else if (f->backend == POSTGRES && f->dbname[0]) {
		char sql[160];
		struct error err = ERROR_INIT;
		snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", f->dbname);
		if (pg_admin_script(sql, &err) < 0)
			print_error("cannot drop %s: %s\n", f->dbname, err.detail);
		error_release(&err);
	}
	fixture_free(f);
	return 0;
}

int group_setup_pg(void **state)
{
	struct error err = ERROR_INIT;
	pg_base_url = getenv("TANDEM_TEST_PG_URL");
	if (!pg_base_url || !*pg_base_url) {
		print_error("TANDEM_TEST_PG_URL is not set: the PostgreSQL contract tests cannot "
			    "run (set TANDEM_TEST_PG_OPTIONAL=1 to skip them on purpose)\n");
		return -1;
	}
	if (store_create(pg_base_url, &pg_admin, &err) < 0 || store_ping(pg_admin, &err) < 0) {
		print_error("PostgreSQL at TANDEM_TEST_PG_URL does not answer: %s\n", err.detail);
		error_release(&err);
		return -1;
	}
	return 0;
}

int group_teardown_pg(void **state)
{
	store_free(pg_admin);
	pg_admin = NULL;
	return 0;
}

/* ---- helpers ------------------------------------------------------------------------ */

/* DB_TEXT for a char array (the macro's NULL test trips -Waddress on an array). */
struct db_param txt(const char *s)
{
	return DB_TEXT(s);
}

void ok(struct fixture *f, int rc, const char *what)
{
	if (rc < 0)
		fail_msg("%s failed (%d): %s", what, rc, f->err.detail);
}

int64_t count_rows(struct fixture *f, struct db_conn *c, const char *sql)
{
	struct db_rows r;
	ok(f, db_query(c, &f->a, sql, NULL, 0, &r, &f->err), sql);
	assert_int_equal(r.nrows, 1);
	return db_int(&r, 0, 0);
}

int64_t count_users(struct fixture *f, struct db_conn *c)
{
	return count_rows(f, c, "SELECT COUNT(*) FROM users");
}

/* Insert a user named `name`; id may be NULL for a fresh one. Returns db_exec's rc. */
int insert_user(struct fixture *f, struct db_conn *c, const char *id, const char *name,
		char out_id[UUID_STR_LEN])
{
	char idbuf[UUID_STR_LEN], email[128];
	if (!id) {
		uuid_v7(idbuf);
		id = idbuf;
	}
	if (out_id)
		memcpy(out_id, id, UUID_STR_LEN);
	snprintf(email, sizeof(email), "%s@example.com", name);
	int64_t now = time_now_ms();
	struct db_param p[] = {txt(id), txt(name), txt(email), DB_TEXT("x"), DB_INT(now)};
	return db_exec(c,
		       "INSERT INTO users (id, username, email, password_hash, created_at, "
		       "updated_at) VALUES ($1, $2, $3, $4, $5, $5)",
		       p, DB_NPARAMS(p), &f->err);
}

void must_insert_user(struct fixture *f, const char *name, char out_id[UUID_STR_LEN])
{
	ok(f, insert_user(f, f->c, NULL, name, out_id), "insert user");
}

int store_suite_main(const char *name, const struct CMUnitTest *sqlite, const struct CMUnitTest *pg,
		     size_t n)
{
	char group[128];
	int failed = 0;

	log_set_level(LOG_WARN); /* "applied migration" lines would drown the test output */
	snprintf(group, sizeof(group), "%s: sqlite", name);
	failed += _cmocka_run_group_tests(group, sqlite, n, NULL, NULL);
	const char *url = getenv("TANDEM_TEST_PG_URL");
	const char *optional = getenv("TANDEM_TEST_PG_OPTIONAL");
	snprintf(group, sizeof(group), "%s: postgres", name);
	if ((!url || !*url) && optional && !strcmp(optional, "1"))
		print_message("%s skipped (TANDEM_TEST_PG_URL unset and "
			      "TANDEM_TEST_PG_OPTIONAL=1)\n",
			      group);
	else
		failed += _cmocka_run_group_tests(group, pg, n, group_setup_pg, group_teardown_pg);
	return failed ? 1 : 0;
}
