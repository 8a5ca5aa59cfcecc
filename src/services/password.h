/*
 * password.h — password hashing with bcrypt ($2b$, libxcrypt).
 *
 * bcrypt reads at most 72 bytes, so two long passwords sharing their first 72 bytes would be
 * equal. Every password is therefore pre-hashed: bcrypt(base64(SHA-256(password))), 44
 * bytes with no NUL, so the whole password always counts. Thread-safe (crypt_rn with a
 * caller-owned buffer).
 */
#ifndef TANDEM_SERVICES_PASSWORD_H
#define TANDEM_SERVICES_PASSWORD_H

#include <stdbool.h>
#include <stddef.h>

#define PASSWORD_HASH_MAX 128

/* Hash `password` at `cost` (4–31) into out. Returns 0 or -ERR_INTERNAL. */
int password_hash(const char *password, int cost, char out[PASSWORD_HASH_MAX]);
/* True when `password` matches `hash`, in time that depends only on the hash's cost. */
bool password_verify(const char *password, const char *hash);
/* The cost a stored hash was made with (0 if unreadable). */
int password_hash_cost(const char *hash);

#endif
