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

import threading
import time

import pytest
import requests

from harness import StoreTarget, assert_problem
from pg_cluster import PgCluster
from rtkit import Ws, wait_until
from rtkit import close_clients  # noqa: F401 - autouse: closes the test's clients
from taskkit import Team, event_feed

WRITERS = 6


@pytest.fixture(scope="module")
def fault_cluster():
    cluster = PgCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


class Writers:
    """WRITERS threads, each creating tasks with its own client until stopped. Every answer
    is kept as (thread, time sent, status, body)."""

    def __init__(self, team):
        self.team = team
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.answers = []
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True)
                        for i in range(WRITERS)]

    def run(self, i):
        client = self.team.member.client()
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
    srv = tandem_server(store=store, env={"TANDEM_THREADS": "4"})
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
