/* idempotency.c — see idempotency.h. */
#include "store/idempotency.h"
#include "core/arena.h"
#include "core/error.h"
#include "store/db.h"

int store_idem_claim(struct db_conn *c, struct arena *a, const char *user_id, const char *key,
		     const struct idem_record *rec, bool *claimed, struct idem_record *existing,
		     struct error *err)
{
	struct db_rows r;
	struct db_param v[] = {DB_TEXT(user_id),	   DB_TEXT(key),
			       DB_TEXT(rec->method),	   DB_TEXT(rec->path),
			       DB_TEXT(rec->request_hash), DB_INT(rec->created_at),
			       DB_INT(rec->expires_at)};
	int rc = db_query(c, a,
			  "INSERT INTO idempotency_keys (user_id, key, method, path, request_hash, "
			  "created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7) "
			  "ON CONFLICT (user_id, key) DO NOTHING",
			  v, DB_NPARAMS(v), &r, err);
	if (rc < 0)
		return rc;
	*claimed = r.affected > 0;
	if (*claimed)
		return 0;
	struct db_param k[] = {DB_TEXT(user_id), DB_TEXT(key)};
	rc =
	    db_query(c, a,
		     "SELECT method, path, request_hash, status, response_headers, response_body, "
		     "created_at, expires_at FROM idempotency_keys WHERE user_id = $1 AND key = $2",
		     k, 2, &r, err);
	if (rc < 0)
		return rc;
	if (r.nrows == 0)
		return error_set(err, ERR_CONFLICT, "the idempotency key was released meanwhile");
	existing->method = db_val(&r, 0, 0);
	existing->path = db_val(&r, 0, 1);
	existing->request_hash = db_val(&r, 0, 2);
	existing->status = (int)db_int(&r, 0, 3);
	existing->headers = db_val(&r, 0, 4);
	existing->body = db_val(&r, 0, 5);
	existing->created_at = db_int(&r, 0, 6);
	existing->expires_at = db_int(&r, 0, 7);
	return 0;
}

int store_idem_complete(struct db_conn *c, const char *user_id, const char *key, int status,
			const char *headers, const char *body, struct error *err)
{
	struct db_param v[] = {DB_TEXT(user_id), DB_TEXT(key), DB_INT(status), DB_TEXT(headers),
			       DB_TEXT(body)};
	return db_exec(c,
		       "UPDATE idempotency_keys SET status = $3, response_headers = $4, "
		       "response_body = $5 WHERE user_id = $1 AND key = $2",
		       v, DB_NPARAMS(v), err);
}

int store_idem_release(struct db_conn *c, const char *user_id, const char *key, struct error *err)
{
	struct db_param v[] = {DB_TEXT(user_id), DB_TEXT(key)};
	return db_exec(c,
		       "DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2 "
		       "AND status IS NULL",
		       v, 2, err);
}

int store_idem_purge(struct db_conn *c, const char *user_id, const char *key, int64_t now,
		     int64_t stale_before, struct error *err)
{
	struct db_param v[] = {DB_TEXT(user_id), DB_TEXT(key), DB_INT(now), DB_INT(stale_before)};
	return db_exec(c,
		       "DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND "
		       "(expires_at <= $3 OR (status IS NULL AND created_at < $4))",
		       v, DB_NPARAMS(v), err);
}

int store_idem_purge_expired(struct db_conn *c, int64_t now, int64_t stale_before, int limit,
			     int64_t *deleted, struct error *err)
{
	struct db_param v[] = {DB_INT(now), DB_INT(stale_before), DB_INT(limit)};
	return db_exec_affected(
	    c,
	    "DELETE FROM idempotency_keys WHERE (user_id, key) IN (SELECT user_id, key "
	    "FROM idempotency_keys WHERE expires_at <= $1 OR (status IS NULL AND "
	    "created_at < $2) LIMIT $3)",
	    v, DB_NPARAMS(v), deleted, err);
}
