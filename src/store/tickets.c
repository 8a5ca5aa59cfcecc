/* tickets.c — see tickets.h. The SQL is the same in both dialects (SQLite >= 3.35 has
 * DELETE ... RETURNING). */
#include "store/tickets.h"
#include "core/arena.h"
#include "core/error.h"
#include "store/db.h"

int store_ticket_insert(struct db_conn *c, const struct stream_ticket *t, struct error *err)
{
	struct db_param p[] = {DB_TEXT(t->token_hash),	     DB_TEXT(t->user_id),
			       DB_TEXT(t->session_id),	     DB_INT(t->token_version),
			       DB_INT(t->access_expires_at), DB_INT(t->created_at),
			       DB_INT(t->expires_at)};
	return db_exec(
	    c,
	    "INSERT INTO stream_tickets (token_hash, user_id, session_id, token_version, "
	    "access_expires_at, created_at, expires_at) "
	    "VALUES ($1, $2, $3, $4, $5, $6, $7)",
	    p, DB_NPARAMS(p), err);
}

int store_ticket_take(struct db_conn *c, struct arena *a, const char *hash,
		      struct stream_ticket *out, struct error *err)
{
	struct db_rows r;
	struct db_param p[] = {DB_TEXT(hash)};
	int rc = db_query(c, a,
			  "DELETE FROM stream_tickets WHERE token_hash = $1 RETURNING token_hash, "
			  "user_id, session_id, token_version, access_expires_at, created_at, "
			  "expires_at",
			  p, 1, &r, err);
	if (rc < 0)
		return rc;
	if (r.nrows == 0)
		return error_set(err, ERR_NOT_FOUND, "no such stream ticket");
	out->token_hash = db_val(&r, 0, 0);
	out->user_id = db_val(&r, 0, 1);
	out->session_id = db_val(&r, 0, 2);
	out->token_version = db_int(&r, 0, 3);
	out->access_expires_at = db_int(&r, 0, 4);
	out->created_at = db_int(&r, 0, 5);
	out->expires_at = db_int(&r, 0, 6);
	return 0;
}

int store_ticket_purge(struct db_conn *c, int64_t before, int limit, int64_t *deleted,
		       struct error *err)
{
	struct db_rows r;
	struct arena a;
	arena_init(&a);
	struct db_param p[] = {DB_INT(before), DB_INT(limit)};
	int rc = db_query(c, &a,
			  "DELETE FROM stream_tickets WHERE token_hash IN (SELECT token_hash FROM "
			  "stream_tickets WHERE expires_at < $1 LIMIT $2)",
			  p, 2, &r, err);
	*deleted = rc < 0 ? 0 : r.affected;
	arena_release(&a);
	return rc;
}
