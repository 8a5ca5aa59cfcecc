/* hlist.c — see hlist.h. */
#include "core/hlist.h"

#include <string.h>

static const char *trim(const char *s, size_t *len)
{
	while (*len && (*s == ' ' || *s == '\t')) {
		s++;
		(*len)--;
	}
	while (*len && (s[*len - 1] == ' ' || s[*len - 1] == '\t'))
		(*len)--;
	return s;
}

bool hlist_each(const char *h, bool (*each)(const char *s, size_t len, void *cls), void *cls)
{
	for (const char *p = h; p;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		const char *s = trim(p, &len);
		if (len && !each(s, len, cls)) /* empty list elements do not count */
			return false;
		p = comma ? comma + 1 : NULL;
	}
	return true;
}
