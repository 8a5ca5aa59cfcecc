/* validate.c — see validate.h. */
#include "services/validate.h"
#include "core/error.h"
#include "core/timeutil.h"
#include "core/uuid.h"

#include <string.h>

size_t utf8_length(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		if (((unsigned char)*s & 0xC0) != 0x80)
			n++;
	return n;
}

static const struct field_spec *find(const struct field_spec *specs, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(specs[i].name, name))
			return &specs[i];
	return NULL;
}

static const char *type_name(enum field_type t)
{
	switch (t) {
	case FIELD_INTEGER:
		return "an integer";
	case FIELD_BOOLEAN:
		return "a boolean";
	default:
		return "a string";
	}
}

static void check_value(const struct field_spec *f, json_t *v, struct error *err)
{
	if (json_is_null(v)) {
		if (!f->nullable)
			error_field(err, f->name, "not_nullable", "must not be null");
		return;
	}
	switch (f->type) {
	case FIELD_INTEGER:
		if (!json_is_integer(v))
			error_field(err, f->name, "type", "must be %s", type_name(f->type));
		return;
	case FIELD_BOOLEAN:
		if (!json_is_boolean(v))
			error_field(err, f->name, "type", "must be %s", type_name(f->type));
		return;
	case FIELD_READ_ONLY:
		return;
	default:
		break;
	}
	if (!json_is_string(v)) {
		error_field(err, f->name, "type", "must be %s", type_name(f->type));
		return;
	}
	const char *s = json_string_value(v);
	if (strlen(s) != json_string_length(v)) {
		error_field(err, f->name, "invalid", "must not contain NUL characters");
		return;
	}
	switch (f->type) {
	case FIELD_STRING: {
		size_t len = utf8_length(s);
		if (len < f->min_len)
			error_field(
			    err, f->name, f->min_len == 1 && len == 0 ? "required" : "too_short",
			    "at least %zu character%s", f->min_len, f->min_len == 1 ? "" : "s");
		else if (f->max_len && len > f->max_len)
			error_field(err, f->name, "too_long", "at most %zu characters", f->max_len);
		return;
	}
	case FIELD_ENUM:
		for (const char *const *c = f->choices; *c; c++)
			if (!strcmp(*c, s))
				return;
		{
			char list[256] = "";
			size_t used = 0;
			for (const char *const *c = f->choices; *c && used < sizeof(list); c++) {
				int w = snprintf(list + used, sizeof(list) - used, "%s%s",
						 used ? ", " : "", *c);
				if (w > 0)
					used += (size_t)w;
			}
			error_field(err, f->name, "invalid_choice", "must be one of: %s", list);
		}
		return;
	case FIELD_UUID:
		if (!uuid_valid(s))
			error_field(err, f->name, "invalid", "must be a UUID");
		return;
	case FIELD_TIMESTAMP: {
		int64_t ms;
		if (time_parse_rfc3339(s, &ms) < 0)
			error_field(err, f->name, "invalid",
				    "must be an RFC 3339 date-time such as 2024-01-15T14:30:00Z");
		return;
	}
	default:
		return;
	}
}

int validate_object(json_t *body, const struct field_spec *specs, size_t nspecs, struct error *err)
{
	struct error local = ERROR_INIT;
	const char *key;
	json_t *v;
	if (!err)
		err = &local; /* errors are optional to callers, but counting needs them */
	size_t before = error_field_count(err);

	json_object_foreach(body, key, v)
	{
		const struct field_spec *f = find(specs, nspecs, key);
		if (!f) /* error_field() cuts a long name at a character boundary */
			error_field(err, key, "unknown_field", "is not a field of this resource");
		else if (f->type == FIELD_READ_ONLY)
			error_field(err, key, "read_only", "is read-only");
		else
			check_value(f, v, err);
	}
	for (size_t i = 0; i < nspecs; i++)
		if (specs[i].required && !json_object_get(body, specs[i].name))
			error_field(err, specs[i].name, "required", "is required");
	int rc = error_field_count(err) > before ? -ERR_VALIDATION_FAILED : 0;
	error_release(&local);
	return rc;
}

bool valid_email(const char *s)
{
	size_t len = strlen(s);
	const char *at = strchr(s, '@');
	if (len > 254 || !at || at == s || strchr(at + 1, '@') || at - s > 64)
		return false;
	for (const char *p = s; p < at; p++) {
		unsigned char c = (unsigned char)*p;
		if (c <= ' ' || c == 0x7f || c == '(' || c == ')' || c == ',' || c == ':' ||
		    c == ';' || c == '<' || c == '>' || c == '[' || c == ']' || c == '\\' ||
		    c == '"')
			return false;
	}
	if (s[0] == '.' || at[-1] == '.' || strstr(s, ".."))
		return false;
	const char *d = at + 1;
	size_t dl = strlen(d), label = 0;
	bool dot = false;
	if (dl == 0 || d[0] == '.' || d[dl - 1] == '.' || d[0] == '-')
		return false;
	for (const char *p = d; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '.') {
			if (label == 0 || p[-1] == '-')
				return false;
			dot = true;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c >= 0x80))
			return false;
		if (++label > 63)
			return false;
	}
	return dot;
}

bool valid_username(const char *s)
{
	size_t n = strlen(s);
	if (n < 3 || n > 32)
		return false;
	for (; *s; s++) {
		char c = *s;
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
		      c == '-'))
			return false;
	}
	return true;
}

const char *body_string(json_t *body, const char *key)
{
	return json_string_value(json_object_get(body, key));
}
