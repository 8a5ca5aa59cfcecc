/*
 * test_config.c — config_load: defaults, TANDEM_* environment variables, command-line flags
 * (which win), and bad values, which fail with one line on errout naming the setting.
 *
 * Every test starts from an environment without TANDEM_* variables and captures errout in
 * memory. Tests change the process environment, so they run one after another.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

extern char **environ;

struct fixture {
	struct config cfg;
	char *out; /* what config_load wrote to errout */
	size_t out_len;
	char args[4096]; /* writable copies of the arguments, as a real argv is */
	char *argv[32];
	int argc;
};

static void clear_tandem_env(void)
{
	/* Restart the scan after each removal: unsetenv reshuffles environ. */
	for (;;) {
		char **e = environ;
		while (*e && strncmp(*e, "TANDEM_", 7) != 0)
			e++;
		if (!*e)
			return;
		char name[256];
		size_t n = strcspn(*e, "=");
		snprintf(name, sizeof(name), "%.*s", (int)n, *e);
		unsetenv(name);
	}
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	clear_tandem_env();
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	config_release(&f->cfg);
	free(f->out);
	free(f);
	clear_tandem_env();
	return 0;
}

static void push(struct fixture *f, size_t *used, const char *a)
{
	size_t n = strlen(a) + 1;
	assert_true(*used + n <= sizeof(f->args) && f->argc < 31);
	f->argv[f->argc++] = memcpy(f->args + *used, a, n);
	*used += n;
}

/* Run config_load on "tandem serve <args...>" (NULL-terminated). */
static int load(struct fixture *f, ...)
{
	size_t used = 0;
	va_list ap;
	f->argc = 0;
	push(f, &used, "tandem");
	push(f, &used, "serve");
	va_start(ap, f);
	for (const char *a; (a = va_arg(ap, const char *)) != NULL;)
		push(f, &used, a);
	va_end(ap);
	f->argv[f->argc] = NULL;
	char **argv = f->argv;
	int argc = f->argc;

	free(f->out);
	f->out = NULL;
	FILE *err = open_memstream(&f->out, &f->out_len);
	assert_non_null(err);
	config_release(&f->cfg);
	int rc = config_load(&f->cfg, argc, argv, 2, err);
	fclose(err);
	return rc;
}

/* The load fails, with exactly one line on errout that contains every `want` (NULL-ended). */
static void assert_fails_naming(struct fixture *f, int rc, ...)
{
	assert_int_equal(rc, -1);
	assert_non_null(f->out);
	assert_true(f->out_len > 0);
	assert_non_null(strchr(f->out, '\n'));
	assert_int_equal(strchr(f->out, '\n') - f->out, (long)f->out_len - 1);
	va_list ap;
	va_start(ap, rc);
	for (const char *w; (w = va_arg(ap, const char *)) != NULL;)
		if (!strstr(f->out, w))
			fail_msg("errout \"%s\" does not mention \"%s\"", f->out, w);
	va_end(ap);
}

static void test_defaults_serve_a_laptop(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(load(f, NULL), 0);
	struct config *c = &f->cfg;
	assert_string_equal(c->listen_host, "127.0.0.1");
	assert_int_equal(c->listen_port, 8080);
	assert_string_equal(c->data_dir, "./data");
	assert_null(c->database_url);
	assert_string_equal(config_database_url(c), "sqlite:./data/tandem.db");
	assert_true(c->auto_migrate);
	assert_int_equal(c->log_level, LOG_INFO);
	assert_true(c->access_log);
	assert_true(c->threads >= 1 && c->threads <= 64); /* 0 means "four per core" */
	assert_int_equal(c->max_connections, 10000);
	assert_int_equal(c->max_connections_per_ip, 64);
	assert_int_equal(c->connection_timeout_s, 30);
	assert_int_equal(c->request_timeout_s, 30);
	assert_int_equal(c->purge_interval_s, 600);
	assert_int_equal(c->idempotency_ttl_s, 86400);
	assert_int_equal(c->connection_memory, 16384);
	assert_int_equal(c->max_body_bytes, 1048576);
	assert_int_equal(c->shutdown_timeout_s, 10);
	assert_null(c->jwt_secret);
	assert_int_equal(c->access_token_ttl_s, 86400);
	assert_int_equal(c->refresh_token_ttl_s, 2592000);
	assert_int_equal(c->bcrypt_cost, 12);
	assert_int_equal(f->out_len, 0);
}

