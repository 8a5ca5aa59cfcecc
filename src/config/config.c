/* config.c — see config.h. */
#include "config/config.h"
#include "core/redact.h"
#include "core/xalloc.h"
#include "http/cors.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <unistd.h>

enum kind { K_STR, K_LISTEN, K_BOOL, K_UINT, K_SIZE, K_LEVEL, K_SECONDS, K_INT };

struct setting {
	const char *flag; /* --flag */
	const char *env;  /* TANDEM_... */
	enum kind kind;
	size_t offset;
	const char *def;    /* default as text; NULL = unset */
	long long min, max; /* for numbers */
	const char *help;
};

#define OFF(f) offsetof(struct config, f)

static const struct setting settings[] = {
    {"listen", "TANDEM_LISTEN", K_LISTEN, 0, "127.0.0.1:8080", 0, 0,
     "address:port to listen on (IPv6 as [::1]:8080)"},
    {"data-dir", "TANDEM_DATA_DIR", K_STR, OFF(data_dir), "./data", 0, 0,
     "directory for the SQLite database and generated secrets"},
    {"database-url", "TANDEM_DATABASE_URL", K_STR, OFF(database_url), NULL, 0, 0,
     "postgres://..., postgresql://..., a libpq key=value string, or sqlite:PATH "
     "(default: sqlite:<data-dir>/tandem.db)"},
    {"auto-migrate", "TANDEM_AUTO_MIGRATE", K_BOOL, OFF(auto_migrate), "true", 0, 0,
     "apply pending migrations when `serve` starts"},
    {"log-level", "TANDEM_LOG_LEVEL", K_LEVEL, OFF(log_level), "info", 0, 0,
     "debug, info, warn, error or off"},
    {"access-log", "TANDEM_ACCESS_LOG", K_BOOL, OFF(access_log), "true", 0, 0,
     "one JSON line per request on stderr"},
    {"threads", "TANDEM_THREADS", K_UINT, OFF(threads), "0", 0, 1024,
     "HTTP worker threads (0: four per CPU core)"},
    {"max-connections", "TANDEM_MAX_CONNECTIONS", K_UINT, OFF(max_connections), "10000", 1, 1000000,
     "open HTTP connections at most; open WebSockets at most, counted apart"},
    {"max-connections-per-ip", "TANDEM_MAX_CONNECTIONS_PER_IP", K_UINT, OFF(max_connections_per_ip),
     "64", 0, 1000000,
     "open HTTP connections from one client at most (an IPv6 client is its /64; 0: no limit; "
     "past it: 429 and close)"},
    {"connection-timeout", "TANDEM_CONNECTION_TIMEOUT", K_SECONDS, OFF(connection_timeout_s), "30",
     1, 3600, "seconds an idle or slow connection may stay open"},
    {"request-timeout", "TANDEM_REQUEST_TIMEOUT", K_SECONDS, OFF(request_timeout_s), "30", 1, 3600,
     "seconds a request may take to arrive whole, however slowly it trickles (then 408 and "
     "close; parked long polls and streams are exempt)"},
    {"connection-memory", "TANDEM_CONNECTION_MEMORY", K_SIZE, OFF(connection_memory), "16384", 8192,
     16777216, "bytes of buffer per connection; the request line and headers must fit in it"},
    {"max-body-bytes", "TANDEM_MAX_BODY_BYTES", K_SIZE, OFF(max_body_bytes), "1048576", 1024,
     1073741824, "largest request body accepted (larger: 413)"},
    {"shutdown-timeout", "TANDEM_SHUTDOWN_TIMEOUT", K_SECONDS, OFF(shutdown_timeout_s), "10", 0,
     3600, "seconds in-flight requests get to finish on SIGTERM/SIGINT"},
    {"purge-interval", "TANDEM_PURGE_INTERVAL", K_SECONDS, OFF(purge_interval_s), "600", 1, 86400,
     "seconds between purges of expired idempotency keys and refresh tokens"},
    {"idempotency-ttl", "TANDEM_IDEMPOTENCY_TTL", K_SECONDS, OFF(idempotency_ttl_s), "86400", 1,
     2592000, "seconds a stored answer to an Idempotency-Key is replayed"},
    {"jwt-secret", "TANDEM_JWT_SECRET", K_STR, OFF(jwt_secret), NULL, 0, 0,
     "HS256 key for access tokens, at least 32 bytes (default: generated once into "
     "<data-dir>/jwt.secret); as a flag it shows in `ps` until start-up hides it: prefer "
     "--jwt-secret-file or the variable"},
    {"jwt-secret-file", "TANDEM_JWT_SECRET_FILE", K_STR, OFF(jwt_secret_file), NULL, 0, 0,
     "read the HS256 key from this file (32 to 256 bytes; a trailing newline is ignored)"},
    {"access-token-ttl", "TANDEM_ACCESS_TOKEN_TTL", K_INT, OFF(access_token_ttl_s), "86400", 1,
     31536000, "access token lifetime in seconds"},
    {"refresh-token-ttl", "TANDEM_REFRESH_TOKEN_TTL", K_INT, OFF(refresh_token_ttl_s), "2592000", 1,
     315360000, "refresh token lifetime in seconds"},
    {"session-max-age", "TANDEM_SESSION_MAX_AGE", K_INT, OFF(session_max_age_s), "2592000", 60,
     315360000,
     "absolute lifetime of a login session in seconds: refreshing never extends it past this "
     "(then log in again); its access tokens stop working with it"},
    {"refresh-grace", "TANDEM_REFRESH_GRACE", K_INT, OFF(refresh_grace_s), "10", 0, 300,
     "seconds in which a refresh token already rotated, shown again (two tabs refreshing at "
     "once), gets the same new pair instead of ending the session as stolen (0: off)"},
    {"device-token-ttl", "TANDEM_DEVICE_TOKEN_TTL", K_INT, OFF(device_token_ttl_s), "31536000", 60,
     315360000,
     "lifetime in seconds of the device token a login returns (a client that sends it back "
     "has its own failed-login budget: --rate-limit-login)"},
    {"stream-ticket-ttl", "TANDEM_STREAM_TICKET_TTL", K_INT, OFF(stream_ticket_ttl_s), "30", 1,
     3600,
     "seconds a stream ticket (POST /v1/realtime/tickets) may wait to be used, once, in "
     "?ticket= of an event stream or a WebSocket"},
    {"bcrypt-cost", "TANDEM_BCRYPT_COST", K_INT, OFF(bcrypt_cost), "12", 4, 31,
     "bcrypt work factor for password hashes"},
    {"rate-limit", "TANDEM_RATE_LIMIT", K_BOOL, OFF(rate_limit), "on", 0, 0,
     "rate limiting on or off"},
    {"rate-limit-anon", "TANDEM_RATE_LIMIT_ANON", K_STR, OFF(rate_limit_anon), "120/min,burst=60",
     0, 0, "anonymous requests, per client IP (COUNT/PERIOD,burst=N)"},
    {"rate-limit-user", "TANDEM_RATE_LIMIT_USER", K_STR, OFF(rate_limit_user), "1200/min,burst=200",
     0, 0, "authenticated requests, per user"},
    {"rate-limit-auth", "TANDEM_RATE_LIMIT_AUTH", K_STR, OFF(rate_limit_auth), "10/min,burst=5", 0,
     0,
     "POST /v1/auth/login, /register, /refresh: per client IP (every attempt); "
     "PUT /v1/users/me/password, an e-mail change, a member added by e-mail: per user and per "
     "client IP"},
    {"rate-limit-login", "TANDEM_RATE_LIMIT_LOGIN", K_STR, OFF(rate_limit_login), "10/min,burst=5",
     0, 0,
     "failed logins per account (username and e-mail alike) from clients without a device "
     "token for it, and per device token; a correct password costs nothing"},
    {"rate-limit-max-keys", "TANDEM_RATE_LIMIT_MAX_KEYS", K_SIZE, OFF(rate_limit_max_keys),
     "100000", 16, 100000000, "buckets the in-process limiter keeps at most"},
    {"trusted-proxies", "TANDEM_TRUSTED_PROXIES", K_STR, OFF(trusted_proxies), NULL, 0, 0,
     "comma-separated IPs/CIDRs of proxies whose X-Forwarded-For is believed"},
    {"cors-origins", "TANDEM_CORS_ORIGINS", K_STR, OFF(cors_origins), NULL, 0, 0,
     "comma-separated origins (scheme://host[:port]) whose browser pages may call the API, or * "
     "for any origin (never with credentials); unset: CORS off"},
    {"redis-url", "TANDEM_REDIS_URL", K_STR, OFF(redis_url), NULL, 0, 0,
     "redis://[[user]:password@]host[:port][/db] or unix://[[user]:password@]/path[?db=N]: "
     "shared rate limits and event fan-out"},
    {"ws-max-message", "TANDEM_WS_MAX_MESSAGE", K_SIZE, OFF(ws_max_message), "65536", 128, 16777216,
     "largest WebSocket message a client may send, in bytes"},
    {"ws-max-queue", "TANDEM_WS_MAX_QUEUE", K_SIZE, OFF(ws_max_queue), "1048576", 1024, 1073741824,
     "bytes queued to one client: delivery pauses there; a WebSocket whose queue stays full "
     "for a ping interval is closed with 4008, an event stream is ended"},
    {"ws-max-subscriptions", "TANDEM_WS_MAX_SUBSCRIPTIONS", K_UINT, OFF(ws_max_subscriptions),
     "100", 1, 100000, "project subscriptions per WebSocket connection"},
    {"ws-ping-interval", "TANDEM_WS_PING_INTERVAL", K_SECONDS, OFF(ws_ping_interval_s), "30", 1,
     3600, "seconds between server pings on a WebSocket"},
    {"ws-idle-timeout", "TANDEM_WS_IDLE_TIMEOUT", K_SECONDS, OFF(ws_idle_timeout_s), "60", 2, 7200,
     "seconds of silence after which a WebSocket peer is dropped"},
    {"sse-heartbeat", "TANDEM_SSE_HEARTBEAT", K_SECONDS, OFF(sse_heartbeat_s), "15", 1, 3600,
     "seconds between heartbeat comments on an event stream"},
    {"ws-message-rate", "TANDEM_WS_MESSAGE_RATE", K_UINT, OFF(ws_message_rate), "20", 0, 1000000,
     "messages per second one WebSocket may send, with bursts of --ws-message-burst; past it "
     "an error rate_limited, then close 1008 (0: no limit)"},
    {"ws-message-burst", "TANDEM_WS_MESSAGE_BURST", K_UINT, OFF(ws_message_burst), "100", 1,
     1000000, "messages a WebSocket may send at once before --ws-message-rate applies"},
    {"max-streams-per-user", "TANDEM_MAX_STREAMS_PER_USER", K_UINT, OFF(max_streams_per_user), "16",
     0, 1000000,
     "open WebSockets, event streams and parked long polls of one user at most (more: 429, or "
     "close 1013; 0: no limit)"},
    {"max-streams-per-ip", "TANDEM_MAX_STREAMS_PER_IP", K_UINT, OFF(max_streams_per_ip), "64", 0,
     1000000,
     "open WebSockets, event streams and parked long polls from one client address (IPv6: its "
     "/64) at most (more: 429, or close 1013; 0: no limit)"},
};

