/* random.c — see random.h. */
#include "core/random.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>

void random_bytes(void *buf, size_t n)
{
	unsigned char *p = buf;
	while (n > 0) {
		ssize_t r = getrandom(p, n, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "{\"level\":\"fatal\",\"msg\":\"getrandom failed\"}\n");
			abort();
		}
		p += r;
		n -= (size_t)r;
	}
}
