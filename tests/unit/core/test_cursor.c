/*
 * test_cursor.c — the keyset-pagination cursor: encode/decode round trips, and every way a
 * client can hand back a cursor that must be refused with ERR_BAD_REQUEST (another list,
 * another query — filters or sort —, another key count, garbage, tampering, excessive length).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/base64url.h"
#include "core/cursor.h"
#include "core/error.h"

struct fixture {
	struct arena a;
	struct error err;
};

#define TEST_SECRET "unit-test secret, long enough to be a key"

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	arena_init(&f->a);
	cursor_set_key(TEST_SECRET, strlen(TEST_SECRET));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	arena_release(&f->a);
	error_release(&f->err);
	free(f);
	return 0;
}

/*
 * A cursor whose raw JSON document is `json`, signed with the test's key: what someone who
 * knows the server secret could make. It tests the document checks behind the signature.
 */
static char *sign(struct arena *a, const char *json, const char *secret)
{
	static const char label[] = "tandem cursor v1";
	unsigned char key[32], tag[32];
	unsigned int n = 0;
	HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)label,
	     sizeof(label) - 1, key, &n);
	HMAC(EVP_sha256(), key, sizeof(key), (const unsigned char *)json, strlen(json), tag, &n);
	return arena_printf(a, "%s.%s", base64url_encode(a, json, strlen(json)),
			    base64url_encode(a, tag, 16));
}

static char *forge(struct arena *a, const char *json)
{
	return sign(a, json, TEST_SECRET);
}

/* The digest a cursor carries for the query "" (SHA-256, 12 bytes, base64url). */
#define EMPTY_QUERY "47DEQpj8HBSa-_TI"

static void assert_bad_request(struct fixture *f, const char *cursor, const char *list,
			       const char *query, size_t nkeys)
{
	json_t *keys = NULL;
	int rc = cursor_decode(&f->a, cursor, list, query, nkeys, &keys, &f->err);
	if (rc != -ERR_BAD_REQUEST)
		fail_msg("cursor \"%.80s\" decoded with rc %d, want -ERR_BAD_REQUEST", cursor, rc);
	assert_int_equal(f->err.kind, ERR_BAD_REQUEST);
	assert_true(f->err.detail[0] != '\0');
	assert_null(keys);
}

static void test_round_trip_keeps_strings_integers_and_nulls(void **state)
{
	struct fixture *f = *state;
	json_t *keys = json_pack("[s, I, n, s]", "2024-01-15T14:30:00.000Z", (json_int_t)42,
				 "01890a5d-ac96-774b-bcce-b302099a8057");
	char *c = cursor_encode(&f->a, "-created_at", "", keys);
	json_t *out = NULL;
	assert_int_equal(cursor_decode(&f->a, c, "-created_at", "", 4, &out, &f->err), 0);
	assert_true(json_equal(out, keys));
	json_decref(keys);
}

static void test_round_trip_keeps_extreme_integers_and_unicode(void **state)
{
	struct fixture *f = *state;
	json_t *keys = json_pack("[I, I, s]", (json_int_t)INT64_MAX, (json_int_t)INT64_MIN,
				 "caf\xc3\xa9 \"quoted\" \xf0\x9f\x8e\x89");
	char *c = cursor_encode(&f->a, "title", "", keys);
	json_t *out = NULL;
	assert_int_equal(cursor_decode(&f->a, c, "title", "", 3, &out, &f->err), 0);
	assert_true(json_equal(out, keys));
	json_decref(keys);
}

static void test_encoded_cursor_is_url_safe(void **state)
{
	struct fixture *f = *state;
	json_t *keys = json_pack("[s]", "?~?>>>~~~\xc3\xbf");
	char *c = cursor_encode(&f->a, "-updated_at", "", keys);
	assert_int_equal(
	    strspn(c, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."),
	    strlen(c));
	json_decref(keys);
}

static void test_decoded_keys_outlive_the_callers_reference(void **state)
{
	struct fixture *f = *state;
	json_t *keys = json_pack("[s]", "x");
	char *c = cursor_encode(&f->a, "s", "", keys);
	json_decref(keys); /* borrowed by cursor_encode: the cursor does not depend on it */
	json_t *out = NULL;
	assert_int_equal(cursor_decode(&f->a, c, "s", "", 1, &out, &f->err), 0);
	assert_string_equal(json_string_value(json_array_get(out, 0)), "x");
}

static void test_cursor_for_another_list_is_rejected(void **state)
{
	struct fixture *f = *state;
	json_t *keys = json_pack("[i, s]", 1, "id");
	char *c = cursor_encode(&f->a, "tasks:p1", "status=todo", keys);
	json_decref(keys);
	assert_bad_request(f, c, "tasks:p2", "status=todo", 2);
	assert_string_equal(f->err.detail, "cursor was made for another list");
	/* Another list and another query: the list is what is wrong. */
	assert_bad_request(f, c, "members:p1", "", 2);
	assert_string_equal(f->err.detail, "cursor was made for another list");
	assert_bad_request(f, c, "tasks:p", "status=todo", 2); /* no prefix match */
	assert_bad_request(f, c, "tasks:p10", "status=todo", 2);
}

static void test_cursor_for_another_query_is_rejected(void **state)
{
	struct fixture *f = *state;
	json_t *keys = json_pack("[i, s]", 1, "id"), *out = NULL;
	char *c = cursor_encode(&f->a, "tasks:p1", "status=todo&sort=-created_at", keys);
	json_decref(keys);
	static const char *const others[] = {
	    "status=todo,done&sort=-created_at", /* a filter widened */
	    "status=todo&sort=created_at",	 /* another sort */
	    "status=todo",			 /* a part left out */
	    "",					 /* no filters at all */
	    "status=todo&sort=-created_at ",	 /* one byte more */
	};
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		assert_bad_request(f, c, "tasks:p1", others[i], 2);
		assert_non_null(strstr(f->err.detail, "cursor was made for another query"));
	}
	/* The control: the same list and query take it. */
	assert_int_equal(
	    cursor_decode(&f->a, c, "tasks:p1", "status=todo&sort=-created_at", 2, &out, &f->err),
	    0);
}