#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))

static int fail(FILE *errout, const struct setting *s, const char *value, const char *why)
{
	fprintf(errout, "tandem: invalid setting %s (--%s) = \"%s\": %s\n", s->env, s->flag, value,
		why);
	return -1;
}

static int parse_number(const char *v, unsigned long long *out)
{
	if (!isdigit((unsigned char)v[0]))
		return -1;
	errno = 0;
	char *end;
	unsigned long long n = strtoull(v, &end, 10);
	if (errno || *end)
		return -1;
	*out = n;
	return 0;
}

static int parse_listen(struct config *cfg, const char *v)
{
	const char *colon = strrchr(v, ':');
	char host[64];
	if (!colon)
		return -1;
	size_t hl = (size_t)(colon - v);
	if (hl >= sizeof(host) || hl == 0)
		return -1;
	memcpy(host, v, hl);
	host[hl] = '\0';
	if (host[0] == '[') {
		if (hl < 3 || host[hl - 1] != ']')
			return -1;
		memmove(host, host + 1, hl - 2);
		host[hl - 2] = '\0';
		struct in6_addr a6;
		if (inet_pton(AF_INET6, host, &a6) != 1)
			return -1;
	} else {
		struct in_addr a4;
		if (strcmp(host, "localhost") == 0)
			memcpy(host, "127.0.0.1", 10);
		if (inet_pton(AF_INET, host, &a4) != 1)
			return -1;
	}
	unsigned long long port;
	if (parse_number(colon + 1, &port) || port > 65535)
		return -1;
	free(cfg->listen_host);
	cfg->listen_host = xstrdup(host);
	cfg->listen_port = (uint16_t)port;
	return 0;
}

