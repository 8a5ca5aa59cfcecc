/*
 * main.c — wiring only: configuration → store → HTTP server → wait for a signal → stop.
 *
 * SIGTERM and SIGINT are blocked in every thread (the mask is inherited by the server's
 * threads) and taken synchronously here with sigwait, so no handler runs in signal context.
 */
#include "config/config.h"
#include "core/error.h"
#include "core/log.h"
#include "http/server.h"
#include "store/store.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#ifndef TANDEM_VERSION
#define TANDEM_VERSION "dev"
#endif

static int ensure_data_dir(const struct config *cfg)
{
	if (cfg->database_url && strncmp(cfg->database_url, "sqlite:", 7) != 0)
		return 0; /* PostgreSQL needs no local directory */
	if (mkdir(cfg->data_dir, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr,
			"tandem: invalid setting TANDEM_DATA_DIR (--data-dir) = \"%s\": %s\n",
			cfg->data_dir, strerror(errno));
		return -1;
	}
	return 0;
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
	if (ensure_data_dir(cfg) < 0 || open_store(cfg, &store) < 0)
		return 2;
	int rc = migrate(store);
	store_free(store);
	return rc < 0 ? 1 : 0;
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

	if (ensure_data_dir(cfg) < 0 || open_store(cfg, &store) < 0)
		return 2;
	if (cfg->auto_migrate && migrate(store) < 0) {
		store_free(store);
		return 1;
	}
	struct app app = {.cfg = cfg, .store = store, .version = TANDEM_VERSION};
	if (server_start(&app, &server) < 0) {
		store_free(store);
		return 1;
	}
	log_json(LOG_INFO, "listening",
		 json_pack("{s:s, s:i, s:s, s:i, s:s}", "host", cfg->listen_host, "port",
			   (int)server_port(server), "backend", store_backend_name(store),
			   "threads", (int)cfg->threads, "version", TANDEM_VERSION));
	sigwait(&set, &sig);
	log_info("received %s, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	server_stop(server);
	store_free(store);
	log_info("stopped");
	return 0;
}

int main(int argc, char **argv)
{
	struct config cfg;
	const char *cmd = argc > 1 ? argv[1] : "--help";
	int rc;

	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
		config_print_help(stdout);
		return 0;
	}
	if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
		printf("tandem %s\n", TANDEM_VERSION);
		return 0;
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
	if (config_load(&cfg, argc, argv, 2, stderr) < 0)
		return 2;
	log_set_level(cfg.log_level);
	rc = !strcmp(cmd, "serve") ? cmd_serve(&cfg) : cmd_migrate(&cfg);
	config_release(&cfg);
	return rc;
}
