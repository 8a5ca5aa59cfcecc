"""Issue 8 end to end, on every backend: the WebSocket at GET /v1/realtime.

Every client is real: websocket-client (python3-websocket) for what a well-behaved client
does, a hand-written client over a plain socket (rtkit.RawWs) where the test needs to see
the raw frames or to misbehave. What a user sees is checked against the events feed
(GET /v1/projects/{id}/events), which is the source of truth: a subscriber gets exactly the
feed's objects, every seq once, in order, with no gap across replay and live delivery.

- authentication: bearer header on the upgrade, or the first message; a bad header is 401
  before the upgrade, a bad or missing auth message closes with 4001;
- subscribe (after: seq | null), unsubscribe, ping/pong, not_found for outsiders;
- permissions re-checked on change: a removed member's subscription ends with
  unsubscribed/membership_removed right after the member.removed event, a deleted project's
  with project_deleted;
- subscribers joining while writers hammer the project see exactly contiguous seqs;
- server pings and dead peers;
- one truth for all paths: WebSocket, SSE, long poll and the feed give the same objects.

The other real-time files, by behaviour: test_09_realtime_sse.py, _longpoll.py (the
fallbacks), _protocol.py (framing abuse, message and subscription limits, the upgrade
request), _slow_consumers.py (clients that do not read: 4008, floods), _idle.py (idle
connections' memory, the socket cap), _shutdown.py (1001, resuming after a restart),
_cluster.py (two instances over Redis). Their clients are in rtkit.py.
"""

import json
import threading
import time

import pytest

from rtkit import OP_PING, OP_TEXT, Closed, RawWs, Sse, Ws, check_events, wait_until
from rtkit import close_clients  # noqa: F401 - autouse: closes the test's clients
from taskkit import Team, create_project, event_feed, last_seq, run_threads


@pytest.fixture
def team(server):
    return Team(server)



# ---------------------------------------------------------------------------------------
# authentication


def test_header_auth_subscribe_replays_then_delivers_live_events(team):
    ws = Ws(team.server, team.viewer.token)
    feed = event_feed(team.owner.api, team.pid)
    assert [e["seq"] for e in feed] == [1, 2, 3]  # the owner, member and viewer joined
    sub = ws.subscribe(team.pid, after=0)
    assert sub == {"type": "subscribed", "project_id": team.pid, "seq": 3}
    check_events(ws.events(3), feed, 0)

    task = team.create(title="live one")
    team.owner.api.patch(f"/v1/tasks/{task['id']}", json={"status": "done"})
    live = ws.events(2)
    feed = event_feed(team.owner.api, team.pid)
    check_events(live, feed, 3)
    assert [e["type"] for e in live] == ["task.created", "task.updated"]
    assert live[0]["data"] == task
    assert live[1]["data"]["changes"]["status"] == ["todo", "done"]
    assert ws.sync() == []  # nothing more, no duplicate
    ws.close()


def test_first_message_auth(team):
    ws = Ws(team.server)  # no header
    ws.send({"type": "auth", "token": team.member.token})
    assert ws.recv() == {"type": "authenticated", "user_id": team.member.id}
    ws.subscribe(team.pid, after=2)
    check_events(ws.events(1), event_feed(team.owner.api, team.pid), 2)
    team.create()
    assert ws.events(1)[0]["seq"] == 4
    ws.close()


def test_first_message_auth_may_come_with_the_handshake(team):
    # A client that sends its auth message in the same packet as the upgrade request: the
    # server must find it among the bytes read with the headers.
    early = RawWs.encode(OP_TEXT, '{"type":"auth","token":"%s"}' % team.owner.token)
    early += RawWs.encode(OP_TEXT, '{"type":"ping"}')
    raw = RawWs(team.server, early=early)
    assert raw.status == 101
    assert raw.recv() == {"type": "authenticated", "user_id": team.owner.id}
    assert raw.recv() == {"type": "pong"}
    raw.close()


