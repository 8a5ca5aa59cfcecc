"""Issue 8 end to end, on every backend: WebSocket protocol abuse and limits.

Meant to run under the sanitizer build too (TANDEM_SANITIZER=1: a test whose server printed
a sanitizer report fails at teardown). A hand-written client (rtkit.RawWs) sends what no
well-behaved client would. The rule everywhere: a bad message gets an `error` message and the
connection stays; a broken frame gets a protocol close (1002, or 1009 for a message over the
size limit); never a crash, and the server goes on serving (checked after every case).
"""

import json
import socket
import struct

import pytest

from harness import assert_problem
from rtkit import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, Closed, RawWs, Ws,
                   assert_healthy, authed_raw)
from rtkit import close_clients  # noqa: F401 - autouse: closes the test's clients
from taskkit import Team, create_project

MAX_MESSAGE = 1024


@pytest.fixture
def srv(tandem_server):
    return tandem_server(env={"TANDEM_WS_MAX_MESSAGE": str(MAX_MESSAGE),
                              "TANDEM_WS_MAX_SUBSCRIPTIONS": "2"})


@pytest.fixture
def team(srv):
    return Team(srv)




def ping(raw):
    raw.send_frame(OP_TEXT, '{"type":"ping"}')
    assert raw.recv() == {"type": "pong"}


# ---------------------------------------------------------------------------------------
# bad messages: an error, and the connection stays

BAD_MESSAGES = [
    # (frame opcode, payload, expected error code)
    (OP_BINARY, b'{"type":"ping"}', "bad_request"),
    (OP_BINARY, b"\x00\xff\x00", "bad_request"),
    (OP_TEXT, b"not json", "malformed_json"),
    (OP_TEXT, b"", "malformed_json"),
    (OP_TEXT, b'{"type":"ping"', "malformed_json"),
    (OP_TEXT, b"[1, 2]", "malformed_json"),
    (OP_TEXT, b"42", "malformed_json"),
    (OP_TEXT, b"null", "malformed_json"),
    (OP_TEXT, b'"ping"', "malformed_json"),
    (OP_TEXT, b'{"type":"ping","type":"subscribe"}', "malformed_json"),
    (OP_TEXT, b"[" * 500 + b"]" * 500, "malformed_json"),
    (OP_TEXT, b'{"type":"ping\x00"}', "malformed_json"),
    (OP_TEXT, b'{"type":"ping\\u0000"}', "malformed_json"),
    (OP_TEXT, b"{}", "validation_failed"),
    (OP_TEXT, b'{"type":5}', "validation_failed"),
    (OP_TEXT, b'{"type":null}', "validation_failed"),
    (OP_TEXT, b'{"type":["ping"]}', "validation_failed"),
    (OP_TEXT, b'{"type":"bogus"}', "unknown_type"),
    (OP_TEXT, b'{"type":"pong"}', "unknown_type"),
    (OP_TEXT, b'{"type":"PING"}', "unknown_type"),
    (OP_TEXT, b'{"type":"subscribe"}', "validation_failed"),
    (OP_TEXT, b'{"type":"subscribe","project_id":"nope","after":0}', "validation_failed"),
    (OP_TEXT, b'{"type":"subscribe","project_id":5,"after":0}', "validation_failed"),
    (OP_TEXT, b'{"type":"subscribe","project_id":"' + b"a" * 900 + b'"}', "validation_failed"),
    (OP_TEXT, b'{"type":"unsubscribe"}', "validation_failed"),
    (OP_TEXT, b'{"type":"unsubscribe","project_id":null}', "validation_failed"),
]


