"""Faults: the database or Redis goes away under load and comes back (issue 14, "Faults").

PostgreSQL is crashed (`pg_ctl stop -m immediate`: every backend dies at once, as in a
server crash or failover) while six writers create tasks, and started again two seconds
later. Every answer must be 201 or a clean 503 `unavailable` with Retry-After (never 500),
every acknowledged task must be stored, the project's event sequence must stay gap-free,
and once /readyz answers 200 every worker thread's next request must succeed although
each of them still holds a connection to the dead server. The cluster is this module's
own, so crashing it disturbs no other test.

Redis is killed and restarted while writers and readers run on two instances: no 500,
rate limiting through Redis works again afterwards, and a change made on one instance
reaches a WebSocket on the other again.
"""

import re
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from harness import StoreTarget, assert_problem
from pg_cluster import started_cluster
from rtkit import Ws, bus_publishes, bus_subscribers, wait_until
from rtkit import close_clients  # noqa: F401 - autouse: closes the test's clients
from taskkit import Team, event_feed

WRITERS = 6


@pytest.fixture(scope="module")
def fault_cluster():
    with started_cluster() as cluster:
        yield cluster


class Writers:
    """WRITERS threads, each creating tasks with its own client until stopped. Every answer
    is kept as (thread, time sent, status, body)."""

    def __init__(self, team, servers=None):
        self.team = team
        self.servers = servers or [team.server]
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.answers = []
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True)
                        for i in range(WRITERS)]

    def run(self, i):
        srv = self.servers[i % len(self.servers)]
        client = srv.api(self.team.member.token)
        n = 0
        while not self.stop.is_set():
            n += 1
            sent = time.monotonic()
            r = client.post(f"/v1/projects/{self.team.pid}/tasks",
                            json={"title": f"w{i}-{n}"})
            with self.lock:
                self.answers.append((i, sent, r.status_code, r))
            if r.status_code == 503:
                time.sleep(0.05)
        client.close()

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(60)

    def count(self):
        with self.lock:
            return len(self.answers)