static void test_environment_overrides_defaults(void **state)
{
	struct fixture *f = *state;
	setenv("TANDEM_LISTEN", "0.0.0.0:9090", 1);
	setenv("TANDEM_DATA_DIR", "/var/lib/tandem", 1);
	setenv("TANDEM_AUTO_MIGRATE", "false", 1);
	setenv("TANDEM_LOG_LEVEL", "debug", 1);
	setenv("TANDEM_ACCESS_LOG", "off", 1);
	setenv("TANDEM_THREADS", "3", 1);
	setenv("TANDEM_MAX_CONNECTIONS", "20000", 1);
	setenv("TANDEM_MAX_CONNECTIONS_PER_IP", "50", 1);
	setenv("TANDEM_CONNECTION_TIMEOUT", "5", 1);
	setenv("TANDEM_CONNECTION_MEMORY", "131072", 1);
	setenv("TANDEM_MAX_BODY_BYTES", "2048", 1);
	setenv("TANDEM_SHUTDOWN_TIMEOUT", "0", 1);
	setenv("TANDEM_JWT_SECRET", "0123456789abcdef0123456789abcdef", 1);
	setenv("TANDEM_ACCESS_TOKEN_TTL", "60", 1);
	setenv("TANDEM_REFRESH_TOKEN_TTL", "315360000", 1);
	setenv("TANDEM_BCRYPT_COST", "4", 1);
	assert_int_equal(load(f, NULL), 0);
	struct config *c = &f->cfg;
	assert_string_equal(c->listen_host, "0.0.0.0");
	assert_int_equal(c->listen_port, 9090);
	assert_string_equal(c->data_dir, "/var/lib/tandem");
	assert_string_equal(config_database_url(c), "sqlite:/var/lib/tandem/tandem.db");
	assert_false(c->auto_migrate);
	assert_int_equal(c->log_level, LOG_DEBUG);
	assert_false(c->access_log);
	assert_int_equal(c->threads, 3);
	assert_int_equal(c->max_connections, 20000);
	assert_int_equal(c->max_connections_per_ip, 50);
	assert_int_equal(c->connection_timeout_s, 5);
	assert_int_equal(c->connection_memory, 131072);
	assert_int_equal(c->max_body_bytes, 2048);
	assert_int_equal(c->shutdown_timeout_s, 0);
	assert_string_equal(c->jwt_secret, "0123456789abcdef0123456789abcdef");
	assert_int_equal(c->access_token_ttl_s, 60);
	assert_int_equal(c->refresh_token_ttl_s, 315360000);
	assert_int_equal(c->bcrypt_cost, 4);
}

static void test_database_url_from_the_environment_is_used_as_is(void **state)
{
	struct fixture *f = *state;
	setenv("TANDEM_DATABASE_URL", "postgres://u@db.example/tandem", 1);
	assert_int_equal(load(f, NULL), 0);
	assert_string_equal(f->cfg.database_url, "postgres://u@db.example/tandem");
	assert_string_equal(config_database_url(&f->cfg), "postgres://u@db.example/tandem");
}

static void test_database_url_accepts_every_documented_form(void **state)
{
	struct fixture *f = *state;
	static const char *const ok[] = {"postgres://x/y", "postgresql:///db?host=/tmp",
					 "host=/tmp dbname=t", "sqlite:/tmp/t.db"};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		if (load(f, "--database-url", ok[i], NULL) != 0)
			fail_msg("rejected %s: %s", ok[i], f->out);
		assert_string_equal(config_database_url(&f->cfg), ok[i]);
	}
}

