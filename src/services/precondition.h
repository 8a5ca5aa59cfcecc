/*
 * precondition.h — the If-Match condition a write on a versioned resource (a project, a
 * task) must meet. Handlers fill it from the header (handlers/common.c); the services test it
 * against the version they read under the write lock, so the test and the write are atomic.
 * RFC 9110 §13.1.1: If-Match uses the strong comparison, so a weak tag (W/"3") never
 * matches, and a tag that cannot be one of our versions never matches either.
 */
#ifndef TANDEM_SERVICES_PRECONDITION_H
#define TANDEM_SERVICES_PRECONDITION_H

#include <stdbool.h>
#include <stdint.h>

struct error;

/* More strong tags than this in one If-Match: the rest cannot match (a client lists one). */
#define PRECONDITION_MAX_VERSIONS 16

struct precondition {
	/* No If-Match, or If-Match: * — any current version will do. */
	bool any;
	/* The versions named by the strong tags listed. */
	int nversions;
	int64_t versions[PRECONDITION_MAX_VERSIONS];
	/* Tags that can never match: weak ones (W/"3"), and ones that are not "<version>". */
	bool weak, malformed;
	/* Out: the resource's version when the write was refused with 412 (0: unknown). */
	int64_t current;
};

/* True when `p` (NULL: no condition) lets a write apply to `version`. */
bool precondition_met(const struct precondition *p, int64_t version);

/* True when a lost race must fail with 412 instead of being retried (the client named a
 * version). */
bool precondition_strict(const struct precondition *p);

/*
 * Refuse with -ERR_PRECONDITION_FAILED: record `current` (0 when unknown) in p->current and
 * say in err why the condition failed, naming `what` ("task", "project").
 */
int precondition_fail(struct precondition *p, const char *what, int64_t current, struct error *err);

#endif
