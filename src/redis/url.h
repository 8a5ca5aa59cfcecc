/*
 * url.h — the one parser of Redis URLs (TANDEM_REDIS_URL), for every Redis connection the
 * process makes (command connections and the event bus's subscriber alike):
 *
 *   redis://[[user]:password@]host[:port][/db]     host: a name, IPv4, or [IPv6]
 *   redis://password@host[:port][/db]              (userinfo without ':' is the password)
 *   unix://[[user]:password@]/path/to/socket[?db=N]
 *
 * With a user name, connections log in with `AUTH user password` (Redis 6 ACLs); with a
 * password alone, `AUTH password` (the `default` user). User name and password are taken as
 * written (no percent-decoding); a password may contain '@' (userinfo ends at the last '@'
 * of a redis:// URL, at the first "@/" of a unix:// one). Pure functions, no I/O.
 */
#ifndef TANDEM_REDIS_URL_H
#define TANDEM_REDIS_URL_H

#include <stddef.h>

struct redis_url {
	char *host;	/* TCP: host name or address (IPv6 without brackets); else NULL */
	int port;	/* TCP: 6379 unless given */
	char *path;	/* unix: socket path; else NULL */
	char *user;	/* NULL: no user name (AUTH password, or no AUTH) */
	char *password; /* NULL: no AUTH */
	int db;		/* SELECT db when not 0 */
};

/*
 * Parse `text` into *out (strings are new, release with redis_url_release()). Returns 0, or
 * -1 with *out empty and a message in `why` that never quotes the password (nor the URL).
 */
int redis_url_parse(const char *text, struct redis_url *out, char *why, size_t why_len);
void redis_url_release(struct redis_url *u);

/*
 * Copy `text` into buf (size len, always terminated) with the password of its userinfo
 * replaced by "***", for messages and logs. Works on URLs that do not parse, whatever their
 * scheme.
 */
void redis_url_redact(const char *text, char *buf, size_t len);

#endif
