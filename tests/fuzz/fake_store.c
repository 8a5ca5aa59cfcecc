/* fake_store.c — the database that is never there (see fuzz.h). */
#include "fuzz.h"
#include "config/config.h"
#include "core/error.h"
#include "store/db.h"

#include <sanitizer/common_interface_defs.h>
#include <string.h>

struct store;

static unsigned long queries;

static int fake_connect(const char *url, struct db_backoff *backoff, struct db_conn **out,
			struct error *err)
{
	(void)url;
	(void)backoff;
	*out = NULL;
	return error_set(err, ERR_UNAVAILABLE, "fuzz: no database");
}

static void fake_disconnect(struct db_conn *c)
{
	(void)c;
}

static int fake_query(struct db_conn *c, struct arena *a, const char *sql, const struct db_param *p,
		      int np, struct db_rows *out, struct error *err)
{
	(void)c;
	(void)a;
	(void)sql;
	(void)p;
	(void)np;
	queries++;
	if (out)
		memset(out, 0, sizeof(*out));
	return error_set(err, ERR_UNAVAILABLE, "fuzz: no database");
}

static int fake_exec_script(struct db_conn *c, const char *sql, struct error *err)
{
	(void)c;
	(void)sql;
	return error_set(err, ERR_UNAVAILABLE, "fuzz: no database");
}

static int fake_begin(struct db_conn *c, bool write, struct error *err)
{
	(void)write;
	(void)err;
	c->tx_depth++;
	return 0;
}

static int fake_commit(struct db_conn *c, struct error *err)
{
	(void)err;
	c->tx_depth--;
	return 0;
}

static void fake_rollback(struct db_conn *c)
{
	c->tx_depth--;
}

static int fake_migration_lock(struct db_conn *c, bool lock, struct error *err)
{
	(void)c;
	(void)lock;
	return error_set(err, ERR_UNAVAILABLE, "fuzz: no database");
}

static const struct db_driver fake_driver = {
    .name = "fuzz",
    .dialect = DB_SQLITE,
    .connect = fake_connect,
    .disconnect = fake_disconnect,
    .query = fake_query,
    .exec_script = fake_exec_script,
    .begin = fake_begin,
    .commit = fake_commit,
    .rollback = fake_rollback,
    .migration_lock = fake_migration_lock,
};

static struct db_conn fake_conn = {.driver = &fake_driver, .dialect = DB_SQLITE};

struct db_conn *fuzz_fake_conn(void)
{
	return &fake_conn;
}

unsigned long fuzz_fake_queries(void)
{
	return queries;
}

/* Linked with -Wl,--wrap=store_conn: every service's connection is the fake one. */
struct db_conn *__wrap_store_conn(struct store *s, struct error *err);
struct db_conn *__wrap_store_conn(struct store *s, struct error *err)
{
	(void)s;
	(void)err;
	return &fake_conn;
}

char *fuzz_string(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		abort();
	if (size)
		memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

void fuzz_fail(const char *file, int line, const char *what)
{
	char msg[512];
	snprintf(msg, sizeof(msg), "property failed at %s:%d: %s", file, line, what);
	__sanitizer_report_error_summary(msg);
	abort();
}

int fuzz_config(struct config *cfg, int nflags, const char *const *flags)
{
	char *argv[16] = {"fuzz"};
	if (nflags > 15)
		abort();
	for (int i = 0; i < nflags; i++)
		argv[i + 1] = (char *)flags[i];
	return config_load(cfg, nflags + 1, argv, 1, stderr);
}
