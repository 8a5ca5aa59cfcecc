/*
 * fuzz_settings.c — the text parsers of the settings: the Redis URL (redis/url.c, parse and
 * redact) and the whole command line (config/config.c: every flag, number, size, duration,
 * boolean, log level, listen address and database URL check).
 *
 * The first byte picks: even, the rest is a Redis URL; odd, the rest is a command line, one
 * argument per line. Properties beyond the sanitizers: a parsed URL names a host or a socket
 * path, a port (TCP) and a database in range; a refused one says why; neither the reason nor the
 * redacted form ever shows the password of a redis:// URL; a refused command line says why on
 * its error stream, an accepted one has a usable database URL.
 */
#include "fuzz.h"
#include "config/config.h"
#include "redis/url.h"

#include <string.h>

static FILE *errout;
static char *errbuf;
static size_t errlen;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	errout = open_memstream(&errbuf, &errlen);
	return errout ? 0 : -1;
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

static void redis_url(const char *text)
{
	struct redis_url u;
	char why[200], red[512];
	why[0] = '\0';
	int rc = redis_url_parse(text, &u, why, sizeof(why));
	redis_url_redact(text, red, sizeof(red));
	if (rc == 0) {
		FUZZ_CHECK(!!u.host != !!u.path);
		FUZZ_CHECK(!u.host || (u.port >= 1 && u.port <= 65535));
		FUZZ_CHECK(u.db >= 0);
		FUZZ_CHECK(!u.user || u.password);
	} else {
		FUZZ_CHECK(rc == -1 && why[0]);
		FUZZ_CHECK(!u.host && !u.path && !u.user && !u.password);
	}
	/* The password of redis://[user:]password@...: what the redactor hides, what no message
	 * may show. Checked where it is unambiguous (long enough, written once). */
	if (!strncmp(text, "redis://", 8)) {
		const char *rest = text + 8, *at = strrchr(rest, '@');
		if (at) {
			const char *colon = memchr(rest, ':', (size_t)(at - rest));
			const char *pw = colon ? colon + 1 : rest;
			char *secret = strndup(pw, (size_t)(at - pw));
			if (strlen(secret) >= 4 && count(text, secret) == 1 &&
			    (strstr(why, secret) || strstr(red, secret))) {
				/* Shown, or the same letters by chance ("atabas" is in "database";
				 * "*@and" is the mask and the host in "***@and"): then the same URL
				 * with another password shows them too. */
				char *other = strdup(text), why2[200], red2[512];
				struct redis_url u2;
				memset(other + (pw - text), 'Z', strlen(secret));
				why2[0] = '\0';
				redis_url_parse(other, &u2, why2, sizeof(why2));
				redis_url_release(&u2);
				redis_url_redact(other, red2, sizeof(red2));
				if (strstr(why, secret))
					FUZZ_CHECK(strstr(why2, secret) != NULL);
				if (strstr(red, secret))
					FUZZ_CHECK(strstr(red2, secret) != NULL);
				free(other);
			}
			free(secret);
		}
	}
	redis_url_release(&u);
}

static void command_line(char *text)
{
	char *argv[64];
	int argc = 0;
	argv[argc++] = "tandem";
	for (char *p = text; p && argc < 64;) {
		argv[argc++] = p;
		char *nl = strchr(p, '\n');
		if (nl)
			*nl++ = '\0';
		p = nl;
	}
	struct config cfg;
	rewind(errout);
	fflush(errout);
	long before = ftell(errout);
	int rc = config_load(&cfg, argc, argv, 1, errout);
	fflush(errout);
	if (rc == 0) {
		const char *url = config_database_url(&cfg);
		FUZZ_CHECK(url && *url);
		FUZZ_CHECK(cfg.listen_host && *cfg.listen_host);
	} else {
		FUZZ_CHECK(rc == -1 && ftell(errout) > before);
	}
	/* A refused command line is released like an accepted one (tandem exits either way;
	 * whatever it set must still be freeable). */
	config_release(&cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	char *text = fuzz_string(data + 1, size - 1);
	if (data[0] & 1)
		command_line(text);
	else
		redis_url(text);
	free(text);
	return 0;
}
