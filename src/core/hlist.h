/*
 * hlist.h — the comma-separated lists of HTTP header values (RFC 9110 §5.6.1):
 * `If-None-Match: "1", W/"2"`, `Access-Control-Request-Headers: content-type, if-match`,
 * `Connection: keep-alive, Upgrade`. One walker for all of them, so that every header is
 * split, trimmed and stripped of empty elements the same way.
 */
#ifndef TANDEM_CORE_HLIST_H
#define TANDEM_CORE_HLIST_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Call `each` on every non-empty element of the list `h` (NULL: none), without the spaces
 * and tabs around it, in order, until it returns false. Returns false when one did.
 */
bool hlist_each(const char *h, bool (*each)(const char *s, size_t len, void *cls), void *cls);

#endif
