/* cors.c — see cors.h. */
#include "http/cors.h"
#include "core/hlist.h"
#include "core/xalloc.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct cors {
	bool any;
	size_t n;
	char **origins; /* lower-cased, as a browser serialises an origin */
};

/* The request headers a browser client may send: those the server reads. */
static const char *const allowed_headers[] = {
    "Authorization",   "Content-Type",	"If-Match",	"If-None-Match",
    "Idempotency-Key", "Last-Event-ID", "X-Request-Id",
};

static bool is_scheme_char(char c)
{
	return isalnum((unsigned char)c) || c == '+' || c == '-' || c == '.';
}

static bool is_host_char(char c)
{
	return isalnum((unsigned char)c) || c == '-' || c == '.';
}

/*
 * Check one origin `s` (len bytes, trimmed) against RFC 6454's serialisation:
 * scheme "://" host [":" port], nothing else. NULL when it is one, else why not.
 */
static const char *origin_problem(const char *s, size_t len)
{
	size_t i = 0;
	if (len == 4 && !strncasecmp(s, "null", 4))
		return "\"null\" is the origin of sandboxed and file: pages, which any site can "
		       "produce: it cannot be allowed";
	if (len == 0 || !isalpha((unsigned char)s[0]))
		return "expected scheme://host[:port]";
	while (i < len && is_scheme_char(s[i]))
		i++;
	size_t scheme_len = i;
	if (len - i < 3 || memcmp(s + i, "://", 3))
		return "expected scheme://host[:port]";
	i += 3;
	size_t host = i;
	if (i < len && s[i] == '[') {
		while (i < len &&
		       (isxdigit((unsigned char)s[i]) || s[i] == ':' || s[i] == '.' || s[i] == '['))
			i++;
		if (i >= len || s[i] != ']' || i == host + 1)
			return "a bracketed IPv6 host must be closed by ]";
		i++;
	} else {
		while (i < len && is_host_char(s[i]))
			i++;
	}
	if (i == host)
		return "the host is missing";
	if (i < len && s[i] == '@')
		return "an origin has no user name or password";
	if (i < len && s[i] == ':') {
		size_t p = ++i;
		unsigned long port = 0;
		while (i < len && isdigit((unsigned char)s[i]) && i - p < 6)
			port = port * 10 + (unsigned long)(s[i++] - '0');
		if (i == p || port == 0 || port > 65535)
			return "the port must be a number from 1 to 65535";
		if ((scheme_len == 4 && !strncasecmp(s, "http", 4) && port == 80) ||
		    (scheme_len == 5 && !strncasecmp(s, "https", 5) && port == 443))
			return "a browser leaves the scheme's default port out of an origin: "
			       "drop it";
	}
	if (i < len && s[i] == '/')
		return "an origin has no path, not even a trailing /";
	if (i < len)
		return "expected scheme://host[:port], nothing after it";
	return NULL;
}

int cors_create(const char *spec, struct cors **out, char *why, size_t why_len)
{
	*out = NULL;
	if (!spec || !spec[strspn(spec, " \t")])
		return 0;
	struct cors *c = xcalloc(1, sizeof(*c));
	size_t items = 1;
	for (const char *p = spec; *p; p++)
		items += *p == ',';
	c->origins = xcalloc(items, sizeof(*c->origins));
	for (const char *p = spec;;) {
		const char *end = strchr(p, ',');
		if (!end)
			end = p + strlen(p);
		const char *a = p, *b = end;
		while (a < b && (*a == ' ' || *a == '\t'))
			a++;
		while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
			b--;
		size_t len = (size_t)(b - a);
		const char *problem = NULL;
		if (len == 0)
			problem = "an empty item (a stray comma?)";
		else if (len == 1 && *a == '*')
			problem =
			    items == 1 ? NULL : "* allows every origin: it must be the only value";
		else
			problem = origin_problem(a, len);
		if (problem) {
			snprintf(why, why_len, "\"%.*s\": %s", (int)(len > 200 ? 200 : len), a,
				 problem);
			cors_free(c);
			return -1;
		}
		if (len == 1 && *a == '*') {
			c->any = true;
		} else {
			char *o = xstrndup(a, len);
			for (char *q = o; *q; q++)
				*q = (char)tolower((unsigned char)*q);
			c->origins[c->n++] = o;
		}
		if (!*end)
			break;
		p = end + 1;
	}
	*out = c;
	return 0;
}

void cors_free(struct cors *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++)
		free(c->origins[i]);
	free(c->origins);
	free(c);
}

bool cors_any(const struct cors *c)
{
	return c && c->any;
}

const char *cors_allow_origin(const struct cors *c, const char *origin)
{
	if (!c || !origin)
		return NULL;
	if (c->any)
		return "*";
	for (size_t i = 0; i < c->n; i++)
		if (!strcmp(c->origins[i], origin))
			return c->origins[i];
	return NULL;
}

struct grant {
	char *out;
	size_t len, used;
};

static bool grant_header(const char *p, size_t len, void *cls)
{
	struct grant *g = cls;
	const char *name = NULL;
	for (size_t i = 0; i < sizeof(allowed_headers) / sizeof(allowed_headers[0]); i++)
		if (strlen(allowed_headers[i]) == len && !strncasecmp(allowed_headers[i], p, len))
			name = allowed_headers[i];
	if (!name)
		return false;
	int w = snprintf(g->out + g->used, g->len - g->used, "%s%s", g->used ? ", " : "", name);
	if (w < 0 || (size_t)w >= g->len - g->used)
		return false;
	g->used += (size_t)w;
	return true;
}

int cors_allow_headers(const char *requested, char *out, size_t out_len)
{
	if (out_len == 0)
		return -1;
	out[0] = '\0';
	struct grant g = {.out = out, .len = out_len};
	return hlist_each(requested, grant_header, &g) ? 0 : -1;
}

struct method_find {
	const char *method;
	bool found, get;
};

static bool find_method(const char *p, size_t len, void *cls)
{
	struct method_find *m = cls;
	m->found = len == strlen(m->method) && !memcmp(p, m->method, len);
	m->get |= len == 3 && !memcmp(p, "GET", 3);
	return !m->found;
}

bool cors_method_listed(const char *methods, const char *method)
{
	if (!methods || !method || !*method)
		return false;
	struct method_find m = {.method = method};
	hlist_each(methods, find_method, &m);
	return m.found || (m.get && !strcmp(method, "HEAD"));
}
