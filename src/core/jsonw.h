/*
 * jsonw.h — a direct JSON writer: appends compact JSON text to a growable malloc'd buffer,
 * without building a jansson tree first. For hot responses (task pages) where building and
 * dumping json_t values cost several times the writing itself; everything else keeps jansson.
 *
 * The writer places the commas; the caller is trusted to nest correctly (a key only inside an
 * object, followed by exactly one value) — checked by asserts, not at run time in release.
 * Strings must be valid UTF-8 (everything stored came through jansson, which checks); bytes
 * >= 0x80 are copied unchanged. A writer is used by one thread at a time.
 */
#ifndef TANDEM_CORE_JSONW_H
#define TANDEM_CORE_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSONW_MAX_DEPTH 64

struct jsonw {
	char *buf; /* malloc'd; NUL-terminated after jsonw_finish() only */
	size_t len, cap;
	bool comma; /* a value was completed at this level: the next one needs a ',' */
	int depth;  /* open objects and arrays, for the asserts */
};

/* An empty writer with room for about `hint` bytes (0 for a default). */
void jsonw_init(struct jsonw *w, size_t hint);
/* Free the buffer; the writer can be initialised again. */
void jsonw_release(struct jsonw *w);

/*
 * The text written so far, NUL-terminated, its length (without the NUL) in *len. The buffer
 * is new: the caller frees it with free(). The writer is left empty, as after jsonw_release().
 */
char *jsonw_finish(struct jsonw *w, size_t *len);

void jsonw_object_begin(struct jsonw *w);
void jsonw_object_end(struct jsonw *w);
void jsonw_array_begin(struct jsonw *w);
void jsonw_array_end(struct jsonw *w);

/* An object member's name (escaped like a string); the next call writes its value. */
void jsonw_key(struct jsonw *w, const char *key);

/* A string value, escaped: s must not be NULL (see jsonw_string_or_null). */
void jsonw_string(struct jsonw *w, const char *s);
/* A string value of `len` bytes (which may contain NUL, written as \u0000). */
void jsonw_string_len(struct jsonw *w, const char *s, size_t len);
/* A string value, or null when s is NULL. */
void jsonw_string_or_null(struct jsonw *w, const char *s);
void jsonw_int(struct jsonw *w, int64_t v);
void jsonw_bool(struct jsonw *w, bool v);
void jsonw_null(struct jsonw *w);

/*
 * One complete value already serialised as JSON (e.g. by jansson or another writer), copied
 * as it is. The caller vouches that it is valid JSON; it is not checked.
 */
void jsonw_raw(struct jsonw *w, const char *json, size_t len);

#endif