def test_bad_messages_get_an_error_and_the_connection_stays(team):
    raw = authed_raw(team)
    for op, payload, code in BAD_MESSAGES:
        raw.send_frame(op, payload)
        msg = raw.recv()
        assert msg["type"] == "error" and msg["code"] == code, (payload[:60], msg)
        # An error about a project names it as the client wrote it (issue 15), unless that
        # is not a string or is longer than any id.
        try:
            sent = json.loads(payload)
        except ValueError:
            sent = None
        pid = sent.get("project_id") if isinstance(sent, dict) else None
        named = isinstance(pid, str) and len(pid) <= 64
        assert set(msg) == {"type", "code", "message"} | ({"project_id"} if named else set()), msg
        assert msg.get("project_id") == (pid if named else None), msg
        assert isinstance(msg["message"], str) and msg["message"], msg
        ping(raw)  # still there, and nothing else was sent
    raw.send_json({"type": "subscribe", "project_id": team.pid, "after": 3})
    assert raw.recv()["type"] == "subscribed"
    assert_healthy(team)


@pytest.mark.parametrize("after", [-1, "3", 1.5, True, {}, [3]])
def test_subscribe_with_a_bad_after_is_validation_failed(team, after):
    raw = authed_raw(team)
    raw.send_json({"type": "subscribe", "project_id": team.pid, "after": after})
    msg = raw.recv()
    assert msg["type"] == "error" and msg["code"] == "validation_failed", msg
    ping(raw)
    # Not subscribed: a new event does not arrive.
    team.create()
    ping(raw)


def test_invalid_utf8_in_a_text_frame(team):
    raw = authed_raw(team)
    raw.send_frame(OP_TEXT, b'{"type":"ping","x":"\xff\xfe"}')
    try:
        msg = raw.recv()
    except Closed as c:
        assert c.code == 1007, c.code  # invalid frame payload data
    else:
        assert msg["type"] == "error" and msg["code"] == "malformed_json", msg
        ping(raw)
    assert_healthy(team)


def test_a_message_in_many_fragments_with_pings_between(team):
    raw = authed_raw(team)
    text = b'{"type":"ping"}'
    raw.send_frame(OP_TEXT, text[:1], fin=False)
    for i in range(1, len(text) - 1):
        raw.send_frame(OP_CONT, text[i:i + 1], fin=False)
        raw.send_frame(OP_PING, b"p%d" % i)  # control frames may come between fragments
    raw.send_frame(OP_CONT, text[-1:], fin=True)
    pongs = 0
    while True:
        _fin, op, payload = raw.frame()
        if op == OP_PONG:
            pongs += 1
            continue
        assert op == OP_TEXT and json.loads(payload) == {"type": "pong"}, (op, payload)
        break
    # Every ping was answered with its own payload before the message completed.
    assert pongs == len(text) - 2
    ping(raw)


def test_a_pipelined_flood_of_pings_is_answered_in_order(tandem_server):
    n = 2000
    # All n within the connection's message budget (test_11_realtime_bounds tests that).
    team = Team(tandem_server(env={"TANDEM_WS_MESSAGE_BURST": str(n)}))
    raw = authed_raw(team)
    raw.send_bytes(b"".join(RawWs.encode(OP_TEXT, '{"type":"ping"}') for _ in range(n)))
    for _ in range(n):
        assert raw.recv() == {"type": "pong"}
    assert_healthy(team)






# ---------------------------------------------------------------------------------------
# broken frames: a protocol close

PROTOCOL_ERRORS = {
    "unmasked client frame": RawWs.encode(OP_TEXT, '{"type":"ping"}', mask=False),
    "rsv1 without an extension": RawWs.encode(OP_TEXT, '{"type":"ping"}', rsv=4),
    "rsv3": RawWs.encode(OP_TEXT, '{"type":"ping"}', rsv=1),
    "reserved data opcode": RawWs.encode(0x3, b"x"),
    "reserved control opcode": RawWs.encode(0xB, b"x"),
    "continuation without a start": RawWs.encode(OP_CONT, b"x"),
    "new message inside a fragmented one": (RawWs.encode(OP_TEXT, b'{"ty', fin=False) +
                                            RawWs.encode(OP_TEXT, b'{"type":"ping"}')),
    "ping payload over 125 bytes": RawWs.encode(OP_PING, b"x" * 126),
    "fragmented ping": RawWs.encode(OP_PING, b"x", fin=False),
    "close with a one-byte payload": RawWs.encode(OP_CLOSE, b"\x03"),
    "close with code 999": RawWs.encode(OP_CLOSE, struct.pack("!H", 999)),
    "close with code 1005": RawWs.encode(OP_CLOSE, struct.pack("!H", 1005)),
    "http after the upgrade": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    "64-bit length with the top bit set": (b"\x81\xff" + struct.pack("!Q", 1 << 63) +
                                           b"\x00\x00\x00\x00"),
}


