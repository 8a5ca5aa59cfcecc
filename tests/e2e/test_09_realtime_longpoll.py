"""Issue 8 end to end, on every backend: the long poll, the second fallback for networks that
break WebSockets.

GET /v1/projects/{id}/events?after=&wait= answers as soon as there is an event after `after`,
empty when the wait ends, 422 for a wait outside 0..30; access is checked again when a parked
poll wakes. The server logs (at debug level) each poll it parks: a test about a parked poll
waits until the poll is parked rather than hoping a pause was long enough.
"""

import threading

import pytest

from harness import assert_problem
from rtkit import DEBUG_LOG, LongPoll, wait_parked
from rtkit import close_clients  # noqa: F401 - autouse: closes the test's clients
from taskkit import Team, event_feed


@pytest.fixture
def team(tandem_server):
    return Team(tandem_server(env=DEBUG_LOG))



def test_long_poll_answers_when_an_event_comes(team):
    poll = LongPoll(team.viewer.client(), team.pid, after=3, wait=30)
    wait_parked(team.server, team.pid)
    assert poll.is_alive()  # parked, not answered
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
    wait_parked(team.server, team.pid)
    assert poll.is_alive()
    r = team.owner.api.delete(f"/v1/projects/{team.pid}/members/{team.viewer.id}")
    assert r.status_code == 204
    poll.join(timeout=20)
    assert not poll.is_alive()
    assert_problem(poll.result(), 404, "not_found")


def test_a_parked_poll_on_a_deleted_project_is_404(team):
    poll = LongPoll(team.member.client(), team.pid, after=3, wait=30)
    wait_parked(team.server, team.pid)
    assert poll.is_alive()
    assert team.owner.api.delete(f"/v1/projects/{team.pid}").status_code == 204
    poll.join(timeout=20)
    assert not poll.is_alive()
    assert_problem(poll.result(), 404, "not_found")


def test_many_parked_polls_all_wake(team):
    polls = [LongPoll(u.client(), team.pid, after=3, wait=30)
             for u in (team.owner, team.member, team.viewer) for _ in range(4)]
    wait_parked(team.server, team.pid, n=len(polls))
    assert all(p.is_alive() for p in polls)
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
