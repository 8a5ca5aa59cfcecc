"""Issue 8 end to end, on every backend: Server-Sent Events, the first fallback for networks
that break WebSockets.

GET /v1/projects/{id}/events/stream over plain HTTP/1.1: `id:` is the seq, `event:` the type,
`data:` the event JSON; Last-Event-ID resumes; a comment heartbeat; the stream ends with an
`unsubscribed` record when the reader loses access, and ends (to be resumed with
Last-Event-ID) when its reader falls so far behind that the server's queue for it is full.
"""

import json

import pytest

from harness import assert_problem
from rtkit import Sse, sse_stream_fell_behind
from rtkit import close_clients  # noqa: F401 - autouse: closes the test's clients
from taskkit import EVENT_KEYS, Team, event_feed, last_seq

MISSING = "00000000-0000-7000-8000-000000000000"


@pytest.fixture
def team(server):
    return Team(server)


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


def test_a_reading_stream_far_behind_on_large_events_catches_up_whole(tandem_server):
    # A resume point far behind is served in catch-up pages of up to 200 events. A page of
    # large events is more than the stream's queue bound (TANDEM_WS_MAX_QUEUE): it must be
    # fed as the reader takes it, not appended whole and the stream ended as if its reader
    # had stopped reading (it was flaky in the test below, whose resumed stream is this case).
    srv = tandem_server(env={"TANDEM_WS_MAX_QUEUE": "65536", "TANDEM_SSE_HEARTBEAT": "3600"})
    team = Team(srv)
    task = team.create(description="a" * 10000)
    for i in range(12):  # some 20 KB each: ~240 KB, four times the bound
        r = team.owner.api.patch(f"/v1/tasks/{task['id']}",
                                 json={"description": "ab"[i % 2] * 10000})
        assert r.status_code == 200, r.text
    final = last_seq(team.owner.api, team.pid)
    sse = Sse(srv, team.member.token, team.pid, last_event_id=4)
    assert sse.events_through(final) == event_feed(team.owner.api, team.pid)[4:]
    assert not sse_stream_fell_behind(srv, team.pid)


def test_sse_stream_ends_when_its_reader_falls_behind(tandem_server):
    # The server queues at most TANDEM_WS_MAX_QUEUE bytes for one stream. A reader that
    # takes nothing while events pile up is ended rather than buffered for without bound; it
    # resumes with Last-Event-ID. No heartbeat: a stream that does not end must not look
    # alive to the reader's timeout.
    srv = tandem_server(env={"TANDEM_WS_MAX_QUEUE": "65536", "TANDEM_SSE_HEARTBEAT": "3600"})
    team = Team(srv)
    task = team.create(description="a" * 10000)
    sse = Sse(srv, team.member.token, team.pid)  # events after seq 4
    assert sse.status == 200
    # From now on the stream is not read. Keep writing (each event is some 20 KB) until the
    # server has given up on it, once the kernel's buffers and the queue are full.
    writes = 0
    while not sse_stream_fell_behind(srv, team.pid):
        assert writes < 3000, "the server kept buffering for a stream that reads nothing"
        r = team.owner.api.patch(f"/v1/tasks/{task['id']}",
                                 json={"description": "ab"[writes % 2] * 10000})
        assert r.status_code == 200, r.text
        writes += 1
    for i in range(3):  # and after: these are for a resumed stream
        assert team.create(title=f"after {i}")
    final = last_seq(team.owner.api, team.pid)
    # Now read what was sent before the server ended the stream: a clean prefix, then the end.
    got = []
    while (rec := sse.record()) is not None:
        if "data" in rec:
            assert rec["id"] == str(json.loads(rec["data"])["seq"]), rec
            got.append(json.loads(rec["data"]))
    seqs = [e["seq"] for e in got]
    assert seqs == list(range(5, 5 + len(seqs)))  # no gap, no duplicate
    assert len(seqs) < final - 4
    feed = event_feed(team.owner.api, team.pid)
    assert got == feed[4:4 + len(got)]
    # Resuming with the last id seen misses nothing.
    last = seqs[-1] if seqs else 4
    again = Sse(srv, team.member.token, team.pid, last_event_id=last)
    assert again.events_through(final) == feed[last:]
