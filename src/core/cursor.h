/*
 * cursor.h — the opaque cursor of keyset pagination.
 *
 * A cursor carries the sort-key values of the last row of a page (and that row's id) so the
 * next page starts strictly after it: `WHERE (k1, id) > ($k1, $id)`. It stays valid while
 * rows are inserted or deleted, unlike OFFSET. On the wire it is base64url of a small JSON
 * document {"v":1,"s":"<sort spec>","k":[values...]}, signed with an HMAC; the sort spec
 * (which also names the list) is checked on decode so that a cursor from one ordering or
 * list is not silently applied to another.
 */
#ifndef TANDEM_CORE_CURSOR_H
#define TANDEM_CORE_CURSOR_H

#include <jansson.h>

struct arena;
struct error;

/*
 * Derive the signing key from a server secret (call once at start-up, before serving).
 * Without it a random per-process key is used.
 */
void cursor_set_key(const void *secret, size_t len);

/*
 * Encode `keys` (borrowed JSON array of strings, integers and nulls) for the ordering named
 * by `sort` (any short string, e.g. "-created_at"). Returns an arena string.
 */
char *cursor_encode(struct arena *a, const char *sort, json_t *keys);

/*
 * Decode a cursor made for ordering `sort` with exactly `nkeys` keys. On success *out_keys
 * is a JSON array owned by the arena. Returns 0, or -ERR_BAD_REQUEST with a detail for a
 * cursor that is malformed, tampered with or made for another ordering.
 */
int cursor_decode(struct arena *a, const char *cursor, const char *sort, size_t nkeys,
		  json_t **out_keys, struct error *err);

#endif
