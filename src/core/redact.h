/*
 * redact.h — keeping passwords in connection strings out of messages, logs and `ps`.
 *
 * A password is the password of a URL's userinfo (scheme://user:password@host..., and the
 * whole userinfo when it has no ':', as in redis://password@host), and the value of every
 * `password=` parameter (a libpq key=value string, or a URL's query). Over-redacting is the
 * safe side: a user name without a password is hidden too. Pure functions, thread-safe.
 */
#ifndef TANDEM_CORE_REDACT_H
#define TANDEM_CORE_REDACT_H

#include <stdbool.h>
#include <stddef.h>

/* Copy `text` into buf (size len, always terminated) with every password replaced by "***". */
void redact_url(const char *text, char *buf, size_t len);

/*
 * Overwrite every password in `text` with '*' in place (same length): for argv, whose memory
 * is what /proc/PID/cmdline and `ps` show. Returns whether there was one.
 */
bool redact_in_place(char *text);

#endif