static int apply(struct config *cfg, const struct setting *s, const char *v, FILE *errout)
{
	void *field = (char *)cfg + s->offset;
	unsigned long long n;

	switch (s->kind) {
	case K_STR:
		free(*(char **)field);
		*(char **)field = v[0] ? xstrdup(v) : NULL;
		return 0;
	case K_LISTEN:
		if (parse_listen(cfg, v))
			return fail(errout, s, v, "expected host:port with a numeric address");
		return 0;
	case K_BOOL:
		if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes") || !strcmp(v, "on"))
			*(bool *)field = true;
		else if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no") ||
			 !strcmp(v, "off"))
			*(bool *)field = false;
		else
			return fail(errout, s, v, "expected true or false");
		return 0;
	case K_LEVEL:
		if (log_parse_level(v, (enum log_level *)field))
			return fail(errout, s, v, "expected debug, info, warn, error or off");
		return 0;
	case K_UINT:
	case K_SIZE:
	case K_SECONDS:
	case K_INT:
		if (parse_number(v, &n) || n < (unsigned long long)s->min ||
		    n > (unsigned long long)s->max) {
			char why[96];
			snprintf(why, sizeof(why), "expected a whole number from %lld to %lld",
				 s->min, s->max);
			return fail(errout, s, v, why);
		}
		if (s->kind == K_SIZE)
			*(size_t *)field = (size_t)n;
		else if (s->kind == K_INT && s->offset == OFF(bcrypt_cost))
			*(int *)field = (int)n;
		else if (s->kind == K_INT)
			*(int64_t *)field = (int64_t)n;
		else
			*(unsigned *)field = (unsigned)n;
		return 0;
	}
	return -1;
}

