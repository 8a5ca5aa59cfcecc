/* cursor.c — see cursor.h. */
#include "core/cursor.h"
#include "core/arena.h"
#include "core/base64url.h"
#include "core/error.h"

#include <stdlib.h>
#include <string.h>

#define CURSOR_MAX_LEN 2048

char *cursor_encode(struct arena *a, const char *sort, json_t *keys)
{
	json_t *doc = json_pack("{s:i, s:s, s:O}", "v", 1, "s", sort, "k", keys);
	char *s = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	char *out = base64url_encode(a, s, strlen(s));
	free(s);
	return out;
}

int cursor_decode(struct arena *a, const char *cursor, const char *sort, size_t nkeys,
		  json_t **out_keys, struct error *err)
{
	size_t n;
	if (strlen(cursor) > CURSOR_MAX_LEN)
		return error_set(err, ERR_BAD_REQUEST, "cursor is too long");
	unsigned char *raw = base64url_decode(a, cursor, &n);
	if (!raw)
		return error_set(err, ERR_BAD_REQUEST, "cursor is not valid");
	json_t *doc = arena_json(a, json_loadb((const char *)raw, n, JSON_REJECT_DUPLICATES, NULL));
	json_t *v = json_object_get(doc, "v"), *s = json_object_get(doc, "s");
	json_t *k = json_object_get(doc, "k");
	if (!json_is_integer(v) || json_integer_value(v) != 1 || !json_is_string(s) ||
	    !json_is_array(k))
		return error_set(err, ERR_BAD_REQUEST, "cursor is not valid");
	if (strcmp(json_string_value(s), sort) != 0)
		return error_set(err, ERR_BAD_REQUEST, "cursor was made for another sort order");
	if (json_array_size(k) != nkeys)
		return error_set(err, ERR_BAD_REQUEST, "cursor is not valid");
	size_t i;
	json_t *e;
	json_array_foreach(k, i, e)
	{
		if (!json_is_string(e) && !json_is_integer(e) && !json_is_null(e))
			return error_set(err, ERR_BAD_REQUEST, "cursor is not valid");
	}
	*out_keys = k;
	return 0;
}
