/*
 * tasks.c — see tasks.h.
 *
 * Keyset pagination: a page starts strictly after the cursor row in the list's total order
 * (the sort keys, then the id). When every key runs the same way and none is nullable, the
 * condition is a row-value comparison, which both PostgreSQL and SQLite turn into an index
 * range on (project_id, key, id). Otherwise it is the expanded form
 * k1 > v1 OR (k1 = v1 AND (k2 > v2 OR ...)), with due_date's NULLs sorting last.
 */
#include "store/tasks.h"
#include "core/arena.h"
#include "core/error.h"
#include "store/db.h"
#include "store/query.h"

#include <stdio.h>
#include <string.h>

#define TASK_COLUMNS                                                                               \
	"t.id, t.project_id, t.title, t.description, t.status, t.priority_rank, t.assignee_id, "   \
	"t.due_date, t.created_by, t.created_at, t.updated_at, t.version"

/* The same columns unqualified, for RETURNING (SQLite allows no table prefix there). */
#define TASK_COLUMNS_BARE                                                                          \
	"id, project_id, title, description, status, priority_rank, assignee_id, due_date, "       \
	"created_by, created_at, updated_at, version"

static void read_task(const struct db_rows *r, int row, struct task *t)
{
	t->id = db_val(r, row, 0);
	t->project_id = db_val(r, row, 1);
	t->title = db_val(r, row, 2);
	t->description = db_val(r, row, 3);
	t->status = db_val(r, row, 4);
	t->priority = (int)db_int(r, row, 5);
	t->assignee_id = db_val(r, row, 6);
	t->has_due = db_val(r, row, 7) != NULL;
	t->due_date = db_int(r, row, 7);
	t->created_by = db_val(r, row, 8);
	t->created_at = db_int(r, row, 9);
	t->updated_at = db_int(r, row, 10);
	t->version = db_int(r, row, 11);
	t->role = r->ncols > 12 ? db_val(r, row, 12) : NULL;
}

static struct db_param due_param(const struct task *t)
{
	return t->has_due ? DB_INT(t->due_date) : DB_NULLP;
}

int store_task_insert(struct db_conn *c, const struct task *t, struct error *err)
{
	struct db_param v[] = {
	    DB_TEXT(t->id),	     DB_TEXT(t->project_id), DB_TEXT(t->title),
	    DB_TEXT(t->description), DB_TEXT(t->status),     DB_INT(t->priority),
	    DB_TEXT(t->assignee_id), due_param(t),	     DB_TEXT(t->created_by),
	    DB_INT(t->created_at),   DB_INT(t->updated_at)};
	return db_exec(c,
		       "INSERT INTO tasks (id, project_id, title, description, status, "
		       "priority_rank, assignee_id, due_date, created_by, created_at, updated_at, "
		       "version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 1)",
		       v, DB_NPARAMS(v), err);
}

int store_task_get_for(struct db_conn *c, struct arena *a, const char *id, const char *user_id,
		       struct task *out, struct error *err)
{
	struct db_rows r;
	struct db_param v[] = {DB_TEXT(id), DB_TEXT(user_id)};
	int rc = db_query(c, a,
			  "SELECT " TASK_COLUMNS ", m.role FROM tasks t LEFT JOIN memberships m "
			  "ON m.project_id = t.project_id AND m.user_id = $2 WHERE t.id = $1",
			  v, 2, &r, err);
	if (rc < 0)
		return rc;
	if (r.nrows == 0)
		return error_set(err, ERR_NOT_FOUND, "no such task");
	read_task(&r, 0, out);
	return 0;
}

int store_task_update(struct db_conn *c, const struct task *t, int64_t expected_version,
		      bool *updated, struct error *err)
{
	struct arena a;
	struct db_rows r;
	struct db_param v[] = {DB_TEXT(t->id),	   DB_TEXT(t->title),	  DB_TEXT(t->description),
			       DB_TEXT(t->status), DB_INT(t->priority),	  DB_TEXT(t->assignee_id),
			       due_param(t),	   DB_INT(t->updated_at), DB_INT(expected_version)};
	arena_init(&a);
	int rc = db_query(c, &a,
			  "UPDATE tasks SET title = $2, description = $3, status = $4, "
			  "priority_rank = $5, assignee_id = $6, due_date = $7, updated_at = $8, "
			  "version = version + 1 WHERE id = $1 AND ($9 = 0 OR version = $9)",
			  v, DB_NPARAMS(v), &r, err);
	*updated = rc == 0 && r.affected > 0;
	arena_release(&a);
	return rc;
}