/*
 * Secrets given as flags are in argv, which /proc/PID/cmdline (`ps`, any local user) shows
 * for the life of the process: once copied into cfg, overwrite them there with '*'. The value
 * was visible while the process started; say so for the JWT key, which has a file setting.
 * The pointers in flag_value point into argv's strings.
 */
static void hide_secret_flags(const char *flag_value[NSETTINGS], FILE *errout)
{
	for (size_t i = 0; i < NSETTINGS; i++) {
		char *v = (char *)flag_value[i];
		if (!v)
			continue;
		if (settings[i].offset == OFF(jwt_secret)) {
			memset(v, '*', strlen(v));
			fprintf(errout,
				"tandem: warning: --jwt-secret is visible to other local users "
				"while tandem starts; use --jwt-secret-file or "
				"TANDEM_JWT_SECRET\n");
		} else if (settings[i].offset == OFF(database_url) ||
			   settings[i].offset == OFF(redis_url)) {
			redact_in_place(v);
		}
	}
}

int config_load(struct config *cfg, int argc, char **argv, int first, FILE *errout)
{
	const char *flag_value[NSETTINGS] = {NULL};

	memset(cfg, 0, sizeof(*cfg));
	/* Flags first, only collected: a setting given as a flag ignores its environment
	 * variable entirely, even an invalid one. */
	for (int a = first; a < argc; a++) {
		const char *arg = argv[a];
		if (strncmp(arg, "--", 2) != 0) {
			fprintf(errout, "tandem: unexpected argument \"%s\" (see tandem --help)\n",
				arg);
			return -1;
		}
		const char *name = arg + 2, *eq = strchr(name, '=');
		size_t nl = eq ? (size_t)(eq - name) : strlen(name);
		size_t idx = NSETTINGS;
		for (size_t i = 0; i < NSETTINGS; i++)
			if (strlen(settings[i].flag) == nl && !strncmp(settings[i].flag, name, nl))
				idx = i;
		if (idx == NSETTINGS) {
			fprintf(errout, "tandem: unknown flag \"--%.*s\" (see tandem --help)\n",
				(int)nl, name);
			return -1;
		}
		const char *v = eq ? eq + 1 : NULL;
		if (!v && settings[idx].kind == K_BOOL)
			v = "true";
		if (!v) {
			if (a + 1 >= argc) {
				fprintf(errout, "tandem: flag --%s needs a value\n",
					settings[idx].flag);
				return -1;
			}
			v = argv[++a];
		}
		flag_value[idx] = v;
	}
	for (size_t i = 0; i < NSETTINGS; i++) {
		const char *v = flag_value[i] ? flag_value[i] : getenv(settings[i].env);
		if (!v)
			v = settings[i].def;
		if (v && apply(cfg, &settings[i], v, errout))
			return -1;
	}
	hide_secret_flags(flag_value, errout);
	if (cfg->jwt_secret && cfg->jwt_secret_file) {
		fprintf(errout,
			"tandem: TANDEM_JWT_SECRET (--jwt-secret) and TANDEM_JWT_SECRET_FILE "
			"(--jwt-secret-file) are both set: set one\n");
		return -1;
	}
	if (cfg->jwt_secret && strlen(cfg->jwt_secret) < 32) {
		fprintf(errout,
			"tandem: invalid setting TANDEM_JWT_SECRET (--jwt-secret): must be at "
			"least 32 bytes\n");
		return -1;
	}
	if (cfg->database_url) {
		const char *u = cfg->database_url;
		if (strncmp(u, "postgres://", 11) && strncmp(u, "postgresql://", 13) &&
		    strncmp(u, "sqlite:", 7) && !strchr(u, '=')) {
			char shown[512];
			redact_url(u, shown, sizeof(shown)); /* no password in the message */
			fprintf(
			    errout,
			    "tandem: invalid setting TANDEM_DATABASE_URL (--database-url) = "
			    "\"%s\": "
			    "expected postgres://..., postgresql://..., key=value or sqlite:PATH\n",
			    shown);
			return -1;
		}
	}
	if (cfg->cors_origins) {
		struct cors *c;
		char why[320];
		if (cors_create(cfg->cors_origins, &c, why, sizeof(why)) < 0) {
			fprintf(
			    errout,
			    "tandem: invalid setting TANDEM_CORS_ORIGINS (--cors-origins): %s\n",
			    why);
			return -1;
		}
		cors_free(c);
	}
	if (cfg->threads == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		cfg->threads = (unsigned)(n > 0 ? n * 4 : 4);
		if (cfg->threads > 64)
			cfg->threads = 64;
	}
	return 0;
}