@pytest.mark.parametrize("authorization", [
    "Bearer not-a-jwt",
    "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",
    "Basic dXNlcjpwYXNz",
    "Bearer ",
])
def test_invalid_bearer_header_is_401_before_the_upgrade(team, authorization):
    raw = RawWs(team.server, headers={"Authorization": authorization})
    assert raw.status == 401, (raw.status, raw.body)
    assert "sec-websocket-accept" not in raw.headers
    assert raw.headers["content-type"].startswith("application/problem+json")
    body = json.loads(raw.body)
    assert body["status"] == 401 and body["code"] in ("unauthenticated", "token_expired"), body
    raw.close()


def test_token_of_a_user_whose_password_changed_is_401_before_the_upgrade(team):
    old = team.member.token
    r = team.member.api.put("/v1/users/me/password", json={
        "current_password": "correct horse battery staple", "new_password": "another one 123"})
    assert r.status_code == 204, r.text
    raw = RawWs(team.server, token=old)
    assert raw.status == 401
    raw.close()
    ws = Ws(team.server)
    ws.send({"type": "auth", "token": old})
    assert ws.close_code()[0] == 4001


@pytest.mark.parametrize("message", [
    {"type": "auth", "token": "not-a-jwt"},
    {"type": "auth"},
    {"type": "auth", "token": 42},
    {"type": "subscribe", "project_id": "00000000-0000-7000-8000-000000000000", "after": 0},
    {"type": "ping"},
])
def test_a_first_message_that_does_not_authenticate_closes_with_4001(team, message):
    ws = Ws(team.server)
    ws.send(message)
    code, msgs = ws.close_code()
    assert code == 4001, (code, msgs)
    assert msgs == []
    assert ws.close_reason == "unauthenticated"  # log in again (issue 15)


def test_no_auth_message_within_5_seconds_closes_with_4001(team):
    raw = RawWs(team.server)
    assert raw.status == 101
    code, msgs = raw.expect_close(timeout=30)
    assert code == 4001 and msgs == []
    # Its own reason (issue 15): not the "unauthenticated" of a refused token.
    assert raw.close_reason == "authentication timeout"
    assert team.anon.get("/healthz").status_code == 200


def test_an_authenticated_connection_is_not_timed_out_for_auth(team):
    ws = Ws(team.server, team.owner.token, first_message=True)
    ws.subscribe(team.pid)
    time.sleep(6)  # past the 5 s auth deadline
    team.create()
    assert ws.events(1)[0]["seq"] == 4


def test_second_auth_message_of_another_user_is_an_error_and_the_connection_stays(team):
    # A second auth message re-authenticates (issue 14: test_11_realtime_access.py), with a
    # token of the same user only.
    ws = Ws(team.server, team.owner.token, first_message=True)
    ws.send({"type": "auth", "token": team.member.token})
    err = ws.expect("error")
    assert err["code"] == "forbidden" and isinstance(err["message"], str)
    ws.send({"type": "ping"})
    assert ws.recv() == {"type": "pong"}


# ---------------------------------------------------------------------------------------
# subscribe, unsubscribe, ping


def test_non_member_or_unknown_project_subscribe_is_not_found(team):
    ws = Ws(team.server, team.outsider.token)
    for pid in (team.pid, "00000000-0000-7000-8000-000000000000"):
        ws.send({"type": "subscribe", "project_id": pid, "after": 0})
        err = ws.recv()
        assert err["type"] == "error" and err["code"] == "not_found", err
        # Errors about a project name it (issue 15).
        assert set(err) == {"type", "code", "message", "project_id"}, err
        assert err["project_id"] == pid
    # The outsider gets nothing of the project afterwards either.
    team.create()
    assert ws.sync() == []


def test_after_null_delivers_only_new_events(team):
    ws = Ws(team.server, team.member.token)
    sub = ws.subscribe(team.pid, after=None)
    assert sub["seq"] == 3
    t = team.create(title="new")
    (e,) = ws.events(1)
    assert e["seq"] == 4 and e["type"] == "task.created" and e["data"]["id"] == t["id"]
    check_events([e], event_feed(team.owner.api, team.pid), 3)


