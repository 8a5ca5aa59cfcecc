"""Issue 8 end to end, on every backend: WebSocket clients that do not read.

The server bounds what it queues for one client. A subscriber that stops taking events is
closed with 4008 once its queue has stayed full for a ping interval (the close frame comes
after the backlog: a client that drains its socket reads it) and resumes with its last seq;
one that reads a replay larger than the bound gets all of it. A client that sends without
reading the answers is cut off instead of being buffered for, and a flood from one client
does not starve the others.
"""

import threading
import time

import pytest

from rtkit import (OP_TEXT, RawWs, Ws, assert_healthy, authed_raw, check_events,
                   server_side_state, slow_consumer_closed, wait_until)
from rtkit import close_clients  # noqa: F401 - autouse: closes the test's clients
from taskkit import Team, event_feed, last_seq


@pytest.fixture
def team(server):
    return Team(server)


def test_a_client_that_never_reads_is_closed_and_resumes_with_its_last_seq(tandem_server):
    # A client counts as stalled when it has not taken half of its full queue within a ping
    # interval; 1 s keeps the test short.
    srv = tandem_server(env={"TANDEM_WS_PING_INTERVAL": "1"})
    team = Team(srv)
    task = team.create(description="a" * 10000)
    raw = RawWs(srv, team.member.token)
    raw.send_json({"type": "subscribe", "project_id": team.pid, "after": None})
    assert raw.recv()["type"] == "subscribed"
    # From now on the client reads nothing. Each update's event is about 30 KB; keep writing
    # until the server has decided to close it (after the kernel's buffers and the 1 MB queue
    # are full), at a slower pace once that is near so as not to overshoot by much.
    writes = 0
    while not slow_consumer_closed(srv):
        assert writes < 3000, "the server kept a client that reads nothing"
        r = team.owner.api.patch(f"/v1/tasks/{task['id']}",
                                 json={"description": "ab"[writes % 2] * 10000})
        assert r.status_code == 200, r.text
        writes += 1
        if writes > 150:
            time.sleep(0.05)
    # Now drain the socket at once: the backlog, then the close frame behind it (a closing
    # socket that takes no byte for 2 s is dropped without it, so nothing slow comes first).
    code, msgs = raw.expect_close(timeout=60)
    assert code == 4008, code
    final = last_seq(team.owner.api, team.pid)  # no write since the loop ended
    seqs = [m["event"]["seq"] for m in msgs]
    assert all(m["type"] == "event" for m in msgs), [m["type"] for m in msgs]
    assert seqs == list(range(5, 5 + len(seqs)))  # a clean prefix: no gap, no duplicate
    assert len(seqs) < final - 4
    # The server is fine, and a resume with the last seq seen misses nothing.
    assert srv.api().get("/healthz").status_code == 200
    last = seqs[-1] if seqs else 4
    ws = Ws(srv, team.member.token)
    ws.subscribe(team.pid, after=last)
    check_events(ws.events(final - last), event_feed(team.owner.api, team.pid), last)


def test_a_large_replay_to_a_client_that_reads_is_delivered_whole(tandem_server):
    # The bound is for clients that do not read. One that subscribes with an old seq to a
    # busy project gets a replay larger than the bound; it reads as fast as it can, so it
    # must get all of it, not 4008 (which it would get again on every resume, for ever).
    srv = tandem_server(env={"TANDEM_WS_MAX_QUEUE": "65536"})
    team = Team(srv)
    for i in range(40):  # about 400 KB of events
        team.create(title=f"t{i}", description="x" * 9000)
    feed = event_feed(team.owner.api, team.pid)
    ws = Ws(srv, team.member.token)
    ws.subscribe(team.pid, after=0)
    check_events(ws.events(len(feed)), feed, 0)
    team.create()
    assert ws.events(1)[0]["seq"] == len(feed) + 1


def test_a_client_that_floods_without_reading_is_cut_off(tandem_server):
    # No message budget here: it would close the flood first (test_11_realtime_bounds), and
    # this is about answers the client does not read.
    srv = tandem_server(env={"TANDEM_WS_MAX_QUEUE": "1024", "TANDEM_WS_MESSAGE_RATE": "0"})
    team = Team(srv)
    raw = authed_raw(team)
    burst = b"".join(RawWs.encode(OP_TEXT, '{"type":"x"}') for _ in range(5000))
    # Messages whose answers (errors, 4 times their size) the client never reads: once the
    # kernel's buffers are full the server must close the connection rather than queue
    # answers without bound.
    deadline = time.monotonic() + 120  # only against a hang
    sent = 0
    try:
        while sent % 10 or server_side_state(srv, raw.sock) == "ESTABLISHED":
            assert time.monotonic() < deadline, \
                f"the server kept queueing for a client that never reads ({sent} bursts)"
            raw.send_bytes(burst)
            sent += 1
    except (BrokenPipeError, ConnectionResetError):
        pass  # closed: what we wait for. A send that times out (a server that merely stopped
        # reading) fails the test.
    wait_until(lambda: slow_consumer_closed(srv), what="a close for unread answers")
    assert_healthy(team)


def test_a_flooding_client_does_not_starve_the_others(tandem_server):
    # No message budget: the flood goes on, and must not starve the others all the same.
    team = Team(tandem_server(env={"TANDEM_WS_MESSAGE_RATE": "0"}))
    other = Ws(team.server, team.member.token)
    other.subscribe(team.pid)
    raw = authed_raw(team)
    burst = b"".join(RawWs.encode(OP_TEXT, '{"type":"x"}') for _ in range(5000))
    stop = threading.Event()

    def flood():
        try:
            while not stop.is_set():
                raw.send_bytes(burst)
        except OSError:
            pass  # the server may well close it

    flooder = threading.Thread(target=flood, daemon=True)
    flooder.start()
    try:
        raw.send_bytes(burst)  # the flood is under way
        team.create()
        assert other.events(1)[0]["seq"] == 4
        other.send({"type": "ping"})
        assert other.recv() == {"type": "pong"}
    finally:
        stop.set()
        raw.close()
        flooder.join(timeout=30)