# wslay's frame parser rejects these before the message layer sees them, and its close for
# them carries no status code (1005 as the client reports it); RFC 6455 7.1.7 asks for a
# close frame (SHOULD, with a status code), so a close frame is the minimum.
FRAME_LEVEL = {"ping payload over 125 bytes", "fragmented ping", "close with a one-byte payload",
               "64-bit length with the top bit set"}


@pytest.mark.parametrize("case", sorted(PROTOCOL_ERRORS))
def test_a_broken_frame_gets_a_protocol_close(team, case):
    raw = authed_raw(team)
    raw.send_bytes(PROTOCOL_ERRORS[case])
    code, msgs = raw.expect_close()
    allowed = {1002, 1005, 1009} if case in FRAME_LEVEL else {1002}
    assert code in allowed, (case, code, msgs)
    assert msgs == [], msgs
    assert raw.at_eof(), "the server did not close the TCP connection"
    assert_healthy(team)


def test_a_close_frame_is_answered_and_the_connection_ends(team):
    raw = authed_raw(team)
    raw.send_frame(OP_CLOSE, struct.pack("!H", 1000) + b"bye")
    code, _ = raw.expect_close()
    assert code == 1000
    assert raw.at_eof()
    assert_healthy(team)


@pytest.mark.parametrize("cut", [1, 2, 5, 9, 20])
def test_a_client_vanishing_mid_frame(team, cut):
    raw = authed_raw(team)
    raw.send_json({"type": "subscribe", "project_id": team.pid, "after": 0})
    raw.send_bytes(RawWs.encode(OP_TEXT, '{"type":"ping","pad":"' + "x" * 200 + '"}')[:cut])
    raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    raw.close()  # a reset, not a clean close
    team.create()  # an event for a subscriber that is gone
    assert_healthy(team)


# ---------------------------------------------------------------------------------------
# limits: message size and subscriptions


def padded_ping(size):
    """A ping message of exactly `size` bytes."""
    base = '{"type":"ping","pad":""}'
    text = base[:-2] + "x" * (size - len(base)) + '"}'
    assert len(text) == size
    return text


def test_a_message_at_the_size_limit_is_accepted(team):
    raw = authed_raw(team)
    raw.send_frame(OP_TEXT, padded_ping(MAX_MESSAGE))
    assert raw.recv() == {"type": "pong"}
    # In fragments too.
    text = padded_ping(MAX_MESSAGE).encode()
    raw.send_frame(OP_TEXT, text[:100], fin=False)
    raw.send_frame(OP_CONT, text[100:600], fin=False)
    raw.send_frame(OP_CONT, text[600:], fin=True)
    assert raw.recv() == {"type": "pong"}


def test_a_message_over_the_size_limit_closes_with_1009(team):
    raw = authed_raw(team)
    raw.send_frame(OP_TEXT, padded_ping(MAX_MESSAGE + 1))
    code, msgs = raw.expect_close()
    assert (code, msgs) == (1009, [])
    assert_healthy(team)


def test_a_huge_declared_length_is_refused_without_waiting_for_it(team):
    raw = authed_raw(team)
    raw.send_bytes(b"\x81\xff" + struct.pack("!Q", 1 << 40) + b"\x01\x02\x03\x04" + b"x" * 100)
    code, _ = raw.expect_close()
    assert code == 1009
    assert_healthy(team)


def test_a_fragment_flood_over_the_size_limit_closes_with_1009(team):
    raw = authed_raw(team)
    flood = RawWs.encode(OP_TEXT, b"[", fin=False)
    flood += b"".join(RawWs.encode(OP_CONT, b"1,", fin=False) for _ in range(5000))
    try:
        raw.send_bytes(flood)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server closed before it had everything
    code, msgs = raw.expect_close()
    assert code == 1009 and msgs == []
    assert_healthy(team)


