/* paging.c — see paging.h. */
#include "services/paging.h"
#include "core/cursor.h"
#include "core/error.h"

#include <stdlib.h>

int paging_limit(const char *s, int *out, struct error *err)
{
	if (!s) {
		*out = PAGING_DEFAULT_LIMIT;
		return 0;
	}
	char *end;
	long v = strtol(s, &end, 10);
	if (*s < '0' || *s > '9' || *end || v < 1 || v > PAGING_MAX_LIMIT) {
		char qb[200];
		error_field(err, "limit", "out_of_range", "'%s' is not a whole number from 1 to %d",
			    error_quote(qb, sizeof(qb), s, 40), PAGING_MAX_LIMIT);
		return -ERR_VALIDATION_FAILED;
	}
	*out = (int)v;
	return 0;
}

int paging_cursor(struct paging *pg, struct arena *a, const char *cursor, size_t nkeys,
		  struct error *err)
{
	pg->after = NULL;
	if (!cursor)
		return 0;
	return cursor_decode(a, cursor, pg->scope, pg->query ? pg->query : "", nkeys, &pg->after,
			     err);
}

int paging_begin(struct paging *pg, struct arena *a, const char *scope, const char *query,
		 size_t nkeys, const char *limit, const char *cursor, struct error *err)
{
	int rc;
	pg->scope = scope;
	pg->query = query;
	pg->after = NULL; /* also when the limit is refused: pg is never left half set */
	if ((rc = paging_limit(limit, &pg->limit, err)) < 0)
		return rc;
	return paging_cursor(pg, a, cursor, nkeys, err);
}

int paging_fetch(const struct paging *pg)
{
	return pg->limit + 1;
}

int paging_shown(const struct paging *pg, int fetched)
{
	return fetched < pg->limit ? fetched : pg->limit;
}

bool paging_more(const struct paging *pg, int fetched)
{
	return fetched > pg->limit;
}

const char *paging_next(const struct paging *pg, struct arena *a, json_t *keys)
{
	const char *next = cursor_encode(a, pg->scope, pg->query ? pg->query : "", keys);
	json_decref(keys);
	return next;
}