static void test_cursor_binds_long_queries_in_a_short_digest(void **state)
{
	struct fixture *f = *state;
	char query[4000];
	memset(query, 'q', sizeof(query) - 1);
	query[sizeof(query) - 1] = '\0';
	json_t *keys = json_pack("[s]", "id"), *out = NULL;
	char *c = cursor_encode(&f->a, "tasks:p1", query, keys);
	json_decref(keys);
	assert_true(strlen(c) < 200);
	assert_int_equal(cursor_decode(&f->a, c, "tasks:p1", query, 1, &out, &f->err), 0);
	query[100] = 'r';
	assert_bad_request(f, c, "tasks:p1", query, 1);
	assert_non_null(strstr(f->err.detail, "another query"));
}

static void test_version_1_cursor_is_refused_with_what_to_do(void **state)
{
	struct fixture *f = *state;
	assert_bad_request(f, forge(&f->a, "{\"v\":1,\"s\":\"s\",\"k\":[1]}"), "s", "", 1);
	assert_non_null(strstr(f->err.detail, "first page"));
}

static void test_cursor_with_fewer_keys_than_the_ordering_is_rejected(void **state)
{
	struct fixture *f = *state;
	json_t *keys = json_pack("[i]", 1);
	char *c = cursor_encode(&f->a, "due_date", "", keys);
	json_decref(keys);
	assert_bad_request(f, c, "due_date", "", 2);
}

static void test_cursor_with_more_keys_than_the_ordering_is_rejected(void **state)
{
	struct fixture *f = *state;
	json_t *keys = json_pack("[i, s, s]", 1, "a", "b");
	char *c = cursor_encode(&f->a, "due_date", "", keys);
	json_decref(keys);
	assert_bad_request(f, c, "due_date", "", 2);
}

static void test_garbage_is_rejected(void **state)
{
	struct fixture *f = *state;
	assert_bad_request(f, "", "s", "", 1);
	assert_bad_request(f, "!!!!", "s", "", 1);
	assert_bad_request(f, "not a cursor", "s", "", 1);
	assert_bad_request(f, "eyJ2IjoxfQ==", "s", "", 1); /* padded standard base64 */
	assert_bad_request(f, "A", "s", "", 1);		   /* impossible base64 length */
	assert_bad_request(f, forge(&f->a, "hello"), "s", "", 1);
	assert_bad_request(f, forge(&f->a, "[1]"), "s", "", 1);
	assert_bad_request(f, forge(&f->a, "null"), "s", "", 1);
}

static void test_tampered_cursor_is_rejected(void **state)
{
	struct fixture *f = *state;
	json_t *keys = json_pack("[s, s]", "2024-01-15T14:30:00.000Z", "some-id");
	char *good = cursor_encode(&f->a, "-created_at", "", keys);
	json_decref(keys);
	size_t len = strlen(good);

	/* Cut short: the JSON document loses its end. */
	assert_bad_request(f, arena_strndup(&f->a, good, len - 4), "-created_at", "", 2);
	/* Front bytes changed: the document no longer starts as an object. */
	char *t = arena_strdup(&f->a, good);
	t[0] = t[0] == 'A' ? 'B' : 'A';
	t[1] = t[1] == 'A' ? 'B' : 'A';
	assert_bad_request(f, t, "-created_at", "", 2);
	/* A character outside the alphabet spliced in. */
	t = arena_strdup(&f->a, good);
	t[len / 2] = '+';
	assert_bad_request(f, t, "-created_at", "", 2);
}

