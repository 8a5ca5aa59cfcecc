/* projects.c — see projects.h. SQL written once for both dialects. */
#include "store/projects.h"
#include "core/arena.h"
#include "core/error.h"
#include "store/db.h"
#include "store/query.h"

#include <string.h>

#define PROJECT_COLUMNS                                                                            \
	"p.id, p.name, p.description, p.owner_id, m.role, p.created_at, p.updated_at, "            \
	"p.version, p.event_seq"

static void read_project(const struct db_rows *r, int row, struct project *p)
{
	p->id = db_val(r, row, 0);
	p->name = db_val(r, row, 1);
	p->description = db_val(r, row, 2);
	p->owner_id = db_val(r, row, 3);
	p->role = db_val(r, row, 4);
	p->created_at = db_int(r, row, 5);
	p->updated_at = db_int(r, row, 6);
	p->version = db_int(r, row, 7);
	p->event_seq = db_int(r, row, 8);
}

int store_project_seq(struct db_conn *c, struct arena *a, const char *id, int64_t *seq,
		      struct error *err)
{
	struct db_rows r;
	struct db_param v[] = {DB_TEXT(id)};
	int rc = db_query(c, a, "SELECT event_seq FROM projects WHERE id = $1", v, 1, &r, err);
	if (rc < 0)
		return rc;
	if (r.nrows == 0)
		return error_set(err, ERR_NOT_FOUND, "no such project");
	*seq = db_int(&r, 0, 0);
	return 0;
}

int store_project_lock(struct db_conn *c, const char *id, struct error *err)
{
	struct db_param v[] = {DB_TEXT(id)};
	if (c->dialect == DB_SQLITE)
		return 0;
	return db_exec(c, "SELECT id FROM projects WHERE id = $1 FOR UPDATE", v, 1, err);
}

int store_project_insert(struct db_conn *c, const struct project *p, struct error *err)
{
	struct db_param v[] = {DB_TEXT(p->id),	     DB_TEXT(p->name),	    DB_TEXT(p->description),
			       DB_TEXT(p->owner_id), DB_INT(p->created_at), DB_INT(p->updated_at)};
	return db_exec(c,
		       "INSERT INTO projects (id, name, description, owner_id, event_seq, "
		       "created_at, updated_at, version) VALUES ($1, $2, $3, $4, 0, $5, $6, 1)",
		       v, DB_NPARAMS(v), err);
}

int store_project_get_for(struct db_conn *c, struct arena *a, const char *id, const char *user_id,
			  struct project *out, struct error *err)
{
	struct db_rows r;
	struct db_param v[] = {DB_TEXT(id), DB_TEXT(user_id)};
	int rc = db_query(c, a,
			  "SELECT " PROJECT_COLUMNS " FROM projects p JOIN memberships m "
			  "ON m.project_id = p.id AND m.user_id = $2 WHERE p.id = $1",
			  v, 2, &r, err);
	if (rc < 0)
		return rc;
	if (r.nrows == 0)
		return error_set(err, ERR_NOT_FOUND, "no such project");
	read_project(&r, 0, out);
	return 0;
}

int store_project_list_for(struct db_conn *c, struct arena *a, const char *user_id, const char *q,
			   const char *after_id, int limit, struct project **out, int *count,
			   struct error *err)
{
	struct query qb;
	struct db_rows r;
	query_init(&qb, a);
	query_add(&qb, "SELECT " PROJECT_COLUMNS " FROM memberships m JOIN projects p "
		       "ON p.id = m.project_id WHERE m.user_id = ");
	query_param(&qb, DB_TEXT(user_id));
	if (after_id) {
		query_add(&qb, " AND p.id < ");
		query_param(&qb, DB_TEXT(after_id));
	}
	if (q && *q) {
		query_add(&qb, " AND lower(p.name) LIKE lower(");
		query_param(&qb, DB_TEXT(query_like_pattern(a, q)));
		query_add(&qb, ") ESCAPE '\\'");
	}
	query_add(&qb, " ORDER BY p.id DESC LIMIT ");
	query_param(&qb, DB_INT(limit));
	int rc = db_query(c, a, query_sql(&qb), qb.params, qb.nparams, &r, err);
	if (rc < 0)
		return rc;
	*out = arena_alloc(a, sizeof(struct project) * (size_t)(r.nrows + 1));
	for (int i = 0; i < r.nrows; i++)
		read_project(&r, i, &(*out)[i]);
	*count = r.nrows;
	return 0;
}

