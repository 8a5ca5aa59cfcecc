/* query.c — see query.h. */
#include "http/query.h"
#include "core/arena.h"
#include "core/error.h"
#include "core/utf8.h"
#include "http/router.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Bytes of a client's name or value quoted in a message. */
#define QUOTE_MAX 40

/* Names other APIs use for ours: a client that sends ?per_page= is told to write ?limit=. */
static const char *const aliases[][2] = {
    {"per_page", "limit"}, {"page_size", "limit"}, {"pagesize", "limit"}, {"size", "limit"},
    {"count", "limit"},	   {"max", "limit"},	   {"order", "sort"},	  {"order_by", "sort"},
    {"orderby", "sort"},   {"sort_by", "sort"},	   {"sortby", "sort"},	  {"page", "cursor"},
    {"offset", "cursor"},  {"next", "cursor"},	   {"search", "q"},	  {"query", "q"},
    {"since", "after"},
};

static const struct route_param *find(const struct route_param *params, const char *name,
				      size_t len)
{
	for (const struct route_param *p = params; p && p->name; p++)
		if (strlen(p->name) == len && !memcmp(p->name, name, len))
			return p;
	return NULL;
}

/* Edit distance (insert, delete, substitute, swap two neighbours), case-insensitive, capped:
 * anything past `cap` is cap + 1. Names compared are short (ours at most 16 bytes). */
static size_t distance(const char *s, size_t n, const char *t, size_t m, size_t cap)
{
	size_t d[3][24];
	if (n > 22 || m > 22)
		return cap + 1;
	for (size_t j = 0; j <= m; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= n; i++) {
		size_t *row = d[i % 3], *up = d[(i + 2) % 3], *up2 = d[(i + 1) % 3];
		row[0] = i;
		for (size_t j = 1; j <= m; j++) {
			bool same =
			    tolower((unsigned char)s[i - 1]) == tolower((unsigned char)t[j - 1]);
			size_t v = up[j - 1] + (same ? 0 : 1);
			if (up[j] + 1 < v)
				v = up[j] + 1;
			if (row[j - 1] + 1 < v)
				v = row[j - 1] + 1;
			if (i > 1 && j > 1 &&
			    tolower((unsigned char)s[i - 1]) == tolower((unsigned char)t[j - 2]) &&
			    tolower((unsigned char)s[i - 2]) == tolower((unsigned char)t[j - 1]) &&
			    up2[j - 2] + 1 < v)
				v = up2[j - 2] + 1;
			row[j] = v;
		}
	}
	return d[n % 3][m] > cap ? cap + 1 : d[n % 3][m];
}

/* The accepted name an unknown one most likely meant, or NULL. */
static const char *suggest(const struct route_param *params, const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++)
		if (strlen(aliases[i][0]) == len && !strncasecmp(aliases[i][0], name, len) &&
		    find(params, aliases[i][1], strlen(aliases[i][1])))
			return aliases[i][1];
	const char *best = NULL;
	size_t best_d = 0;
	for (const struct route_param *p = params; p && p->name; p++) {
		size_t pl = strlen(p->name);
		/* One edit in a short name, two in a longer one; "q" only as "Q". */
		size_t cap = pl < 4 ? (pl < 2 ? 0 : 1) : 2;
		size_t d = distance(name, len, p->name, pl, cap);
		if (d <= cap && (!best || d < best_d)) {
			best = p->name;
			best_d = d;
		}
	}
	return best;
}

const char *query_accepted(struct arena *a, const struct route_param *params)
{
	if (!params || !params->name)
		return "none";
	const char *s = params->name;
	for (const struct route_param *p = params + 1; p->name; p++)
		s = arena_printf(a, "%s, %s", s, p->name);
	return s;
}

/* An empty segment: "a=1&&b=2", a trailing '&'. URL builders leave them; they say nothing. */
static bool empty(const struct query_arg *arg)
{
	return arg->name_len == 0 && !arg->value;
}

static const char *quoted(struct arena *a, const char *s, size_t len)
{
	char buf[QUOTE_MAX * 4 + 8];
	return arena_strdup(a, error_quote(buf, sizeof(buf), arena_strndup(a, s, len), QUOTE_MAX));
}

