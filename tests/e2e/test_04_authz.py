"""Issue 4 end to end: the permission table of API.md, route by route, on every backend.

The routes come from the server's own route table (src/http/routes.c): every route whose
pattern starts with /v1/projects or /v1/tasks must have a row in RULES below, and every row
must name a route that exists, so a new route without a permission rule fails this file.

For each route and each caller -- the project's owner, a member, a viewer, a user who is not
a member, a system admin who is not a member, and an anonymous client -- the test builds a
fresh project (owner, member, viewer, a second member "target" with a task assigned to
them) and sends the route's request. It checks the status and the problem code; after every
denied request it re-reads the project as its owner, and the whole database, and asserts
that nothing changed; a 404 must be indistinguishable from the answer for an id that does
not exist (never 403: that would leak existence). Allowed requests are checked for their
effect.
"""

import re
import uuid
from pathlib import Path

import pytest

from harness import assert_problem

REPO = Path(__file__).resolve().parents[2]
ROUTES_C = REPO / "src" / "http" / "routes.c"
PASSWORD = "correct horse battery staple"
ADMIN_PASSWORD = "admin-password-1"

ROLES = ("owner", "member", "viewer", "outsider", "admin", "anonymous")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
PROBLEM_CODES = {401: "unauthenticated", 403: "forbidden", 404: "not_found"}


def parse_routes():
    """[(method, pattern)] of every route in routes.c under /v1/projects or /v1/tasks."""
    text = ROUTES_C.read_text()
    table = text[text.index("const struct route routes[]"):]
    table = table[:table.index("};")]
    entries = re.findall(r'\{\s*"([A-Z]+)"\s*,\s*"([^"]+)"\s*,\s*(\w+)\s*,[^}]*\}', table)
    # Every entry of the table was understood (a format change must not hide routes).
    assert len(entries) == table.count("handle_"), "routes.c changed shape; fix parse_routes"
    return sorted((m, p) for m, p, _ in entries
                  if p.startswith("/v1/projects") or p.startswith("/v1/tasks"))


ROUTES = parse_routes()


def statuses(owner, member, viewer, outsider, admin, anonymous=401):
    return dict(zip(ROLES, (owner, member, viewer, outsider, admin, anonymous)))


READ = statuses(200, 200, 200, 404, 404)  # see project, members, tasks, events
# (method, pattern) -> (expected status per caller, request body or None)
RULES = {
    ("POST", "/v1/projects"): (statuses(201, 201, 201, 201, 201), {"name": "New project"}),
    ("GET", "/v1/projects"): (statuses(200, 200, 200, 200, 200), None),
    ("GET", "/v1/projects/{id}"): (READ, None),
    ("PATCH", "/v1/projects/{id}"): (statuses(200, 403, 403, 404, 404), {"name": "Renamed"}),
    ("DELETE", "/v1/projects/{id}"): (statuses(204, 403, 403, 404, 404), None),
    ("GET", "/v1/projects/{id}/members"): (READ, None),
    ("POST", "/v1/projects/{id}/members"): (statuses(201, 403, 403, 404, 404),
                                            {"username": "newbie", "role": "member"}),
    ("GET", "/v1/projects/{id}/members/{user_id}"): (READ, None),
    ("PATCH", "/v1/projects/{id}/members/{user_id}"): (statuses(200, 403, 403, 404, 404),
                                                       {"role": "viewer"}),
    ("DELETE", "/v1/projects/{id}/members/{user_id}"): (statuses(204, 403, 403, 404, 404),
                                                        None),
    ("GET", "/v1/projects/{id}/events"): (READ, None),
    ("GET", "/v1/projects/{id}/events/stream"): (READ, None),  # SSE: see STREAMS
    ("GET", "/v1/projects/{id}/tasks"): (READ, None),
    ("POST", "/v1/projects/{id}/tasks"): (statuses(201, 201, 403, 404, 404),
                                          {"title": "New task"}),
    ("GET", "/v1/tasks"): (statuses(200, 200, 200, 200, 200), None),
    ("GET", "/v1/tasks/{id}"): (READ, None),
    ("PATCH", "/v1/tasks/{id}"): (statuses(200, 200, 403, 404, 404), {"title": "Changed"}),
    ("DELETE", "/v1/tasks/{id}"): (statuses(204, 204, 403, 404, 404), None),
}

# Routes whose 200 answer is an endless stream: only the status and headers are read.
STREAMS = {("GET", "/v1/projects/{id}/events/stream")}