static void test_flags_win_over_the_environment(void **state)
{
	struct fixture *f = *state;
	setenv("TANDEM_LISTEN", "0.0.0.0:9090", 1);
	setenv("TANDEM_THREADS", "3", 1);
	setenv("TANDEM_LOG_LEVEL", "debug", 1);
	setenv("TANDEM_DATABASE_URL", "postgres://env/db", 1);
	assert_int_equal(load(f, "--listen", "127.0.0.1:7070", "--threads=9", "--log-level",
			      "error", "--database-url=sqlite:/tmp/flag.db", NULL),
			 0);
	assert_string_equal(f->cfg.listen_host, "127.0.0.1");
	assert_int_equal(f->cfg.listen_port, 7070);
	assert_int_equal(f->cfg.threads, 9);
	assert_int_equal(f->cfg.log_level, LOG_ERROR);
	assert_string_equal(f->cfg.database_url, "sqlite:/tmp/flag.db");
}

static void test_later_flag_wins_over_earlier_flag(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(load(f, "--threads", "2", "--threads", "5", NULL), 0);
	assert_int_equal(f->cfg.threads, 5);
}

static void test_boolean_flag_without_value_means_true(void **state)
{
	struct fixture *f = *state;
	setenv("TANDEM_ACCESS_LOG", "false", 1);
	assert_int_equal(load(f, "--access-log", NULL), 0);
	assert_true(f->cfg.access_log);
}

static void test_boolean_flag_with_value(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(load(f, "--auto-migrate=false", NULL), 0);
	assert_false(f->cfg.auto_migrate);
	assert_int_equal(load(f, "--auto-migrate=0", NULL), 0);
	assert_false(f->cfg.auto_migrate);
	assert_int_equal(load(f, "--auto-migrate=yes", NULL), 0);
	assert_true(f->cfg.auto_migrate);
}

static void test_listen_accepts_ipv6_in_brackets(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(load(f, "--listen", "[::1]:8443", NULL), 0);
	assert_string_equal(f->cfg.listen_host, "::1");
	assert_int_equal(f->cfg.listen_port, 8443);
}

static void test_listen_accepts_localhost(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(load(f, "--listen", "localhost:3000", NULL), 0);
	assert_string_equal(f->cfg.listen_host, "127.0.0.1");
	assert_int_equal(f->cfg.listen_port, 3000);
}

static void test_zero_threads_means_a_multiple_of_the_cores(void **state)
{
	struct fixture *f = *state;
	setenv("TANDEM_THREADS", "0", 1);
	assert_int_equal(load(f, NULL), 0);
	assert_true(f->cfg.threads >= 4 && f->cfg.threads <= 64);
}

static void test_bad_number_in_the_environment_names_the_setting(void **state)
{
	struct fixture *f = *state;
	setenv("TANDEM_THREADS", "many", 1);
	assert_fails_naming(f, load(f, NULL), "TANDEM_THREADS", "--threads", "many", NULL);
}

static void test_number_out_of_range_names_the_setting_and_range(void **state)
{
	struct fixture *f = *state;
	assert_fails_naming(f, load(f, "--bcrypt-cost", "3", NULL), "TANDEM_BCRYPT_COST",
			    "--bcrypt-cost", "4", "31", NULL);
	assert_fails_naming(f, load(f, "--bcrypt-cost=32", NULL), "TANDEM_BCRYPT_COST", NULL);
	assert_fails_naming(f, load(f, "--max-connections=0", NULL), "TANDEM_MAX_CONNECTIONS",
			    NULL);
	assert_fails_naming(f, load(f, "--max-body-bytes=1023", NULL), "TANDEM_MAX_BODY_BYTES",
			    NULL);
}