static int unknown(struct arena *a, const struct route_param *params, const struct query_arg *in,
		   int n, struct error *err)
{
	int count = 0;
	const char *first = NULL, *hint = NULL;
	for (int i = 0; i < n; i++) {
		if (empty(&in[i]) || find(params, in[i].name, in[i].name_len))
			continue;
		bool seen = false;
		for (int j = 0; j < i && !seen; j++) /* named before: an empty segment was not */
			seen = !empty(&in[j]) && in[j].name_len == in[i].name_len &&
			       !memcmp(in[j].name, in[i].name, in[i].name_len);
		if (seen)
			continue;
		const char *name = quoted(a, in[i].name, in[i].name_len);
		const char *s = suggest(params, in[i].name, in[i].name_len);
		if (!params || !params->name)
			error_field(err, name, "unknown_parameter",
				    "this route takes no parameters");
		else if (s)
			error_field(err, name, "unknown_parameter",
				    "is not a parameter of this route; did you mean '%s'?", s);
		else
			error_field(err, name, "unknown_parameter",
				    "is not a parameter of this route");
		if (!count++) {
			first = name;
			hint = s;
		}
	}
	if (!count)
		return 0;
	const char *accepted = params && params->name
				   ? arena_printf(a, "accepted: %s", query_accepted(a, params))
				   : "this route takes no query parameters";
	if (count == 1 && hint)
		return error_set(err, ERR_UNKNOWN_PARAMETER,
				 "unknown query parameter '%s' (did you mean '%s'?); %s", first,
				 hint, accepted);
	if (count == 1)
		return error_set(err, ERR_UNKNOWN_PARAMETER, "unknown query parameter '%s'; %s",
				 first, accepted);
	return error_set(err, ERR_UNKNOWN_PARAMETER,
			 "%d unknown query parameters, the first '%s'; %s", count, first, accepted);
}

int query_check(struct arena *a, const struct route_param *params, const struct query_arg *in,
		int n, struct query_arg **out, int *nout, struct error *err)
{
	int rc;
	*out = NULL;
	*nout = 0;
	if (n == 0) /* most requests: nothing to allocate */
		return 0;
	if ((rc = unknown(a, params, in, n, err)) < 0)
		return rc;
	size_t before = error_field_count(err);
	size_t slots = (size_t)(n > 0 ? n : 1);
	struct query_arg *args = arena_alloc(a, sizeof(*args) * slots);
	int *slot = arena_alloc(a, sizeof(*slot) * slots), count = 0;
	/* Pass one: which parameter each argument is, and what a list's joined value needs
	 * (joined once at the end: thousands of repeats must not copy the text thousands of
	 * times). */
	for (int i = 0; i < n; i++) {
		const struct route_param *p = find(params, in[i].name, in[i].name_len);
		const char *v = in[i].value ? in[i].value : "";
		size_t vlen = in[i].value ? in[i].value_len : 0;
		slot[i] = -1;
		if (empty(&in[i]))
			continue;
		if (!utf8_valid(v, vlen)) {
			error_field(err, p->name, "invalid",
				    memchr(v, '\0', vlen)
					? "must not contain a NUL byte (%%00)"
					: "must be UTF-8 text, percent-encoded byte by byte");
			continue;
		}
		int j = 0;
		while (j < count && args[j].name != p->name)
			j++;
		slot[i] = j;
		if (j == count) {
			args[count++] = (struct query_arg){p->name, v, strlen(p->name), vlen};
		} else if (p->flags & PARAM_LIST) {
			args[j].value = NULL; /* joined below */
			args[j].value_len += 1 + vlen;
		} else if (args[j].value) {
			error_field(err, p->name, "repeated",
				    "must be given once (it is not a list): '%s', then '%s'",
				    quoted(a, args[j].value, args[j].value_len),
				    quoted(a, v, vlen));
			args[j].value = NULL; /* one error per name, however many repeats */
		}
	}
	if (error_field_count(err) > before)
		return -ERR_VALIDATION_FAILED;
	/* Pass two: join the lists given more than once. */
	for (int j = 0; j < count; j++) {
		if (args[j].value)
			continue;
		char *joined = arena_alloc(a, args[j].value_len + 1);
		size_t used = 0;
		bool first = true;
		for (int i = 0; i < n; i++) {
			if (slot[i] != j)
				continue;
			if (!first)
				joined[used++] = ',';
			first = false;
			memcpy(joined + used, in[i].value ? in[i].value : "", in[i].value_len);
			used += in[i].value ? in[i].value_len : 0;
		}
		joined[used] = '\0';
		args[j].value = joined;
	}
	*out = args;
	*nout = count;
	return 0;
}

const char *query_get(const struct query_arg *args, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(args[i].name, name))
			return args[i].value;
	return NULL;
}