int store_project_update(struct db_conn *c, const struct project *p, int64_t expected_version,
			 bool *updated, struct error *err)
{
	struct db_rows r;
	struct arena a;
	struct db_param v[] = {DB_TEXT(p->id), DB_TEXT(p->name), DB_TEXT(p->description),
			       DB_INT(p->updated_at), DB_INT(expected_version)};
	arena_init(&a);
	int rc = db_query(c, &a,
			  "UPDATE projects SET name = $2, description = $3, updated_at = $4, "
			  "version = version + 1 WHERE id = $1 AND ($5 = 0 OR version = $5)",
			  v, DB_NPARAMS(v), &r, err);
	*updated = rc == 0 && r.affected > 0;
	arena_release(&a);
	return rc;
}

int store_project_set_owner(struct db_conn *c, const char *id, const char *owner_id, int64_t now,
			    struct error *err)
{
	struct db_param v[] = {DB_TEXT(id), DB_TEXT(owner_id), DB_INT(now)};
	return db_exec(c,
		       "UPDATE projects SET owner_id = $2, updated_at = $3, version = version + 1 "
		       "WHERE id = $1",
		       v, 3, err);
}

int store_project_delete(struct db_conn *c, const char *id, struct error *err)
{
	struct db_param v[] = {DB_TEXT(id)};
	return db_exec(c, "DELETE FROM projects WHERE id = $1", v, 1, err);
}

int store_member_role(struct db_conn *c, struct arena *a, const char *project_id,
		      const char *user_id, const char **role, struct error *err)
{
	struct db_rows r;
	struct db_param v[] = {DB_TEXT(project_id), DB_TEXT(user_id)};
	int rc =
	    db_query(c, a, "SELECT role FROM memberships WHERE project_id = $1 AND user_id = $2", v,
		     2, &r, err);
	if (rc < 0)
		return rc;
	*role = r.nrows ? db_val(&r, 0, 0) : NULL;
	return 0;
}

int store_member_insert(struct db_conn *c, const char *project_id, const char *user_id,
			const char *role, int64_t joined_at, struct error *err)
{
	struct db_param v[] = {DB_TEXT(project_id), DB_TEXT(user_id), DB_TEXT(role),
			       DB_INT(joined_at)};
	return db_exec(c,
		       "INSERT INTO memberships (project_id, user_id, role, joined_at) "
		       "VALUES ($1, $2, $3, $4)",
		       v, 4, err);
}

int store_member_set_role(struct db_conn *c, const char *project_id, const char *user_id,
			  const char *role, struct error *err)
{
	struct db_param v[] = {DB_TEXT(project_id), DB_TEXT(user_id), DB_TEXT(role)};
	return db_exec(c, "UPDATE memberships SET role = $3 WHERE project_id = $1 AND user_id = $2",
		       v, 3, err);
}

int store_member_delete(struct db_conn *c, const char *project_id, const char *user_id,
			struct error *err)
{
	struct db_param v[] = {DB_TEXT(project_id), DB_TEXT(user_id)};
	return db_exec(c, "DELETE FROM memberships WHERE project_id = $1 AND user_id = $2", v, 2,
		       err);
}

#define MEMBER_COLUMNS                                                                             \
	"u.id, u.username, u.email, u.display_name, '', u.is_active, u.is_admin, "                 \
	"u.token_version, u.created_at, u.updated_at, u.version, m.role, m.joined_at"

static void read_member(const struct db_rows *r, int row, struct member *m)
{
	store_user_read(r, row, 0, &m->user);
	m->user.password_hash = NULL; /* never selected for members: '' stands in its place */
	m->role = db_val(r, row, 11);
	m->joined_at = db_int(r, row, 12);
}

