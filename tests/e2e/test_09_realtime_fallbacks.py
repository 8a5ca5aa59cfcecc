"""Issue 8 end to end, on every backend: the fallbacks for networks that break WebSockets.

- Server-Sent Events, GET /v1/projects/{id}/events/stream over plain HTTP/1.1: `id:` is the
  seq, `event:` the type, `data:` the event JSON; Last-Event-ID resumes; a comment heartbeat;
  the stream ends with an `unsubscribed` record when the reader loses access.
- The long poll, GET /v1/projects/{id}/events?after=&wait=: answers as soon as there is an
  event after `after`, empty when the wait ends, 422 for a wait outside 0..30; access is
  checked again when a parked poll wakes.
- All three real-time paths deliver exactly the objects of the events feed.
"""

import json
import threading
import time

import pytest

from harness import assert_problem
from rtkit import LongPoll, Sse, Ws
from rtkit import close_clients  # noqa: F401 - autouse: closes the test's clients
from taskkit import EVENT_KEYS, Team, event_feed

MISSING = "00000000-0000-7000-8000-000000000000"


@pytest.fixture
def team(server):
    return Team(server)


# ---------------------------------------------------------------------------------------
# Server-Sent Events


def test_sse_format_and_live_events(team):
    sse = Sse(team.server, team.member.token, team.pid)
    assert sse.status == 200
    assert sse.resp.getheader("Content-Type").startswith("text/event-stream")
    assert sse.resp.getheader("Cache-Control") == "no-store"
    assert sse.resp.getheader("X-Request-Id")
    first = sse.record()
    assert first is not None and "data" not in first  # the opening comment (and retry)
    t = team.create(title="over sse")
    rec = sse.record()
    assert set(rec) == {"comments", "id", "event", "data"}, rec
    assert rec["comments"] == []
    ev = json.loads(rec["data"])
    assert "\n" not in rec["data"]  # one data line
    assert rec["id"] == "4" and rec["event"] == "task.created"
    assert set(ev) == EVENT_KEYS and ev["data"] == t
    assert ev == event_feed(team.owner.api, team.pid)[-1]
    sse.close()


def test_sse_without_last_event_id_sends_only_new_events(team):
    sse = Sse(team.server, team.viewer.token, team.pid)
    team.create()
    _id, _kind, ev = sse.event()
    assert ev["seq"] == 4


@pytest.mark.parametrize("last", [0, 1, 3])
def test_sse_last_event_id_resumes_after_that_seq(team, last):
    team.create()
    sse = Sse(team.server, team.viewer.token, team.pid, last_event_id=last)
    assert sse.status == 200
    got = sse.events_through(4)
    feed = event_feed(team.owner.api, team.pid)
    assert got == feed[last:]
    team.create()
    assert sse.events_through(5) == event_feed(team.owner.api, team.pid)[4:5]


def test_sse_reconnect_with_the_last_id_misses_nothing(team):
    sse = Sse(team.server, team.viewer.token, team.pid, last_event_id=0)
    got = sse.events_through(3)
    sse.close()
    for i in range(4):
        team.create(title=f"while away {i}")
    again = Sse(team.server, team.viewer.token, team.pid, last_event_id=got[-1]["seq"])
    got += again.events_through(7)
    assert got == event_feed(team.owner.api, team.pid)


def test_sse_heartbeat(tandem_server):
    srv = tandem_server(env={"TANDEM_SSE_HEARTBEAT": "1"})
    team = Team(srv)
    sse = Sse(srv, team.member.token, team.pid)
    beats = 0
    while beats < 2:
        rec = sse.record()
        assert rec is not None and "data" not in rec, rec
        beats += "heartbeat" in rec["comments"]
    # Heartbeats do not disturb delivery.
    team.create()
    assert sse.event()[2]["seq"] == 4


def test_sse_needs_a_member(team):
    r = team.anon.get(f"/v1/projects/{team.pid}/events/stream",
                      headers={"Accept": "text/event-stream"})
    assert_problem(r, 401, "unauthenticated")
    for pid in (team.pid, MISSING):
        r = team.outsider.api.get(f"/v1/projects/{pid}/events/stream",
                                  headers={"Accept": "text/event-stream"})
        assert_problem(r, 404, "not_found")


@pytest.mark.parametrize("value", ["abc", "-1", "", "1.5", "3 "])
def test_sse_rejects_a_bad_last_event_id(team, value):
    r = team.member.api.get(f"/v1/projects/{team.pid}/events/stream",
                            headers={"Accept": "text/event-stream", "Last-Event-ID": value})
    assert_problem(r, 400, "bad_request")


def test_sse_stream_ends_when_the_reader_is_removed(team):
    sse = Sse(team.server, team.viewer.token, team.pid)
    r = team.owner.api.delete(f"/v1/projects/{team.pid}/members/{team.viewer.id}")
    assert r.status_code == 204
    _id, kind, ev = sse.event()
    assert kind == "member.removed" and ev["data"]["user"]["id"] == team.viewer.id
    rec = sse.record()
    assert rec["event"] == "unsubscribed", rec
    assert json.loads(rec["data"]) == {"type": "unsubscribed", "project_id": team.pid,
                                       "reason": "membership_removed"}
    assert sse.record() is None  # and the stream ends
    team.create()  # nothing goes anywhere
    r = team.viewer.api.get(f"/v1/projects/{team.pid}/events/stream")
    assert_problem(r, 404, "not_found")


