/* precondition.c — see precondition.h. */
#include "services/precondition.h"
#include "core/error.h"

#include <stddef.h>

bool precondition_met(const struct precondition *p, int64_t version)
{
	if (!p || p->any)
		return true;
	for (int i = 0; i < p->nversions; i++)
		if (p->versions[i] == version)
			return true;
	return false;
}

bool precondition_strict(const struct precondition *p)
{
	return p && !p->any;
}

int precondition_fail(struct precondition *p, const char *what, int64_t current, struct error *err)
{
	if (p)
		p->current = current;
	if (!current)
		return error_set(err, ERR_PRECONDITION_FAILED, "the %s has changed", what);
	/* Say why a tag that names the current version did not match: the client can fix it. */
	if (p && !p->nversions && p->weak)
		return error_set(err, ERR_PRECONDITION_FAILED,
				 "If-Match compares strongly: a weak entity tag (W/\"...\") never "
				 "matches; send the ETag as given (the %s is at \"%lld\")",
				 what, (long long)current);
	if (p && !p->nversions && p->malformed)
		return error_set(err, ERR_PRECONDITION_FAILED,
				 "If-Match must list the resource's ETag (the %s is at \"%lld\")",
				 what, (long long)current);
	return error_set(err, ERR_PRECONDITION_FAILED, "the %s has changed (version %lld)", what,
			 (long long)current);
}
