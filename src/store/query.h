/*
 * query.h — building SQL whose shape depends on the request (filters, sort orders, keyset
 * conditions), with `$N` parameters numbered as they are added.
 *
 * Drivers cache prepared statements by the address of their SQL text, so query_sql()
 * interns the finished text: the same shape always yields the same pointer, and each shape
 * is prepared once per connection (while it stays among the connection's most recently used,
 * store/stmtcache.h). The number of shapes is fixed by the API's filter and sort
 * combinations, never by the values a client sends: a list of values is one parameter
 * (`= ANY($n)` on PostgreSQL, `IN (SELECT value FROM json_each($n))` on SQLite), not one
 * placeholder per value. Interning is thread-safe; a struct query belongs to one request.
 */
#ifndef TANDEM_STORE_QUERY_H
#define TANDEM_STORE_QUERY_H

#include "store/db.h"

#define QUERY_MAX_PARAMS 48

struct arena;

struct query {
	struct arena *arena;
	char *text;
	size_t len, cap;
	struct db_param params[QUERY_MAX_PARAMS];
	int nparams;
	int overflow; /* more parameters than QUERY_MAX_PARAMS were added */
};

void query_init(struct query *q, struct arena *a);
/* Append literal SQL. */
void query_add(struct query *q, const char *sql);
/* Append a parameter placeholder ("$N") bound to p. */
void query_param(struct query *q, struct db_param p);
/* The interned SQL text (stable for the whole process). */
const char *query_sql(struct query *q);
/* How many distinct texts query_sql() has interned so far, for tests. */
size_t query_shape_count(void);

/*
 * A LIKE pattern matching `s` anywhere ('%s%'), with LIKE's metacharacters escaped by ''
 * (the queries say ESCAPE ''). In the arena.
 */
char *query_like_pattern(struct arena *a, const char *s);

#endif