static void test_forged_documents_with_the_wrong_shape_are_rejected(void **state)
{
	struct fixture *f = *state;
#define Q "\"q\":\"" EMPTY_QUERY "\""
	static const char *const docs[] = {
	    "{\"v\":3,\"l\":\"s\"," Q ",\"k\":[1]}",	       /* unknown version */
	    "{\"v\":\"2\",\"l\":\"s\"," Q ",\"k\":[1]}",       /* version as a string */
	    "{\"l\":\"s\"," Q ",\"k\":[1]}",		       /* no version */
	    "{\"v\":2," Q ",\"k\":[1]}",		       /* no list */
	    "{\"v\":2,\"l\":1," Q ",\"k\":[1]}",	       /* list not a string */
	    "{\"v\":2,\"l\":\"s\",\"k\":[1]}",		       /* no query */
	    "{\"v\":2,\"l\":\"s\",\"q\":null,\"k\":[1]}",      /* query not a string */
	    "{\"v\":2,\"l\":\"s\"," Q "}",		       /* no keys */
	    "{\"v\":2,\"l\":\"s\"," Q ",\"k\":{\"a\":1}}",     /* keys not an array */
	    "{\"v\":2,\"l\":\"s\"," Q ",\"k\":[1.5]}",	       /* a real key */
	    "{\"v\":2,\"l\":\"s\"," Q ",\"k\":[true]}",	       /* a boolean key */
	    "{\"v\":2,\"l\":\"s\"," Q ",\"k\":[[1]]}",	       /* a nested key */
	    "{\"v\":2,\"l\":\"s\"," Q ",\"k\":[1],\"k\":[2]}", /* duplicate member */
	};
#undef Q
	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++)
		assert_bad_request(f, forge(&f->a, docs[i]), "s", "", 1);
}

static void test_edited_cursor_is_rejected(void **state)
{
	/* A client that re-encodes a document of its own (no key) or signs with a wrong key. */
	struct fixture *f = *state;
	const char *doc = "{\"v\":2,\"l\":\"s\",\"q\":\"" EMPTY_QUERY "\",\"k\":[1]}";
	assert_bad_request(f, base64url_encode(&f->a, doc, strlen(doc)), "s", "", 1);
	assert_bad_request(f, sign(&f->a, doc, "another secret entirely, also long"), "s", "", 1);
	char *c = forge(&f->a, doc);
	c[strlen(c) - 1] = c[strlen(c) - 1] == 'A' ? 'B' : 'A';
	assert_bad_request(f, c, "s", "", 1);
}

static void test_forged_document_with_the_right_shape_is_accepted(void **state)
{
	/* The control for the test above: the forging itself is not what fails. */
	struct fixture *f = *state;
	json_t *out = NULL;
	assert_int_equal(
	    cursor_decode(&f->a,
			  forge(&f->a, "{\"v\":2,\"l\":\"s\",\"q\":\"" EMPTY_QUERY "\",\"k\":[1]}"),
			  "s", "", 1, &out, &f->err),
	    0);
	assert_int_equal(json_integer_value(json_array_get(out, 0)), 1);
}

static void test_too_long_cursor_is_rejected(void **state)
{
	struct fixture *f = *state;
	char *c = arena_alloc(&f->a, 5001);
	memset(c, 'A', 5000);
	assert_bad_request(f, c, "s", "", 1);
	assert_non_null(strstr(f->err.detail, "too long"));
}

static void test_long_but_allowed_cursor_round_trips(void **state)
{
	struct fixture *f = *state;
	char big[1200];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	json_t *keys = json_pack("[s]", big);
	char *c = cursor_encode(&f->a, "title", "", keys);
	assert_true(strlen(c) > 1500 && strlen(c) <= 2048);
	json_t *out = NULL;
	assert_int_equal(cursor_decode(&f->a, c, "title", "", 1, &out, &f->err), 0);
	assert_true(json_equal(out, keys));
	json_decref(keys);
}

static void test_decode_without_an_error_struct_still_reports_the_kind(void **state)
{
	struct fixture *f = *state;
	json_t *out = NULL;
	assert_int_equal(cursor_decode(&f->a, "!!", "s", "", 1, &out, NULL), -ERR_BAD_REQUEST);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_round_trip_keeps_strings_integers_and_nulls),
	    T(test_round_trip_keeps_extreme_integers_and_unicode),
	    T(test_encoded_cursor_is_url_safe),
	    T(test_decoded_keys_outlive_the_callers_reference),
	    T(test_cursor_for_another_list_is_rejected),
	    T(test_cursor_for_another_query_is_rejected),
	    T(test_cursor_binds_long_queries_in_a_short_digest),
	    T(test_version_1_cursor_is_refused_with_what_to_do),
	    T(test_cursor_with_fewer_keys_than_the_ordering_is_rejected),
	    T(test_cursor_with_more_keys_than_the_ordering_is_rejected),
	    T(test_garbage_is_rejected),
	    T(test_tampered_cursor_is_rejected),
	    T(test_forged_documents_with_the_wrong_shape_are_rejected),
	    T(test_edited_cursor_is_rejected),
	    T(test_forged_document_with_the_right_shape_is_accepted),
	    T(test_too_long_cursor_is_rejected),
	    T(test_long_but_allowed_cursor_round_trips),
	    T(test_decode_without_an_error_struct_still_reports_the_kind),
	};
#undef T
	return cmocka_run_group_tests_name("core/cursor", tests, NULL, NULL);
}
