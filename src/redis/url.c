/* url.c — see url.h. */
#include "redis/url.h"
#include "core/xalloc.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Redis has 16 databases by default; `databases` may raise that, never to anything near. */
#define DB_MAX 1000000

/* A decimal number in [lo, hi] spelled as exactly the n bytes at s. */
static bool number(const char *s, size_t n, long lo, long hi, int *out)
{
	char buf[16];
	if (n == 0 || n >= sizeof(buf) || strspn(s, "0123456789") < n)
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	errno = 0;
	long v = strtol(buf, NULL, 10);
	if (errno || v < lo || v > hi)
		return false;
	*out = (int)v;
	return true;
}

/* Where the userinfo of the text after the scheme ends (its '@'), or NULL when none. */
static const char *userinfo_end(const char *rest, bool unix_socket)
{
	if (!unix_socket)
		return strrchr(rest, '@');
	if (rest[0] == '/')
		return NULL; /* unix:///path: an absolute path, no userinfo */
	const char *at = strstr(rest, "@/");
	return at;
}

/* userinfo = [user]:password | password; empty parts mean none. */
static int take_userinfo(const char *s, size_t n, struct redis_url *u, char *why, size_t why_len)
{
	const char *colon = memchr(s, ':', n);
	if (colon) {
		if (colon > s)
			u->user = xstrndup(s, (size_t)(colon - s));
		if ((size_t)(colon + 1 - s) < n)
			u->password = xstrndup(colon + 1, n - (size_t)(colon + 1 - s));
	} else if (n > 0) {
		u->password = xstrndup(s, n);
	}
	if (u->user && !u->password) {
		snprintf(why, why_len, "user name \"%s\" without a password", u->user);
		return -1;
	}
	return 0;
}

/* Take the userinfo at the start of *rest, if any, and move *rest past its '@'. */
static int skip_userinfo(const char **rest, bool unix_socket, struct redis_url *u, char *why,
			 size_t why_len)
{
	const char *at = userinfo_end(*rest, unix_socket);
	if (!at)
		return 0;
	if (take_userinfo(*rest, (size_t)(at - *rest), u, why, why_len) < 0)
		return -1;
	*rest = at + 1;
	return 0;
}

static int parse_unix(const char *rest, struct redis_url *u, char *why, size_t why_len)
{
	if (skip_userinfo(&rest, true, u, why, why_len) < 0)
		return -1;
	const char *q = strchr(rest, '?');
	size_t plen = q ? (size_t)(q - rest) : strlen(rest);
	if (plen == 0) {
		snprintf(why, why_len, "no socket path (expected unix:///path/to/socket)");
		return -1;
	}
	if (rest[0] != '/') {
		snprintf(why, why_len, "the socket path must be absolute (unix:///path/to/socket)");
		return -1;
	}
	if (q) {
		if (strncmp(q, "?db=", 4) || !number(q + 4, strlen(q + 4), 0, DB_MAX, &u->db)) {
			snprintf(why, why_len, "expected ?db=N (a database number) after the path");
			return -1;
		}
	}
	u->path = xstrndup(rest, plen);
	return 0;
}

static int parse_tcp(const char *rest, struct redis_url *u, char *why, size_t why_len)
{
	if (skip_userinfo(&rest, false, u, why, why_len) < 0)
		return -1;
	const char *slash = strchr(rest, '/');
	size_t hl = slash ? (size_t)(slash - rest) : strlen(rest);
	const char *host = rest, *port = NULL;
	size_t host_len = hl;
	if (hl > 0 && rest[0] == '[') {
		const char *close = memchr(rest, ']', hl);
		if (!close) {
			snprintf(why, why_len, "unterminated [IPv6 address]");
			return -1;
		}
		host = rest + 1;
		host_len = (size_t)(close - host);
		if (close + 1 < rest + hl) {
			if (close[1] != ':') {
				snprintf(why, why_len, "unexpected text after the [IPv6 address]");
				return -1;
			}
			port = close + 2;
		}
	} else {
		const char *colon = memchr(rest, ':', hl);
		if (colon) {
			host_len = (size_t)(colon - rest);
			port = colon + 1;
		}
	}
	if (host_len == 0) {
		snprintf(why, why_len, "no host (expected redis://host[:port][/db])");
		return -1;
	}
	if (memchr(host, '?', host_len) || memchr(host, '#', host_len)) {
		snprintf(why, why_len,
			 "unexpected '?' or '#' in the host (expected "
			 "redis://host[:port][/db])");
		return -1;
	}
	u->port = 6379;
	if (port && !number(port, (size_t)(rest + hl - port), 1, 65535, &u->port)) {
		snprintf(why, why_len, "bad port (expected a number from 1 to 65535)");
		return -1;
	}
	if (slash && slash[1] && !number(slash + 1, strlen(slash + 1), 0, DB_MAX, &u->db)) {
		snprintf(why, why_len, "bad database number after '/' (expected /N)");
		return -1;
	}
	u->host = xstrndup(host, host_len);
	return 0;
}

int redis_url_parse(const char *text, struct redis_url *out, char *why, size_t why_len)
{
	int rc;
	memset(out, 0, sizeof(*out));
	if (!strncmp(text, "unix://", 7)) {
		rc = parse_unix(text + 7, out, why, why_len);
	} else if (!strncmp(text, "redis://", 8)) {
		rc = parse_tcp(text + 8, out, why, why_len);
	} else {
		snprintf(why, why_len,
			 "expected redis://[[user]:password@]host[:port][/db] or "
			 "unix://[[user]:password@]/path[?db=N]");
		rc = -1;
	}
	if (rc < 0)
		redis_url_release(out);
	return rc;
}

void redis_url_release(struct redis_url *u)
{
	free(u->host);
	free(u->path);
	free(u->user);
	free(u->password);
	memset(u, 0, sizeof(*u));
}

void redis_url_redact(const char *text, char *buf, size_t len)
{
	/* Any scheme: a mistyped one (rediss://, http://) may still carry a password. */
	const char *sep = strstr(text, "://");
	const char *rest = sep ? sep + 3 : NULL;
	const char *at = rest ? userinfo_end(rest, !strncmp(text, "unix://", 7)) : NULL;
	if (!at) {
		snprintf(buf, len, "%s", text);
		return;
	}
	/* The password is what follows the first ':' of the userinfo, or all of it. */
	const char *colon = memchr(rest, ':', (size_t)(at - rest));
	const char *pw = colon ? colon + 1 : rest;
	snprintf(buf, len, "%.*s***%s", (int)(pw - text), text, at);
}