const char *config_database_url(const struct config *cfg)
{
	static __thread char buf[4096];
	if (cfg->database_url)
		return cfg->database_url;
	snprintf(buf, sizeof(buf), "sqlite:%s/tandem.db", cfg->data_dir ? cfg->data_dir : ".");
	return buf;
}

void config_release(struct config *cfg)
{
	for (size_t i = 0; i < NSETTINGS; i++)
		if (settings[i].kind == K_STR)
			free(*(char **)((char *)cfg + settings[i].offset));
	free(cfg->listen_host);
	memset(cfg, 0, sizeof(*cfg));
}

void config_print_help(FILE *out)
{
	fprintf(out,
		"usage: tandem <command> [--flag value ...]\n\n"
		"commands:\n"
		"  serve      migrate the database (unless --auto-migrate=false) and serve HTTP\n"
		"  migrate    apply pending database migrations and exit\n"
		"  user create --username NAME --email ADDR [--admin]\n"
		"             create an account; the password is read from stdin\n"
		"  version    print the version\n"
		"  --help     this text\n\n"
		"settings (flag, environment variable, default):\n");
	for (size_t i = 0; i < NSETTINGS; i++) {
		fprintf(out, "  --%-24s %-32s %s\n", settings[i].flag, settings[i].env,
			settings[i].def ? settings[i].def : "(unset)");
		fprintf(out, "      %s\n", settings[i].help);
	}
}
