/* clientkey.c — see clientkey.h. */
#include "http/clientkey.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

static const unsigned char v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static bool key_v4(const void *a4, char out[CLIENT_KEY_LEN])
{
	return inet_ntop(AF_INET, a4, out, CLIENT_KEY_LEN) != NULL;
}

static bool key_v6(const unsigned char a6[16], char out[CLIENT_KEY_LEN])
{
	unsigned char prefix[16] = {0};
	if (!memcmp(a6, v4_mapped, sizeof(v4_mapped)))
		return key_v4(a6 + 12, out);
	memcpy(prefix, a6, 8);
	if (!inet_ntop(AF_INET6, prefix, out, CLIENT_KEY_LEN))
		return false;
	/* A /64 prefix prints as at most "ffff:ffff:ffff:ffff::" (21 bytes): "/64" fits. */
	size_t n = strlen(out);
	memcpy(out + n, "/64", 4);
	return true;
}

bool client_key(const char *ip, char out[CLIENT_KEY_LEN])
{
	unsigned char a[16];
	if (inet_pton(AF_INET, ip, a) == 1)
		return key_v4(a, out);
	if (inet_pton(AF_INET6, ip, a) == 1)
		return key_v6(a, out);
	snprintf(out, CLIENT_KEY_LEN, "%s", ip);
	return false;
}

bool client_key_addr(const struct sockaddr *sa, char out[CLIENT_KEY_LEN])
{
	if (sa && sa->sa_family == AF_INET)
		return key_v4(&((const struct sockaddr_in *)sa)->sin_addr, out);
	if (sa && sa->sa_family == AF_INET6)
		return key_v6(((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr, out);
	snprintf(out, CLIENT_KEY_LEN, "-");
	return false;
}