def test_every_project_and_task_route_has_a_rule():
    parsed = set(ROUTES)
    assert parsed, "no /v1/projects or /v1/tasks routes found in routes.c"
    assert parsed - RULES.keys() == set(), "routes without a permission rule in RULES"
    assert RULES.keys() - parsed == set(), "rules for routes that routes.c does not have"


# ---------------------------------------------------------------------------------------
# the world each request runs against


class User:
    def __init__(self, base, session):
        self.id = session["user"]["id"]
        self.username = session["user"]["username"]
        self.api = base.with_token(session["access_token"])


class World:
    """The users (registered once per test) and a factory for fresh projects."""

    def __init__(self, srv, tandem_cli):
        self.srv = srv
        self.base = srv.api()
        self.users = {}
        for name in ("owner", "member", "viewer", "target", "outsider", "newbie"):
            r = self.base.post("/v1/auth/register", json={
                "username": name, "email": f"{name}@example.com", "password": PASSWORD})
            assert r.status_code == 201, r.text
            self.users[name] = User(self.base, r.json())
        p = tandem_cli("user", "create", "--username", "admin", "--email", "admin@example.com",
                       "--admin", store=srv.store, input=ADMIN_PASSWORD + "\n")
        assert p.returncode == 0, p.stderr
        r = self.base.post("/v1/auth/login", json={"login": "admin", "password": ADMIN_PASSWORD})
        assert r.status_code == 200 and r.json()["user"]["is_admin"] is True, r.text
        self.users["admin"] = User(self.base, r.json())
        self.anonymous = srv.api()

    def client(self, role):
        return self.anonymous if role == "anonymous" else self.users[role].api

    def fresh_project(self):
        """A project with owner, member, viewer and target (a member); one task, assigned to
        target. Returns {"project": id, "task": id, "target": user id}."""
        owner = self.users["owner"].api
        r = owner.post("/v1/projects", json={"name": "World"})
        assert r.status_code == 201, r.text
        pid = r.json()["id"]
        for name, role in (("member", "member"), ("viewer", "viewer"), ("target", "member")):
            r = owner.post(f"/v1/projects/{pid}/members",
                           json={"user_id": self.users[name].id, "role": role})
            assert r.status_code == 201, r.text
        r = owner.post(f"/v1/projects/{pid}/tasks",
                       json={"title": "Target's task", "assignee_id": self.users["target"].id})
        assert r.status_code == 201, r.text
        return {"project": pid, "task": r.json()["id"], "target": self.users["target"].id}

    def owner_view(self, ids):
        """Everything about the project that its owner can read through the API."""
        owner = self.users["owner"].api
        pid = ids["project"]
        view = {}
        for path in (f"/v1/projects/{pid}", f"/v1/projects/{pid}/members",
                     f"/v1/projects/{pid}/tasks", f"/v1/projects/{pid}/events?limit=200",
                     f"/v1/tasks/{ids['task']}"):
            r = owner.get(path)
            view[path] = (r.status_code, r.json())
        return view

    def db(self):
        """Every row a request could change (users included: nobody's account may change)."""
        return self.srv.store.query_many({  # one round trip (see StoreTarget.query_many)
            "users": "SELECT id, username, is_active, is_admin, version FROM users ORDER BY id",
            "projects": "SELECT id, name, description, owner_id, event_seq, updated_at, "
                        "version FROM projects ORDER BY id",
            "memberships": "SELECT project_id, user_id, role, joined_at FROM memberships "
                           "ORDER BY project_id, user_id",
            "tasks": "SELECT id, project_id, title, assignee_id, updated_at, version "
                     "FROM tasks ORDER BY id",
            "events": "SELECT project_id, seq, type FROM events ORDER BY project_id, seq",
        })

    def close(self):
        for u in self.users.values():
            u.api.close()
        self.anonymous.close()
        self.base.close()


@pytest.fixture
def world(tandem_server, tandem_cli):
    w = World(tandem_server(), tandem_cli)
    yield w
    w.close()


def fill(pattern, ids):
    """The concrete path of a route pattern for this project / task / target member."""
    path = pattern.replace("{user_id}", ids["target"])
    if pattern.startswith("/v1/tasks/{id}"):
        return path.replace("{id}", ids["task"])
    return path.replace("{id}", ids["project"])


def send(client, method, path, body, stream=False):
    kw = {"stream": True} if stream else {}
    if body is not None:
        kw["json"] = body
    return client.request(method, path, **kw)


