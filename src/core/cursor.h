/*
 * cursor.h — the opaque cursor of keyset pagination.
 *
 * A cursor carries the sort-key values of the last row of a page (and that row's id) so the
 * next page starts strictly after it: `WHERE (k1, id) > ($k1, $id)`. It stays valid while
 * rows are inserted or deleted, unlike OFFSET. On the wire it is base64url of a small JSON
 * document {"v":2,"l":"<list>","q":"<query digest>","k":[values...]}, signed with an HMAC.
 * A cursor is bound to its list (route and owner: "tasks:<project id>") and to the whole
 * query that made it (every filter and the sort, in a canonical text the caller builds:
 * sorted, merged lists); both are checked on decode so that a cursor is never silently
 * applied to another list or to other filters, which would give wrong pages. The page size
 * is not bound: a client may change ?limit= between pages.
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
 * Encode `keys` (borrowed JSON array of strings, integers and nulls) for the list named `list`
 * (a short string, e.g. "members:<project id>") and the canonical text of the query that
 * listed it (`query`, any length; "" for a list without filters). Returns an arena string.
 */
char *cursor_encode(struct arena *a, const char *list, const char *query, json_t *keys);

/*
 * Decode a cursor made for `list` and `query` with exactly `nkeys` keys. On success *out_keys
 * is a JSON array owned by the arena. Returns 0, or -ERR_BAD_REQUEST with a detail: "cursor
 * was made for another list" (another route, project or user), "cursor was made for another
 * query" (the same list with other filters or another sort), or "cursor is not valid"
 * (malformed, tampered with, or keys that do not fit).
 */
int cursor_decode(struct arena *a, const char *cursor, const char *list, const char *query,
		  size_t nkeys, json_t **out_keys, struct error *err);

#endif