int store_task_delete(struct db_conn *c, const char *id, int64_t expected_version, bool *deleted,
		      struct error *err)
{
	struct arena a;
	struct db_rows r;
	struct db_param v[] = {DB_TEXT(id), DB_INT(expected_version)};
	arena_init(&a);
	int rc = db_query(c, &a, "DELETE FROM tasks WHERE id = $1 AND ($2 = 0 OR version = $2)", v,
			  2, &r, err);
	*deleted = rc == 0 && r.affected > 0;
	arena_release(&a);
	return rc;
}

static int read_list(struct arena *a, const struct db_rows *r, struct task **out, int *count)
{
	*out = arena_alloc(a, sizeof(struct task) * (size_t)(r->nrows + 1));
	for (int i = 0; i < r->nrows; i++)
		read_task(r, i, &(*out)[i]);
	*count = r->nrows;
	return 0;
}

int store_task_unassign(struct db_conn *c, struct arena *a, const char *project_id,
			const char *user_id, int64_t now, struct task **out, int *count,
			struct error *err)
{
	struct db_rows r;
	struct db_param v[] = {DB_TEXT(project_id), DB_TEXT(user_id), DB_INT(now)};
	int rc = db_query(c, a,
			  "UPDATE tasks SET assignee_id = NULL, updated_at = $3, "
			  "version = version + 1 WHERE project_id = $1 AND assignee_id = $2 "
			  "RETURNING " TASK_COLUMNS_BARE,
			  v, 3, &r, err);
	if (rc < 0)
		return rc;
	return read_list(a, &r, out, count);
}

/* ---- listing ---- */

struct key {
	const char *expr;
	bool desc, nullable;
};

static int sort_keys(const struct task_filter *f, struct key *keys)
{
	int n = 0;
	for (int i = 0; i < f->nsort; i++) {
		const struct task_sort *s = &f->sort[i];
		static const char *const exprs[] = {"t.created_at", "t.updated_at", "t.due_date",
						    "t.priority_rank"};
		keys[n++] = (struct key){exprs[s->key], s->desc, s->key == TASK_SORT_DUE};
	}
	bool last_desc = n ? keys[n - 1].desc : true;
	keys[n++] = (struct key){"t.id", last_desc, false};
	return n;
}

static struct db_param key_value(json_t *v)
{
	if (json_is_integer(v))
		return DB_INT(json_integer_value(v));
	if (json_is_string(v))
		return DB_TEXT(json_string_value(v));
	return DB_NULLP;
}

/* Rows strictly after the cursor, keys[i..n). */
static void after_expanded(struct query *q, const struct key *keys, int i, int n, json_t *vals)
{
	const struct key *k = &keys[i];
	json_t *v = json_array_get(vals, (size_t)i);
	const char *op = k->desc ? " < " : " > ";
	bool last = i == n - 1;

	query_add(q, "(");
	if (k->nullable && json_is_null(v)) {
		/* Cursor row has no due date: only other undated rows can follow it. */
		if (last) {
			query_add(q, "1 = 0");
		} else {
			query_add(q, k->expr);
			query_add(q, " IS NULL AND ");
			after_expanded(q, keys, i + 1, n, vals);
		}
		query_add(q, ")");
		return;
	}
	query_add(q, k->expr);
	query_add(q, op);
	query_param(q, key_value(v));
	if (k->nullable) {
		query_add(q, " OR ");
		query_add(q, k->expr);
		query_add(q, " IS NULL");
	}
	if (!last) {
		query_add(q, " OR (");
		query_add(q, k->expr);
		query_add(q, " = ");
		query_param(q, key_value(v));
		query_add(q, " AND ");
		after_expanded(q, keys, i + 1, n, vals);
		query_add(q, ")");
	}
	query_add(q, ")");
}

/*
 * A list of values as one parameter, so that the query's text does not depend on how many
 * there are (one shape, one prepared statement, whatever the client sends): a PostgreSQL
 * array literal, or a JSON array for SQLite's json_each. `strs` or `ints` holds n values.
 */