static void test_negative_and_signed_numbers_are_rejected(void **state)
{
	struct fixture *f = *state;
	assert_fails_naming(f, load(f, "--threads=-1", NULL), "TANDEM_THREADS", NULL);
	assert_fails_naming(f, load(f, "--threads=+1", NULL), "TANDEM_THREADS", NULL);
	assert_fails_naming(f, load(f, "--threads= 1", NULL), "TANDEM_THREADS", NULL);
	assert_fails_naming(f, load(f, "--threads=1x", NULL), "TANDEM_THREADS", NULL);
	assert_fails_naming(f, load(f, "--threads=", NULL), "TANDEM_THREADS", NULL);
	assert_fails_naming(f, load(f, "--access-token-ttl=99999999999999999999999", NULL),
			    "TANDEM_ACCESS_TOKEN_TTL", NULL);
}

static void test_bad_boolean_names_the_setting(void **state)
{
	struct fixture *f = *state;
	setenv("TANDEM_AUTO_MIGRATE", "maybe", 1);
	assert_fails_naming(f, load(f, NULL), "TANDEM_AUTO_MIGRATE", "--auto-migrate", "maybe",
			    NULL);
}

static void test_bad_log_level_names_the_setting(void **state)
{
	struct fixture *f = *state;
	assert_fails_naming(f, load(f, "--log-level", "verbose", NULL), "TANDEM_LOG_LEVEL",
			    "verbose", NULL);
}

static void test_bad_listen_addresses_name_the_setting(void **state)
{
	struct fixture *f = *state;
	static const char *const bad[] = {
	    "8080",  "127.0.0.1", "127.0.0.1:",	  "127.0.0.1:65536", "example.com:80", ":8080",
	    "[::1]", "::1:8080",  "[nothost]:80", "127.0.0.1:-1",    "256.0.0.1:80",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = load(f, "--listen", bad[i], NULL);
		if (rc != -1)
			fail_msg("--listen %s was accepted", bad[i]);
		assert_fails_naming(f, rc, "TANDEM_LISTEN", "--listen", NULL);
	}
}

static void test_unsupported_database_url_names_the_setting(void **state)
{
	struct fixture *f = *state;
	setenv("TANDEM_DATABASE_URL", "mysql://db/tandem", 1);
	assert_fails_naming(f, load(f, NULL), "TANDEM_DATABASE_URL", "mysql://db/tandem", NULL);
}

static void test_cors_is_off_by_default_and_takes_origins(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(load(f, NULL), 0);
	assert_null(f->cfg.cors_origins);
	setenv("TANDEM_CORS_ORIGINS", "http://127.0.0.1:5173, https://app.example.com", 1);
	assert_int_equal(load(f, NULL), 0);
	assert_string_equal(f->cfg.cors_origins, "http://127.0.0.1:5173, https://app.example.com");
	assert_int_equal(load(f, "--cors-origins=*", NULL), 0);
	assert_string_equal(f->cfg.cors_origins, "*");
}

static void test_bad_cors_origins_name_the_setting_and_the_item(void **state)
{
	struct fixture *f = *state;
	assert_fails_naming(f, load(f, "--cors-origins", "https://app.example.com/", NULL),
			    "TANDEM_CORS_ORIGINS", "--cors-origins", "\"https://app.example.com/\"",
			    "no path", NULL);
	setenv("TANDEM_CORS_ORIGINS", "*, http://127.0.0.1:5173", 1);
	assert_fails_naming(f, load(f, NULL), "TANDEM_CORS_ORIGINS", "only value", NULL);
}

static void test_short_jwt_secret_names_the_setting(void **state)
{
	struct fixture *f = *state;
	setenv("TANDEM_JWT_SECRET", "0123456789abcdef0123456789abcde", 1); /* 31 bytes */
	assert_fails_naming(f, load(f, NULL), "TANDEM_JWT_SECRET", "32", NULL);
}

static void test_database_url_errors_do_not_show_its_password(void **state)
{
	struct fixture *f = *state;
	setenv("TANDEM_DATABASE_URL", "mysql://admin:s3cretpw@db/tandem", 1);
	assert_fails_naming(f, load(f, NULL), "TANDEM_DATABASE_URL", "mysql://admin:***@db", NULL);
	assert_null(strstr(f->out, "s3cretpw"));
}

