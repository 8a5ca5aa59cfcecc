/*
 * paging.h — keyset pagination for every list: ?limit= (1–200, default 50), an opaque cursor
 * bound to its list and to the query's filters and sort (core/cursor.h), a fetch of limit + 1 rows
 *(the extra one only says whether a next page exists) and the next page's cursor from the last row
 *shown.
 *
 *	struct paging pg;
 *	if ((rc = paging_begin(&pg, a, scope, query, nkeys, limit_s, cursor_s, err)) < 0) ...
 *	store_..._list(c, a, ..., pg.after, paging_fetch(&pg), &items, &count, err);
 *	for (i = 0; i < paging_shown(&pg, count); i++) ...
 *	next = paging_more(&pg, count) ? paging_next(&pg, a, keys_of(items[pg.limit - 1])) : NULL;
 *
 * Ownership, for every list the services return: the page (items, their JSON, the cursor
 * text) lives in the caller's arena. The caller borrows it and frees nothing.
 */
#ifndef TANDEM_SERVICES_PAGING_H
#define TANDEM_SERVICES_PAGING_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct arena;
struct error;

#define PAGING_DEFAULT_LIMIT 50
#define PAGING_MAX_LIMIT     200

/* A page of a list as JSON: the items and the cursor of the next page (NULL at the end). */
struct page {
	json_t *data; /* borrowed from the arena */
	const char *next_cursor;
};

struct paging {
	const char *scope; /* the list cursors are bound to, e.g. "members:<project>" */
	const char *query; /* the canonical filters and sort they are bound to ("" for none) */
	int limit;	   /* rows the client asked for */
	json_t *after;	   /* the cursor's keys (arena), NULL on the first page */
};

/* Parse ?limit= (NULL: the default); -ERR_VALIDATION_FAILED naming "limit". */
int paging_limit(const char *s, int *out, struct error *err);

/*
 * Decode a cursor (NULL: first page) made for pg->scope and pg->query with exactly `nkeys`
 * keys into pg->after. -ERR_BAD_REQUEST for a cursor that is malformed, tampered with or was
 * made for another list or another query. pg->scope, pg->query and pg->limit are left as
 * they are.
 */
int paging_cursor(struct paging *pg, struct arena *a, const char *cursor, size_t nkeys,
		  struct error *err);

/* paging_limit() then paging_cursor(). */
int paging_begin(struct paging *pg, struct arena *a, const char *scope, const char *query,
		 size_t nkeys, const char *limit, const char *cursor, struct error *err);

/* Rows to fetch: one more than shown. */
int paging_fetch(const struct paging *pg);
/* Rows to show of `fetched`. */
int paging_shown(const struct paging *pg, int fetched);
/* True when `fetched` rows mean there is a next page. */
bool paging_more(const struct paging *pg, int fetched);
/* The next page's cursor from the keys of the last row shown (`keys` is stolen). */
const char *paging_next(const struct paging *pg, struct arena *a, json_t *keys);

#endif