static struct db_param list_param(struct arena *a, enum db_dialect d, const char *const *strs,
				  const int *ints, int n)
{
	size_t cap = 3;
	for (int i = 0; i < n; i++)
		cap += strs ? 6 * strlen(strs[i]) + 3 : 24;
	char *out = arena_alloc(a, cap), *p = out;
	*p++ = d == DB_POSTGRES ? '{' : '[';
	for (int i = 0; i < n; i++) {
		if (i)
			*p++ = ',';
		if (!strs) {
			p += snprintf(p, 24, "%d", ints[i]);
			continue;
		}
		/* Both forms quote with '"' and escape '"' and '\' with a backslash; JSON also
		 * wants control characters escaped (the words are client text). */
		*p++ = '"';
		for (const char *s = strs[i]; *s; s++) {
			if (d == DB_SQLITE && (unsigned char)*s < 0x20) {
				p += snprintf(p, 7, "\\u%04x", (unsigned char)*s);
				continue;
			}
			if (*s == '"' || *s == '\\')
				*p++ = '\\';
			*p++ = *s;
		}
		*p++ = '"';
	}
	*p++ = d == DB_POSTGRES ? '}' : ']';
	*p = '\0';
	return DB_TEXT(out);
}

/* " AND col IN (the values of one list parameter)" */
static void add_in(struct query *q, enum db_dialect d, const char *col, const char *pg_type,
		   struct db_param list)
{
	query_add(q, " AND ");
	query_add(q, col);
	if (d == DB_POSTGRES) {
		query_add(q, " = ANY(");
		query_param(q, list);
		query_add(q, "::");
		query_add(q, pg_type);
		query_add(q, ")");
	} else {
		query_add(q, " IN (SELECT value FROM json_each(");
		query_param(q, list);
		query_add(q, "))");
	}
}

/* The filters of f and the keyset condition, each as " AND ...". */
static void add_conditions(struct query *q, struct arena *a, enum db_dialect d,
			   const struct task_filter *f, const struct key *keys, int nkeys)
{
	if (f->nstatuses)
		add_in(q, d, "t.status", "text[]",
		       list_param(a, d, f->statuses, NULL, f->nstatuses));
	if (f->npriorities)
		add_in(q, d, "t.priority_rank", "int[]",
		       list_param(a, d, NULL, f->priorities, f->npriorities));
	if (f->assignee_none) {
		query_add(q, " AND t.assignee_id IS NULL");
	} else if (f->assignee_id) {
		query_add(q, " AND t.assignee_id = ");
		query_param(q, DB_TEXT(f->assignee_id));
	}
	if (f->has_due_before) {
		query_add(q, " AND t.due_date < ");
		query_param(q, DB_INT(f->due_before));
	}
	if (f->has_due_after) {
		query_add(q, " AND t.due_date > ");
		query_param(q, DB_INT(f->due_after));
	}
	if (f->has_updated_since) {
		query_add(q, " AND t.updated_at >= ");
		query_param(q, DB_INT(f->updated_since));
	}
	if (f->nwords) {
		const char *pats[TASK_MAX_WORDS];
		for (int i = 0; i < f->nwords; i++)
			pats[i] = query_like_pattern(a, f->words[i]);
		/* Every word matches (no word fails to match), the words one list parameter.
		 * lower() on both sides: the database folds case its own way (PostgreSQL by
		 * its ctype, beyond ASCII), so the word must be folded the same way. */
		query_add(q, d == DB_POSTGRES ? " AND NOT EXISTS (SELECT 1 FROM unnest("
					      : " AND NOT EXISTS (SELECT 1 FROM json_each(");
		query_param(q, list_param(a, d, pats, NULL, f->nwords));
		query_add(q, d == DB_POSTGRES ? "::text[]) w(value)" : ") w");
		query_add(q, " WHERE NOT (lower(t.title) LIKE lower(w.value) ESCAPE '\\' OR "
			     "lower(t.description) LIKE lower(w.value) ESCAPE '\\'))");
	}
	if (f->after) {
		bool uniform = true;
		for (int i = 0; i < nkeys; i++)
			uniform &= !keys[i].nullable && keys[i].desc == keys[0].desc;
		query_add(q, " AND ");
		if (uniform) {
			query_add(q, "(");
			for (int i = 0; i < nkeys; i++) {
				query_add(q, i ? ", " : "");
				query_add(q, keys[i].expr);
			}
			query_add(q, keys[0].desc ? ") < (" : ") > (");
			for (int i = 0; i < nkeys; i++) {
				query_add(q, i ? ", " : "");
				query_param(q, key_value(json_array_get(f->after, (size_t)i)));
			}
			query_add(q, ")");
		} else {
			after_expanded(q, keys, 0, nkeys, f->after);
		}
	}
}

