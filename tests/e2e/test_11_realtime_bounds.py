"""Issue 14, findings 3, 4 (live channels) and 10, on every backend: what one client may cost.

- A peer that sends control frames and never reads what they queue (PONGs) is no longer read
  and is closed with 4008 like any slow consumer: the server's memory for it stays bounded.
- Open WebSockets, SSE streams and parked long polls are capped per user and per client
  address (TANDEM_MAX_STREAMS_PER_USER, TANDEM_MAX_STREAMS_PER_IP): 429 problem+json past
  them, or 1013 for a WebSocket that authenticates after the upgrade.
- WebSocket messages have a budget per connection (TANDEM_WS_MESSAGE_RATE with bursts of
  TANDEM_WS_MESSAGE_BURST): past it an `error` `rate_limited`, then close 1008.
- A subscription that catches up on a long history is paged and paced by what its client
  takes: other subscribers of the same project get live events meanwhile.
"""

import socket
import time

import pytest

from rtkit import (OP_PING, OP_TEXT, LongPoll, RawWs, Sse, Ws, assert_healthy, authed_raw,
                   server_side_state, slow_consumer_closed, wait_parked, wait_until, DEBUG_LOG)
from rtkit import close_clients  # noqa: F401 - autouse: closes the test's clients
from harness import assert_problem
from taskkit import Team, db_exec, event_feed, last_seq


# ---------------------------------------------------------------------------------------
# finding 3: control frames


def test_a_peer_that_pings_without_reading_is_no_longer_read_and_closed_4008(tandem_server):
    srv = tandem_server(env={"TANDEM_WS_PING_INTERVAL": "1", "TANDEM_WS_MAX_QUEUE": "65536"})
    team = Team(srv)
    raw = authed_raw(team, rcvbuf=4096)
    raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
    # Each PING makes wslay queue a PONG of the same 125 bytes; the client reads none. Kernel
    # buffers on loopback take a few MiB; a server that keeps reading takes everything.
    burst = RawWs.encode(OP_PING, b"p" * 125) * 512
    limit = 48 << 20
    raw.sock.setblocking(False)
    sent, pending = 0, b""
    while True:
        assert sent < limit, f"the server read {sent} bytes of PINGs from a peer that reads nothing"
        pending = pending or burst
        try:
            n = raw.sock.send(pending)
            sent += n
            pending = pending[n:]
        except BlockingIOError:
            # The server stopped reading (or is slow to): it must close the connection now.
            if slow_consumer_closed(srv) and server_side_state(srv, raw.sock) != "ESTABLISHED":
                break
            time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            break
    assert slow_consumer_closed(srv)
    assert_healthy(team)