def test_sse_stream_ends_when_the_project_is_deleted(team):
    sse = Sse(team.server, team.member.token, team.pid)
    sse.record()
    assert team.owner.api.delete(f"/v1/projects/{team.pid}").status_code == 204
    rec = sse.record()
    assert rec["event"] == "unsubscribed", rec
    assert json.loads(rec["data"]) == {"type": "unsubscribed", "project_id": team.pid,
                                       "reason": "project_deleted"}
    assert sse.record() is None


# ---------------------------------------------------------------------------------------
# long poll


def test_long_poll_answers_when_an_event_comes(team):
    poll = LongPoll(team.viewer.client(), team.pid, after=3, wait=30)
    time.sleep(0.3)  # most likely parked by now; it must answer either way
    t = team.create(title="wake up")
    # The wait is 30 s; the answer must come with the event, well before that (the
    # client's own timeout is shorter than the wait).
    poll.join(timeout=20)
    assert not poll.is_alive(), "the long poll did not answer when the event came"
    r = poll.result()
    assert r.status_code == 200, r.text
    body = r.json()
    assert [e["seq"] for e in body["data"]] == [4]
    assert body["data"][0]["data"] == t
    assert body["next_after"] == 4 and body["has_more"] is False
    assert body["data"] == event_feed(team.owner.api, team.pid)[3:]


def test_long_poll_answers_at_once_when_events_exist(team):
    team.create()
    r = team.viewer.api.get(f"/v1/projects/{team.pid}/events",
                            params={"after": 2, "wait": 30}, timeout=20)
    assert r.status_code == 200
    body = r.json()
    assert [e["seq"] for e in body["data"]] == [3, 4]
    assert body == {"data": event_feed(team.owner.api, team.pid)[2:], "next_after": 4,
                    "has_more": False}


def test_long_poll_is_empty_when_the_wait_ends(team):
    r = team.viewer.api.get(f"/v1/projects/{team.pid}/events", params={"after": 3, "wait": 1})
    assert r.status_code == 200, r.text
    assert r.json() == {"data": [], "next_after": 3, "has_more": False}


def test_long_poll_respects_limit(team):
    for i in range(5):
        team.create()
    r = team.viewer.api.get(f"/v1/projects/{team.pid}/events",
                            params={"after": 3, "wait": 5, "limit": 2})
    body = r.json()
    assert [e["seq"] for e in body["data"]] == [4, 5]
    assert body["next_after"] == 5 and body["has_more"] is True


@pytest.mark.parametrize("wait", ["31", "-1", "abc", "1.5", "", "100000000000000000000"])
def test_long_poll_wait_outside_0_to_30_is_422(team, wait):
    r = team.viewer.api.get(f"/v1/projects/{team.pid}/events",
                            params={"after": 3, "wait": wait})
    body = assert_problem(r, 422, "validation_failed")
    assert [e["field"] for e in body["errors"]] == ["wait"], body


def test_long_poll_wait_30_is_accepted(team):
    r = team.viewer.api.get(f"/v1/projects/{team.pid}/events",
                            params={"after": 0, "wait": 30}, timeout=20)
    assert r.status_code == 200
    assert len(r.json()["data"]) == 3


def test_long_poll_needs_a_member(team):
    r = team.outsider.api.get(f"/v1/projects/{team.pid}/events", params={"after": 0, "wait": 1})
    assert_problem(r, 404, "not_found")
    r = team.anon.get(f"/v1/projects/{team.pid}/events", params={"after": 0, "wait": 1})
    assert_problem(r, 401, "unauthenticated")


def test_a_parked_poll_of_a_removed_member_is_404(team):
    poll = LongPoll(team.viewer.client(), team.pid, after=3, wait=30)
    time.sleep(0.3)
    r = team.owner.api.delete(f"/v1/projects/{team.pid}/members/{team.viewer.id}")
    assert r.status_code == 204
    poll.join(timeout=20)
    assert not poll.is_alive()
    assert_problem(poll.result(), 404, "not_found")


def test_a_parked_poll_on_a_deleted_project_is_404(team):
    poll = LongPoll(team.member.client(), team.pid, after=3, wait=30)
    time.sleep(0.3)
    assert team.owner.api.delete(f"/v1/projects/{team.pid}").status_code == 204
    poll.join(timeout=20)
    assert not poll.is_alive()
    assert_problem(poll.result(), 404, "not_found")


def test_many_parked_polls_all_wake(team):
    polls = [LongPoll(u.client(), team.pid, after=3, wait=30)
             for u in (team.owner, team.member, team.viewer) for _ in range(4)]
    time.sleep(0.3)
    team.create()
    for p in polls:
        r = p.result(timeout=25)
        assert [e["seq"] for e in r.json()["data"]] == [4]


def test_a_long_poll_chain_sees_every_event_once_under_writes(team):
    """A client that loops `after = next_after` while writers write sees every seq once."""
    stop = threading.Event()

    def write():
        api = team.member.client()
        for i in range(40):
            assert api.post(f"/v1/projects/{team.pid}/tasks",
                            json={"title": f"w{i}"}).status_code == 201
        stop.set()

    w = threading.Thread(target=write, daemon=True)
    w.start()
    client = team.viewer.client()
    got, after = [], 3
    while not (stop.is_set() and after == 43):
        r = client.get(f"/v1/projects/{team.pid}/events", params={"after": after, "wait": 2})
        assert r.status_code == 200, r.text
        body = r.json()
        got += body["data"]
        after = body["next_after"]
        assert len(got) <= 40
    w.join()
    assert got == event_feed(team.owner.api, team.pid)[3:]


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
                                                 "assignee_id": team.member.id}).status_code == 200
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
