/*
 * common.h — small helpers every resource handler uses: path ids, conditional requests
 * (ETag, If-Match, If-None-Match) and list pages with their Link header.
 */
#ifndef TANDEM_HANDLERS_COMMON_H
#define TANDEM_HANDLERS_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct request;
struct page;
struct precondition;

/* The path parameter `name` as a lower-case UUID, or NULL when it is not one (answer 404). */
const char *param_uuid(struct request *req, const char *name);

/*
 * The If-Match condition of the request (see services/precondition.h): any version when the
 * header is absent or "*", else the versions its strong tags name. Never fails: a header
 * that cannot match (weak tags, tags that are not "<version>") makes the write answer 412
 * once the resource is found, like a stale version.
 */
void if_match(struct request *req, struct precondition *out);

/* A write's result `rc`: on 412 the answer carries the ETag of the version the service found
 * (RFC 9110 lets a client re-read or retry with it). Returns rc. */
int if_match_refused(struct request *req, int rc, const struct precondition *pre);

/* True when If-None-Match names this version, weakly compared (RFC 9110 §13.1.2), or is "*":
 * answer 304. */
bool if_none_match(struct request *req, int64_t version);

/* Set ETag: "<version>". */
void set_etag(struct request *req, int64_t version);

/* Answer 200 {data, next_cursor, has_more} with Link: <...>; rel="next" when there is more. */
int reply_page(struct request *req, const struct page *page);

/*
 * The same answer as reply_page() for a page whose data is already serialised: `data` is the
 * JSON array (`len` bytes, borrowed), `next_cursor` NULL on the last page.
 */
int reply_page_text(struct request *req, const char *data, size_t len, const char *next_cursor);

#endif
