/* jsonw.c — see jsonw.h. The buffer doubles as it fills; a string reserves its worst case
 * (six bytes per input byte) once, so the escaping loop itself never checks for room. */
#include "core/jsonw.h"
#include "core/xalloc.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define JSONW_DEFAULT_CAP 256

/*
 * What each byte becomes inside a string: 0 copied as it is, 'u' as \u00XX, anything else
 * the letter after a backslash. '/' is not escaped (JSON allows either; jansson does not).
 */
static const char escape[256] = {
    ['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n', ['\f'] = 'f',  ['\r'] = 'r', [0x00] = 'u',
    [0x01] = 'u', [0x02] = 'u', [0x03] = 'u', [0x04] = 'u',  [0x05] = 'u', [0x06] = 'u',
    [0x07] = 'u', [0x0b] = 'u', [0x0e] = 'u', [0x0f] = 'u',  [0x10] = 'u', [0x11] = 'u',
    [0x12] = 'u', [0x13] = 'u', [0x14] = 'u', [0x15] = 'u',  [0x16] = 'u', [0x17] = 'u',
    [0x18] = 'u', [0x19] = 'u', [0x1a] = 'u', [0x1b] = 'u',  [0x1c] = 'u', [0x1d] = 'u',
    [0x1e] = 'u', [0x1f] = 'u', ['"'] = '"',  ['\\'] = '\\',
};

void jsonw_init(struct jsonw *w, size_t hint)
{
	w->cap = hint ? hint : JSONW_DEFAULT_CAP;
	w->buf = xmalloc(w->cap);
	w->len = 0;
	w->comma = false;
	w->depth = 0;
}

void jsonw_release(struct jsonw *w)
{
	free(w->buf);
	w->buf = NULL;
	w->len = w->cap = 0;
	w->comma = false;
	w->depth = 0;
}

/* Room for n more bytes and a NUL after them. */
static inline void reserve(struct jsonw *w, size_t n)
{
	if (w->cap - w->len > n)
		return;
	size_t cap = w->cap ? w->cap : JSONW_DEFAULT_CAP;
	while (cap - w->len <= n) {
		assert(cap <= SIZE_MAX / 2);
		cap *= 2;
	}
	w->buf = xrealloc(w->buf, cap);
	w->cap = cap;
}

static inline void put(struct jsonw *w, const char *s, size_t n)
{
	reserve(w, n);
	memcpy(w->buf + w->len, s, n);
	w->len += n;
}

/* Before any value (or key): the comma that separates it from the previous one. */
static inline void sep(struct jsonw *w)
{
	if (w->comma) {
		reserve(w, 1);
		w->buf[w->len++] = ',';
	}
}

char *jsonw_finish(struct jsonw *w, size_t *len)
{
	assert(w->depth == 0);
	reserve(w, 0);
	w->buf[w->len] = '\0';
	char *s = w->buf;
	*len = w->len;
	w->buf = NULL;
	jsonw_release(w);
	return s;
}

static void open_level(struct jsonw *w, char c)
{
	assert(w->depth < JSONW_MAX_DEPTH);
	sep(w);
	reserve(w, 1);
	w->buf[w->len++] = c;
	w->comma = false;
	w->depth++;
}

static void close_level(struct jsonw *w, char c)
{
	assert(w->depth > 0);
	reserve(w, 1);
	w->buf[w->len++] = c;
	w->comma = true;
	w->depth--;
}

void jsonw_object_begin(struct jsonw *w)
{
	open_level(w, '{');
}

void jsonw_object_end(struct jsonw *w)
{
	close_level(w, '}');
}

void jsonw_array_begin(struct jsonw *w)
{
	open_level(w, '[');
}

void jsonw_array_end(struct jsonw *w)
{
	close_level(w, ']');
}

/* The quoted, escaped text of s (no comma handling). */
static void quoted(struct jsonw *w, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	assert(n <= (SIZE_MAX - 3) / 6);
	reserve(w, 6 * n + 2);
	char *o = w->buf + w->len;
	const unsigned char *p = (const unsigned char *)s, *end = p + n;
	*o++ = '"';
	while (p < end) {
		/* Copy the run of bytes that need no escape in one go. */
		const unsigned char *run = p;
		while (p < end && !escape[*p])
			p++;
		memcpy(o, run, (size_t)(p - run));
		o += p - run;
		if (p == end)
			break;
		char e = escape[*p];
		*o++ = '\\';
		if (e == 'u') {
			*o++ = 'u';
			*o++ = '0';
			*o++ = '0';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 15];
		} else {
			*o++ = e;
		}
		p++;
	}
	*o++ = '"';
	w->len = (size_t)(o - w->buf);
}

void jsonw_key(struct jsonw *w, const char *key)
{
	assert(w->depth > 0);
	sep(w);
	quoted(w, key, strlen(key));
	reserve(w, 1);
	w->buf[w->len++] = ':';
	w->comma = false; /* the value follows without one */
}

void jsonw_string_len(struct jsonw *w, const char *s, size_t len)
{
	sep(w);
	quoted(w, s, len);
	w->comma = true;
}

void jsonw_string(struct jsonw *w, const char *s)
{
	assert(s);
	jsonw_string_len(w, s, strlen(s));
}

void jsonw_string_or_null(struct jsonw *w, const char *s)
{
	if (s)
		jsonw_string(w, s);
	else
		jsonw_null(w);
}

void jsonw_int(struct jsonw *w, int64_t v)
{
	char tmp[24], *p = tmp + sizeof(tmp);
	/* The magnitude as unsigned: -INT64_MIN does not fit an int64_t. */
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		*--p = '-';
	sep(w);
	put(w, p, (size_t)(tmp + sizeof(tmp) - p));
	w->comma = true;
}

void jsonw_bool(struct jsonw *w, bool v)
{
	sep(w);
	if (v)
		put(w, "true", 4);
	else
		put(w, "false", 5);
	w->comma = true;
}

void jsonw_null(struct jsonw *w)
{
	sep(w);
	put(w, "null", 4);
	w->comma = true;
}

void jsonw_raw(struct jsonw *w, const char *json, size_t len)
{
	sep(w);
	put(w, json, len);
	w->comma = true;
}
