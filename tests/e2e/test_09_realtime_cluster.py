"""Issue 8 end to end, on every backend: two tandem instances on one database, fanned out
through a real redis-server that the test starts and stops.

Instance A and instance B share the database (one PostgreSQL database, or one SQLite file
that both processes open) and TANDEM_JWT_SECRET, so a token from one is good on the other,
and both have TANDEM_REDIS_URL. A change made through A must reach B's subscribers
(WebSocket, SSE, long poll), permissions included (a removal or a deletion through A ends
subscriptions on B). Stopping Redis mid-stream and starting it again must not lose or
repeat a single seq: an instance that hears nothing from Redis reads the log itself.

Because of that sweep (every 5 s), a change would reach B even with no PUBLISH at all; the
tests of delivery through Redis therefore check that Redis carried it (its PUBLISH count
grows) and that it arrived well within the sweep interval.
"""

import threading
import time
from contextlib import contextmanager

import pytest

from rtkit import (LongPoll, Sse, Ws, bus_publishes, bus_subscribers, instance_pair,
                   wait_until)
from rtkit import close_clients  # noqa: F401 - autouse: closes the test's clients
from taskkit import Team, event_feed, last_seq

SECRET = "realtime-cluster-test-secret-0123456789abcdef"
# The hub's periodic sweep reads the log every 5 s whatever Redis does; a push through Redis
# takes milliseconds. Well below the sweep, with room for a slow (sanitizer) build.
THROUGH_REDIS_S = 2.0


@contextmanager
def through_redis(redis, what):
    """The block (a change on one instance and its arrival on the other) went through Redis:
    at least one PUBLISH, and quicker than the sweep could have been."""
    before = bus_publishes(redis)
    start = time.monotonic()
    yield
    took = time.monotonic() - start
    assert bus_publishes(redis) > before, f"{what}: nothing was published to Redis"
    assert took < THROUGH_REDIS_S, f"{what}: took {took:.1f}s, as long as the sweep"


@pytest.fixture
def pair(tandem_server, store, redis_server):
    return instance_pair(tandem_server, store, redis_server, {"TANDEM_JWT_SECRET": SECRET})


def test_a_change_through_a_reaches_subscribers_on_b(pair):
    team, b = pair.team, pair.b
    ws_b = Ws(b, team.viewer.token)
    ws_b.subscribe(team.pid)
    sse_b = Sse(b, team.member.token, team.pid)
    assert sse_b.status == 200
    poll_b = LongPoll(b.api(team.viewer.token), team.pid, after=3, wait=30)
    ws_a = Ws(pair.a, team.member.token)
    ws_a.subscribe(team.pid)

    with through_redis(pair.redis, "A to B"):
        t = team.create(title="made on A")  # through A
        got = ws_b.events(1)
    feed = event_feed(b.api(team.owner.token), team.pid)
    assert feed[-1]["seq"] == 4 and feed[-1]["data"] == t
    assert got == feed[3:]
    assert sse_b.events_through(4) == feed[3:]
    assert poll_b.result().json()["data"] == feed[3:]
    assert ws_a.events(1) == feed[3:]

    # And the other way round.
    with through_redis(pair.redis, "B to A"):
        r = b.api(team.member.token).patch(f"/v1/tasks/{t['id']}",
                                           json={"title": "renamed on B"})
        assert r.status_code == 200, r.text
        got = ws_a.events(1)
    feed = event_feed(pair.a.api(team.owner.token), team.pid)
    assert got == feed[4:] and ws_b.events(1) == feed[4:]
    assert ws_b.sync() == [] and ws_a.sync() == []


