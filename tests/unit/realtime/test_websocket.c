/*
 * test_websocket.c — the pure pieces of realtime/websocket.c: the handshake's accept key
 * (RFC 6455's own sample) and the input tracking that decides whether a connection is at rest
 * (between frames, outside any message), fed whole, byte by byte and cut at every offset.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "realtime/websocket.h"

static void accept_key_of_the_rfc_sample(void **state)
{
	(void)state;
	char out[WS_ACCEPT_KEY_SIZE];
	ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out);
	assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="); /* RFC 6455 1.3 */
}

static void accept_key_depends_on_the_key(void **state)
{
	(void)state;
	char a[WS_ACCEPT_KEY_SIZE], b[WS_ACCEPT_KEY_SIZE];
	ws_accept_key("AAAAAAAAAAAAAAAAAAAAAA==", a);
	ws_accept_key("AAAAAAAAAAAAAAAAAAAAAQ==", b);
	assert_int_equal(strlen(a), 28);
	assert_string_not_equal(a, b);
}

/* A client frame: FIN flag, opcode, masked, payload length n (bytes of payload are 'x'). */
static size_t frame(uint8_t *out, bool fin, uint8_t opcode, uint64_t n, bool with_payload)
{
	size_t k = 0;
	out[k++] = (uint8_t)((fin ? 0x80 : 0) | opcode);
	if (n < 126) {
		out[k++] = (uint8_t)(0x80 | n);
	} else if (n < 65536) {
		out[k++] = 0x80 | 126;
		out[k++] = (uint8_t)(n >> 8);
		out[k++] = (uint8_t)n;
	} else {
		out[k++] = 0x80 | 127;
		for (int i = 7; i >= 0; i--)
			out[k++] = (uint8_t)(n >> (8 * i));
	}
	memcpy(out + k, "\x01\x02\x03\x04", 4); /* mask */
	k += 4;
	if (with_payload) {
		memset(out + k, 'x', (size_t)n);
		k += (size_t)n;
	}
	return k;
}

static void a_fresh_input_is_at_rest(void **state)
{
	(void)state;
	struct ws_input in = {0};
	assert_true(ws_input_at_rest(&in));
}

static void a_whole_frame_ends_at_rest(void **state)
{
	(void)state;
	uint8_t buf[256];
	size_t n = frame(buf, true, 0x1, 15, true);
	struct ws_input in = {0};
	ws_input_track(&in, buf, n);
	assert_true(ws_input_at_rest(&in));
}

/* Cut anywhere inside, the connection is not at rest; at the end it is. */
static void every_cut_inside_a_frame_is_not_at_rest(void **state)
{
	(void)state;
	static uint8_t buf[70000];
	const uint64_t sizes[] = {0, 1, 125, 126, 300, 65535, 65536};
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		size_t n = frame(buf, true, 0x1, sizes[s], true);
		for (size_t cut = 1; cut < n; cut += (n > 1000 && cut > 20 ? 997 : 1)) {
			struct ws_input in = {0};
			ws_input_track(&in, buf, cut);
			assert_false(ws_input_at_rest(&in));
			ws_input_track(&in, buf + cut, n - cut);
			assert_true(ws_input_at_rest(&in));
		}
	}
}

static void byte_by_byte_is_the_same_as_whole(void **state)
{
	(void)state;
	uint8_t buf[1024];
	size_t n = frame(buf, true, 0x1, 200, true);
	n += frame(buf + n, true, 0x9, 3, true);
	struct ws_input in = {0};
	for (size_t i = 0; i < n; i++)
		ws_input_track(&in, buf + i, 1);
	assert_true(ws_input_at_rest(&in));
}

static void a_fragmented_message_is_not_at_rest_until_its_final_frame(void **state)
{
	(void)state;
	uint8_t buf[256];
	struct ws_input in = {0};
	size_t n = frame(buf, false, 0x1, 5, true); /* text, no FIN */
	ws_input_track(&in, buf, n);
	assert_false(ws_input_at_rest(&in));
	n = frame(buf, true, 0x9, 2, true); /* a ping in between keeps the message open */
	ws_input_track(&in, buf, n);
	assert_false(ws_input_at_rest(&in));
	n = frame(buf, false, 0x0, 5, true); /* continuation, no FIN */
	ws_input_track(&in, buf, n);
	assert_false(ws_input_at_rest(&in));
	n = frame(buf, true, 0x0, 5, true); /* the final continuation */
	ws_input_track(&in, buf, n);
	assert_true(ws_input_at_rest(&in));
}

static void a_64_bit_length_is_read_whole(void **state)
{
	(void)state;
	uint8_t buf[32];
	uint64_t big = (UINT64_C(1) << 40) + 7;
	size_t n = frame(buf, true, 0x2, big, false);
	struct ws_input in = {0};
	ws_input_track(&in, buf, n);
	assert_true(in.payload == big);
	assert_false(ws_input_at_rest(&in));
}

static void an_unmasked_header_is_two_bytes_shorter_than_masked(void **state)
{
	(void)state;
	const uint8_t unmasked[] = {0x81, 0x02, 'h', 'i'};
	struct ws_input in = {0};
	ws_input_track(&in, unmasked, sizeof(unmasked));
	assert_true(ws_input_at_rest(&in));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(accept_key_of_the_rfc_sample),
	    cmocka_unit_test(accept_key_depends_on_the_key),
	    cmocka_unit_test(a_fresh_input_is_at_rest),
	    cmocka_unit_test(a_whole_frame_ends_at_rest),
	    cmocka_unit_test(every_cut_inside_a_frame_is_not_at_rest),
	    cmocka_unit_test(byte_by_byte_is_the_same_as_whole),
	    cmocka_unit_test(a_fragmented_message_is_not_at_rest_until_its_final_frame),
	    cmocka_unit_test(a_64_bit_length_is_read_whole),
	    cmocka_unit_test(an_unmasked_header_is_two_bytes_shorter_than_masked),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
