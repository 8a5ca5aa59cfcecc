/*
 * projects.h — projects: the rules of API.md "Projects and membership" for the project itself
 * (membership is services/members.h). Every change writes its event in the same transaction.
 * No HTTP, no SQL. Thread-safe (state lives in the store and the caller's arena).
 */
#ifndef TANDEM_SERVICES_PROJECTS_H
#define TANDEM_SERVICES_PROJECTS_H

#include <jansson.h>
#include <stdint.h>

#include "services/paging.h"
#include "store/projects.h"

struct arena;
struct error;
struct precondition;
struct store;
struct user;

int project_create(struct store *st, struct arena *a, const struct user *me, json_t *body,
		   struct project *out, struct error *err);
int project_get(struct store *st, struct arena *a, const struct user *me, const char *id,
		struct project *out, struct error *err);
int project_list(struct store *st, struct arena *a, const struct user *me, const char *q,
		 const char *limit, const char *cursor, struct page *out, struct error *err);
/*
 * Merge-patch {name?, description?}. pre NULL or any version: unconditional; otherwise
 * -ERR_PRECONDITION_FAILED unless the project's version is one `pre` names (pre->current then
 * holds the version found, for the ETag). A patch that changes nothing writes nothing: no new
 * version, no event (as for tasks).
 */
int project_update(struct store *st, struct arena *a, const struct user *me, const char *id,
		   json_t *body, struct precondition *pre, struct project *out, struct error *err);
int project_delete(struct store *st, struct arena *a, const struct user *me, const char *id,
		   struct precondition *pre, struct error *err);

/* The API's project object. New reference. */
json_t *project_json(const struct project *p);

#endif
