/* tickets.c — see tickets.h. */
#include "services/tickets.h"
#include "core/arena.h"
#include "core/error.h"
#include "core/timeutil.h"
#include "services/sessions.h"
#include "services/token.h"
#include "services/tx.h"
#include "store/store.h"
#include "store/tickets.h"

#include <string.h>

/* Longer than any ticket we issue (43 characters): anything longer is not one of ours. */
#define TICKET_MAX_LEN 128

int ticket_create(const struct auth *au, struct store *st, struct arena *a, const char *token,
		  const char **ticket, int64_t *expires_in, struct error *err)
{
	struct access_claims claims;
	int rc;
	if ((rc = token_verify(a, &au->key, token, &claims, err)) < 0)
		return rc;
	int64_t now = time_now_ms();
	const char *t = token_refresh_new(a);
	struct stream_ticket row = {
	    .token_hash = token_hash(a, t),
	    .user_id = claims.sub,
	    .session_id = claims.sid,
	    .token_version = claims.ver,
	    .access_expires_at = claims.exp * 1000,
	    .created_at = now,
	    .expires_at = now + au->stream_ticket_ttl_s * 1000,
	};
	struct db_conn *c = store_conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	if ((rc = db_begin(c, true, err)) < 0)
		return rc;
	if ((rc = store_ticket_insert(c, &row, err)) < 0)
		goto out;
	*ticket = t;
	*expires_in = au->stream_ticket_ttl_s;
out:
	return tx_finish(c, rc, err);
}

static int invalid(struct error *err)
{
	error_release(err);
	return error_set(err, ERR_TICKET_INVALID,
			 "the stream ticket is not valid (unknown, already used or expired): get "
			 "a new one with POST /v1/realtime/tickets");
}

/* Take the ticket out of the database: one write transaction, one statement. */
static int take(struct db_conn *c, struct arena *a, const char *hash, struct stream_ticket *t,
		struct error *err)
{
	int rc;
	if ((rc = db_begin(c, true, err)) < 0)
		return rc;
	if ((rc = store_ticket_take(c, a, hash, t, err)) < 0)
		goto out;
out:
	return tx_finish(c, rc, err);
}

int ticket_redeem(const struct auth *au, struct store *st, struct arena *a, const char *ticket,
		  struct user *user, const char **token, struct error *err)
{
	struct stream_ticket t;
	int rc;
	if (!ticket || !*ticket || strlen(ticket) > TICKET_MAX_LEN)
		return invalid(err);
	struct db_conn *c = store_conn(st, err);
	if (!c)
		return -ERR_UNAVAILABLE;
	rc = take(c, a, token_hash(a, ticket), &t, err);
	if (rc == -ERR_NOT_FOUND)
		return invalid(err);
	if (rc < 0)
		return rc;
	int64_t now = time_now_ms();
	int64_t ttl_s = t.access_expires_at / 1000 - now / 1000;
	if (t.expires_at <= now || ttl_s <= 0)
		return invalid(err);
	/* The session's own rules decide, as for any access token: the user is active, the
	 * token version is the user's, the refresh family is live. */
	const char *access =
	    token_issue(a, &au->key, t.user_id, t.token_version, t.session_id, ttl_s);
	rc = auth_token_user(au, st, a, access, user, err);
	if (rc == -ERR_UNAUTHENTICATED || rc == -ERR_TOKEN_EXPIRED)
		return invalid(err);
	if (rc < 0)
		return rc;
	*token = access;
	return 0;
}
