/* auth.c — see auth.h. */
#include "services/auth.h"
#include "config/config.h"

#include <stdio.h>
#include <string.h>

int auth_init(struct auth *au, const struct config *cfg, const void *secret, size_t len)
{
	memset(au, 0, sizeof(*au));
	au->access_ttl_s = cfg->access_token_ttl_s;
	au->refresh_ttl_s = cfg->refresh_token_ttl_s;
	au->session_max_age_s = cfg->session_max_age_s;
	au->stream_ticket_ttl_s = cfg->stream_ticket_ttl_s;
	au->bcrypt_cost = cfg->bcrypt_cost;
	if (len < 32 || len > sizeof(au->key.secret)) {
		fprintf(stderr, "tandem: the JWT secret must be 32 to %zu bytes\n",
			sizeof(au->key.secret));
		return -1;
	}
	memcpy(au->key.secret, secret, len);
	au->key.len = len;
	if (password_hash("tandem-dummy-password", au->bcrypt_cost, au->dummy_hash) < 0) {
		fprintf(stderr, "tandem: bcrypt is not available\n");
		return -1;
	}
	return 0;
}