/* " ORDER BY ... LIMIT $n" */
static void add_order_limit(struct query *q, const struct key *keys, int nkeys, int limit)
{
	query_add(q, " ORDER BY ");
	for (int i = 0; i < nkeys; i++) {
		query_add(q, i ? ", " : "");
		query_add(q, keys[i].expr);
		query_add(q, keys[i].desc ? " DESC" : " ASC");
		if (keys[i].nullable)
			query_add(q, " NULLS LAST");
	}
	query_add(q, " LIMIT ");
	query_param(q, DB_INT(limit));
}

int store_task_list(struct db_conn *c, struct arena *a, const struct task_filter *f,
		    struct task **out, int *count, struct error *err)
{
	struct query q;
	struct db_rows r;
	struct key keys[TASK_MAX_SORT + 1];
	int nkeys = sort_keys(f, keys);

	query_init(&q, a);
	if (f->project_id) {
		query_add(&q, "SELECT " TASK_COLUMNS " FROM tasks t WHERE t.project_id = ");
		query_param(&q, DB_TEXT(f->project_id));
		add_conditions(&q, a, c->dialect, f, keys, nkeys);
		add_order_limit(&q, keys, nkeys, f->limit);
	} else if (c->dialect == DB_POSTGRES) {
		/*
		 * Every project of the caller. Reading every matching task of all of them and
		 * sorting the lot costs in proportion to all their tasks (on PostgreSQL a hash
		 * join or bitmap scans, then a top-N sort). Instead each project yields only its
		 * first `limit` rows, read in order from its (project_id, key, id) index from the
		 * cursor on, and at most projects x limit rows are merged. The page is the same:
		 * each of its rows is among the first `limit` of its own project.
		 */
		query_add(&q, "SELECT " TASK_COLUMNS " FROM memberships m CROSS JOIN LATERAL "
			      "(SELECT t.* FROM tasks t WHERE t.project_id = m.project_id");
		add_conditions(&q, a, c->dialect, f, keys, nkeys);
		add_order_limit(&q, keys, nkeys, f->limit);
		query_add(&q, ") t WHERE m.user_id = ");
		query_param(&q, DB_TEXT(f->member_id));
		add_order_limit(&q, keys, nkeys, f->limit);
	} else {
		/*
		 * SQLite has no LATERAL. Its plan here reads the projects' tasks through the
		 * index and sorts them in a temporary b-tree, 1-4 ms at 100k tasks; the same
		 * per-project LIMIT written as a correlated IN (SELECT rowid ... LIMIT) was
		 * faster for one sort and slower for others, so it stays as it is.
		 */
		query_add(&q, "SELECT " TASK_COLUMNS " FROM tasks t WHERE t.project_id IN "
			      "(SELECT project_id FROM memberships WHERE user_id = ");
		query_param(&q, DB_TEXT(f->member_id));
		query_add(&q, ")");
		add_conditions(&q, a, c->dialect, f, keys, nkeys);
		add_order_limit(&q, keys, nkeys, f->limit);
	}
	if (q.overflow)
		return error_set(err, ERR_BAD_REQUEST, "too many filter values");
	int rc = db_query(c, a, query_sql(&q), q.params, q.nparams, &r, err);
	if (rc < 0)
		return rc;
	return read_list(a, &r, out, count);
}

json_t *store_task_cursor_keys(const struct task_filter *f, const struct task *t)
{
	json_t *keys = json_array();
	for (int i = 0; i < f->nsort; i++) {
		switch (f->sort[i].key) {
		case TASK_SORT_CREATED:
			json_array_append_new(keys, json_integer(t->created_at));
			break;
		case TASK_SORT_UPDATED:
			json_array_append_new(keys, json_integer(t->updated_at));
			break;
		case TASK_SORT_DUE:
			json_array_append_new(keys,
					      t->has_due ? json_integer(t->due_date) : json_null());
			break;
		case TASK_SORT_PRIORITY:
			json_array_append_new(keys, json_integer(t->priority));
			break;
		}
	}
	json_array_append_new(keys, json_string(t->id));
	return keys;
}