int store_member_get(struct db_conn *c, struct arena *a, const char *project_id,
		     const char *user_id, struct member *out, struct error *err)
{
	struct db_rows r;
	struct db_param v[] = {DB_TEXT(project_id), DB_TEXT(user_id)};
	int rc = db_query(c, a,
			  "SELECT " MEMBER_COLUMNS " FROM memberships m JOIN users u "
			  "ON u.id = m.user_id WHERE m.project_id = $1 AND m.user_id = $2",
			  v, 2, &r, err);
	if (rc < 0)
		return rc;
	if (r.nrows == 0)
		return error_set(err, ERR_NOT_FOUND, "no such member");
	read_member(&r, 0, out);
	return 0;
}

int store_member_list(struct db_conn *c, struct arena *a, const char *project_id,
		      const char *after_user, int limit, struct member **out, int *count,
		      struct error *err)
{
	struct query qb;
	struct db_rows r;
	query_init(&qb, a);
	query_add(&qb, "SELECT " MEMBER_COLUMNS " FROM memberships m JOIN users u "
		       "ON u.id = m.user_id WHERE m.project_id = ");
	query_param(&qb, DB_TEXT(project_id));
	if (after_user) {
		query_add(&qb, " AND m.user_id > ");
		query_param(&qb, DB_TEXT(after_user));
	}
	query_add(&qb, " ORDER BY m.user_id LIMIT ");
	query_param(&qb, DB_INT(limit));
	int rc = db_query(c, a, query_sql(&qb), qb.params, qb.nparams, &r, err);
	if (rc < 0)
		return rc;
	*out = arena_alloc(a, sizeof(struct member) * (size_t)(r.nrows + 1));
	for (int i = 0; i < r.nrows; i++)
		read_member(&r, i, &(*out)[i]);
	*count = r.nrows;
	return 0;
}

int store_event_append(struct db_conn *c, const char *project_id, const char *type,
		       const char *actor_id, const char *data, int64_t now, int64_t *seq,
		       struct error *err)
{
	struct arena a;
	struct db_rows r;
	struct db_param v[] = {DB_TEXT(project_id)};
	arena_init(&a);
	int rc = db_query(c, &a,
			  "UPDATE projects SET event_seq = event_seq + 1 WHERE id = $1 "
			  "RETURNING event_seq",
			  v, 1, &r, err);
	if (rc == 0 && r.nrows == 0)
		rc = error_set(err, ERR_NOT_FOUND, "no such project");
	if (rc == 0) {
		*seq = db_int(&r, 0, 0);
		struct db_param e[] = {DB_TEXT(project_id), DB_INT(*seq), DB_TEXT(type),
				       DB_TEXT(actor_id),   DB_INT(now),  DB_TEXT(data)};
		rc = db_exec(
		    c,
		    "INSERT INTO events (project_id, seq, type, actor_id, created_at, data) "
		    "VALUES ($1, $2, $3, $4, $5, $6)",
		    e, DB_NPARAMS(e), err);
	}
	arena_release(&a);
	return rc;
}

int store_event_list(struct db_conn *c, struct arena *a, const char *project_id, int64_t after,
		     int limit, struct event **out, int *count, struct error *err)
{
	struct db_rows r;
	struct db_param v[] = {DB_TEXT(project_id), DB_INT(after), DB_INT(limit)};
	int rc = db_query(c, a,
			  "SELECT seq, project_id, type, actor_id, created_at, data FROM events "
			  "WHERE project_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
			  v, 3, &r, err);
	if (rc < 0)
		return rc;
	*out = arena_alloc(a, sizeof(struct event) * (size_t)(r.nrows + 1));
	for (int i = 0; i < r.nrows; i++) {
		struct event *e = &(*out)[i];
		e->seq = db_int(&r, i, 0);
		e->project_id = db_val(&r, i, 1);
		e->type = db_val(&r, i, 2);
		e->actor_id = db_val(&r, i, 3);
		e->created_at = db_int(&r, i, 4);
		e->data = db_val(&r, i, 5);
	}
	*count = r.nrows;
	return 0;
}
