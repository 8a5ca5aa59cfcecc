/*
 * main.c — wiring only: configuration → store → HTTP server → wait for a signal → stop.
 *
 * SIGTERM and SIGINT are blocked in every thread (the mask is inherited by the server's
 * threads) and taken synchronously here with sigwait, so no handler runs in signal context.
 */
#include "config/config.h"
#include "config/datadir.h"
#include "core/error.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "handlers/handlers.h"
#include "http/cors.h"
#include "http/server.h"
#include "services/accounts.h"
#include "handlers/ratelimit.h"
#include "redis/redis.h"
#include "redis/url.h"
#include "realtime/bus.h"
#include "realtime/hub.h"
#include "services/notify.h"
#include "services/purge.h"
#include "store/store.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>
#include "core/arena.h"
#include "core/cursor.h"

#ifndef TANDEM_VERSION
#define TANDEM_VERSION "dev"
#endif

/* The JWT key (configured, or the data directory's secret file) and the auth settings. */
static int setup_auth(struct auth *au, const struct config *cfg)
{
	unsigned char secret[DATADIR_SECRET_MAX];
	size_t len;
	if (datadir_jwt_secret(cfg, secret, &len) < 0)
		return -1;
	return auth_init(au, cfg, secret, len);
}

static int open_store(const struct config *cfg, struct store **out)
{
	struct error err = ERROR_INIT;
	if (store_create(config_database_url(cfg), out, &err) < 0) {
		fprintf(stderr,
			"tandem: invalid setting TANDEM_DATABASE_URL (--database-url): %s\n",
			err.detail);
		return -1;
	}
	return 0;
}

static int migrate(struct store *store)
{
	struct error err = ERROR_INIT;
	int applied = 0;
	if (store_migrate(store, &applied, &err) < 0) {
		log_error("migration failed: %s", err.detail);
		error_release(&err);
		return -1;
	}
	log_info("database schema is up to date (%d migration%s applied, backend %s)", applied,
		 applied == 1 ? "" : "s", store_backend_name(store));
	return 0;
}

static int cmd_migrate(struct config *cfg)
{
	struct store *store;
	if (datadir_ensure(cfg, false) < 0 || open_store(cfg, &store) < 0)
		return 2;
	int rc = migrate(store);
	store_free(store);
	return rc < 0 ? 1 : 0;
}

static void drain(struct app *app)
{
	hub_drain(app->hub);
}

static bool trusted_peer(const struct app *app, const char *ip)
{
	return limits_trusted_peer(app->limits, ip);
}

static int cmd_serve(struct config *cfg)
{
	struct store *store;
	struct server *server;
	sigset_t set;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* Every setting is checked before anything is created: a bad one touches nothing. */
	struct redis *redis = NULL;
	struct limits *limits = NULL;
	if (cfg->redis_url) {
		char why[160], shown[512];
		if (redis_create(cfg->redis_url, &redis, why, sizeof(why)) < 0) {
			redis_url_redact(cfg->redis_url, shown, sizeof(shown)); /* no password */
			fprintf(stderr,
				"tandem: invalid setting TANDEM_REDIS_URL (--redis-url) = "
				"\"%s\": %s\n",
				shown, why);
			return 2;
		}
	}
	if (limits_create(cfg, redis, &limits) < 0) {
		redis_free(redis);
		return 2;
	}
	if (datadir_ensure(cfg, true) < 0 || open_store(cfg, &store) < 0) {
		limits_free(limits);
		redis_free(redis);
		return 2;
	}
	static struct auth auth; /* large (keys, hashes): keep it off the stack */
	int failed = cfg->auto_migrate && migrate(store) < 0 ? 1
		     : setup_auth(&auth, cfg) < 0	     ? 2
							     : 0;
	if (failed) {
		limits_free(limits);
		redis_free(redis);
		store_free(store);
		return failed;
	}
	cursor_set_key(auth.key.secret, auth.key.len);
	struct hub_limits hl = {.max_message = cfg->ws_max_message,
				.max_queue = cfg->ws_max_queue,
				.max_subscriptions = (int)cfg->ws_max_subscriptions,
				.ping_interval_s = (int)cfg->ws_ping_interval_s,
				.idle_timeout_s = (int)cfg->ws_idle_timeout_s,
				.auth_timeout_s = 5,
				.sse_heartbeat_s = (int)cfg->sse_heartbeat_s,
				.msg_rate = (int)cfg->ws_message_rate,
				.msg_burst = (int)cfg->ws_message_burst,
				.max_per_user = (int)cfg->max_streams_per_user,
				.max_per_ip = (int)cfg->max_streams_per_ip,
				/* an upgraded socket leaves libmicrohttpd's count */
				.max_sockets = (int)cfg->max_connections};
	struct hub *hub = hub_create(store, &auth, &hl);
	if (hub_start(hub) < 0) {
		log_error("cannot start the real-time hub thread");
		hub_free(hub);
		limits_free(limits);
		redis_free(redis);
		store_free(store);
		return 1;
	}
	struct bus *bus = bus_create(hub, redis);
	notify_set_sink(bus_publish, bus);
	struct cors *cors = NULL;
	char why[320];
	if (cors_create(cfg->cors_origins, &cors, why, sizeof(why)) < 0)
		abort(); /* config_load() checked it */
	struct app app = {.cfg = cfg,
			  .cors = cors,
			  .hub = hub,
			  .drain = drain,
			  .store = store,
			  .limits = limits,
			  .redis = redis,
			  .rate_limit = limits_on(limits) ? handlers_rate_limit : NULL,
			  .trusted_peer = trusted_peer,
			  .auth = &auth,
			  .version = TANDEM_VERSION,
			  .authenticate = handlers_authenticate,
			  .idempotent = handlers_idempotent};
	if (server_start(&app, &server) < 0) {
		cors_free(cors);
		notify_set_sink(NULL, NULL);
		bus_free(bus);
		hub_drain(hub);
		hub_free(hub);
		limits_free(limits);
		redis_free(redis);
		store_free(store);
		return 1;
	}
	struct purge_policy pp = {.interval_s = cfg->purge_interval_s,
				  .refresh_grace_ms = cfg->access_token_ttl_s * 1000};
	struct purger *purger = purger_start(store, &pp);
	log_json(LOG_INFO, "listening",
		 json_pack("{s:s, s:i, s:s, s:i, s:s}", "host", cfg->listen_host, "port",
			   (int)server_port(server), "backend", store_backend_name(store),
			   "threads", (int)cfg->threads, "version", TANDEM_VERSION));
	sigwait(&set, &sig);
	log_info("received %s, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	server_stop(server);
	cors_free(cors);
	purger_stop(purger);
	notify_set_sink(NULL, NULL);
	bus_free(bus);
	hub_free(hub);
	limits_free(limits);
	redis_free(redis);
	store_free(store);
	log_info("stopped");
	return 0;
}

/* Read a password from stdin: one line, without echo when it is a terminal. */
static int read_password(char *buf, size_t len)
{
	struct termios old, quiet;
	bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
	if (tty) {
		fprintf(stderr, "password: ");
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	}
	char *line = fgets(buf, (int)len, stdin);
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fprintf(stderr, "\n");
	}
	if (!line)
		return -1;
	buf[strcspn(buf, "\r\n")] = '\0';
	return 0;
}

