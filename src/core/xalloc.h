/*
 * xalloc.h — allocation that cannot fail. Out of memory aborts the process with one log
 * line (Redis zmalloc, git xmalloc), so callers never check for NULL.
 */
#ifndef TANDEM_CORE_XALLOC_H
#define TANDEM_CORE_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* A malloc'd formatted string (asprintf that cannot fail). */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
