/*
 * tickets.h — stream tickets in the store (table stream_tickets): short-lived, single-use
 * stand-ins for a bearer token in the URL of a live channel. SQL only: the rules live in
 * services/tickets.c. Only the ticket's hash is stored. Functions take the caller's
 * connection; results are allocated in the arena.
 */
#ifndef TANDEM_STORE_TICKETS_H
#define TANDEM_STORE_TICKETS_H

#include <stdint.h>

struct arena;
struct db_conn;
struct error;

struct stream_ticket {
	const char *token_hash; /* lower-case hex SHA-256 of the ticket */
	const char *user_id;
	const char *session_id;	   /* the refresh family of the token it was made with */
	int64_t token_version;	   /* the user's token version then */
	int64_t access_expires_at; /* that token's expiry (ms) */
	int64_t created_at, expires_at;
};

int store_ticket_insert(struct db_conn *c, const struct stream_ticket *t, struct error *err);

/*
 * Delete the ticket with this hash and return it, in one statement: of several callers (on
 * any instance) exactly one gets it. An expired ticket is taken too (the caller refuses it).
 * -ERR_NOT_FOUND when there is none.
 */
int store_ticket_take(struct db_conn *c, struct arena *a, const char *hash,
		      struct stream_ticket *out, struct error *err);

/* Delete at most `limit` tickets that expired before `before`; *deleted says how many. */
int store_ticket_purge(struct db_conn *c, int64_t before, int limit, int64_t *deleted,
		       struct error *err);

#endif