def test_missing_after_means_null(team):
    ws = Ws(team.server, team.member.token)
    ws.send({"type": "subscribe", "project_id": team.pid})
    assert ws.recv()["type"] == "subscribed"
    team.create()
    assert ws.events(1)[0]["seq"] == 4


def test_subscribe_after_a_seq_in_the_middle(team):
    for i in range(5):
        team.create(title=f"t{i}")
    ws = Ws(team.server, team.viewer.token)
    assert ws.subscribe(team.pid, after=5)["seq"] == 8
    feed = event_feed(team.owner.api, team.pid)
    check_events(ws.events(3), feed, 5)
    assert ws.sync() == []


def test_resubscribing_restarts_from_the_new_after(team):
    team.create()
    ws = Ws(team.server, team.viewer.token)
    ws.subscribe(team.pid, after=2)
    assert [e["seq"] for e in ws.events(2)] == [3, 4]
    ws.subscribe(team.pid, after=0)
    assert [e["seq"] for e in ws.events(4)] == [1, 2, 3, 4]
    assert ws.sync() == []


def test_unsubscribe_stops_delivery(team):
    ws = Ws(team.server, team.member.token)
    watcher = Ws(team.server, team.owner.token)
    ws.subscribe(team.pid)
    watcher.subscribe(team.pid)
    ws.send({"type": "unsubscribe", "project_id": team.pid})
    assert ws.recv() == {"type": "unsubscribed", "project_id": team.pid, "reason": "requested"}
    team.create()
    # The watcher on the same hub got the event, so the unsubscribed client would have it
    # queued before the pong if it were still subscribed.
    assert watcher.events(1)[0]["seq"] == 4
    assert ws.sync() == []
    ws.send({"type": "unsubscribe", "project_id": team.pid})
    err = ws.expect("error")
    assert err["code"] == "not_found"


def test_ping_pong(team):
    ws = Ws(team.server, team.owner.token)
    for _ in range(3):
        ws.send({"type": "ping"})
        assert ws.recv() == {"type": "pong"}


def test_one_connection_many_projects(team):
    other = create_project(team.owner.api, "other")
    ws = Ws(team.server, team.owner.token)
    ws.subscribe(team.pid)
    ws.subscribe(other)
    team.create(pid=other, title="in other")
    team.create(title="in tandem")
    got = ws.events(2)
    # Each project's events are in order; between projects no order is promised.
    assert sorted((e["project_id"], e["seq"]) for e in got) == \
        sorted([(other, 2), (team.pid, 4)])
    ws.send({"type": "unsubscribe", "project_id": other})
    assert ws.recv()["reason"] == "requested"
    team.create(pid=other)
    team.create()
    (e,) = ws.events(1)
    assert (e["project_id"], e["seq"]) == (team.pid, 5)
    assert ws.sync() == []


# ---------------------------------------------------------------------------------------
# permissions re-checked on change


def test_membership_removal_ends_the_subscription_at_once(team):
    viewer = Ws(team.server, team.viewer.token)
    watcher = Ws(team.server, team.owner.token)
    own = create_project(team.viewer.api, "vera's own")
    viewer.subscribe(team.pid)
    viewer.subscribe(own)
    watcher.subscribe(team.pid)
    r = team.owner.api.delete(f"/v1/projects/{team.pid}/members/{team.viewer.id}")
    assert r.status_code == 204, r.text
    (removed,) = viewer.events(1)
    assert removed["type"] == "member.removed" and removed["seq"] == 4
    assert removed["data"]["user"]["id"] == team.viewer.id
    assert viewer.recv() == {"type": "unsubscribed", "project_id": team.pid,
                             "reason": "membership_removed"}
    # Nothing of the project any more, while the other subscription carries on.
    team.create(title="secret")
    assert watcher.events(2)[-1]["seq"] == 5
    assert viewer.sync() == []
    team.create(client=team.viewer.api, pid=own)
    assert viewer.events(1)[0]["project_id"] == own
    viewer.send({"type": "subscribe", "project_id": team.pid, "after": 0})
    assert viewer.expect("error")["code"] == "not_found"


