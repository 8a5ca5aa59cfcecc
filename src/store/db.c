/* db.c — the thin wrappers of db.h over a connection's driver. */
#include "store/db.h"
#include "core/arena.h"
#include "core/error.h"

#include <stdlib.h>

int db_query(struct db_conn *c, struct arena *a, const char *sql, const struct db_param *p, int np,
	     struct db_rows *out, struct error *err)
{
	return c->driver->query(c, a, sql, p, np, out, err);
}

int db_exec(struct db_conn *c, const char *sql, const struct db_param *p, int np, struct error *err)
{
	return c->driver->query(c, NULL, sql, p, np, NULL, err);
}

int db_exec_affected(struct db_conn *c, const char *sql, const struct db_param *p, int np,
		     int64_t *affected, struct error *err)
{
	struct db_rows r;
	struct arena a;
	arena_init(&a);
	int rc = c->driver->query(c, &a, sql, p, np, &r, err);
	*affected = rc < 0 ? 0 : r.affected;
	arena_release(&a);
	return rc;
}

int db_begin(struct db_conn *c, bool write, struct error *err)
{
	return c->driver->begin(c, write, err);
}

int db_commit(struct db_conn *c, struct error *err)
{
	return c->driver->commit(c, err);
}

void db_rollback(struct db_conn *c)
{
	c->driver->rollback(c);
}

int db_cached_statements(struct db_conn *c)
{
	return c->driver->cached_statements(c);
}

int64_t db_int(const struct db_rows *r, int row, int col)
{
	const char *v = db_val(r, row, col);
	return v ? strtoll(v, NULL, 10) : 0;
}

bool db_bool(const struct db_rows *r, int row, int col)
{
	const char *v = db_val(r, row, col);
	return v && (v[0] == '1' || v[0] == 't');
}
