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

/* The path parameter `name` as a lower-case UUID, or NULL when it is not one (answer 404). */
const char *param_uuid(struct request *req, const char *name);

/*
 * The version demanded by If-Match: 0 when absent or "*"; -ERR_PRECONDITION_FAILED when the
 * header names no version we could ever have.
 */
int if_match_version(struct request *req, int64_t *out);

/* True when If-None-Match names this version (or "*"): answer 304. */
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
