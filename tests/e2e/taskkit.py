"""Helpers shared by the task suites (test_05_tasks, test_06_task_lists, test_07_concurrency).

A `Team` is one server with four registered users and a project: the owner, a member and a
viewer of it, and an outsider who belongs to none of its projects. Each user has an `Api`
client of their own (its own requests.Session), so a thread can take one and run beside the
others. The rest reads what the server answered (page walks that check every page's shape,
the events feed) and what the database really holds (rows read directly, not through tandem).
"""

import contextlib
import re
import sqlite3
import threading
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

from harness import HTTP_TIMEOUT

PASSWORD = "correct horse battery staple"
STATUSES = ("todo", "in_progress", "done")
PRIORITIES = ("low", "medium", "high", "urgent")
RANK = {p: i for i, p in enumerate(PRIORITIES)}
SORT_KEYS = ("created_at", "updated_at", "due_date", "priority")
TASK_KEYS = {"id", "project_id", "title", "description", "status", "priority", "assignee_id",
             "due_date", "created_by", "created_at", "updated_at", "version"}
EVENT_KEYS = {"seq", "type", "project_id", "actor_id", "created_at", "data"}
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
LINK = re.compile(r'^<([^>]+)>; rel="next"$')


# ---------------------------------------------------------------------------------------
# users, projects, tasks


class User:
    def __init__(self, api, body):
        self.user = body["user"]
        self.id = body["user"]["id"]
        self.username = body["user"]["username"]
        self.token = body["access_token"]
        self.api = api.with_token(self.token)

    def client(self):
        """A new client (its own session, so its own connections) for this user."""
        return self.api.with_token(self.token)


def register(api, username):
    r = api.post("/v1/auth/register", json={
        "username": username, "email": f"{username}@example.com", "password": PASSWORD})
    assert r.status_code == 201, r.text
    return User(api, r.json())


def create_project(client, name="project"):
    r = client.post("/v1/projects", json={"name": name})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def add_member(owner_client, project_id, user, role):
    r = owner_client.post(f"/v1/projects/{project_id}/members",
                          json={"username": user.username, "role": role})
    assert r.status_code == 201, r.text


class Team:
    """owner, member and viewer of project `pid`; `outsider` belongs to none of them."""

    def __init__(self, server):
        self.server = server
        self.store = server.store
        self.anon = server.api()
        self.owner = register(self.anon, "olivia")
        self.member = register(self.anon, "mark")
        self.viewer = register(self.anon, "vera")
        self.outsider = register(self.anon, "oscar")
        self.pid = create_project(self.owner.api, "tandem")
        add_member(self.owner.api, self.pid, self.member, "member")
        add_member(self.owner.api, self.pid, self.viewer, "viewer")

    def create(self, client=None, pid=None, **fields):
        fields.setdefault("title", "a task")
        r = (client or self.owner.api).post(f"/v1/projects/{pid or self.pid}/tasks", json=fields)
        assert r.status_code == 201, r.text
        return r.json()


def check_task(t):
    """Every task the server shows has exactly the documented shape."""
    assert set(t) == TASK_KEYS, t
    assert t["status"] in STATUSES and t["priority"] in PRIORITIES, t
    for k in ("created_at", "updated_at"):
        assert TIMESTAMP.match(t[k]), t
    assert t["due_date"] is None or TIMESTAMP.match(t["due_date"]), t
    assert isinstance(t["version"], int) and t["version"] >= 1, t
    return t


# ---------------------------------------------------------------------------------------
# time


EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def ms(ts):
    """Milliseconds since the epoch of an RFC 3339 timestamp (any offset), digits beyond the
    millisecond dropped as the server drops them. Exact integer arithmetic, no floats."""
    return (datetime.fromisoformat(ts.replace("Z", "+00:00").replace("z", "+00:00"))
            - EPOCH) // timedelta(milliseconds=1)


