/* error.c — lookups in the error table and the struct error helpers. Thread-safe. */
#include "core/error.h"
#include "core/utf8.h"

#include <stdio.h>
#include <string.h>

static const struct {
	int status;
	const char *code;
	const char *title;
} table[ERR__COUNT] = {[ERR_OK] = {200, "ok", "OK"},
#define X(name, status, code, title) [ERR_##name] = {status, code, title},
		       ERROR_MAP(X)
#undef X
};

static int index_of(int kind)
{
	if (kind < 0)
		kind = -kind;
	if (kind >= ERR__COUNT)
		kind = ERR_INTERNAL;
	return kind;
}

int error_status(int kind)
{
	return table[index_of(kind)].status;
}

const char *error_code(int kind)
{
	return table[index_of(kind)].code;
}

const char *error_title(int kind)
{
	return table[index_of(kind)].title;
}

int error_set(struct error *err, int kind, const char *fmt, ...)
{
	kind = index_of(kind);
	if (err) {
		va_list ap;
		err->kind = kind;
		va_start(ap, fmt);
		vsnprintf(err->detail, sizeof(err->detail), fmt, ap);
		va_end(ap);
	}
	return -kind;
}

void error_field(struct error *err, const char *field, const char *code, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (!err)
		return;
	if (!err->fields)
		err->fields = json_array();
	if (err->nfields < ERROR_MAX_FIELDS) {
		char name[ERROR_MAX_FIELD_NAME + 1];
		size_t len = strlen(field);
		if (len > ERROR_MAX_FIELD_NAME) {
			/* Never between a character's bytes: the name must stay UTF-8. */
			len = ERROR_MAX_FIELD_NAME;
			while (len && ((unsigned char)field[len] & 0xc0) == 0x80)
				len--;
			snprintf(name, sizeof(name), "%.*s", (int)len, field);
			field = name;
		}
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		json_array_append_new(err->fields, json_pack("{s:s, s:s, s:s}", "field", field,
							     "code", code, "message", msg));
	}
	err->nfields++;
	err->kind = ERR_VALIDATION_FAILED;
	size_t n = err->nfields;
	snprintf(err->detail, sizeof(err->detail), "%zu field%s invalid", n,
		 n == 1 ? " is" : "s are");
}

size_t error_field_count(const struct error *err)
{
	return err ? err->nfields : 0;
}

char *error_quote(char *buf, size_t len, const char *s, size_t max)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p = (const unsigned char *)s;
	size_t used = 0, chars = 0;
	while (*p) {
		size_t n = utf8_char((const char *)p);
		size_t need = n == 0 || *p < 0x20 || *p == 0x7f ? 4 : n;
		if (chars == max || used + need + 4 > len) {
			memcpy(buf + used, "...", 3);
			used += 3;
			break;
		}
		if (need == 4 && n <= 1) {
			buf[used++] = '\\';
			buf[used++] = 'x';
			buf[used++] = hex[*p >> 4];
			buf[used++] = hex[*p & 15];
			p++;
		} else {
			memcpy(buf + used, p, n);
			used += n;
			p += n;
		}
		chars++;
	}
	buf[used] = '\0';
	return buf;
}

void error_release(struct error *err)
{
	if (!err)
		return;
	json_decref(err->fields);
	err->fields = NULL;
	err->nfields = 0;
	err->kind = 0;
	err->detail[0] = '\0';
}
