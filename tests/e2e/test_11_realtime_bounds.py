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

from rtkit import (OP_PING, OP_TEXT, LongPoll, RawWs, Sse, Ws, assert_healthy, authed_raw,
                   parked_polls, server_side_state, slow_consumer_closed, wait_until, DEBUG_LOG)
from rtkit import close_clients  # noqa: F401 - autouse: closes the test's clients
from harness import assert_problem
from taskkit import Team, add_history, event_feed, last_seq


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


# ---------------------------------------------------------------------------------------
# finding 4: live channels per user and per client address


def test_live_channels_are_capped_per_user(tandem_server):
    srv = tandem_server(env={"TANDEM_MAX_STREAMS_PER_USER": "2", **DEBUG_LOG})
    team = Team(srv)
    ws = Ws(srv, team.member.token)
    sse = Sse(srv, team.member.token, team.pid)
    assert sse.status == 200
    # A third live channel of the same user, whatever its kind: 429 problem+json, nothing
    # parked or upgraded.
    over = Sse(srv, team.member.token, team.pid)
    assert over.status == 429
    body = over.json()
    assert body["code"] == "rate_limited" and body["status"] == 429, body
    assert body["policy"] == "live-channels", body  # the 429 names its limit (issue 15)
    r = team.member.api.get(f"/v1/projects/{team.pid}/events",
                            params={"after": last_seq(team.owner.api, team.pid), "wait": 5})
    assert assert_problem(r, 429, "rate_limited")["policy"] == "live-channels"
    raw = RawWs(srv, team.member.token)
    assert raw.status == 429, raw.status
    # A WebSocket that authenticates after the upgrade is closed with 1013 once its user is
    # known to be over.
    late = RawWs(srv)
    assert late.status == 101
    late.send_json({"type": "auth", "token": team.member.token})
    assert late.expect_close() == (1013, [])
    # Other users are not affected, and a place given back is taken again.
    other = Ws(srv, team.viewer.token)
    other.subscribe(team.pid)
    ws.close()
    after = last_seq(team.owner.api, team.pid)

    polls = []

    def poll_parks():
        polls.append(LongPoll(team.member.client(), team.pid, after, 5))
        wait_until(lambda: parked_polls(srv, team.pid) >= len(polls) or not polls[-1].is_alive(),
                   what="a long poll parked or answered")
        if polls[-1].is_alive():
            return True
        assert_problem(polls.pop().result(), 429, "rate_limited")  # the close is not seen yet
        return False

    wait_until(poll_parks, what="a freed place taken again")
    team.create()
    assert other.events(1)[0]["seq"] == after + 1
    assert polls[0].result().json()["data"][0]["seq"] == after + 1


def test_live_channels_are_capped_per_client_address(tandem_server):
    srv = tandem_server(env={"TANDEM_MAX_STREAMS_PER_IP": "3"})
    team = Team(srv)
    a = Ws(srv, team.owner.token)
    b = Sse(srv, team.member.token, team.pid)
    c = Ws(srv)  # not authenticated yet: counted by its address all the same
    assert b.status == 200
    for user in (team.viewer, team.outsider):
        over = RawWs(srv, user.token)
        assert over.status == 429, over.status
    head = last_seq(team.owner.api, team.pid)
    assert_problem(team.viewer.api.get(f"/v1/projects/{team.pid}/events",
                                       params={"after": head, "wait": 5}), 429, "rate_limited")
    assert Sse(srv, team.viewer.token, team.pid).status == 429
    assert RawWs(srv).status == 429
    # Plain HTTP requests are not live channels.
    assert team.anon.get("/healthz").status_code == 200
    a.close()
    c.close()
    wait_until(lambda: Sse(srv, team.viewer.token, team.pid).status == 200,
               what="a freed place taken again")



