"""Issue 8 end to end, on every backend: real-time clients across a shutdown and a restart.

SIGTERM closes every WebSocket with 1001, ends every SSE stream and answers every parked long
poll at once; a client that reconnects to the restarted server with the last seq it saw
misses nothing and gets nothing twice.
"""

import signal

from rtkit import DEBUG_LOG, LongPoll, Sse, Ws, check_events, wait_parked
from rtkit import close_clients  # noqa: F401 - autouse: closes the test's clients
from taskkit import Team, event_feed


def test_shutdown_closes_websockets_with_1001_and_ends_streams_and_polls(tandem_server):
    srv = tandem_server(env=DEBUG_LOG)
    team = Team(srv)
    ws = Ws(srv, team.owner.token)
    ws.subscribe(team.pid)
    sse = Sse(srv, team.member.token, team.pid)
    assert sse.status == 200
    assert sse.record()["comments"]  # the stream is open
    poll = LongPoll(team.viewer.client(), team.pid, after=3, wait=30)
    wait_parked(srv, team.pid)
    assert poll.is_alive()
    srv.send_signal(signal.SIGTERM)
    code, msgs = ws.close_code()
    assert code == 1001, (code, msgs)
    while sse.record() is not None:  # the stream ends
        pass
    r = poll.result()  # answered at once, empty, instead of waiting out its 30 s
    assert r.status_code == 200, r.text
    assert r.json() == {"data": [], "next_after": 3, "has_more": False}
    assert srv.wait() == 0


def test_reconnect_with_the_last_seq_after_a_restart_misses_nothing(tandem_server):
    srv = tandem_server()
    team = Team(srv)
    quitter = Ws(srv, team.member.token)  # goes away early, like a crashed client
    stayer = Ws(srv, team.viewer.token)
    quitter.subscribe(team.pid, after=0)
    stayer.subscribe(team.pid, after=0)
    for i in range(5):
        team.create(title=f"before {i}")
    got_q = quitter.events(5)
    quitter.ws.abort()
    for i in range(3):
        team.create(title=f"while the quitter is away {i}")
    got_s = []
    srv.send_signal(signal.SIGTERM)
    code, msgs = stayer.close_code()
    assert code == 1001
    got_s = [m["event"] for m in msgs if m["type"] == "event"]
    assert srv.wait() == 0

    srv.start()  # same store, a new port
    api = srv.api(team.owner.token)
    for i in range(4):
        r = api.post(f"/v1/projects/{team.pid}/tasks", json={"title": f"after {i}"})
        assert r.status_code == 201, r.text
    feed = event_feed(api, team.pid)
    final = feed[-1]["seq"]
    assert final == 3 + 5 + 3 + 4
    for user, got in ((team.member, got_q), (team.viewer, got_s)):
        last = got[-1]["seq"] if got else 0
        ws = Ws(srv, user.token)
        ws.subscribe(team.pid, after=last)
        rest = ws.events(final - last)
        check_events(got + rest, feed, 0)
        assert ws.sync() == []
        ws.close()