/* What `ps` shows is argv's memory: secrets given as flags are overwritten once parsed. */
static void test_secret_flags_are_overwritten_in_argv(void **state)
{
	struct fixture *f = *state;
	const char *key = "0123456789abcdef0123456789abcdef-key";
	assert_int_equal(load(f, "--jwt-secret", key, "--database-url",
			      "postgres://u:s3cretpw@db/tandem",
			      "--redis-url=redis://:s3cretpw@cache:6379", NULL),
			 0);
	assert_string_equal(f->cfg.jwt_secret, key);
	assert_string_equal(f->cfg.database_url, "postgres://u:s3cretpw@db/tandem");
	assert_string_equal(f->cfg.redis_url, "redis://:s3cretpw@cache:6379");
	assert_string_equal(f->argv[3], "************************************");
	assert_string_equal(f->argv[5], "postgres://u:********@db/tandem");
	assert_string_equal(f->argv[6], "--redis-url=redis://:********@cache:6379");
	assert_non_null(strstr(f->out, "--jwt-secret-file")); /* a warning, not an error */
}

static void test_jwt_secret_and_secret_file_are_exclusive(void **state)
{
	struct fixture *f = *state;
	setenv("TANDEM_JWT_SECRET", "0123456789abcdef0123456789abcdef", 1);
	assert_fails_naming(f, load(f, "--jwt-secret-file", "/etc/tandem/jwt.key", NULL),
			    "TANDEM_JWT_SECRET_FILE", "TANDEM_JWT_SECRET ", NULL);
}

static void test_session_max_age_has_a_default_and_a_range(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(load(f, NULL), 0);
	assert_int_equal(f->cfg.session_max_age_s, 30 * 86400);
	assert_int_equal(load(f, "--session-max-age", "3600", NULL), 0);
	assert_int_equal(f->cfg.session_max_age_s, 3600);
	assert_fails_naming(f, load(f, "--session-max-age", "59", NULL), "TANDEM_SESSION_MAX_AGE",
			    NULL);
}

static void test_refresh_grace_has_a_default_an_off_and_a_range(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(load(f, NULL), 0);
	assert_int_equal(f->cfg.refresh_grace_s, 10);
	assert_int_equal(load(f, "--refresh-grace", "0", NULL), 0);
	assert_int_equal(f->cfg.refresh_grace_s, 0);
	assert_fails_naming(f, load(f, "--refresh-grace", "301", NULL), "TANDEM_REFRESH_GRACE",
			    NULL);
	assert_fails_naming(f, load(f, "--refresh-grace", "-1", NULL), "TANDEM_REFRESH_GRACE",
			    NULL);
}

static void test_stream_ticket_ttl_has_a_default_and_a_range(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(load(f, NULL), 0);
	assert_int_equal(f->cfg.stream_ticket_ttl_s, 30);
	assert_int_equal(load(f, "--stream-ticket-ttl", "5", NULL), 0);
	assert_int_equal(f->cfg.stream_ticket_ttl_s, 5);
	assert_fails_naming(f, load(f, "--stream-ticket-ttl", "0", NULL),
			    "TANDEM_STREAM_TICKET_TTL", NULL);
	assert_fails_naming(f, load(f, "--stream-ticket-ttl", "3601", NULL),
			    "TANDEM_STREAM_TICKET_TTL", NULL);
}

static void test_unknown_flag_is_named(void **state)
{
	struct fixture *f = *state;
	assert_fails_naming(f, load(f, "--no-such-flag=1", NULL), "--no-such-flag", NULL);
	assert_null(strstr(f->out, "=1"));
}

static void test_flag_prefix_is_not_accepted(void **state)
{
	struct fixture *f = *state;
	assert_fails_naming(f, load(f, "--thread", "2", NULL), "--thread", NULL);
}

