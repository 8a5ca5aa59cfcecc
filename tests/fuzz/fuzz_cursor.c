/*
 * fuzz_cursor.c — the opaque list cursor (core/cursor.c) and base64url (core/base64url.c).
 *
 * The first byte picks what the rest is:
 *   0  a cursor as a client sends it (?cursor=), decoded for a task list, a member list, "":
 *      whatever it is, the answer is 0 with keys of the allowed types, or 400;
 *   1  a query text, a newline, a JSON array of keys: encoded for a list and that query,
 *      then decoded again, must give the same keys back, and must be refused for another
 *      list ("another list"), another query ("another query") or another number of keys;
 *   2  bytes: base64url-encoded then decoded give the same bytes; the encoding has no '+',
 *      '/' or '=';
 *   3  text: base64url-decoded when it is base64url, then the bytes re-encoded and decoded
 *      again give the same bytes; and checked as a device token (services/token.h) as a
 *      client sends it in a login body: refused, or accepted with a valid user id. A token
 *      issued here verifies, and with any one character changed it does not.
 */
#include "fuzz.h"
#include "core/arena.h"
#include "core/base64url.h"
#include "core/cursor.h"
#include "core/error.h"
#include "core/timeutil.h"
#include "core/uuid.h"
#include "services/token.h"

#include <jansson.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	cursor_set_key("fuzz-secret-fuzz-secret-fuzz-secret", 35);
	return 0;
}

static void decode_any(struct arena *a, const char *text, size_t nkeys)
{
	static const char *const lists[][2] = {
	    {"tasks:all:x", "status=&priority=&sort=-created_at"}, {"members:x", ""}, {"", ""}};
	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		struct error err = ERROR_INIT;
		json_t *keys = NULL;
		int rc = cursor_decode(a, text, lists[i][0], lists[i][1], nkeys, &keys, &err);
		if (rc == 0) {
			FUZZ_CHECK(json_is_array(keys) && json_array_size(keys) == nkeys);
			size_t j;
			json_t *k;
			json_array_foreach(keys, j, k)
			    FUZZ_CHECK(json_is_string(k) || json_is_integer(k) || json_is_null(k));
		} else {
			FUZZ_CHECK(rc == -ERR_BAD_REQUEST && err.kind == ERR_BAD_REQUEST);
		}
		error_release(&err);
	}
}

/* Refused as made for `what` ("another list", "another query"). */
static void refused(struct arena *a, const char *c, const char *list, const char *query, size_t n,
		    const char *what)
{
	struct error err = ERROR_INIT;
	json_t *out = NULL;
	FUZZ_CHECK(cursor_decode(a, c, list, query, n, &out, &err) == -ERR_BAD_REQUEST);
	FUZZ_CHECK(strstr(err.detail, what) != NULL && out == NULL);
	error_release(&err);
}

/*
 * `data` is "<query text>\n<JSON array of keys>": encoded for a list and that query, decoded
 * the same way it gives the keys back; another list or another query (one byte more, one byte
 * less) is refused saying which; another number of keys is refused.
 */
static void roundtrip_keys(struct arena *a, const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	const char *query = nl ? arena_strndup(a, (const char *)data, (size_t)(nl - data)) : "";
	if (nl) {
		size -= (size_t)(nl + 1 - data);
		data = nl + 1;
	}
	json_t *in = json_loadb((const char *)data, size, 0, NULL);
	if (!json_is_array(in)) {
		json_decref(in);
		return;
	}
	/* Only what cursors carry: strings, integers and nulls. */
	json_t *keys = json_array();
	size_t i;
	json_t *k;
	json_array_foreach(in, i, k) if (json_is_string(k) || json_is_integer(k) || json_is_null(k))
	    json_array_append(keys, k);
	json_decref(in);

	const char *list = "tasks:01900000-0000-7000-8000-000000000001";
	char *c = cursor_encode(a, list, query, keys);
	FUZZ_CHECK(c != NULL);
	struct error err = ERROR_INIT;
	json_t *out = NULL;
	size_t n = json_array_size(keys);
	if (strlen(c) <= 2048) { /* longer ones are refused as too long, by design */
		FUZZ_CHECK(cursor_decode(a, c, list, query, n, &out, &err) == 0);
		FUZZ_CHECK(json_equal(out, keys));
		refused(a, c, "tasks:01900000-0000-7000-8000-000000000002", query, n,
			"another list");
		refused(a, c, "tasks:all:x", query, n, "another list");
		refused(a, c, list, arena_printf(a, "%s&", query), n, "another query");
		if (*query)
			refused(a, c, list, arena_strndup(a, query, strlen(query) - 1), n,
				"another query");
	}
	FUZZ_CHECK(cursor_decode(a, c, list, query, n + 1, &out, &err) < 0);
	error_release(&err);
	json_decref(keys);
}

static void roundtrip_bytes(struct arena *a, const uint8_t *data, size_t size)
{
	char *e = base64url_encode(a, data, size);
	FUZZ_CHECK(strcspn(e, "+/=") == strlen(e));
	size_t n = 0;
	unsigned char *d = base64url_decode(a, e, &n);
	FUZZ_CHECK(d && n == size && (size == 0 || memcmp(d, data, size) == 0));
}

/* seeds.py signs device-token seeds with the same secret. */
static const struct token_key device_key = {"fuzz-secret-fuzz-secret-fuzz-secret", 35};

static void device_token(struct arena *a, const char *text)
{
	struct device_claims dc;
	int64_t now = 1765000000;
	if (token_device_verify(a, &device_key, text, 315360000, now, &dc) == 0)
		FUZZ_CHECK(uuid_valid(dc.sub) && strlen(dc.nonce) == TOKEN_DEVICE_NONCE_LEN);
	size_t n = strlen(text);
	if (n == 0)
		return;
	char *t = token_device_issue(a, &device_key, "01900000-0000-7000-8000-000000000003");
	FUZZ_CHECK(token_device_verify(a, &device_key, t, 315360000, time_now_ms() / 1000, &dc) ==
		   0);
	/* Change one character (where and to what: from the input). */
	size_t at = (unsigned char)text[0] % strlen(t);
	char c = n > 1 ? text[1] : 'x';
	if (t[at] != c) {
		t[at] = c;
		FUZZ_CHECK(token_device_verify(a, &device_key, t, 315360000, time_now_ms() / 1000,
					       &dc) != 0);
	}
}

static void decode_text(struct arena *a, const char *text)
{
	device_token(a, text);
	size_t n = 0, n2 = 0;
	unsigned char *d = base64url_decode(a, text, &n);
	if (!d)
		return;
	FUZZ_CHECK(n <= strlen(text) * 3 / 4 + 1);
	char *e = base64url_encode(a, d, n);
	unsigned char *d2 = base64url_decode(a, e, &n2);
	FUZZ_CHECK(d2 && n2 == n && (n == 0 || memcmp(d, d2, n) == 0));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	struct arena a;
	arena_init(&a);
	uint8_t mode = data[0] & 3;
	char *text = fuzz_string(data + 1, size - 1);
	switch (mode) {
	case 0:
		decode_any(&a, text, (size_t)(data[0] >> 2) % 4 + 1);
		break;
	case 1:
		roundtrip_keys(&a, data + 1, size - 1);
		break;
	case 2:
		roundtrip_bytes(&a, data + 1, size - 1);
		break;
	case 3:
		decode_text(&a, text);
		break;
	}
	free(text);
	arena_release(&a);
	return 0;
}
