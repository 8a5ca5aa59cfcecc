"""Issue 8 end to end, on every backend: idle WebSockets hold almost no memory.

The hub hands an upgraded connection back to libmicrohttpd at once (keeping a duplicate of
its socket), and frees a connection's wslay context (its 4 KiB frame buffers) once it has been
unused for a second with nothing half read or queued. These tests check that what the client
sees does not change: whatever was cut by an idle pause (a frame header, a payload, a
fragmented message, bytes sent with the handshake) is completed afterwards, large messages
after a pause arrive whole in both directions, and the socket survives libmicrohttpd reusing
descriptor numbers for new connections.
"""

import json
import time

import pytest

from rtkit import OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, RawWs, Ws, authed_raw
from rtkit import close_clients  # noqa: F401 - autouse: closes the test's clients
from taskkit import Team, register

# Longer than the hub's linger (1 s) plus its timer period (1 s): contexts are freed by then.
IDLE_S = 2.6
BIG = 60000  # over wslay's 4 KiB buffers, under TANDEM_WS_MAX_MESSAGE (65536)


@pytest.fixture
def team(tandem_server):
    return Team(tandem_server())


def padded_ping(size):
    base = '{"type":"ping","pad":""}'
    text = base[:-2] + "x" * (size - len(base)) + '"}'
    assert len(text) == size
    return text.encode()



def expect_pong(raw):
    while True:
        _fin, op, payload = raw.frame()
        if op in (OP_PING, OP_PONG):
            continue
        assert op == OP_TEXT and json.loads(payload) == {"type": "pong"}, (op, payload[:200])
        return


def test_messages_cut_by_an_idle_pause_are_completed(team):
    big = padded_ping(BIG)
    frame = RawWs.encode(OP_TEXT, big)  # 2 + 2 + 4 bytes of header, then the payload
    small = RawWs.encode(OP_TEXT, b'{"type":"ping"}')
    # (what is sent before the pause, what after), one connection each, all paused at once
    cases = {
        "between messages": (b"", frame),
        "in the first header byte": (frame[:1], frame[1:]),
        "in the extended length": (frame[:3], frame[3:]),
        "in the mask key": (frame[:6], frame[6:]),
        "in the payload": (frame[:5000], frame[5000:]),
        "one byte short": (frame[:-1], frame[-1:]),
        "between fragments": (RawWs.encode(OP_TEXT, big[:30000], fin=False),
                              RawWs.encode(OP_CONT, big[30000:], fin=True)),
        "between fragments, a ping between": (
            RawWs.encode(OP_TEXT, big[:10], fin=False) + RawWs.encode(OP_PING, b"p"),
            RawWs.encode(OP_CONT, big[10:], fin=True)),
        "after a complete small message": (small, frame),
    }
    raws = {}
    for name, (before, _after) in cases.items():
        raw = authed_raw(team)
        expect_pong_first = before == small
        raw.send_bytes(before)
        if expect_pong_first:
            expect_pong(raw)
        raws[name] = raw
    time.sleep(IDLE_S)
    for name, (_before, after) in cases.items():
        raw = raws[name]
        raw.send_bytes(after)
        try:
            expect_pong(raw)
            # and the connection goes on normally
            raw.send_frame(OP_TEXT, b'{"type":"ping"}')
            expect_pong(raw)
        except Exception as e:  # say which case failed
            raise AssertionError(f"{name}: {e!r}") from e


def test_bytes_sent_with_the_handshake_then_a_pause(team):
    frame = RawWs.encode(OP_TEXT, padded_ping(BIG))
    raw = authed_raw(team, early=frame[:100])
    time.sleep(IDLE_S)
    raw.send_bytes(frame[100:])
    expect_pong(raw)


def test_events_after_an_idle_pause_arrive_whole(team):
    ws = Ws(team.server, team.owner.token)
    ws.subscribe(team.pid)
    time.sleep(IDLE_S)
    task = team.create(description="d" * 9000)
    ev = ws.expect("event")["event"]
    assert ev["type"] == "task.created" and ev["data"]["id"] == task["id"], ev
    assert ev["data"]["description"] == "d" * 9000
    time.sleep(IDLE_S)
    ws.send({"type": "ping"})
    assert ws.recv() == {"type": "pong"}


def test_a_websocket_outlives_descriptor_reuse_by_http(team):
    """libmicrohttpd closes its own descriptor of an upgraded connection at once; new HTTP
    connections get those numbers again, and must not disturb the WebSocket."""
    socks = [authed_raw(team) for _ in range(5)]
    for _ in range(40):
        r = team.server.api().get("/healthz")  # a new connection each time
        assert r.status_code == 200
    time.sleep(IDLE_S)
    for _ in range(40):
        assert team.anon.get("/v1").status_code == 200
    for raw in socks:
        raw.send_frame(OP_TEXT, b'{"type":"ping"}')
        expect_pong(raw)
    socks[0].send_frame(OP_CLOSE, b"\x03\xe8")
    assert socks[0].expect_close() == (1000, [])


def test_open_websockets_are_bounded_by_max_connections(tandem_server):
    # An upgraded socket leaves libmicrohttpd's connection count, so the hub bounds open
    # WebSockets itself, by the same TANDEM_MAX_CONNECTIONS: one too many is closed with
    # 1013 (try again later), and a place freed is taken again.
    limit = 6
    server = tandem_server(env={"TANDEM_MAX_CONNECTIONS": str(limit)})
    anon = server.api()
    user = register(anon, "wendy")
    anon.close()
    user.api.close()
    socks = []
    for _ in range(limit):
        # Each one answered before the next connects: libmicrohttpd's threads may hand two
        # upgrades to the hub in either order, and the newest is the one refused.
        socks.append(authed_token_raw(server, user.token))
        socks[-1].send_json({"type": "ping"})
        expect_pong(socks[-1])
    over = authed_token_raw(server, user.token)
    code, _ = over.expect_close()
    assert code == 1013
    over.close()
    for raw in socks:  # the ones admitted still work
        raw.send_json({"type": "ping"})
        expect_pong(raw)
    socks.pop().close()
    deadline = time.monotonic() + 10
    while True:  # the hub notices the closed socket on its own time
        again = authed_token_raw(server, user.token)
        again.send_json({"type": "ping"})
        try:
            expect_pong(again)
            break
        except Exception:
            again.close()
            assert time.monotonic() < deadline, "a freed WebSocket place was not reused"
            time.sleep(0.2)


def authed_token_raw(server, token):
    raw = RawWs(server, token)
    assert raw.status == 101, (raw.status, raw.body)
    return raw
