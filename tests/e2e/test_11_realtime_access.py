"""Issue 14, live channels 1 and 2, on every backend: a WebSocket, an SSE stream or a parked
long poll ends with the right to it.

- A resume point beyond the project's head is refused (WebSocket error validation_failed,
  SSE and long poll 422 naming the parameter): it would never see the events before it, a
  removal among them. A removal ends the user's subscriptions admitted before it (and only
  those: a member who came back keeps the subscription made since).
- The token a channel was opened with stays with it: at its expiry the WebSocket closes with
  4001 "token_expired" unless the client sent a new `auth` message (same user only), the
  SSE stream ends with an `unsubscribed` record (reason token_expired) and a parked poll
  answers 401. A password change (EVENT_NOTE_USER_REVOKED) closes every channel of the user
  at once, on every instance (the note crosses the Redis bus), and a WebSocket's token is
  checked again on every subscribe.

Tokens with a short life are minted here with the server's secret (TANDEM_JWT_SECRET), the
claims copied from a real one: the server cannot tell them from its own.
"""

import json
import time

import jwt
import pytest

from harness import assert_problem
from rtkit import DEBUG_LOG, RECV_TIMEOUT, LongPoll, RawWs, Sse, Ws, instance_pair, wait_parked
from rtkit import close_clients  # noqa: F401 - autouse: closes the test's clients
from taskkit import PASSWORD, Team, add_history, add_member, last_seq

SECRET = "realtime-access-test-secret-0123456789abcdef"
NEW_PASSWORD = "a brand new password 42"


@pytest.fixture
def team(tandem_server):
    return Team(tandem_server(env={"TANDEM_JWT_SECRET": SECRET}))


def short_token(token, seconds):
    """`token` again (same user, same version), expiring `seconds` from now."""
    claims = jwt.decode(token, options={"verify_signature": False})
    now = int(time.time())
    claims.update(iat=now, exp=now + seconds)
    return jwt.encode(claims, SECRET, algorithm="HS256")