def test_ipv6_clients_count_by_their_64(tandem_server):
    # Behind a trusted proxy the forwarded address is the client: one host picks any address
    # of its /64, so all of them share one count; another /64, or an IPv4 address, has its own.
    srv = tandem_server(env={"TANDEM_MAX_STREAMS_PER_IP": "1",
                             "TANDEM_TRUSTED_PROXIES": "127.0.0.1", "TANDEM_RATE_LIMIT": "on"})
    team = Team(srv)

    def stream(user, addr):
        return Sse(srv, user.token, team.pid, headers={"X-Forwarded-For": addr}).status

    assert stream(team.owner, "2001:db8:1:2::1") == 200
    assert stream(team.member, "2001:db8:1:2:ffff:ffff:ffff:fffe") == 429
    assert stream(team.member, "2001:db8:1:3::1") == 200
    assert stream(team.viewer, "192.0.2.1") == 200
    assert stream(team.viewer, "192.0.2.2") == 200

# ---------------------------------------------------------------------------------------
# finding 10: a message budget per WebSocket


def test_a_websocket_past_its_message_budget_gets_an_error_then_1008(tandem_server):
    srv = tandem_server(env={"TANDEM_WS_MESSAGE_RATE": "1", "TANDEM_WS_MESSAGE_BURST": "5"})
    team = Team(srv)
    raw = authed_raw(team)
    ping = RawWs.encode(OP_TEXT, '{"type":"ping"}')
    raw.send_bytes(ping * 8)
    # The burst is answered; the next message gets one error, the ones after it nothing.
    for _ in range(5):
        assert raw.recv() == {"type": "pong"}
    err = raw.recv()
    assert err["type"] == "error" and err["code"] == "rate_limited", err
    assert isinstance(err["message"], str) and err["message"]
    # The budget refills (one message a second here) and the connection goes on.
    time.sleep(1.2)
    raw.send_bytes(ping)
    assert raw.recv() == {"type": "pong"}
    # A client that keeps sending past it is closed with 1008 (policy violation).
    raw.send_bytes(ping * 20)
    code, msgs = raw.expect_close()
    assert code == 1008, (code, msgs)
    errors = [m for m in msgs if m["type"] == "error"]
    assert [m["code"] for m in errors] == ["rate_limited"], msgs
    assert len(msgs) - len(errors) <= 2, msgs  # what the refill allowed
    assert_healthy(team)


# ---------------------------------------------------------------------------------------
# finding 10: catch-up on a long history


def test_a_long_catch_up_does_not_hold_back_live_events_of_the_same_project(tandem_server):
    # The queue bound is a defence against clients that stop reading; it must not be what
    # keeps one client's catch-up from holding back everybody else's events: here it is
    # far above the whole history.
    srv = tandem_server(env={**DEBUG_LOG, "TANDEM_WS_MAX_QUEUE": str(256 << 20)})
    team = Team(srv)
    head = add_history(team, 10000)
    live = Ws(srv, team.member.token)
    live.subscribe(team.pid)
    behind = RawWs(srv, team.owner.token, rcvbuf=4096)
    behind.send_json({"type": "subscribe", "project_id": team.pid, "after": 0})
    assert behind.recv()["type"] == "subscribed"
    # `behind` takes nothing for now: its catch-up of 10,000 events (10 MB) is under way.
    team.create()
    assert live.events(1)[0]["seq"] == head + 1
    # The live event was read and delivered before the catch-up reached the end of the
    # history (reads of the log are paged: CATCHUP_BATCH = 200 events).
    reads = [e["after"] for e in srv.logs()
             if e.get("msg") == "realtime read" and e.get("project_id") == team.pid]
    assert not [a for a in reads if head - 200 <= a < head], reads
    # The catch-up itself misses nothing: every event once, in order, then the live one.
    seqs = []
    while len(seqs) < head + 1:
        msg = behind.recv()
        assert msg["type"] == "event", msg
        seqs.append(msg["event"]["seq"])
    assert seqs == list(range(1, head + 2))
    assert [e["seq"] for e in event_feed(team.owner.api, team.pid, after=head)] == [head + 1]
