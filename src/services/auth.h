/*
 * auth.h — what accounts (services/accounts.h) and sessions (services/sessions.h) share: the
 * JWT key, token lifetimes and the bcrypt settings.
 *
 * struct auth is set up once at start-up and is read-only afterwards, so every function that
 * takes it is safe to call from any worker thread.
 */
#ifndef TANDEM_SERVICES_AUTH_H
#define TANDEM_SERVICES_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "services/password.h"
#include "services/token.h"

struct config;

struct auth {
	struct token_key key;
	int64_t access_ttl_s, refresh_ttl_s;
	int64_t session_max_age_s;   /* a refresh family's absolute lifetime */
	int64_t stream_ticket_ttl_s; /* how long a stream ticket may wait to be redeemed */
	int bcrypt_cost;
	char dummy_hash[PASSWORD_HASH_MAX]; /* logins of unknown users are checked against it,
					       so they take as long as real ones */
};

/*
 * Set up from the configuration and the JWT key `secret` (len bytes, 32–256: see
 * config/datadir.h for where it comes from). Returns 0 or -1 after printing one line to
 * stderr.
 */
int auth_init(struct auth *au, const struct config *cfg, const void *secret, size_t len);

#endif