def rfc3339(msecs, offset_minutes=0):
    """`msecs` written as RFC 3339 with milliseconds in the given UTC offset."""
    tz = timezone(timedelta(minutes=offset_minutes))
    dt = (EPOCH + timedelta(milliseconds=msecs)).astimezone(tz)
    text = dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{msecs % 1000:03d}"
    if offset_minutes == 0:
        return text + "Z"
    sign = "+" if offset_minutes > 0 else "-"
    h, m = divmod(abs(offset_minutes), 60)
    return f"{text}{sign}{h:02d}:{m:02d}"


# ---------------------------------------------------------------------------------------
# lists


def walk(client, path, params=None, limit=None, between_pages=None):
    """Every item of a list, page by page, following each page's Link header.

    Checks on every page: the body's shape, has_more iff next_cursor, a full page whenever
    there is more, a Link header exactly when there is more that carries the same filters and
    the next cursor. `between_pages(n)` runs after page n (a concurrent test's hook).
    """
    params = {k: v for k, v in (params or {}).items() if v is not None}
    if limit is not None:
        params["limit"] = limit
    expected_size = limit or 50
    r = client.get(path, params=params)
    items, pages = [], 0
    while True:
        assert r.status_code == 200, f"{r.request.url}: {r.status_code} {r.text}"
        body = r.json()
        assert set(body) == {"data", "next_cursor", "has_more"}, body
        assert body["has_more"] == (body["next_cursor"] is not None), body
        items.extend(body["data"])
        pages += 1
        link = r.headers.get("Link")
        if not body["has_more"]:
            assert link is None, link
            assert len(body["data"]) <= expected_size
            return items
        assert len(body["data"]) == expected_size, (r.request.url, len(body["data"]))
        m = LINK.match(link or "")
        assert m, f"has_more without a proper Link header: {link!r}"
        url = urlsplit(m.group(1))
        assert url.path == path, link
        query = parse_qs(url.query, keep_blank_values=True)
        assert query.pop("cursor") == [body["next_cursor"]], link
        assert query == {k: [str(v)] for k, v in params.items()}, (link, params)
        assert pages < 10000, "the walk does not end"
        if between_pages:
            between_pages(pages)
        r = client.get(m.group(1))


def event_feed(client, pid, after=0, limit=200):
    """Every event of the project after `after`, oldest first, through the paged feed."""
    out = []
    while True:
        r = client.get(f"/v1/projects/{pid}/events", params={"after": after, "limit": limit})
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"data", "next_after", "has_more"}, body
        out.extend(body["data"])
        if body["data"]:
            assert body["next_after"] == body["data"][-1]["seq"]
        else:
            assert body["next_after"] == after
            assert not body["has_more"]
        if not body["has_more"]:
            return out
        after = body["next_after"]


def last_seq(client, pid):
    events = event_feed(client, pid)
    return events[-1]["seq"] if events else 0


# ---------------------------------------------------------------------------------------
# the database, read and changed directly


def db_exec(store, sql):
    """Change the database directly, behind tandem's back (one or several statements)."""
    if store.backend == "postgres":
        store.cluster.psql(sql, dbname=store.dbname)
        return
    con = sqlite3.connect(str(store.sqlite_path), timeout=30)
    try:
        con.executescript(sql)
        con.commit()
    finally:
        con.close()


