/*
 * base64url.h — RFC 4648 §5 base64url without padding, on top of OpenSSL's base64.
 * Used by cursors and opaque tokens. Pure functions, thread-safe.
 */
#ifndef TANDEM_CORE_BASE64URL_H
#define TANDEM_CORE_BASE64URL_H

#include <stddef.h>

struct arena;

/* Encode n bytes; the result is NUL-terminated and owned by the arena. */
char *base64url_encode(struct arena *a, const void *data, size_t n);
/*
 * Decode a base64url string (no padding, no whitespace). Returns the bytes (NUL-terminated
 * for convenience, owned by the arena) and their count in *out_n, or NULL when s is not
 * valid base64url.
 */
unsigned char *base64url_decode(struct arena *a, const char *s, size_t *out_n);

#endif
