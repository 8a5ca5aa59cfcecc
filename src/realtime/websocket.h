/*
 * websocket.h — the pure pieces of the WebSocket protocol (RFC 6455) the hub and the upgrade
 * handler need: the handshake's accept key and the frame-boundary tracking that tells the hub
 * when a connection is at rest. No I/O, no state beyond what the caller passes; thread-safe.
 */
#ifndef TANDEM_REALTIME_WEBSOCKET_H
#define TANDEM_REALTIME_WEBSOCKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Length of an accept key with its terminating NUL (base64 of a SHA-1 digest). */
#define WS_ACCEPT_KEY_SIZE 29

/* Sec-WebSocket-Accept for the client's Sec-WebSocket-Key (RFC 6455 4.2.2): base64 of the
 * SHA-1 of the key followed by the protocol's GUID, NUL-terminated into out. */
void ws_accept_key(const char *key, char out[WS_ACCEPT_KEY_SIZE]);

/* Where a peer's byte stream stands between frames (RFC 6455 5.2). Zeroed: at a frame start,
 * outside any message. */
struct ws_input {
	uint64_t payload; /* bytes of the current frame's payload not yet seen */
	uint8_t head[14]; /* the frame header seen so far ... */
	uint8_t head_len; /* ... and its length (0: between frames) */
	bool fragmented;  /* a data frame without FIN came: the message goes on */
};

/* Account for n more bytes of the peer's stream. Counts only; validating is wslay's job. */
void ws_input_track(struct ws_input *in, const uint8_t *p, size_t n);

/* No partial frame and no unfinished message: a fresh parser could take over here. */
bool ws_input_at_rest(const struct ws_input *in);

#endif
