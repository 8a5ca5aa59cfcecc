/* redact.c — see redact.h. */
#include "core/redact.h"

#include <string.h>

struct span {
	size_t off, len;
};

#define MAX_SPANS 8

/* The userinfo of a URL: from after "://" up to the last '@' (a careless password may hold
 * an unencoded '@'); its password after the first ':', or all of it. */
static int userinfo(const char *text, struct span *out)
{
	const char *sep = strstr(text, "://");
	if (!sep)
		return 0;
	const char *rest = sep + 3, *at = strrchr(rest, '@');
	if (!at || at == rest)
		return 0;
	const char *colon = memchr(rest, ':', (size_t)(at - rest));
	const char *pw = colon ? colon + 1 : rest;
	if (pw == at)
		return 0;
	out->off = (size_t)(pw - text);
	out->len = (size_t)(at - pw);
	return 1;
}

/* The values of `password=` parameters (key=value strings, URL queries). */
static int parameters(const char *text, struct span *out, int n)
{
	for (const char *p = text; (p = strstr(p, "password")) && n < MAX_SPANS; p += 8) {
		if (p != text && !strchr(" \t\n?&", p[-1]))
			continue;
		const char *v = p + 8;
		while (*v == ' ' || *v == '\t')
			v++;
		if (*v != '=')
			continue;
		v++;
		while (*v == ' ' || *v == '\t')
			v++;
		const char *end = v;
		if (*v == '\'') {
			for (end = v + 1; *end && *end != '\''; end++)
				if (*end == '\\' && end[1])
					end++;
			if (*end)
				end++;
		} else {
			while (*end && !strchr(" \t\n&", *end))
				end++;
		}
		if (end > v)
			out[n++] = (struct span){(size_t)(v - text), (size_t)(end - v)};
	}
	return n;
}

static int spans(const char *text, struct span out[MAX_SPANS])
{
	int n = parameters(text, out, userinfo(text, out));
	/* In text order, for the copy. */
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && out[j].off < out[j - 1].off; j--) {
			struct span t = out[j];
			out[j] = out[j - 1];
			out[j - 1] = t;
		}
	return n;
}

/* Append n bytes of p and a terminator if they fit; false once buf is full. */
static bool put(char *buf, size_t len, size_t *used, const char *p, size_t n)
{
	if (*used + n + 1 > len)
		n = len - *used - 1;
	memcpy(buf + *used, p, n);
	*used += n;
	buf[*used] = '\0';
	return *used + 1 < len;
}

void redact_url(const char *text, char *buf, size_t len)
{
	struct span s[MAX_SPANS];
	int n = spans(text, s);
	size_t at = 0, used = 0;
	if (!len)
		return;
	buf[0] = '\0';
	for (int i = 0; i < n; i++) {
		if (s[i].off >= at) {
			if (!put(buf, len, &used, text + at, s[i].off - at) ||
			    !put(buf, len, &used, "***", 3))
				return;
		}
		if (s[i].off + s[i].len > at)
			at = s[i].off + s[i].len;
	}
	put(buf, len, &used, text + at, strlen(text + at));
}

bool redact_in_place(char *text)
{
	struct span s[MAX_SPANS];
	int n = spans(text, s);
	for (int i = 0; i < n; i++)
		memset(text + s[i].off, '*', s[i].len);
	return n > 0;
}
