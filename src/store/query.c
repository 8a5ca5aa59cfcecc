/* query.c — see query.h. The intern table is a mutex-protected open-addressing set. */
#include "store/query.h"
#include "core/arena.h"
#include "core/xalloc.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void query_init(struct query *q, struct arena *a)
{
	memset(q, 0, sizeof(*q));
	q->arena = a;
}

void query_add(struct query *q, const char *sql)
{
	size_t n = strlen(sql);
	if (q->len + n + 1 > q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 512;
		while (cap < q->len + n + 1)
			cap *= 2;
		char *t = arena_alloc(q->arena, cap);
		if (q->len)
			memcpy(t, q->text, q->len);
		q->text = t;
		q->cap = cap;
	}
	memcpy(q->text + q->len, sql, n + 1);
	q->len += n;
}

void query_param(struct query *q, struct db_param p)
{
	char ph[16];
	if (q->nparams >= QUERY_MAX_PARAMS) {
		q->overflow = 1;
		return;
	}
	q->params[q->nparams++] = p;
	snprintf(ph, sizeof(ph), "$%d", q->nparams);
	query_add(q, ph);
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char **table;
static size_t cap, count;

static uint64_t hash(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static void put(char **t, size_t c, char *s)
{
	size_t i = hash(s) & (c - 1);
	while (t[i])
		i = (i + 1) & (c - 1);
	t[i] = s;
}

const char *query_sql(struct query *q)
{
	const char *s = q->text ? q->text : "";
	pthread_mutex_lock(&lock);
	if ((count + 1) * 2 > cap) {
		size_t ncap = cap ? cap * 2 : 256;
		char **nt = xcalloc(ncap, sizeof(*nt));
		for (size_t i = 0; i < cap; i++)
			if (table[i])
				put(nt, ncap, table[i]);
		free(table);
		table = nt;
		cap = ncap;
	}
	size_t i = hash(s) & (cap - 1);
	while (table[i] && strcmp(table[i], s) != 0)
		i = (i + 1) & (cap - 1);
	if (!table[i]) {
		table[i] = xstrdup(s); /* lives for the process: drivers cache by this address */
		count++;
	}
	const char *out = table[i];
	pthread_mutex_unlock(&lock);
	return out;
}

size_t query_shape_count(void)
{
	pthread_mutex_lock(&lock);
	size_t n = count;
	pthread_mutex_unlock(&lock);
	return n;
}

char *query_like_pattern(struct arena *a, const char *s)
{
	size_t n = strlen(s);
	char *pat = arena_alloc(a, 2 * n + 3), *p = pat;
	*p++ = '%';
	for (; *s; s++) {
		if (*s == '%' || *s == '_' || *s == '\\')
			*p++ = '\\';
		*p++ = *s;
	}
	*p++ = '%';
	*p = '\0';
	return pat;
}