def test_leaving_a_project_ends_the_subscription(team):
    ws = Ws(team.server, team.member.token)
    ws.subscribe(team.pid)
    r = team.member.api.delete(f"/v1/projects/{team.pid}/members/{team.member.id}")
    assert r.status_code == 204, r.text
    assert ws.events(1)[0]["type"] == "member.removed"
    assert ws.recv() == {"type": "unsubscribed", "project_id": team.pid,
                         "reason": "membership_removed"}


def test_removing_someone_else_keeps_my_subscription(team):
    ws = Ws(team.server, team.member.token)
    ws.subscribe(team.pid)
    r = team.owner.api.delete(f"/v1/projects/{team.pid}/members/{team.viewer.id}")
    assert r.status_code == 204
    assert ws.events(1)[0]["type"] == "member.removed"
    team.create()
    assert ws.events(1)[0]["seq"] == 5


def test_a_role_change_keeps_the_subscription(team):
    ws = Ws(team.server, team.member.token)
    ws.subscribe(team.pid)
    r = team.owner.api.patch(f"/v1/projects/{team.pid}/members/{team.member.id}",
                             json={"role": "viewer"})
    assert r.status_code == 200, r.text
    assert ws.events(1)[0]["type"] == "member.updated"
    team.create()
    assert ws.events(1)[0]["seq"] == 5


def test_project_deletion_ends_every_subscription(team):
    member = Ws(team.server, team.member.token)
    owner = Ws(team.server, team.owner.token)
    member.subscribe(team.pid)
    owner.subscribe(team.pid)
    assert team.owner.api.delete(f"/v1/projects/{team.pid}").status_code == 204
    for ws in (member, owner):
        assert ws.recv() == {"type": "unsubscribed", "project_id": team.pid,
                             "reason": "project_deleted"}
        assert ws.sync() == []
        ws.send({"type": "subscribe", "project_id": team.pid, "after": 0})
        assert ws.expect("error")["code"] == "not_found"


# ---------------------------------------------------------------------------------------
# under load


WRITERS = 3
WRITES_PER_WRITER = 40


