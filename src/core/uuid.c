/* uuid.c — see uuid.h. */
#include "core/uuid.h"
#include "core/random.h"
#include "core/timeutil.h"

#include <pthread.h>
#include <string.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t last_ms;
static uint16_t counter; /* 12 bits used */

static void format(const unsigned char b[16], char out[UUID_STR_LEN])
{
	static const char hex[] = "0123456789abcdef";
	int o = 0;
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[b[i] >> 4];
		out[o++] = hex[b[i] & 15];
	}
	out[o] = '\0';
}

void uuid_v7_at(int64_t ms, char out[UUID_STR_LEN])
{
	unsigned char b[16];
	random_bytes(b, sizeof(b));

	pthread_mutex_lock(&lock);
	if (ms > last_ms) {
		last_ms = ms;
		counter = (uint16_t)((b[6] << 8 | b[7]) & 0x7ff); /* leave headroom to count up */
	} else {
		/* Same millisecond (or the clock stepped back): keep ids increasing. */
		ms = last_ms;
		if (++counter > 0xfff) {
			last_ms = ++ms;
			counter = 0;
		}
	}
	uint16_t seq = counter;
	pthread_mutex_unlock(&lock);

	for (int i = 0; i < 6; i++)
		b[i] = (unsigned char)((uint64_t)ms >> (40 - 8 * i));
	b[6] = (unsigned char)(0x70 | (seq >> 8));
	b[7] = (unsigned char)(seq & 0xff);
	b[8] = (unsigned char)(0x80 | (b[8] & 0x3f));
	format(b, out);
}

void uuid_v7(char out[UUID_STR_LEN])
{
	uuid_v7_at(time_now_ms(), out);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

bool uuid_valid(const char *s)
{
	if (!s)
		return false;
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return false;
		} else if (hexval(s[i]) < 0) {
			return false;
		}
	}
	return s[36] == '\0';
}

bool uuid_normalize(const char *s, char out[UUID_STR_LEN])
{
	if (!uuid_valid(s))
		return false;
	for (int i = 0; i < 36; i++)
		out[i] = (s[i] >= 'A' && s[i] <= 'F') ? (char)(s[i] - 'A' + 'a') : s[i];
	out[36] = '\0';
	return true;
}

int64_t uuid_v7_time(const char *s)
{
	int64_t ms = 0;
	for (int i = 0; i < 13; i++) {
		if (i == 8)
			continue;
		ms = ms << 4 | hexval(s[i]);
	}
	return ms;
}