def change_password(user):
    r = user.api.put("/v1/users/me/password", json={
        "current_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert r.status_code == 204, r.text


def errors_on(body, field):
    return [e for e in body.get("errors", []) if e.get("field") == field]


def sse_end(sse):
    """Read the stream to its end: the data of its `unsubscribed` record (None if none).
    Heartbeats keep a stream that never ends alive: the read has an overall deadline."""
    last = None
    deadline = time.monotonic() + RECV_TIMEOUT
    while True:
        assert time.monotonic() < deadline, "the stream did not end"
        rec = sse.record()
        if rec is None:
            return last
        if rec.get("event") == "unsubscribed":
            last = json.loads(rec["data"])


# ---------------------------------------------------------------------------------------
# finding 1: resume points and removals


def test_websocket_subscribe_after_beyond_the_head_is_refused(team):
    head = last_seq(team.owner.api, team.pid)
    ws = Ws(team.server, team.viewer.token)
    ws.send({"type": "subscribe", "project_id": team.pid, "after": head + 5})
    err = ws.expect("error")
    assert err["code"] == "validation_failed", err
    # No subscription was made: the removal and what follows it never reach this socket.
    r = team.owner.api.delete(f"/v1/projects/{team.pid}/members/{team.viewer.id}")
    assert r.status_code == 204, r.text
    for _ in range(7):
        team.create(title="after the removal")
    assert ws.sync() == []
    # At the head itself is fine (for someone who still is a member).
    ws2 = Ws(team.server, team.member.token)
    head = last_seq(team.owner.api, team.pid)
    assert ws2.subscribe(team.pid, after=head)["seq"] == head


def test_sse_last_event_id_beyond_the_head_is_422(team):
    head = last_seq(team.owner.api, team.pid)
    sse = Sse(team.server, team.viewer.token, team.pid, last_event_id=head + 1)
    assert sse.status == 422
    body = sse.json()
    assert body["code"] == "validation_failed", body
    assert errors_on(body, "Last-Event-ID"), body
    ok = Sse(team.server, team.viewer.token, team.pid, last_event_id=head)
    assert ok.status == 200


def test_long_poll_after_beyond_the_head_is_422(team):
    head = last_seq(team.owner.api, team.pid)
    r = team.viewer.api.get(f"/v1/projects/{team.pid}/events",
                            params={"after": head + 1, "wait": 2})
    body = assert_problem(r, 422, "validation_failed")
    assert errors_on(body, "after"), body
    # A plain read (no wait) past the head stays an empty page.
    r = team.viewer.api.get(f"/v1/projects/{team.pid}/events", params={"after": head + 1})
    assert r.status_code == 200 and r.json()["data"] == [], r.text


def test_a_member_who_came_back_keeps_a_replaying_subscription(tandem_server):
    # The viewer was removed (seq 4) and added again (seq 5): a subscription made after that
    # replays the old removal, and must not be ended by it.
    team = Team(tandem_server(env={"TANDEM_JWT_SECRET": SECRET, **DEBUG_LOG}))
    r = team.owner.api.delete(f"/v1/projects/{team.pid}/members/{team.viewer.id}")
    assert r.status_code == 204, r.text
    add_member(team.owner.api, team.pid, team.viewer, "viewer")
    ws = Ws(team.server, team.viewer.token)
    ws.subscribe(team.pid, after=0)
    types = [e["type"] for e in ws.events(5)]
    assert types[3:] == ["member.removed", "member.added"], types
    team.create(title="still here")
    assert ws.events(1)[0]["seq"] == 6
    # A second removal ends it, and every other channel of the viewer on the project.
    other = Ws(team.server, team.viewer.token)
    other.subscribe(team.pid)
    sse = Sse(team.server, team.viewer.token, team.pid)
    poll = LongPoll(team.viewer.api, team.pid, after=6, wait=30)
    # Parked first: a poll still being read when the removal commits may answer with the
    # member.removed event itself, which is right too, but not what this checks.
    wait_parked(team.server, team.pid)
    r = team.owner.api.delete(f"/v1/projects/{team.pid}/members/{team.viewer.id}")
    assert r.status_code == 204, r.text
    for w in (ws, other):
        assert w.events(1)[0]["type"] == "member.removed"
        assert w.recv() == {"type": "unsubscribed", "project_id": team.pid,
                            "reason": "membership_removed"}
    assert sse_end(sse)["reason"] == "membership_removed"
    assert_problem(poll.result(), 404, "not_found")


# ---------------------------------------------------------------------------------------
# finding 2: token expiry and re-authentication


def test_websocket_closes_with_4001_when_its_token_expires(team):
    ws = Ws(team.server, short_token(team.member.token, 3))
    ws.subscribe(team.pid)
    code, _msgs = ws.close_code()
    assert code == 4001


def test_websocket_first_message_token_expires_too(team):
    ws = Ws(team.server, short_token(team.member.token, 3), first_message=True)
    raw_code, _ = ws.close_code()
    assert raw_code == 4001


def test_a_new_auth_message_moves_the_expiry(team):
    ws = Ws(team.server, short_token(team.member.token, 3))
    ws.subscribe(team.pid)
    ws.send({"type": "auth", "token": team.member.token})  # a fresh one: 24 h
    assert ws.recv() == {"type": "authenticated", "user_id": team.member.id}
    time.sleep(4.5)  # past the first token's expiry: the timers have looked at it
    team.create(title="after the first token's expiry")
    assert ws.events(1)[0]["type"] == "task.created"
    assert ws.sync() == []


def test_auth_message_with_another_users_token_is_refused(team):
    ws = Ws(team.server, short_token(team.member.token, 4))
    ws.send({"type": "auth", "token": team.owner.token})
    err = ws.expect("error")
    assert err["code"] == "forbidden", err
    ws.send({"type": "auth", "token": "not-a-jwt"})
    assert ws.expect("error")["code"] == "unauthenticated"
    # Still the member's connection, still on the member's short token.
    ws.send({"type": "subscribe", "project_id": team.pid, "after": None})
    assert ws.expect("subscribed")["project_id"] == team.pid
    code, _ = ws.close_code()
    assert code == 4001


def test_sse_stream_ends_when_its_token_expires(team):
    sse = Sse(team.server, short_token(team.member.token, 3), team.pid)
    assert sse.status == 200
    end = sse_end(sse)
    assert end == {"type": "unsubscribed", "project_id": team.pid, "reason": "token_expired"}


def test_parked_poll_answers_401_when_its_token_expires(team):
    api = team.member.api.with_token(short_token(team.member.token, 3))
    poll = LongPoll(api, team.pid, after=last_seq(team.owner.api, team.pid), wait=30)
    assert_problem(poll.result(), 401, "token_expired")


# ---------------------------------------------------------------------------------------
# finding 2: revocation (a password change)


def test_password_change_ends_every_live_channel_of_the_user(team):
    header = Ws(team.server, team.member.token)
    header.subscribe(team.pid)
    first = Ws(team.server, team.member.token, first_message=True)
    sse = Sse(team.server, team.member.token, team.pid)
    assert sse.status == 200
    head = last_seq(team.owner.api, team.pid)
    poll = LongPoll(team.member.client(), team.pid, after=head, wait=30)
    bystander = Ws(team.server, team.viewer.token)
    bystander.subscribe(team.pid)
    change_password(team.member)
    assert header.close_code()[0] == 4001
    assert first.close_code()[0] == 4001
    assert sse_end(sse) == {"type": "unsubscribed", "project_id": team.pid,
                            "reason": "unauthenticated"}
    assert_problem(poll.result(), 401, "unauthenticated")
    # Somebody else's channels carry on.
    team.create(title="for the viewer")
    assert bystander.events(1)[0]["type"] == "task.created"


def test_subscribe_checks_the_token_again(tandem_server, store):
    # Two instances on one database and no bus between them: B hears nothing of a password
    # change made through A, and finds out when the socket subscribes.
    env = {"TANDEM_JWT_SECRET": SECRET}
    a = tandem_server(env=env, store=store)
    b = tandem_server(env=env, store=store)
    team = Team(a)
    ws = Ws(b, team.member.token)
    ws.subscribe(team.pid)
    change_password(team.member)
    ws.send({"type": "subscribe", "project_id": team.pid, "after": None})
    code, msgs = ws.close_code()
    assert code == 4001
    assert not any(m.get("type") == "subscribed" for m in msgs), msgs


# ---------------------------------------------------------------------------------------
# finding 2 across instances: the revocation note through Redis


@pytest.fixture
def pair(tandem_server, store, redis_server):
    return instance_pair(tandem_server, store, redis_server, {"TANDEM_JWT_SECRET": SECRET})


def test_password_change_on_a_closes_the_users_channels_on_b(pair):
    team, b = pair.team, pair.b
    ws = Ws(b, team.member.token)
    ws.subscribe(team.pid)
    sse = Sse(b, team.member.token, team.pid)
    assert sse.status == 200
    bystander = Ws(b, team.viewer.token)
    bystander.subscribe(team.pid)
    change_password(team.member)  # through A
    assert ws.close_code()[0] == 4001
    assert sse_end(sse)["reason"] == "unauthenticated"
    bystander.send({"type": "ping"})
    assert bystander.recv() == {"type": "pong"}


# ---------------------------------------------------------------------------------------
# finding 1: a removal ends subscriptions that are still catching up on a long history


def test_a_removal_ends_channels_that_catch_up_alone_at_once(team):
    # The member's WebSocket and SSE stream start from the beginning of a long history and
    # take nothing: their catch-ups are paced by what they take, and nobody else listens to
    # the project. A removal must end them at once, not once a paced catch-up reaches it:
    # the member must not be served the project's history after it.
    head = add_history(team, 10000, pad=2000)
    ws = RawWs(team.server, team.member.token, rcvbuf=4096)
    ws.send_json({"type": "subscribe", "project_id": team.pid, "after": 0})
    assert ws.recv()["type"] == "subscribed"
    sse = Sse(team.server, team.member.token, team.pid, last_event_id=0, rcvbuf=4096)
    assert sse.status == 200
    r = team.owner.api.delete(f"/v1/projects/{team.pid}/members/{team.member.id}")
    assert r.status_code == 204, r.text
    # Now they read: a part of the history (what was under way), in order, then the end.
    seqs = []
    while True:
        msg = ws.recv()
        if msg["type"] != "event":
            break
        seqs.append(msg["event"]["seq"])
    assert msg == {"type": "unsubscribed", "project_id": team.pid,
                   "reason": "membership_removed"}, msg
    assert seqs == list(range(1, len(seqs) + 1))
    assert len(seqs) < head // 2, f"{len(seqs)} of {head} events after the removal"
    seqs, end = [], None
    while (rec := sse.record()) is not None:
        if rec.get("event") == "unsubscribed":
            end = json.loads(rec["data"])
        elif "data" in rec:
            seqs.append(int(rec["id"]))
    assert end == {"type": "unsubscribed", "project_id": team.pid,
                   "reason": "membership_removed"}, end
    assert seqs == list(range(1, len(seqs) + 1))
    assert len(seqs) < head // 2, f"{len(seqs)} of {head} events after the removal"