def test_a_removal_or_deletion_through_a_ends_subscriptions_on_b(pair):
    team, b = pair.team, pair.b
    viewer = Ws(b, team.viewer.token)
    member = Ws(b, team.member.token)
    viewer.subscribe(team.pid)
    member.subscribe(team.pid)
    with through_redis(pair.redis, "a removal"):
        r = team.owner.api.delete(f"/v1/projects/{team.pid}/members/{team.viewer.id}")
        assert r.status_code == 204
        assert viewer.events(1)[0]["type"] == "member.removed"
        assert viewer.recv() == {"type": "unsubscribed", "project_id": team.pid,
                                 "reason": "membership_removed"}
    assert member.events(1)[0]["type"] == "member.removed"
    with through_redis(pair.redis, "a deletion"):
        assert team.owner.api.delete(f"/v1/projects/{team.pid}").status_code == 204
        assert member.recv() == {"type": "unsubscribed", "project_id": team.pid,
                                 "reason": "project_deleted"}
    assert viewer.sync() == [] and member.sync() == []


def test_redis_stopped_and_restarted_mid_stream_loses_and_repeats_nothing(pair):
    team, b, redis = pair.team, pair.b, pair.redis
    on_b = Ws(b, team.viewer.token)
    on_b.subscribe(team.pid, after=0)
    sse_b = Sse(b, team.member.token, team.pid, last_event_id=0)
    on_a = Ws(pair.a, team.viewer.token)
    on_a.subscribe(team.pid, after=0)
    stop = threading.Event()
    errors = []

    def write():
        # Through A, without pause, for as long as the test wants; every write must succeed
        # whether or not Redis is there.
        try:
            api = team.member.client()
            n = 0
            while not stop.is_set():
                r = api.post(f"/v1/projects/{team.pid}/tasks", json={"title": f"w{n}"})
                assert r.status_code == 201, r.text
                n += 1
        except BaseException as e:  # noqa: BLE001 - handed to the test's thread
            errors.append(e)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    got = []

    def receive_at_least(n):
        while len(got) < n:
            got.extend(on_b.events(1))
            assert not errors, errors

    try:
        receive_at_least(30)
        redis.stop()  # an outage, mid-stream
        receive_at_least(len(got) + 30)  # B reads the log by itself
        redis.start()  # same port: both instances resubscribe on their own
        wait_until(lambda: bus_subscribers(redis) == 2, timeout=30,
                   what="both instances subscribing to Redis again")
        receive_at_least(len(got) + 30)
    finally:
        stop.set()
        writer.join(timeout=60)
    assert not errors, errors
    feed = event_feed(b.api(team.owner.token), team.pid)
    final = feed[-1]["seq"]
    got.extend(on_b.events(final - len(got)))
    assert [e["seq"] for e in got] == list(range(1, final + 1))
    assert got == feed
    assert on_b.sync() == []  # nothing twice
    assert sse_b.events_through(final) == feed
    assert on_a.events(final) == feed
    assert on_a.sync() == []


def test_b_delivers_even_when_redis_is_down_from_the_start(tandem_server, store,
                                                           redis_server):
    redis = redis_server()
    redis.stop()
    env = {"TANDEM_JWT_SECRET": SECRET, "TANDEM_REDIS_URL": redis.url}
    a = tandem_server(env=env, store=store)
    b = tandem_server(env=env, store=store)
    team = Team(a)
    ws = Ws(b, team.member.token)
    ws.subscribe(team.pid, after=None)
    for i in range(3):
        team.create(title=f"t{i}")
    assert ws.events(3) == event_feed(team.owner.api, team.pid)[3:]


def test_a_deletion_while_redis_is_down_still_ends_subscriptions_on_b(pair):
    # Deleting a project leaves no event in the log (the log goes with the project), so the
    # instance that did not hear about it must notice by itself.
    team, b = pair.team, pair.b
    ws = Ws(b, team.member.token)
    ws.subscribe(team.pid)
    pair.redis.stop()
    assert team.owner.api.delete(f"/v1/projects/{team.pid}").status_code == 204
    assert ws.recv(timeout=30) == {"type": "unsubscribed", "project_id": team.pid,
                                   "reason": "project_deleted"}


def test_last_seq_is_the_same_on_both_instances(pair):
    team = pair.team
    for i in range(5):
        team.create(title=f"t{i}")
    assert last_seq(pair.b.api(team.viewer.token), team.pid) == 8
    ws = Ws(pair.b, team.viewer.token)
    assert ws.subscribe(team.pid)["seq"] == 8
