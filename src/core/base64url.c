/* base64url.c — see base64url.h. */
#include "core/base64url.h"
#include "core/arena.h"

#include <openssl/evp.h>
#include <string.h>

char *base64url_encode(struct arena *a, const void *data, size_t n)
{
	char *out = arena_alloc(a, 4 * ((n + 2) / 3) + 1);
	int len = EVP_EncodeBlock((unsigned char *)out, data, (int)n);
	while (len > 0 && out[len - 1] == '=')
		len--;
	out[len] = '\0';
	for (int i = 0; i < len; i++) {
		if (out[i] == '+')
			out[i] = '-';
		else if (out[i] == '/')
			out[i] = '_';
	}
	return out;
}

unsigned char *base64url_decode(struct arena *a, const char *s, size_t *out_n)
{
	size_t len = strlen(s);
	if (len % 4 == 1 || len > (1u << 20))
		return NULL;
	size_t padded = (len + 3) / 4 * 4;
	char *tmp = arena_alloc(a, padded + 1);
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '-')
			c = '+';
		else if (c == '_')
			c = '/';
		else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			   (c >= '0' && c <= '9')))
			return NULL;
		tmp[i] = c;
	}
	for (size_t i = len; i < padded; i++)
		tmp[i] = '=';
	unsigned char *out = arena_alloc(a, padded / 4 * 3 + 1);
	int n = EVP_DecodeBlock(out, (unsigned char *)tmp, (int)padded);
	if (n < 0)
		return NULL;
	n -= (int)(padded - len); /* EVP_DecodeBlock counts padding as zero bytes */
	out[n] = '\0';
	*out_n = (size_t)n;
	return out;
}
