/*
 * config.h — every setting of tandem in one struct.
 *
 * Values come from defaults, then TANDEM_* environment variables, then command-line flags
 * (flags win). The table in config.c is the single list of settings: it drives parsing,
 * validation and `tandem --help`. A config is filled once at start-up and read-only after.
 */
#ifndef TANDEM_CONFIG_CONFIG_H
#define TANDEM_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/log.h"

struct config {
	/* server */
	char *listen_host; /* numeric IPv4/IPv6 address */
	uint16_t listen_port;
	char *data_dir;
	char *database_url; /* NULL: SQLite at <data_dir>/tandem.db */
	bool auto_migrate;
	enum log_level log_level;
	bool access_log;
	/* http limits */
	unsigned threads;
	unsigned max_connections;
	unsigned max_connections_per_ip;
	unsigned connection_timeout_s;
	unsigned request_timeout_s; /* absolute: the whole request must arrive within it */
	size_t connection_memory;
	size_t max_body_bytes;
	unsigned shutdown_timeout_s;
	/* housekeeping */
	unsigned purge_interval_s;
	unsigned idempotency_ttl_s;
	/* auth */
	char *jwt_secret;
	char *jwt_secret_file;
	int64_t access_token_ttl_s;
	int64_t refresh_token_ttl_s;
	int64_t session_max_age_s;
	int64_t refresh_grace_s; /* a rotated refresh token shown again this soon: same pair */
	int64_t device_token_ttl_s;
	int64_t stream_ticket_ttl_s;
	int bcrypt_cost;
	/* rate limiting and scale-out */
	bool rate_limit;
	char *rate_limit_anon, *rate_limit_user, *rate_limit_auth, *rate_limit_login;
	size_t rate_limit_max_keys;
	char *trusted_proxies;
	char *cors_origins; /* NULL: CORS off; else checked by http/cors.h at load */
	char *redis_url;
	/* real time */
	size_t ws_max_message, ws_max_queue;
	unsigned ws_max_subscriptions, ws_ping_interval_s, ws_idle_timeout_s, sse_heartbeat_s;
	unsigned ws_message_rate, ws_message_burst; /* messages per second and burst, per socket */
	unsigned max_streams_per_user, max_streams_per_ip; /* live channels open at once; 0: none */
};

/*
 * Fill cfg from defaults, the environment and argv[first..argc). On a bad setting prints
 * one line naming it to `errout` and returns -1. Unknown flags are errors too.
 */
int config_load(struct config *cfg, int argc, char **argv, int first, FILE *errout);
/* The database URL in effect (the SQLite default derived from data_dir when unset). */
const char *config_database_url(const struct config *cfg);
void config_release(struct config *cfg);
/* Print every setting with its flag, variable, default and meaning. */
void config_print_help(FILE *out);

#endif