def check_effect(world, method, pattern, role, ids, resp, before):
    """What an allowed request must have done."""
    after = world.db()
    pid, tid, target = ids["project"], ids["task"], ids["target"]
    caller = world.users[role]
    if method == "GET":
        assert after == before, "a GET changed the database"
        if (method, pattern) in STREAMS:
            assert resp.headers["Content-Type"].startswith("text/event-stream"), resp.headers
            return
        body = resp.json()
        if pattern == "/v1/projects":
            seen = {p["id"] for p in body["data"]}
            assert (pid in seen) == (role in ("owner", "member", "viewer")), body
        elif pattern == "/v1/tasks":
            seen = {t["id"] for t in body["data"]}
            assert (tid in seen) == (role in ("owner", "member", "viewer")), body
            # Asking for the project by id does not help an outsider either.
            r = caller.api.get("/v1/tasks", params={"project_id": pid})
            assert r.status_code == 200
            assert [t["id"] for t in r.json()["data"]] == \
                ([tid] if role in ("owner", "member", "viewer") else [])
        elif pattern == "/v1/projects/{id}":
            assert body["id"] == pid and body["role"] == role
        elif pattern.endswith("/members"):
            assert len(body["data"]) == 4
        elif pattern.endswith("/tasks"):
            assert [t["id"] for t in body["data"]] == [tid]
        elif pattern.endswith("/events"):
            assert [e["seq"] for e in body["data"]] == [1, 2, 3, 4, 5]
        elif pattern == "/v1/tasks/{id}":
            assert body["id"] == tid
        return
    assert after != before, f"{method} {pattern} answered {resp.status_code} but changed nothing"
    mine = [p for p in after["projects"] if p["id"] == pid]
    members = {(m["user_id"]): m["role"] for m in after["memberships"] if m["project_id"] == pid}
    tasks = {t["id"]: t for t in after["tasks"]}
    if (method, pattern) == ("POST", "/v1/projects"):
        new = resp.json()
        assert new["owner_id"] == caller.id and new["role"] == "owner"
        assert {m["user_id"]: m["role"] for m in after["memberships"]
                if m["project_id"] == new["id"]} == {caller.id: "owner"}
    elif (method, pattern) == ("PATCH", "/v1/projects/{id}"):
        assert mine[0]["name"] == "Renamed"
    elif (method, pattern) == ("DELETE", "/v1/projects/{id}"):
        assert mine == [] and members == {} and tid not in tasks
    elif (method, pattern) == ("POST", "/v1/projects/{id}/members"):
        assert members[world.users["newbie"].id] == "member"
    elif (method, pattern) == ("PATCH", "/v1/projects/{id}/members/{user_id}"):
        assert members[target] == "viewer"
        assert tasks[tid]["assignee_id"] is None  # a viewer keeps no task (as on removal)
    elif (method, pattern) == ("DELETE", "/v1/projects/{id}/members/{user_id}"):
        assert target not in members
        assert tasks[tid]["assignee_id"] is None  # unassigned in the same change
    elif (method, pattern) == ("POST", "/v1/projects/{id}/tasks"):
        new = resp.json()
        assert tasks[new["id"]]["project_id"] == pid and new["created_by"] == caller.id
    elif (method, pattern) == ("PATCH", "/v1/tasks/{id}"):
        assert tasks[tid]["title"] == "Changed"
    elif (method, pattern) == ("DELETE", "/v1/tasks/{id}"):
        assert tid not in tasks
    else:
        raise AssertionError(f"no effect check for {method} {pattern}")
    # Every change to a project is in its feed, numbered on from the last one.
    if pattern != "/v1/projects" and not (method == "DELETE" and pattern == "/v1/projects/{id}"):
        seqs = [e["seq"] for e in after["events"] if e["project_id"] == pid]
        assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) > 5, seqs


def unknown_ids(ids):
    """The same ids with the one the route is about replaced by ids that do not exist."""
    return {"project": str(uuid.uuid4()), "task": str(uuid.uuid4()), "target": ids["target"]}