/* tandem user create --username NAME --email ADDR [--admin] [settings...] */
static int cmd_user_create(int argc, char **argv)
{
	const char *username = NULL, *email = NULL;
	bool admin = false;
	char *rest[64];
	int nrest = 0;
	struct config cfg;

	rest[nrest++] = argv[0];
	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--username") && i + 1 < argc)
			username = argv[++i];
		else if (!strcmp(argv[i], "--email") && i + 1 < argc)
			email = argv[++i];
		else if (!strcmp(argv[i], "--admin"))
			admin = true;
		else if (nrest < 63)
			rest[nrest++] = argv[i];
	}
	if (!username || !email) {
		fprintf(stderr,
			"usage: tandem user create --username NAME --email ADDR [--admin]\n");
		return 2;
	}
	if (config_load(&cfg, nrest, rest, 1, stderr) < 0) {
		config_release(&cfg); /* what was parsed before the bad setting */
		return 2;
	}
	log_set_level(cfg.log_level);
	struct store *store;
	static struct auth auth;
	char password[1100];
	int rc = 1;
	if (datadir_ensure(&cfg, true) < 0 || open_store(&cfg, &store) < 0) {
		config_release(&cfg);
		return 2;
	}
	if (migrate(store) < 0 || setup_auth(&auth, &cfg) < 0)
		goto out;
	if (read_password(password, sizeof(password)) < 0) {
		fprintf(stderr, "tandem: no password given on stdin\n");
		goto out;
	}
	struct arena a;
	struct error err = ERROR_INIT;
	struct user u;
	arena_init(&a);
	if (auth_create_user(&auth, store, &a, username, email, password, admin, &u, &err) < 0) {
		char *fields = err.fields ? json_dumps(err.fields, JSON_COMPACT) : NULL;
		fprintf(stderr, "tandem: cannot create user: %s%s%s\n", err.detail,
			fields ? " " : "", fields ? fields : "");
		free(fields);
	} else {
		printf("created user %s (%s)%s\n", u.username, u.id,
		       admin ? " as administrator" : "");
		rc = 0;
	}
	error_release(&err);
	arena_release(&a);
out:
	memset(password, 0, sizeof(password));
	store_free(store);
	config_release(&cfg);
	return rc;
}

int main(int argc, char **argv)
{
	struct config cfg;
	const char *cmd = argc > 1 ? argv[1] : "--help";
	int rc;

	/* jansson allocates through xalloc too: out of memory is one clear abort everywhere. */
	json_set_alloc_funcs(xmalloc, free);

	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
		config_print_help(stdout);
		return 0;
	}
	if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
		printf("tandem %s\n", TANDEM_VERSION);
		return 0;
	}
	if (!strcmp(cmd, "user")) {
		if (argc > 2 && !strcmp(argv[2], "create"))
			return cmd_user_create(argc, argv);
		fprintf(stderr,
			"usage: tandem user create --username NAME --email ADDR [--admin]\n");
		return 2;
	}
	if (strcmp(cmd, "serve") && strcmp(cmd, "migrate")) {
		fprintf(stderr, "tandem: unknown command \"%s\" (see tandem --help)\n", cmd);
		return 2;
	}
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			config_print_help(stdout);
			return 0;
		}
	}
	if (config_load(&cfg, argc, argv, 2, stderr) < 0) {
		config_release(&cfg); /* what was parsed before the bad setting */
		return 2;
	}
	log_set_level(cfg.log_level);
	rc = !strcmp(cmd, "serve") ? cmd_serve(&cfg) : cmd_migrate(&cfg);
	config_release(&cfg);
	return rc;
}