def add_history(team, n, pad=1000):
    """Append n events of about `pad` bytes to the project's log, straight into the database
    (n requests would take minutes); returns the new head. Their data is not a task's: read
    them through the WebSocket only (the feed's answers are checked against the schema)."""
    head = last_seq(team.owner.api, team.pid)
    first = team.store.query(
        f"SELECT actor_id, created_at FROM events WHERE project_id = '{team.pid}' AND seq = 1")[0]
    lo, hi = head + 1, head + n
    if team.store.backend == "postgres":
        rows = (f"SELECT '{team.pid}'::uuid, i, 'task.updated', '{first['actor_id']}'::uuid, "
                f"{first['created_at']}, '{{\"n\":' || i || ',\"pad\":\"' || repeat('x', {pad}) "
                f"|| '\"}}' FROM generate_series({lo}, {hi}) i")
    else:
        rows = (f"WITH RECURSIVE s(i) AS (SELECT {lo} UNION ALL SELECT i + 1 FROM s WHERE i < {hi}) "
                f"SELECT '{team.pid}', i, 'task.updated', '{first['actor_id']}', "
                f"{first['created_at']}, '{{\"n\":' || i || ',\"pad\":\"' || "
                f"replace(hex(zeroblob({pad // 2})), '0', 'x') || '\"}}' FROM s")
    db_exec(team.store, "INSERT INTO events (project_id, seq, type, actor_id, created_at, data) "
            + rows)
    db_exec(team.store, f"UPDATE projects SET event_seq = {hi} WHERE id = '{team.pid}'")
    return hi


TASKS_SQL = ("SELECT id, project_id, title, description, status, priority_rank, assignee_id, "
             "due_date, created_by, created_at, updated_at, version FROM tasks ORDER BY id")
EVENTS_SQL = "SELECT project_id, seq, type, actor_id, data FROM events ORDER BY project_id, seq"
IDEMPOTENCY_SQL = ("SELECT user_id, key, method, path, request_hash, status, response_headers, "
                   "response_body, created_at, expires_at FROM idempotency_keys "
                   "ORDER BY user_id, key")


def task_rows(store):
    return store.query(TASKS_SQL)


def task_row(store, task_id):
    rows = [r for r in task_rows(store) if r["id"] == task_id]
    return rows[0] if rows else None


def event_rows(store):
    return store.query(EVENTS_SQL)


def idempotency_rows(store):
    return store.query(IDEMPOTENCY_SQL)


def snapshot(store):
    """Everything a task request could change: tasks, events, the projects' counters and
    the stored Idempotency-Key answers (read in one go: see StoreTarget.query_many)."""
    return store.query_many({
        "tasks": TASKS_SQL, "events": EVENTS_SQL,
        "projects": "SELECT id, event_seq, version FROM projects ORDER BY id",
        "idempotency_keys": IDEMPOTENCY_SQL})


@contextlib.contextmanager
def failing_event_insert(store, project_id, seq):
    """Make the database refuse to store event `seq` of the project, as a crash or a full
    disk would at that moment. Everything the request did before it must roll back."""
    if store.backend == "postgres":
        db_exec(store, f"""
            CREATE FUNCTION fail_event() RETURNS trigger LANGUAGE plpgsql AS $f$
            BEGIN RAISE EXCEPTION 'injected failure'; END $f$;
            CREATE TRIGGER fail_event BEFORE INSERT ON events FOR EACH ROW
            WHEN (NEW.project_id = '{project_id}' AND NEW.seq = {seq})
            EXECUTE FUNCTION fail_event();""")
    else:
        db_exec(store, f"""
            CREATE TRIGGER fail_event BEFORE INSERT ON events
            WHEN NEW.project_id = '{project_id}' AND NEW.seq = {seq}
            BEGIN SELECT RAISE(ABORT, 'injected failure'); END;""")
    try:
        yield
    finally:
        if store.backend == "postgres":
            db_exec(store, "DROP TRIGGER fail_event ON events; DROP FUNCTION fail_event();")
        else:
            db_exec(store, "DROP TRIGGER fail_event;")


# ---------------------------------------------------------------------------------------
# concurrency


def run_threads(n, target):
    """Run target(i) in n threads started together; return their results (re-raising the
    first exception). Each target makes its own client, so each has its own session."""
    results, errors = [None] * n, []

    def run(i):
        try:
            results[i] = target(i)
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=HTTP_TIMEOUT * 20)
        assert not t.is_alive(), "a client thread hung"
    if errors:
        raise errors[0]
    return results
