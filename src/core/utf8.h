/*
 * utf8.h — strict UTF-8 checks for text a client sent outside a JSON body (query strings):
 * jansson checks the bodies, these the rest. Pure functions, thread-safe.
 */
#ifndef TANDEM_CORE_UTF8_H
#define TANDEM_CORE_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/*
 * The length (1 to 4) of the UTF-8 character that starts at s, or 0 when the bytes there are
 * not one: overlong forms, UTF-16 surrogates and code points past U+10FFFF are refused, as
 * jansson refuses them. Reads no further than a NUL byte.
 */
size_t utf8_char(const char *s);

/* True when the `len` bytes at s are UTF-8 text with no NUL byte. */
bool utf8_valid(const char *s, size_t len);

#endif
