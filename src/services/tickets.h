/*
 * tickets.h — stream tickets (issue 15): a browser's EventSource cannot send an
 * Authorization header and tokens never go in URLs, so a client trades its bearer token for
 * a ticket (POST /v1/realtime/tickets) and opens the live channel with ?ticket=.
 *
 * A ticket is 32 random bytes (base64url), usable once, for au->stream_ticket_ttl_s. Only
 * its SHA-256 is stored, in the database, so any instance sharing it can redeem it, and
 * exactly one redemption wins (store_ticket_take). It stands for the session of the token it
 * was made with: redeemed, it becomes an access token of that session (same user, token
 * version and refresh family) expiring when that token expires, so the channel is re-checked
 * and ended exactly like one opened with the token itself (a logout, a password change or a
 * refresh-token reuse voids both the unredeemed ticket and the channel). Thread-safe.
 */
#ifndef TANDEM_SERVICES_TICKETS_H
#define TANDEM_SERVICES_TICKETS_H

#include <stdint.h>

#include "services/auth.h"
#include "store/users.h"

struct arena;
struct error;
struct store;

/*
 * A new ticket for the session of `token`, the caller's verified access token: *ticket (arena
 * string) and its lifetime *expires_in (seconds). 0 or a negative error kind.
 */
int ticket_create(const struct auth *au, struct store *st, struct arena *a, const char *token,
		  const char **ticket, int64_t *expires_in, struct error *err);

/*
 * Redeem `ticket` (once): *user is its user and *token an access token of its session (arena
 * string) for the live channel to run on. -ERR_TICKET_INVALID for a ticket that is unknown,
 * already used, expired, or whose session ended (or the user's token version moved on);
 * -ERR_UNAVAILABLE when the database cannot be reached.
 */
int ticket_redeem(const struct auth *au, struct store *st, struct arena *a, const char *ticket,
		  struct user *user, const char **token, struct error *err);

#endif