@pytest.mark.parametrize("method, pattern", ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_permission_matrix(world, method, pattern):
    assert (method, pattern) in RULES, f"{method} {pattern} has no permission rule"
    expected, body = RULES[(method, pattern)]
    stream = (method, pattern) in STREAMS
    for role in ROLES:
        ids = world.fresh_project()
        path = fill(pattern, ids)
        view, before = world.owner_view(ids), world.db()
        resp = send(world.client(role), method, path, body, stream)
        if stream and resp.status_code < 400:
            resp.close()  # an open stream: nothing more to read
        want = expected[role]
        what = f"{role}: {method} {path}"
        assert resp.status_code == want, f"{what} -> {resp.status_code}, want {want}: {resp.text}"
        if want >= 400:
            problem = assert_problem(resp, want, PROBLEM_CODES[want])
            assert world.owner_view(ids) == view, f"{what} changed what the owner sees"
            assert world.db() == before, f"{what} changed the database"
            if want == 404:
                # Exactly as if the project (or task) did not exist.
                other = send(world.client(role), method, fill(pattern, unknown_ids(ids)), body,
                             stream)
                twin = assert_problem(other, 404, "not_found")
                assert (problem["title"], problem["detail"]) == \
                    (twin["title"], twin["detail"]), what
            if role == "anonymous":
                # A token that is not one is no better than none.
                bad = world.anonymous.request(method, path, json=body, stream=stream,
                                              headers={"Authorization": "Bearer not.a.token"})
                assert_problem(bad, 401, "unauthenticated")
                assert world.db() == before
        else:
            check_effect(world, method, pattern, role, ids, resp, before)


def test_unrouted_methods_answer_405_for_everyone(world):
    """Every other method on these paths: 405 with Allow, whoever asks, nothing changes.
    Allow lists OPTIONS too: every known path answers it (issue 15, CORS preflight)."""
    ids = world.fresh_project()
    by_path = {}
    for method, pattern in ROUTES:
        by_path.setdefault(pattern, set()).add(method)
    before = world.db()
    for pattern, allowed in sorted(by_path.items()):
        want_allow = set(allowed) | {"OPTIONS"} | ({"HEAD"} if "GET" in allowed else set())
        for method in METHODS:
            if method in allowed:
                continue
            for role in ("owner", "outsider", "anonymous"):
                r = send(world.client(role), method, fill(pattern, ids), {"name": "x"})
                assert_problem(r, 405, "method_not_allowed")
                allow = {m.strip() for m in r.headers["Allow"].split(",")}
                assert allow == want_allow, (method, pattern, r.headers["Allow"])
    assert world.db() == before


@pytest.mark.parametrize("role, want", [("owner", 409), ("member", 204), ("viewer", 204),
                                        ("outsider", 404), ("admin", 404)])
def test_leaving_a_project(world, role, want):
    """DELETE /members/{own id}: anyone may remove themself, except the owner."""
    ids = world.fresh_project()
    me = world.users[role]
    path = f"/v1/projects/{ids['project']}/members/{me.id}"
    view, before = world.owner_view(ids), world.db()
    r = me.api.delete(path)
    if want == 204:
        assert r.status_code == 204, r.text
        assert_problem(me.api.get(f"/v1/projects/{ids['project']}"), 404, "not_found")
        members = {m["user_id"] for m in world.db()["memberships"]
                   if m["project_id"] == ids["project"]}
        assert me.id not in members and len(members) == 3
        return
    assert_problem(r, want, {409: "conflict", 404: "not_found"}[want])
    assert world.owner_view(ids) == view and world.db() == before
    r = world.anonymous.delete(path)
    assert_problem(r, 401, "unauthenticated")
    assert world.db() == before


def test_admin_is_an_ordinary_user_on_projects(world):
    """An admin sees and manages only the projects they belong to, with their role."""
    ids = world.fresh_project()
    admin = world.users["admin"]
    r = admin.api.post("/v1/projects", json={"name": "Admin's own"})
    assert r.status_code == 201 and r.json()["role"] == "owner"
    own = r.json()["id"]
    r = admin.api.get("/v1/projects")
    assert [p["id"] for p in r.json()["data"]] == [own]
    # Made a viewer of the other project, the admin is a viewer there: 403 for changes.
    owner = world.users["owner"].api
    assert owner.post(f"/v1/projects/{ids['project']}/members",
                      json={"user_id": admin.id, "role": "viewer"}).status_code == 201
    before = world.db()
    assert admin.api.get(f"/v1/projects/{ids['project']}").json()["role"] == "viewer"
    assert_problem(admin.api.patch(f"/v1/projects/{ids['project']}", json={"name": "mine"}),
                   403, "forbidden")
    assert_problem(admin.api.delete(f"/v1/projects/{ids['project']}"), 403, "forbidden")
    assert_problem(admin.api.patch(f"/v1/tasks/{ids['task']}", json={"title": "x"}), 403,
                   "forbidden")
    assert_problem(admin.api.delete(f"/v1/projects/{ids['project']}/members/{ids['target']}"),
                   403, "forbidden")
    assert world.db() == before