def wait_ready(url, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        r = requests.get(url + "/readyz", timeout=30)
        if r.status_code == 200:
            return time.monotonic()
        assert time.monotonic() < deadline, f"/readyz still {r.status_code}: {r.text}"
        time.sleep(0.05)


def check_answers(answers, ok=201):
    """Every answer `ok` or a clean 503; returns the bodies of the `ok` ones."""
    bad = [(a[2], a[3].text) for a in answers if a[2] not in (ok, 503)]
    assert not bad, f"{len(bad)} answers neither {ok} nor 503: {bad[:5]}"
    for a in answers:
        if a[2] == 503:
            assert_problem(a[3], 503, "unavailable")
            assert int(a[3].headers.get("Retry-After", "0")) >= 1, dict(a[3].headers)
    return [a[3].json() for a in answers if a[2] == ok]


@pytest.mark.parametrize("backend", ["postgres"])
def test_postgres_crash_under_concurrent_writers(backend, fault_cluster, tandem_server,
                                                 tmp_path):
    fault_cluster.create_database("crash")
    store = StoreTarget("postgres", tmp_path / "crash-data", fault_cluster, "crash")
    srv = tandem_server(store=store, env={"TANDEM_THREADS": "8"})
    team = Team(srv)

    with Writers(team) as w:
        wait_until(lambda: w.count() >= 30, what="writes before the crash")
        fault_cluster.stop("immediate")
        time.sleep(2)
        fault_cluster.start()
        ready_at = wait_ready(srv.base_url)
        wait_until(lambda: all(any(a[0] == i and a[1] > ready_at for a in w.answers)
                               for i in range(WRITERS)),
                   what="every writer answered after recovery")
        # A few more rounds, so every worker thread meets its dead connection.
        target = w.count() + 60
        wait_until(lambda: w.count() >= target, what="writes after recovery")

    acked = {t["id"] for t in check_answers(w.answers)}
    after = [a for a in w.answers if a[1] > ready_at]
    assert after and all(a[2] == 201 for a in after), \
        [(a[2], a[3].text) for a in after if a[2] != 201][:5]
    # Every acknowledged write is stored.
    stored = {r["id"] for r in store.query("SELECT id FROM tasks")}
    assert acked <= stored, f"{len(acked - stored)} acknowledged tasks lost"
    # The project's events: 1..head without a gap, one task.created per stored task.
    seqs = [r["seq"] for r in store.query(
        f"SELECT seq FROM events WHERE project_id = '{team.pid}' ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1))
    feed = event_feed(team.owner.api, team.pid)
    created = {e["data"]["id"] for e in feed if e["type"] == "task.created"}
    assert created == stored

    # The same crash while the server is idle: no request meets the dead connections during
    # the outage, so every worker thread still holds one when the database is back. Clients
    # with keep-alive connections spread over the threads (opened concurrently) stay on them.
    # Once /readyz says the database is back, their first reads and writes succeed.
    clients = [team.member.client() for _ in range(12)]
    pid = team.pid

    def on_every_client(fn):
        barrier = threading.Barrier(len(clients))

        def one(c):
            barrier.wait()
            return fn(c)

        with ThreadPoolExecutor(len(clients)) as ex:
            return list(ex.map(one, clients))

    on_every_client(lambda c: c.get(f"/v1/projects/{pid}/tasks", params={"limit": 1}))
    fault_cluster.stop("immediate")
    fault_cluster.start()
    wait_ready(srv.base_url)
    for r in on_every_client(lambda c: c.get(f"/v1/projects/{pid}/tasks",
                                             params={"limit": 1, "status": "todo"})):
        assert r.status_code == 200, r.text
    for r in on_every_client(lambda c: c.post(f"/v1/projects/{pid}/tasks",
                                              json={"title": "after an idle crash"})):
        assert r.status_code == 201, r.text
    for c in clients:
        c.close()


# --------------------------------------------------------------------------------------
# Redis killed and restarted under load


SECRET = "faults-test-secret-0123456789abcdef0123456789"
ANON_BURST = 4


def redis_env(redis):
    return {"TANDEM_JWT_SECRET": SECRET, "TANDEM_REDIS_URL": redis.url,
            "TANDEM_RATE_LIMIT": "on", "TANDEM_TRUSTED_PROXIES": "127.0.0.1",
            "TANDEM_RATE_LIMIT_ANON": f"1/h,burst={ANON_BURST}",
            # The writers share one user: their budget is not what this test is about.
            "TANDEM_RATE_LIMIT_USER": "100000/min,burst=100000"}


def shared_budget_holds(a, b, ip):
    """`ip`'s anonymous burst spent half on a, half on b, then refused on both: the budget
    is counted in Redis (a fail-open answer would show the full budget again)."""
    h = {"X-Forwarded-For": ip}
    for i in range(ANON_BURST):
        r = (a if i % 2 == 0 else b).get("/v1", headers=h)
        m = re.search(r";r=(\d+)", r.headers.get("RateLimit", ""))
        if r.status_code != 200 or not m or int(m.group(1)) != ANON_BURST - 1 - i:
            return False
    return all(c.get("/v1", headers=h).status_code == 429 for c in (a, b))


def test_redis_killed_and_restarted_under_load(tandem_server, store, redis_server):
    redis = redis_server()
    a = tandem_server(env=redis_env(redis), store=store)
    b = tandem_server(env=redis_env(redis), store=store)
    wait_until(lambda: bus_subscribers(redis) == 2, what="both instances subscribing to Redis")
    team = Team(a)
    anon_a, anon_b = a.api(), b.api()
    assert shared_budget_holds(anon_a, anon_b, "203.0.113.1")

    with Writers(team, [a, b]) as w:
        wait_until(lambda: w.count() >= 30, what="writes before the outage")
        redis.stop()  # SIGKILL
        n = w.count()
        wait_until(lambda: w.count() >= n + 30, what="writes while Redis is down")
        # Readers too, anonymous (limited through Redis) and authenticated.
        for c in (anon_a, anon_b):
            assert c.get("/v1").status_code == 200
        assert team.viewer.api.get(f"/v1/projects/{team.pid}/tasks").status_code == 200
        redis.start()  # same port, empty
        wait_ready(a.base_url)
        wait_ready(b.base_url)
        n = w.count()
        wait_until(lambda: w.count() >= n + 30, what="writes after Redis came back")

    acked = {t["id"] for t in check_answers(w.answers)}
    assert all(a[2] == 201 for a in w.answers), "a write failed while only Redis was down"
    assert acked == {r["id"] for r in store.query("SELECT id FROM tasks")}

    # Rate limiting through Redis works again, without a restart (after a short back-off).
    n = 0
    deadline = time.monotonic() + 20
    while not shared_budget_holds(anon_a, anon_b, f"203.0.113.{n + 10}"):
        n += 1
        assert time.monotonic() < deadline, "limiting through Redis did not resume"
        time.sleep(0.3)
    assert f"tandem:rl:anon:ip:203.0.113.{n + 10}" in redis.keys("tandem:rl:*")

    # Cross-instance delivery works again: a change on A reaches a WebSocket on B through
    # Redis (published there, and well before B's own 5 s sweep of the log).
    wait_until(lambda: bus_subscribers(redis) == 2, what="both instances subscribing again")
    ws_b = Ws(b, team.viewer.token)
    ws_b.subscribe(team.pid)
    before, start = bus_publishes(redis), time.monotonic()
    t = team.create(title="after the outage")
    got = ws_b.events(1)
    assert got[0]["data"] == t, got
    assert time.monotonic() - start < 2.0 and bus_publishes(redis) > before
    assert event_feed(team.owner.api, team.pid)[-1]["data"] == t


# --------------------------------------------------------------------------------------
# SQLite: the database file stays locked by another process


@pytest.mark.parametrize("backend", ["sqlite"])
def test_sqlite_locked_by_another_process_is_a_clean_503(backend, tandem_server):
    """Another process holds SQLite's write lock longer than the busy timeout (10 s): the
    write gets a clean 503 with Retry-After, leaves nothing behind, reads go on meanwhile
    (WAL), and writes work again once the lock is gone. (A full disk or an I/O error takes
    the same path: SQLITE_FULL and SQLITE_IOERR are -ERR_UNAVAILABLE too.)"""
    srv = tandem_server()
    team = Team(srv)
    before = len(srv.store.query("SELECT id FROM tasks"))
    con = sqlite3.connect(str(srv.store.sqlite_path), timeout=30, isolation_level=None)
    try:
        con.execute("BEGIN IMMEDIATE")
        r = team.member.api.post(f"/v1/projects/{team.pid}/tasks", json={"title": "locked"})
        assert_problem(r, 503, "unavailable")
        assert int(r.headers["Retry-After"]) >= 1
        r = team.member.api.get(f"/v1/projects/{team.pid}/tasks")
        assert r.status_code == 200, r.text
    finally:
        con.execute("ROLLBACK")
        con.close()
    assert len(srv.store.query("SELECT id FROM tasks")) == before
    team.create(title="after the lock")