def test_subscribers_joining_under_load_see_exactly_contiguous_seqs(team):
    """Writers hammer the project while clients subscribe at different moments, each with an
    `after` it chose (a seq in the past, the latest it knows, or null). Whatever the
    interleaving of replay and live delivery, each client sees seq after+1, after+2, ... to
    the end, exactly once, and exactly the feed's objects."""
    done = threading.Event()
    started = threading.Barrier(WRITERS + 1)

    def writer(i):
        api = (team.owner, team.member, team.owner)[i].client()
        started.wait()
        for n in range(WRITES_PER_WRITER):
            r = api.post(f"/v1/projects/{team.pid}/tasks", json={"title": f"w{i}-{n}"})
            assert r.status_code == 201, r.text
            if n % 3 == 2:
                r = api.patch(f"/v1/tasks/{r.json()['id']}", json={"status": "done"})
                assert r.status_code == 200, r.text

    writers = threading.Thread(target=lambda: (run_threads(WRITERS, writer), done.set()),
                               daemon=True)
    writers.start()
    started.wait()
    clients = []  # (Ws, after, subscribed seq)
    choices = ["now", "back", None, 0, "now", "back", None]
    for k, choice in enumerate(choices):
        wait_until(lambda: last_seq(team.viewer.api, team.pid) >= 3 + 8 * (k + 1) or
                   done.is_set(), what="writers to make progress")
        now = last_seq(team.viewer.api, team.pid)
        after = {"now": now, "back": max(0, now - 7)}.get(choice, choice)
        ws = Ws(team.server, team.viewer.token)
        sub = ws.subscribe(team.pid, after=after)
        assert sub["seq"] >= now
        clients.append((ws, sub["seq"] if after is None else after))
    writers.join(timeout=300)
    assert done.is_set(), "the writers failed"
    feed = event_feed(team.owner.api, team.pid)
    final = feed[-1]["seq"]
    assert final == 3 + WRITERS * (WRITES_PER_WRITER + WRITES_PER_WRITER // 3)
    assert [e["seq"] for e in feed] == list(range(1, final + 1))
    for ws, after in clients:
        got = ws.events(final - after)
        check_events(got, feed, after)
        assert ws.sync() == []  # no duplicate after the end either
        ws.close()


# ---------------------------------------------------------------------------------------
# keeping connections honest: pings, dead peers


def test_server_pings_and_a_client_that_answers_stays(tandem_server):
    srv = tandem_server(env={"TANDEM_WS_PING_INTERVAL": "1", "TANDEM_WS_IDLE_TIMEOUT": "2"})
    team = Team(srv)
    ws = Ws(srv, team.owner.token)
    ws.subscribe(team.pid)
    # websocket-client answers every ping with a pong; several idle timeouts pass by.
    while ws.pings < 4:
        op, _ = ws.frame()
        assert op == OP_PING, op
    team.create()
    assert ws.events(1)[0]["seq"] == 4


def test_a_peer_that_never_answers_is_dropped(tandem_server):
    srv = tandem_server(env={"TANDEM_WS_PING_INTERVAL": "1", "TANDEM_WS_IDLE_TIMEOUT": "2"})
    team = Team(srv)
    raw = RawWs(srv, team.owner.token)
    assert raw.status == 101
    # The raw client reads (and sees the pings) but never sends anything back.
    saw_ping = False
    try:
        while True:
            _fin, op, _payload = raw.frame(timeout=30)
            saw_ping |= op == OP_PING
    except Closed:
        pass
    assert saw_ping
    assert srv.api().get("/healthz").status_code == 200
    ws = Ws(srv, team.owner.token)
    ws.send({"type": "ping"})
    assert ws.recv() == {"type": "pong"}


# ---------------------------------------------------------------------------------------
# one truth for all paths


def test_websocket_sse_long_poll_and_feed_deliver_the_same_objects(team):
    ws = Ws(team.server, team.viewer.token)
    ws.subscribe(team.pid, after=0)
    sse = Sse(team.server, team.viewer.token, team.pid, last_event_id=0)
    # Every event type: project, members, tasks (created, updated with changes, deleted).
    o = team.owner.api
    assert o.patch(f"/v1/projects/{team.pid}", json={"description": "d"}).status_code == 200
    assert o.patch(f"/v1/projects/{team.pid}/members/{team.member.id}",
                   json={"role": "viewer"}).status_code == 200
    t = team.create(title="with ünïcödé \u2028 and \"quotes\" </script>")
    assert o.patch(f"/v1/tasks/{t['id']}", json={"status": "done", "priority": "urgent",
                                                 "assignee_id": team.owner.id}).status_code == 200
    assert o.delete(f"/v1/tasks/{t['id']}").status_code == 204
    assert o.delete(f"/v1/projects/{team.pid}/members/{team.member.id}").status_code == 204
    feed = event_feed(o, team.pid)
    final = feed[-1]["seq"]
    assert [e["type"] for e in feed[3:]] == [
        "project.updated", "member.updated", "task.created", "task.updated", "task.deleted",
        "member.removed"]

    via_ws = ws.events(final)
    via_sse = sse.events_through(final)
    via_poll, after = [], 0
    while after < final:
        r = team.viewer.api.get(f"/v1/projects/{team.pid}/events",
                                params={"after": after, "wait": 5, "limit": 2})
        body = r.json()
        via_poll += body["data"]
        after = body["next_after"]
    assert via_ws == feed
    assert via_sse == feed
    assert via_poll == feed
    assert via_ws[-3]["data"]["changes"]["status"] == ["todo", "done"]
