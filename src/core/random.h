/* random.h — cryptographically secure random bytes from getrandom(2). Thread-safe. */
#ifndef TANDEM_CORE_RANDOM_H
#define TANDEM_CORE_RANDOM_H

#include <stddef.h>

/* Fill buf with n random bytes. Aborts if the kernel cannot supply them (never in practice). */
void random_bytes(void *buf, size_t n);

#endif