static void test_flag_without_its_value_is_named(void **state)
{
	struct fixture *f = *state;
	assert_fails_naming(f, load(f, "--listen", NULL), "--listen", NULL);
}

static void test_positional_argument_is_rejected(void **state)
{
	struct fixture *f = *state;
	assert_fails_naming(f, load(f, "extra", NULL), "extra", NULL);
	assert_fails_naming(f, load(f, "-t", "3", NULL), "-t", NULL);
}

static void test_release_allows_loading_again(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(load(f, "--data-dir", "/a", NULL), 0);
	config_release(&f->cfg);
	assert_null(f->cfg.data_dir);
	assert_int_equal(load(f, "--data-dir", "/b", NULL), 0);
	assert_string_equal(f->cfg.data_dir, "/b");
}

static void test_help_lists_every_setting(void **state)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	assert_non_null(out);
	config_print_help(out);
	fclose(out);
	static const char *const names[] = {"TANDEM_LISTEN",
					    "TANDEM_DATA_DIR",
					    "TANDEM_DATABASE_URL",
					    "TANDEM_AUTO_MIGRATE",
					    "TANDEM_LOG_LEVEL",
					    "TANDEM_ACCESS_LOG",
					    "TANDEM_THREADS",
					    "TANDEM_MAX_CONNECTIONS",
					    "TANDEM_MAX_CONNECTIONS_PER_IP",
					    "TANDEM_CONNECTION_TIMEOUT",
					    "TANDEM_CONNECTION_MEMORY",
					    "TANDEM_MAX_BODY_BYTES",
					    "TANDEM_SHUTDOWN_TIMEOUT",
					    "TANDEM_JWT_SECRET",
					    "TANDEM_ACCESS_TOKEN_TTL",
					    "TANDEM_REFRESH_TOKEN_TTL",
					    "TANDEM_BCRYPT_COST",
					    "--listen",
					    "--database-url",
					    "--bcrypt-cost"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strstr(buf, names[i]))
			fail_msg("--help does not mention %s", names[i]);
	free(buf);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_defaults_serve_a_laptop),
	    T(test_environment_overrides_defaults),
	    T(test_database_url_from_the_environment_is_used_as_is),
	    T(test_database_url_accepts_every_documented_form),
	    T(test_flags_win_over_the_environment),
	    T(test_later_flag_wins_over_earlier_flag),
	    T(test_boolean_flag_without_value_means_true),
	    T(test_boolean_flag_with_value),
	    T(test_listen_accepts_ipv6_in_brackets),
	    T(test_listen_accepts_localhost),
	    T(test_zero_threads_means_a_multiple_of_the_cores),
	    T(test_bad_number_in_the_environment_names_the_setting),
	    T(test_number_out_of_range_names_the_setting_and_range),
	    T(test_negative_and_signed_numbers_are_rejected),
	    T(test_bad_boolean_names_the_setting),
	    T(test_bad_log_level_names_the_setting),
	    T(test_bad_listen_addresses_name_the_setting),
	    T(test_unsupported_database_url_names_the_setting),
	    T(test_cors_is_off_by_default_and_takes_origins),
	    T(test_bad_cors_origins_name_the_setting_and_the_item),
	    T(test_short_jwt_secret_names_the_setting),
	    T(test_database_url_errors_do_not_show_its_password),
	    T(test_secret_flags_are_overwritten_in_argv),
	    T(test_jwt_secret_and_secret_file_are_exclusive),
	    T(test_session_max_age_has_a_default_and_a_range),
	    T(test_refresh_grace_has_a_default_an_off_and_a_range),
	    T(test_stream_ticket_ttl_has_a_default_and_a_range),
	    T(test_unknown_flag_is_named),
	    T(test_flag_prefix_is_not_accepted),
	    T(test_flag_without_its_value_is_named),
	    T(test_positional_argument_is_rejected),
	    T(test_release_allows_loading_again),
	    T(test_help_lists_every_setting),
	};
#undef T
	return cmocka_run_group_tests_name("config/config", tests, NULL, NULL);
}