def test_a_flood_of_empty_fragments_is_bounded(team):
    # Empty continuation frames add nothing to the size limit: 20,000 of them are handled
    # (without a crash or a sanitizer report) and the message they end is processed.
    raw = authed_raw(team)
    flood = RawWs.encode(OP_TEXT, b'{"type":', fin=False)
    flood += b"".join(RawWs.encode(OP_CONT, b"", fin=False) for _ in range(20000))
    flood += RawWs.encode(OP_CONT, b'"ping"}', fin=True)
    raw.send_bytes(flood)
    assert raw.recv() == {"type": "pong"}


def test_subscriptions_per_connection_are_limited(team):
    p2 = create_project(team.owner.api, "second")
    p3 = create_project(team.owner.api, "third")
    ws = Ws(team.server, team.owner.token)
    ws.subscribe(team.pid)
    ws.subscribe(p2)
    ws.send({"type": "subscribe", "project_id": p3, "after": None})
    err = ws.expect("error")
    assert err["code"] == "too_many_subscriptions", err
    ws.subscribe(team.pid, after=0)  # re-subscribing to a project is not a new one
    assert [e["seq"] for e in ws.events(3)] == [1, 2, 3]
    ws.send({"type": "unsubscribe", "project_id": p2})
    assert ws.expect("unsubscribed")["reason"] == "requested"
    ws.subscribe(p3)
    # A refused subscribe (not found) does not use up a slot either.
    ws.send({"type": "unsubscribe", "project_id": p3})
    ws.expect("unsubscribed")
    ws.send({"type": "subscribe", "project_id": "00000000-0000-7000-8000-000000000000"})
    assert ws.expect("error")["code"] == "not_found"
    ws.subscribe(p2)
    # The limit is per connection.
    other = Ws(team.server, team.owner.token)
    other.subscribe(p3)
    other.subscribe(p2)


# ---------------------------------------------------------------------------------------
# the upgrade request itself


def test_plain_get_without_upgrade_is_400(team):
    r = team.owner.api.get("/v1/realtime")
    assert_problem(r, 400, "bad_request")


def test_post_is_405(team):
    r = team.owner.api.post("/v1/realtime", json={})
    assert_problem(r, 405, "method_not_allowed")
    assert "GET" in r.headers["Allow"]


@pytest.mark.parametrize("headers,extra", [
    ({"Sec-WebSocket-Version": "8"}, {"sec-websocket-version": "13"}),
    ({"Sec-WebSocket-Version": None}, {}),
    ({"Sec-WebSocket-Key": None}, {}),
    ({"Sec-WebSocket-Key": "short"}, {}),
    ({"Upgrade": "h2c"}, {}),
    ({"Connection": "keep-alive"}, {}),
])
def test_a_bad_upgrade_request_is_400(team, headers, extra):
    raw = RawWs(team.server, team.owner.token, headers=headers)
    assert raw.status == 400, (raw.status, raw.body)
    body = json.loads(raw.body)
    assert body["code"] == "bad_request", body
    for k, v in extra.items():
        assert raw.headers.get(k) == v, raw.headers
    assert_healthy(team)


@pytest.mark.parametrize("query", ["token", "access_token", "jwt", "authorization"])
def test_a_token_in_the_url_is_ignored(team, query):
    raw = RawWs(team.server, handshake=False)
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    raw.send_bytes((f"GET /v1/realtime?{query}={team.owner.token} HTTP/1.1\r\n"
                    "Host: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    while b"\r\n\r\n" not in raw.buf:
        raw.buf += raw.sock.recv(65536)
    head, _, raw.buf = raw.buf.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    # Not authenticated: the first message that is not an auth message closes it.
    raw.send_json({"type": "subscribe", "project_id": team.pid, "after": 0})
    code, msgs = raw.expect_close()
    assert code == 4001 and msgs == []
