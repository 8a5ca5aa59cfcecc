/*
 * clientkey.h — the key under which per-client limits count a client address.
 *
 * One client may hold a whole IPv6 /64 (SLAAC and privacy addresses hand every host one), so
 * limits that keyed on the full address gave it 2^64 separate budgets. Every per-client limit
 * (the rate limiter's per-IP buckets, the per-IP connection count, the real-time stream caps)
 * keys on client_key(): an IPv4 address as itself, an IPv6 address by its /64, and an
 * IPv4-mapped IPv6 address (::ffff:a.b.c.d) as the IPv4 address it carries. Pure functions,
 * thread-safe.
 */
#ifndef TANDEM_HTTP_CLIENTKEY_H
#define TANDEM_HTTP_CLIENTKEY_H

#include <stdbool.h>
#include <stddef.h>

struct sockaddr;

/* Room for the longest key: an IPv6 /64 prefix in text plus "/64" and the NUL. */
#define CLIENT_KEY_LEN 48

/*
 * The key of the address `ip` (numeric IPv4 or IPv6 text) into out: "192.0.2.7",
 * "2001:db8:1:2::/64". Returns false (out then holds `ip` cut to fit) when `ip` is not a
 * numeric address, so a caller can still count it apart.
 */
bool client_key(const char *ip, char out[CLIENT_KEY_LEN]);

/* The same for a socket address (AF_INET or AF_INET6); false for any other family. */
bool client_key_addr(const struct sockaddr *sa, char out[CLIENT_KEY_LEN]);

#endif
