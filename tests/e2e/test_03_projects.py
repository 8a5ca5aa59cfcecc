"""Issue 4 end to end: projects, membership and the activity feed, on every backend.

Projects (create, read with ETag / If-None-Match, merge-patch with If-Match, delete with its
cascade), the caller's project list (role, q filter, keyset pagination with Link headers),
membership (add by id, username or e-mail; roles; ownership transfer; leaving; removal that
unassigns tasks), the per-project event feed (one event per change, seq 1..N without gaps),
and Idempotency-Key on the two POSTs that create.

Each rejected request is checked for its status and problem `code`, and that nothing was
stored or changed: the database is re-read directly. That every change writes its event in
the same transaction is checked by making the event insert fail (a trigger in the database)
and re-reading: the change itself must have been rolled back too.

The permission matrix (every route x every role) is in test_04_authz.py.
"""

import json
import re
import threading
import uuid

import pytest

from harness import assert_problem
from taskkit import IDEMPOTENCY_SQL, db_exec, failing_event_insert

PASSWORD = "correct horse battery staple"
JSON = {"Content-Type": "application/json"}
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
PROJECT_KEYS = {"id", "name", "description", "owner_id", "role", "created_at", "updated_at",
                "version"}
MEMBER_KEYS = {"user", "role", "joined_at"}
# Without "email" and "is_admin": who the admins are is not for other users to see.
PUBLIC_USER_KEYS = {"id", "username", "display_name", "is_active", "created_at"}
EVENT_KEYS = {"seq", "type", "project_id", "actor_id", "created_at", "data"}
PAGE_KEYS = {"data", "next_cursor", "has_more"}


# ---------------------------------------------------------------------------------------
# helpers


class User:
    """A registered user with a logged-in client (`api`)."""

    def __init__(self, base, session):
        self.id = session["user"]["id"]
        self.username = session["user"]["username"]
        self.email = session["user"]["email"]
        self.api = base.with_token(session["access_token"])

    def __repr__(self):
        return f"<User {self.username}>"


@pytest.fixture
def srv(tandem_server):
    return tandem_server()


@pytest.fixture
def users(srv):
    """Factory: users("alice") registers alice and returns her as a logged-in User."""
    base = srv.api()
    made = []

    def make(name):
        r = base.post("/v1/auth/register", json={
            "username": name, "email": f"{name}@example.com", "password": PASSWORD,
            "display_name": name.title()})
        assert r.status_code == 201, r.text
        u = User(base, r.json())
        made.append(u)
        return u

    yield make
    for u in made:
        u.api.close()
    base.close()


def snapshot(store):
    """Every row a project request could change, read directly from the database."""
    return store.query_many({  # one round trip (see StoreTarget.query_many)
        "projects":
            "SELECT id, name, description, owner_id, event_seq, created_at, updated_at, "
            "version FROM projects ORDER BY id",
        "memberships":
            "SELECT project_id, user_id, role, joined_at FROM memberships "
            "ORDER BY project_id, user_id",
        "tasks":
            "SELECT id, project_id, title, description, status, priority_rank, assignee_id, "
            "due_date, created_by, created_at, updated_at, version FROM tasks ORDER BY id",
        "events":
            "SELECT project_id, seq, type, actor_id, created_at, data FROM events "
            "ORDER BY project_id, seq",
        "idempotency_keys": IDEMPOTENCY_SQL,
    })


def member_rows(store, project_id):
    return {r["user_id"]: r["role"] for r in store.query(
        f"SELECT user_id, role FROM memberships WHERE project_id = '{project_id}'")}


def project_row(store, project_id):
    rows = store.query("SELECT id, name, description, owner_id, event_seq, version "
                       f"FROM projects WHERE id = '{project_id}'")
    assert len(rows) <= 1
    return rows[0] if rows else None


def field_errors(body):
    return {(e["field"], e["code"]) for e in body.get("errors", [])}


def fields_of(body):
    return {e["field"] for e in body.get("errors", [])}


def create_project(user, name="Apollo", **extra):
    r = user.api.post("/v1/projects", json={"name": name, **extra})
    assert r.status_code == 201, r.text
    return r.json()


def add_member(owner, project_id, user, role="member"):
    r = owner.api.post(f"/v1/projects/{project_id}/members",
                       json={"user_id": user.id, "role": role})
    assert r.status_code == 201, r.text
    return r.json()


def create_task(user, project_id, title="A task", **extra):
    r = user.api.post(f"/v1/projects/{project_id}/tasks", json={"title": title, **extra})
    assert r.status_code == 201, r.text
    return r.json()


def get_task(user, task_id):
    r = user.api.get(f"/v1/tasks/{task_id}")
    assert r.status_code == 200, r.text
    return r.json()


def all_events(user, project_id, after=0):
    """The project's whole event feed after `after`, walking every page."""
    out = []
    while True:
        r = user.api.get(f"/v1/projects/{project_id}/events", params={"after": after})
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"data", "next_after", "has_more"}, body
        out.extend(body["data"])
        if body["data"]:
            assert body["next_after"] == body["data"][-1]["seq"]
        else:
            assert body["next_after"] == after
        after = body["next_after"]
        if not body["has_more"]:
            return out


def walk(user, path, params=None):
    """Every item of a paginated list, following Link rel="next"; also returns the pages."""
    items, pages = [], []
    r = user.api.get(path, params=params)
    while True:
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == PAGE_KEYS, body
        pages.append(body)
        items.extend(body["data"])
        if not body["has_more"]:
            assert body["next_cursor"] is None
            assert "next" not in r.links, r.headers.get("Link")
            return items, pages
        assert isinstance(body["next_cursor"], str) and body["next_cursor"]
        nxt = r.links["next"]["url"]
        assert nxt.startswith(path), nxt
        r = user.api.get(nxt)


def assert_project(p, *, name, owner, role, version=1, description=""):
    assert set(p) == PROJECT_KEYS, p
    assert p["name"] == name
    assert p["description"] == description
    assert p["owner_id"] == owner.id
    assert p["role"] == role
    assert p["version"] == version
    assert TIMESTAMP.match(p["created_at"]) and TIMESTAMP.match(p["updated_at"]), p
    assert uuid.UUID(p["id"]).version == 7


# ---------------------------------------------------------------------------------------
# create


def test_create_project_makes_the_caller_owner(srv, users):
    alice = users("alice")
    r = alice.api.post("/v1/projects", json={"name": "Apollo", "description": "to the moon"})
    assert r.status_code == 201, r.text
    p = r.json()
    assert_project(p, name="Apollo", owner=alice, role="owner", description="to the moon")
    assert p["created_at"] == p["updated_at"]
    assert r.headers["Location"] == f"/v1/projects/{p['id']}"
    assert r.headers["ETag"] == '"1"'
    assert r.headers["Content-Type"].startswith("application/json")

    # Stored: the project, the caller as its only (owner) member, and event 1.
    assert project_row(srv.store, p["id"]) == {
        "id": p["id"], "name": "Apollo", "description": "to the moon", "owner_id": alice.id,
        "event_seq": 1, "version": 1}
    assert member_rows(srv.store, p["id"]) == {alice.id: "owner"}
    (ev,) = all_events(alice, p["id"])
    assert set(ev) == EVENT_KEYS
    assert ev["seq"] == 1 and ev["type"] == "member.added"
    assert ev["project_id"] == p["id"] and ev["actor_id"] == alice.id
    assert ev["data"]["role"] == "owner" and ev["data"]["user"]["id"] == alice.id
    assert TIMESTAMP.match(ev["created_at"])

    # The same object comes back from GET.
    r = alice.api.get(f"/v1/projects/{p['id']}")
    assert r.status_code == 200 and r.json() == p


def test_create_project_accepts_the_limits(srv, users):
    alice = users("alice")
    for name, desc in [("x", None), ("n" * 100, ""), ("é" * 100, "d" * 5000),
                       ("日本語" * 33 + "x", "ü" * 5000)]:
        body = {"name": name} if desc is None else {"name": name, "description": desc}
        p = create_project(alice, **body)
        assert p["name"] == name and p["description"] == (desc or "")
        assert project_row(srv.store, p["id"])["name"] == name
    # description: null means "none", like absent.
    p = create_project(alice, "nulled", description=None)
    assert p["description"] == ""


@pytest.mark.parametrize("body, expect", [
    ({"name": ""}, {("name", None)}),
    ({"name": "n" * 101}, {("name", "too_long")}),
    ({"name": "é" * 101}, {("name", "too_long")}),
    ({}, {("name", "required")}),
    ({"description": "no name"}, {("name", "required")}),
    ({"name": None}, {("name", None)}),
    ({"name": 5}, {("name", "type")}),
    ({"name": ["Apollo"]}, {("name", "type")}),
    ({"name": "ok", "description": "d" * 5001}, {("description", "too_long")}),
    ({"name": "ok", "description": 7}, {("description", "type")}),
    ({"name": "ok", "color": "red"}, {("color", "unknown_field")}),
    ({"name": "ok", "owner_id": "0190a0f6-0000-7000-8000-000000000000"},
     {("owner_id", "read_only")}),
    ({"name": "ok", "version": 7}, {("version", "read_only")}),
    ({"name": "ok", "id": "0190a0f6-0000-7000-8000-000000000000"}, {("id", "read_only")}),
    ({"name": "ok", "role": "viewer"}, {("role", "read_only")}),
    ({"name": "ok", "created_at": "2024-01-15T14:30:00.000Z"}, {("created_at", "read_only")}),
    ({"name": "", "owner_id": "x", "color": 1},
     {("name", None), ("owner_id", "read_only"), ("color", "unknown_field")}),
])
def test_create_project_rejects_invalid_fields(srv, users, body, expect):
    alice = users("alice")
    before = snapshot(srv.store)
    r = alice.api.post("/v1/projects", json=body)
    problem = assert_problem(r, 422, "validation_failed")
    # One entry per field; the code is checked where it is unambiguous.
    assert fields_of(problem) == {f for f, _ in expect}, problem
    assert len(problem["errors"]) == len(expect), problem
    for field, code in expect:
        if code:
            assert (field, code) in field_errors(problem), problem
    assert "Location" not in r.headers
    assert snapshot(srv.store) == before


def test_create_project_rejects_bad_bodies(srv, users):
    alice = users("alice")
    good = json.dumps({"name": "Apollo"}).encode()
    before = snapshot(srv.store)
    cases = [
        (good, {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
        (good, {"Content-Type": "application/x-www-form-urlencoded"}, 415,
         "unsupported_media_type"),
        (good, {}, 415, "unsupported_media_type"),
        (b'{"name": "Apollo"', JSON, 400, "malformed_json"),
        (b"{'name': 'Apollo'}", JSON, 400, "malformed_json"),
        (b'{"name": "a", "name": "b"}', JSON, 400, "malformed_json"),
        (b"", JSON, 400, "malformed_json"),
        (b"[]", JSON, 422, "validation_failed"),
    ]
    for data, headers, status, code in cases:
        r = alice.api.post("/v1/projects", data=data, headers=headers)
        assert_problem(r, status, code)
        assert snapshot(srv.store) == before, (data, headers)
    assert before["projects"] == []
    r = alice.api.post("/v1/projects", data=good, headers=JSON)
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("data", [b'"Apollo"', b"42", b"null", b"true"])
def test_create_project_rejects_json_that_is_not_an_object(srv, users, data):
    # Well-formed JSON of the wrong type is a 422 like any wrong type, not malformed (400).
    alice = users("alice")
    r = alice.api.post("/v1/projects", data=data, headers=JSON)
    assert_problem(r, 422, "validation_failed")
    assert snapshot(srv.store)["projects"] == []


# ---------------------------------------------------------------------------------------
# read, update, delete


def test_get_project_etag_and_if_none_match(srv, users):
    alice = users("alice")
    p = create_project(alice)
    url = f"/v1/projects/{p['id']}"
    r = alice.api.get(url)
    assert r.status_code == 200 and r.headers["ETag"] == '"1"'
    for inm in ('"1"', 'W/"1"', '"7", "1"', "*"):
        r = alice.api.get(url, headers={"If-None-Match": inm})
        assert r.status_code == 304, (inm, r.text)
        assert r.content == b"" and r.headers["ETag"] == '"1"'
    r = alice.api.get(url, headers={"If-None-Match": '"2"'})
    assert r.status_code == 200 and r.json() == p

    r = alice.api.patch(url, json={"name": "Apollo 2"})
    assert r.status_code == 200 and r.headers["ETag"] == '"2"'
    r = alice.api.get(url, headers={"If-None-Match": '"1"'})
    assert r.status_code == 200 and r.json()["version"] == 2
    assert r.headers["ETag"] == '"2"'
    assert alice.api.get(url, headers={"If-None-Match": '"2"'}).status_code == 304

    # An id that is not a UUID, or no such project: 404, the same way.
    for bad in ("not-a-uuid", str(uuid.uuid4()), p["id"] + "0"):
        assert_problem(alice.api.get(f"/v1/projects/{bad}"), 404, "not_found")


def test_patch_project_is_a_merge_patch_with_an_event(srv, users):
    alice = users("alice")
    p = create_project(alice, "Apollo", description="first")
    url = f"/v1/projects/{p['id']}"

    r = alice.api.patch(url, json={"name": "Gemini"})
    assert r.status_code == 200, r.text
    q = r.json()
    assert_project(q, name="Gemini", owner=alice, role="owner", version=2,
                   description="first")
    assert q["id"] == p["id"] and q["created_at"] == p["created_at"]
    assert r.headers["ETag"] == '"2"'
    assert alice.api.get(url).json() == q

    r = alice.api.patch(url, json={"description": None})  # null clears a nullable field
    assert r.status_code == 200 and r.json()["description"] == ""
    assert r.json()["name"] == "Gemini" and r.json()["version"] == 3
    r = alice.api.patch(url, json={"description": "third", "name": "Mercury"})
    assert r.status_code == 200 and r.json()["version"] == 4

    row = project_row(srv.store, p["id"])
    assert (row["name"], row["description"], row["version"]) == ("Mercury", "third", 4)

    # One project.updated per change, holding the project after the change (no `role`:
    # the feed is the same for every member).
    evs = [e for e in all_events(alice, p["id"]) if e["type"] == "project.updated"]
    assert [e["seq"] for e in evs] == [2, 3, 4]
    assert [(e["data"]["name"], e["data"]["description"], e["data"]["version"])
            for e in evs] == [("Gemini", "first", 2), ("Gemini", "", 3), ("Mercury", "third", 4)]
    for e in evs:
        assert e["actor_id"] == alice.id and e["project_id"] == p["id"]
        assert "role" not in e["data"]
        assert e["data"]["id"] == p["id"] and e["data"]["owner_id"] == alice.id


def test_patch_project_that_changes_nothing_writes_nothing(srv, users):
    """As for tasks: {} or the values the project already has make no version and no event."""
    alice = users("alice")
    p = create_project(alice, "Apollo", description="first")
    url = f"/v1/projects/{p['id']}"
    before = snapshot(srv.store)
    for body in ({}, {"name": "Apollo"}, {"description": "first"},
                 {"name": "Apollo", "description": "first"}):
        r = alice.api.patch(url, json=body)
        assert r.status_code == 200, r.text
        assert r.json() == p, body
        assert r.headers["ETag"] == '"1"'
    assert snapshot(srv.store) == before
    assert [e["type"] for e in all_events(alice, p["id"])] == ["member.added"]
    # A real change after them is version 2 and the second event.
    r = alice.api.patch(url, json={"name": "Gemini"})
    assert r.status_code == 200 and r.json()["version"] == 2
    assert [e["seq"] for e in all_events(alice, p["id"])] == [1, 2]


@pytest.mark.parametrize("body, fields", [
    ({"name": ""}, {"name"}),
    ({"name": "n" * 101}, {"name"}),
    ({"name": None}, {"name"}),
    ({"name": 1}, {"name"}),
    ({"description": "d" * 5001}, {"description"}),
    ({"owner_id": "0190a0f6-0000-7000-8000-000000000000"}, {"owner_id"}),
    ({"version": 9}, {"version"}),
    ({"id": "0190a0f6-0000-7000-8000-000000000000"}, {"id"}),
    ({"role": "viewer"}, {"role"}),
    ({"updated_at": "2024-01-15T14:30:00.000Z"}, {"updated_at"}),
    ({"color": "red"}, {"color"}),
    ({"name": "fine", "owner_id": "x"}, {"owner_id"}),  # nothing applies if one field fails
])
def test_patch_project_rejects_invalid_fields(srv, users, body, fields):
    alice = users("alice")
    p = create_project(alice)
    before = snapshot(srv.store)
    r = alice.api.patch(f"/v1/projects/{p['id']}", json=body)
    problem = assert_problem(r, 422, "validation_failed")
    assert fields_of(problem) == fields, problem
    assert snapshot(srv.store) == before
    assert alice.api.get(f"/v1/projects/{p['id']}").json() == p


def test_patch_project_rejects_bad_bodies(srv, users):
    alice = users("alice")
    p = create_project(alice)
    url = f"/v1/projects/{p['id']}"
    before = snapshot(srv.store)
    good = json.dumps({"name": "Renamed"}).encode()
    for data, headers, status, code in [
        (good, {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
        (good, {}, 415, "unsupported_media_type"),
        (b'{"name": ', JSON, 400, "malformed_json"),
        (b"", JSON, 400, "malformed_json"),
        (b"[1]", JSON, 422, "validation_failed"),
    ]:
        assert_problem(alice.api.patch(url, data=data, headers=headers), status, code)
        assert snapshot(srv.store) == before
    assert alice.api.patch(url, data=good, headers=JSON).status_code == 200


def test_patch_project_if_match(srv, users):
    alice = users("alice")
    p = create_project(alice)
    url = f"/v1/projects/{p['id']}"
    r = alice.api.patch(url, json={"name": "v2"}, headers={"If-Match": '"1"'})
    assert r.status_code == 200 and r.json()["version"] == 2, r.text
    before = snapshot(srv.store)
    # Stale, weak (never matches If-Match: RFC 9110 13.1.1) or nonsense If-Match: 412 with
    # the current ETag, and nothing changes, no event.
    for im in ('"1"', '"3"', 'W/"1"', 'W/"2"', "1", '"abc"', '"1", "3"'):
        r = alice.api.patch(url, json={"name": "lost update"}, headers={"If-Match": im})
        assert_problem(r, 412, "precondition_failed")
        assert r.headers["ETag"] == '"2"', (im, r.headers)
        assert snapshot(srv.store) == before, im
    assert alice.api.get(url).json()["name"] == "v2"
    # The current ETag, alone or in a list, or *, goes through.
    r = alice.api.patch(url, json={"name": "v3"}, headers={"If-Match": '"2"'})
    assert r.status_code == 200 and r.json()["version"] == 3
    r = alice.api.patch(url, json={"name": "v4"}, headers={"If-Match": "*"})
    assert r.status_code == 200 and r.json()["version"] == 4
    r = alice.api.patch(url, json={"name": "v5"}, headers={"If-Match": '"1", "4"'})
    assert r.status_code == 200 and r.json()["version"] == 5


def test_delete_project_if_match_and_cascade(srv, users):
    alice, bob = users("alice"), users("bob")
    p = create_project(alice, "Doomed")
    keep = create_project(alice, "Kept")
    add_member(alice, p["id"], bob)
    add_member(alice, keep["id"], bob)
    for pid in (p["id"], keep["id"]):
        create_task(alice, pid, "t1", assignee_id=bob.id)
        create_task(bob, pid, "t2")
    url = f"/v1/projects/{p['id']}"

    before = snapshot(srv.store)
    for im in ('"2"', '"0"', "junk", 'W/"1"'):
        r = alice.api.delete(url, headers={"If-Match": im})
        assert_problem(r, 412, "precondition_failed")
        assert r.headers["ETag"] == '"1"', (im, r.headers)
        assert snapshot(srv.store) == before
    r = alice.api.delete(url, headers={"If-Match": '"1"'})
    assert r.status_code == 204 and r.content == b""

    # Gone for everyone, with its tasks, memberships and events; the other project stays.
    assert_problem(alice.api.get(url), 404, "not_found")
    assert_problem(bob.api.get(url), 404, "not_found")
    assert_problem(alice.api.get(f"{url}/events"), 404, "not_found")
    assert_problem(alice.api.delete(url), 404, "not_found")
    after = snapshot(srv.store)
    for table in ("projects", "memberships", "tasks", "events"):
        assert all(row.get("project_id", row.get("id")) != p["id"] for row in after[table]), \
            (table, after[table])
        kept = [row for row in before[table] if row.get("project_id", row.get("id")) != p["id"]]
        assert after[table] == kept, table
    assert {t["title"] for t in walk(alice, "/v1/tasks")[0]} == {"t1", "t2"}
    assert [x["id"] for x in walk(bob, "/v1/projects")[0]] == [keep["id"]]

    # Without If-Match the delete is unconditional.
    r = alice.api.delete(f"/v1/projects/{keep['id']}")
    assert r.status_code == 204
    assert snapshot(srv.store) == {"projects": [], "memberships": [], "tasks": [],
                                   "events": [], "idempotency_keys": []}


# ---------------------------------------------------------------------------------------
# list


def test_list_shows_only_the_callers_projects_with_their_role(srv, users):
    alice, bob, carol = users("alice"), users("bob"), users("carol")
    a1 = create_project(alice, "Alice one")
    a2 = create_project(alice, "Alice two")
    b1 = create_project(bob, "Bob one")
    add_member(alice, a1["id"], bob, "member")
    add_member(alice, a2["id"], bob, "viewer")

    items, _ = walk(bob, "/v1/projects")
    assert {p["id"]: p["role"] for p in items} == {
        a1["id"]: "member", a2["id"]: "viewer", b1["id"]: "owner"}
    for p in items:
        assert set(p) == PROJECT_KEYS
    # Newest first (ids are time-ordered), each once.
    assert [p["id"] for p in items] == [b1["id"], a2["id"], a1["id"]]
    by_id = {p["id"]: p for p in items}
    assert by_id[a1["id"]]["owner_id"] == alice.id and by_id[a1["id"]]["name"] == "Alice one"

    items, _ = walk(alice, "/v1/projects")
    assert {p["id"]: p["role"] for p in items} == {a1["id"]: "owner", a2["id"]: "owner"}
    assert walk(carol, "/v1/projects")[0] == []


def test_list_q_filters_by_name(srv, users):
    alice, bob = users("alice"), users("bob")
    names = ["Apollo Launch", "apollo-docs", "Gemini", "100% done", "under_score",
             "back\\slash", "Ünïcode"]
    ids = {n: create_project(alice, n)["id"] for n in names}
    create_project(bob, "Apollo secret")  # never Alice's

    def names_for(q):
        return sorted(p["name"] for p in walk(alice, "/v1/projects", {"q": q})[0])

    assert names_for("apollo") == ["Apollo Launch", "apollo-docs"]
    assert names_for("APOLLO") == ["Apollo Launch", "apollo-docs"]
    assert names_for("launch") == ["Apollo Launch"]
    assert names_for("o-d") == ["apollo-docs"]
    # LIKE's metacharacters are literal characters here.
    assert names_for("%") == ["100% done"]
    assert names_for("_") == ["under_score"]
    assert names_for("\\") == ["back\\slash"]
    assert names_for("Ünï") == ["Ünïcode"]
    assert names_for("nothing like it") == []
    assert names_for("") == sorted(names)
    # The filter holds across pages, and the Link keeps it.
    items, pages = walk(alice, "/v1/projects", {"q": "apollo", "limit": 1})
    assert sorted(p["name"] for p in items) == ["Apollo Launch", "apollo-docs"]
    assert len(pages) == 2
    assert set(ids.values()) >= {p["id"] for p in items}
    r = alice.api.get("/v1/projects", params={"q": "q" * 101})
    assert fields_of(assert_problem(r, 422, "validation_failed")) == {"q"}


def test_list_pagination_walk_with_link_headers(srv, users):
    alice, bob = users("alice"), users("bob")
    made = [create_project(alice, f"P{i}")["id"] for i in range(3)]
    create_project(bob, "not Alice's")

    r = alice.api.get("/v1/projects", params={"limit": 1})
    assert r.status_code == 200
    body = r.json()
    assert len(body["data"]) == 1 and body["has_more"] is True
    link = r.headers["Link"]
    assert link.endswith('; rel="next"') and link.startswith("</v1/projects?"), link
    assert "limit=1" in r.links["next"]["url"]

    items, pages = walk(alice, "/v1/projects", {"limit": 1})
    assert [len(pg["data"]) for pg in pages] == [1, 1, 1]
    assert [p["id"] for p in items] == list(reversed(made))  # each once, newest first
    # The cursor from the body works the same way as the Link.
    r2 = alice.api.get("/v1/projects", params={"limit": 1, "cursor": body["next_cursor"]})
    assert r2.json()["data"][0]["id"] == made[1]

    items, pages = walk(alice, "/v1/projects", {"limit": 2})
    assert [len(pg["data"]) for pg in pages] == [2, 1]
    assert [p["id"] for p in items] == list(reversed(made))
    items, pages = walk(alice, "/v1/projects", {"limit": 3})
    assert len(pages) == 1 and len(items) == 3

    # Keyset: a cursor stays valid while rows come and go. Take page 1, then delete the
    # project page 2 would have shown and add a new one (newer, so before the cursor).
    r = alice.api.get("/v1/projects", params={"limit": 1})
    first = r.json()["data"][0]["id"]
    assert alice.api.delete(f"/v1/projects/{made[1]}").status_code == 204
    newest = create_project(alice, "P3")["id"]
    rest, _ = walk(alice, r.links["next"]["url"])
    assert first == made[2]
    assert [p["id"] for p in rest] == [made[0]]
    assert [p["id"] for p in walk(alice, "/v1/projects", {"limit": 1})[0]] == \
        [newest, made[2], made[0]]


def test_list_rejects_bad_limit_and_cursor(srv, users):
    alice = users("alice")
    create_project(alice)
    for limit in ("0", "201", "-1", "abc", "1.5", ""):
        r = alice.api.get("/v1/projects", params={"limit": limit})
        assert fields_of(assert_problem(r, 422, "validation_failed")) == {"limit"}, limit
    assert len(alice.api.get("/v1/projects", params={"limit": 200}).json()["data"]) == 1
    for cursor in ("garbage", "AAAA", "eyJ4IjoxfQ"):
        r = alice.api.get("/v1/projects", params={"cursor": cursor})
        assert_problem(r, 400, "bad_request")


# ---------------------------------------------------------------------------------------
# members


def test_member_list(srv, users):
    alice, bob, carol = users("alice"), users("bob"), users("carol")
    p = create_project(alice)
    add_member(alice, p["id"], bob, "member")
    add_member(alice, p["id"], carol, "viewer")
    for who in (alice, bob, carol):
        items, _ = walk(who, f"/v1/projects/{p['id']}/members")
        assert {m["user"]["id"]: m["role"] for m in items} == {
            alice.id: "owner", bob.id: "member", carol.id: "viewer"}
        for m in items:
            assert set(m) == MEMBER_KEYS, m
            assert TIMESTAMP.match(m["joined_at"])
            # A public user object: no e-mail address of another user.
            assert PUBLIC_USER_KEYS <= set(m["user"]) <= PUBLIC_USER_KEYS | {"email"}
            if m["user"]["id"] != who.id:
                assert "email" not in m["user"], m
        by = {m["user"]["id"]: m["user"] for m in items}
        assert by[bob.id]["username"] == "bob" and by[bob.id]["display_name"] == "Bob"
    # Paginated like every list.
    items, pages = walk(alice, f"/v1/projects/{p['id']}/members", {"limit": 1})
    assert len(pages) == 3
    assert sorted(m["user"]["id"] for m in items) == sorted([alice.id, bob.id, carol.id])


def test_add_member_by_id_username_or_email(srv, users):
    alice, bob, carol, dave = users("alice"), users("bob"), users("carol"), users("dave")
    p = create_project(alice)
    url = f"/v1/projects/{p['id']}/members"

    r = alice.api.post(url, json={"user_id": bob.id, "role": "viewer"})
    assert r.status_code == 201, r.text
    m = r.json()
    assert set(m) == MEMBER_KEYS and m["role"] == "viewer" and m["user"]["id"] == bob.id
    assert "email" not in m["user"]
    assert r.headers["Location"] == f"{url}/{bob.id}"
    r = alice.api.post(url, json={"username": "CAROL", "role": "member"})
    assert r.status_code == 201 and r.json()["user"]["id"] == carol.id, r.text
    r = alice.api.post(url, json={"email": "Dave@Example.COM", "role": "member"})
    assert r.status_code == 201 and r.json()["user"]["id"] == dave.id, r.text

    assert member_rows(srv.store, p["id"]) == {
        alice.id: "owner", bob.id: "viewer", carol.id: "member", dave.id: "member"}
    evs = all_events(alice, p["id"], after=1)
    assert [(e["seq"], e["type"], e["data"]["user"]["id"], e["data"]["role"]) for e in evs] == [
        (2, "member.added", bob.id, "viewer"), (3, "member.added", carol.id, "member"),
        (4, "member.added", dave.id, "member")]
    assert all(e["actor_id"] == alice.id for e in evs)
    # The new members see the project, with their role.
    assert bob.api.get(f"/v1/projects/{p['id']}").json()["role"] == "viewer"
    assert carol.api.get(f"/v1/projects/{p['id']}").json()["role"] == "member"


def test_add_existing_member_conflicts(srv, users):
    alice, bob = users("alice"), users("bob")
    p = create_project(alice)
    add_member(alice, p["id"], bob, "viewer")
    url = f"/v1/projects/{p['id']}/members"
    before = snapshot(srv.store)
    for body in ({"user_id": bob.id, "role": "member"}, {"username": "bob", "role": "viewer"},
                 {"email": "bob@example.com", "role": "member"},
                 {"user_id": alice.id, "role": "member"}):  # the owner is a member too
        assert_problem(alice.api.post(url, json=body), 409, "conflict")
        assert snapshot(srv.store) == before, body
    assert member_rows(srv.store, p["id"])[bob.id] == "viewer"


def test_add_unknown_user_is_404(srv, users):
    alice, bob = users("alice"), users("bob")
    p = create_project(alice)
    url = f"/v1/projects/{p['id']}/members"
    gone = users("gone")
    false = "false" if srv.backend == "postgres" else "0"
    db_exec(srv.store, f"UPDATE users SET is_active = {false} WHERE id = '{gone.id}'")
    before = snapshot(srv.store)
    for body in ({"user_id": str(uuid.uuid4()), "role": "member"},
                 {"user_id": p["id"], "role": "member"},  # a project id is not a user id
                 {"username": "nobody", "role": "member"},
                 {"email": "nobody@example.com", "role": "member"},
                 {"username": "bob@example.com", "role": "member"},  # an e-mail is not a username
                 {"email": "bob", "role": "member"},  # nor a username an e-mail
                 {"user_id": gone.id, "role": "member"},  # deactivated accounts are not found
                 {"username": "gone", "role": "member"}):
        r = alice.api.post(url, json=body)
        assert_problem(r, 404, "not_found")
        assert snapshot(srv.store) == before, body
    add_member(alice, p["id"], bob)


@pytest.mark.parametrize("body, fields", [
    ({"user_id": "{bob}", "role": "admin"}, {"role"}),
    ({"user_id": "{bob}", "role": "owner"}, {"role"}),  # ownership only moves by transfer
    ({"user_id": "{bob}", "role": "Member"}, {"role"}),
    ({"user_id": "{bob}", "role": 1}, {"role"}),
    ({"user_id": "{bob}", "role": None}, {"role"}),
    ({"user_id": "not-a-uuid", "role": "member"}, {"user_id"}),
    ({"user_id": 5, "role": "member"}, {"user_id"}),
    ({"role": "member"}, None),  # who?
    ({"user_id": "{bob}", "username": "bob", "role": "member"}, None),  # exactly one
    ({"user_id": "{bob}", "role": "member", "joined_at": "2024-01-15T14:30:00.000Z"},
     {"joined_at"}),
    ({"user_id": "{bob}", "role": "member", "project_id": "x"}, {"project_id"}),
])
def test_add_member_rejects_invalid_bodies(srv, users, body, fields):
    alice, bob = users("alice"), users("bob")
    p = create_project(alice)
    body = {k: (bob.id if v == "{bob}" else v) for k, v in body.items()}
    before = snapshot(srv.store)
    r = alice.api.post(f"/v1/projects/{p['id']}/members", json=body)
    problem = assert_problem(r, 422, "validation_failed")
    assert problem["errors"], problem
    if fields is not None:
        assert fields_of(problem) == fields, problem
    assert snapshot(srv.store) == before


def test_change_member_role(srv, users):
    alice, bob, carol = users("alice"), users("bob"), users("carol")
    p = create_project(alice)
    add_member(alice, p["id"], bob, "member")
    add_member(alice, p["id"], carol, "viewer")
    url = f"/v1/projects/{p['id']}/members/{bob.id}"

    r = alice.api.patch(url, json={"role": "viewer"})
    assert r.status_code == 200, r.text
    assert r.json()["role"] == "viewer" and r.json()["user"]["id"] == bob.id
    assert member_rows(srv.store, p["id"])[bob.id] == "viewer"
    # Now a viewer: may not create tasks.
    assert_problem(bob.api.post(f"/v1/projects/{p['id']}/tasks", json={"title": "x"}), 403,
                   "forbidden")
    r = alice.api.patch(url, json={"role": "member"})
    assert r.status_code == 200 and r.json()["role"] == "member"
    create_task(bob, p["id"])
    evs = [e for e in all_events(alice, p["id"]) if e["type"] == "member.updated"]
    assert [(e["data"]["user"]["id"], e["data"]["role"]) for e in evs] == [
        (bob.id, "viewer"), (bob.id, "member")]

    # Invalid roles and bodies: 422, nothing changes.
    before = snapshot(srv.store)
    for body in ({"role": "admin"}, {"role": None}, {"role": 3}, {}, {"role": "member", "x": 1},
                 {"role": "member", "joined_at": "2024-01-15T14:30:00.000Z"}):
        problem = assert_problem(alice.api.patch(url, json=body), 422, "validation_failed")
        assert problem["errors"], problem
        assert snapshot(srv.store) == before, body
    # Not a member of this project (or no such user, or not a UUID): 404.
    dave = users("dave")
    for who in (dave.id, str(uuid.uuid4()), "not-a-uuid"):
        r = alice.api.patch(f"/v1/projects/{p['id']}/members/{who}", json={"role": "viewer"})
        assert_problem(r, 404, "not_found")
        r = alice.api.delete(f"/v1/projects/{p['id']}/members/{who}")
        assert_problem(r, 404, "not_found")
    assert snapshot(srv.store) == before


def test_transfer_ownership(srv, users):
    alice, bob, carol = users("alice"), users("bob"), users("carol")
    p = create_project(alice)
    add_member(alice, p["id"], bob, "member")
    add_member(alice, p["id"], carol, "viewer")
    purl = f"/v1/projects/{p['id']}"
    seq_before = project_row(srv.store, p["id"])["event_seq"]

    r = alice.api.patch(f"{purl}/members/{bob.id}", json={"role": "owner"})
    assert r.status_code == 200, r.text
    assert r.json()["role"] == "owner" and r.json()["user"]["id"] == bob.id

    # Exactly one owner; the old owner became a member.
    assert member_rows(srv.store, p["id"]) == {
        alice.id: "member", bob.id: "owner", carol.id: "viewer"}
    assert project_row(srv.store, p["id"])["owner_id"] == bob.id
    assert bob.api.get(purl).json()["role"] == "owner"
    assert bob.api.get(purl).json()["owner_id"] == bob.id
    assert alice.api.get(purl).json()["role"] == "member"

    # Two member.updated events, in the same commit: the new owner and the old one.
    evs = all_events(alice, p["id"], after=seq_before)
    assert [e["type"] for e in evs] == ["member.updated", "member.updated"]
    assert [e["seq"] for e in evs] == [seq_before + 1, seq_before + 2]
    assert {(e["data"]["user"]["id"], e["data"]["role"]) for e in evs} == {
        (bob.id, "owner"), (alice.id, "member")}
    assert all(e["actor_id"] == alice.id for e in evs)

    # The powers moved with it.
    assert_problem(alice.api.patch(purl, json={"name": "mine"}), 403, "forbidden")
    assert_problem(alice.api.patch(f"{purl}/members/{carol.id}", json={"role": "member"}),
                   403, "forbidden")
    assert_problem(alice.api.delete(purl), 403, "forbidden")
    assert bob.api.patch(purl, json={"name": "Bob's now"}).status_code == 200

    # A viewer can be made owner too; a non-member cannot.
    dave = users("dave")
    before = snapshot(srv.store)
    r = bob.api.patch(f"{purl}/members/{dave.id}", json={"role": "owner"})
    assert_problem(r, 404, "not_found")
    assert snapshot(srv.store) == before
    r = bob.api.patch(f"{purl}/members/{carol.id}", json={"role": "owner"})
    assert r.status_code == 200, r.text
    assert member_rows(srv.store, p["id"]) == {
        alice.id: "member", bob.id: "member", carol.id: "owner"}

    # The old owners may leave now.
    assert alice.api.delete(f"{purl}/members/{alice.id}").status_code == 204
    assert bob.api.delete(f"{purl}/members/{bob.id}").status_code == 204
    assert member_rows(srv.store, p["id"]) == {carol.id: "owner"}


def test_owner_cannot_leave_be_removed_or_demoted(srv, users):
    alice, bob, carol = users("alice"), users("bob"), users("carol")
    p = create_project(alice)
    add_member(alice, p["id"], bob, "member")
    add_member(alice, p["id"], carol, "viewer")
    murl = f"/v1/projects/{p['id']}/members/{alice.id}"
    before = snapshot(srv.store)

    assert_problem(alice.api.delete(murl), 409, "conflict")  # leaving: transfer first
    for role in ("member", "viewer"):
        assert_problem(alice.api.patch(murl, json={"role": role}), 409, "conflict")
    assert_problem(bob.api.delete(murl), 403, "forbidden")
    assert_problem(carol.api.delete(murl), 403, "forbidden")
    assert_problem(bob.api.patch(murl, json={"role": "member"}), 403, "forbidden")
    assert snapshot(srv.store) == before
    assert member_rows(srv.store, p["id"])[alice.id] == "owner"
    # Making the owner owner again changes nothing and records nothing.
    r = alice.api.patch(murl, json={"role": "owner"})
    assert r.status_code == 200 and r.json()["role"] == "owner"
    assert snapshot(srv.store) == before


def test_members_and_viewers_may_leave_but_not_remove_others(srv, users):
    alice, bob, carol, dave = users("alice"), users("bob"), users("carol"), users("dave")
    p = create_project(alice)
    add_member(alice, p["id"], bob, "member")
    add_member(alice, p["id"], carol, "viewer")
    add_member(alice, p["id"], dave, "member")
    eve = users("eve")
    base = f"/v1/projects/{p['id']}/members"
    before = snapshot(srv.store)

    for actor, target in [(carol, bob), (carol, dave), (bob, carol), (bob, dave)]:
        assert_problem(actor.api.delete(f"{base}/{target.id}"), 403, "forbidden")
        assert_problem(actor.api.patch(f"{base}/{target.id}", json={"role": "viewer"}), 403,
                       "forbidden")
        assert_problem(actor.api.post(base, json={"user_id": eve.id, "role": "member"}), 403,
                       "forbidden")
        assert snapshot(srv.store) == before
    # Nor may they change their own role.
    assert_problem(carol.api.patch(f"{base}/{carol.id}", json={"role": "member"}), 403,
                   "forbidden")

    # Leaving: 204, then the project is invisible to them.
    seq = project_row(srv.store, p["id"])["event_seq"]
    assert carol.api.delete(f"{base}/{carol.id}").status_code == 204
    assert bob.api.delete(f"{base}/{bob.id}").status_code == 204
    assert member_rows(srv.store, p["id"]) == {alice.id: "owner", dave.id: "member"}
    for gone in (bob, carol):
        assert_problem(gone.api.get(f"/v1/projects/{p['id']}"), 404, "not_found")
        assert_problem(gone.api.delete(f"{base}/{gone.id}"), 404, "not_found")
        assert walk(gone, "/v1/projects")[0] == []
    evs = all_events(alice, p["id"], after=seq)
    assert [(e["type"], e["actor_id"], e["data"]["user"]["id"]) for e in evs] == [
        ("member.removed", carol.id, carol.id), ("member.removed", bob.id, bob.id)]
    # The owner removes others.
    assert alice.api.delete(f"{base}/{dave.id}").status_code == 204
    assert member_rows(srv.store, p["id"]) == {alice.id: "owner"}


def test_removing_a_member_unassigns_their_tasks(srv, users):
    alice, bob, carol = users("alice"), users("bob"), users("carol")
    p = create_project(alice, "P")
    other = create_project(alice, "Other")
    for pid in (p["id"], other["id"]):
        add_member(alice, pid, bob)
        add_member(alice, pid, carol)
    t1 = create_task(alice, p["id"], "t1", assignee_id=bob.id)
    t2 = create_task(carol, p["id"], "t2", assignee_id=bob.id, status="in_progress")
    t3 = create_task(alice, p["id"], "t3", assignee_id=carol.id)
    t4 = create_task(alice, p["id"], "t4")
    t5 = create_task(alice, other["id"], "t5", assignee_id=bob.id)
    seq = project_row(srv.store, p["id"])["event_seq"]
    other_before = [r for r in snapshot(srv.store)["tasks"] if r["project_id"] == other["id"]]

    r = alice.api.delete(f"/v1/projects/{p['id']}/members/{bob.id}")
    assert r.status_code == 204, r.text

    for t in (t1, t2):
        now = get_task(alice, t["id"])
        assert now["assignee_id"] is None
        assert now["version"] == t["version"] + 1
        assert now["title"] == t["title"] and now["status"] == t["status"]
    assert get_task(alice, t3["id"]) == t3
    assert get_task(alice, t4["id"]) == t4
    # Only in that project: Bob's task elsewhere is untouched.
    assert get_task(alice, t5["id"])["assignee_id"] == bob.id
    assert [r for r in snapshot(srv.store)["tasks"] if r["project_id"] == other["id"]] == \
        other_before
    assert_problem(bob.api.get(f"/v1/tasks/{t1['id']}"), 404, "not_found")

    # One task.updated per unassigned task and the member.removed, all in one commit.
    evs = all_events(alice, p["id"], after=seq)
    assert [e["seq"] for e in evs] == [seq + 1, seq + 2, seq + 3]
    assert sorted(e["type"] for e in evs) == ["member.removed", "task.updated", "task.updated"]
    updates = {e["data"]["id"]: e for e in evs if e["type"] == "task.updated"}
    assert set(updates) == {t1["id"], t2["id"]}
    for e in updates.values():
        assert e["data"]["changes"] == {"assignee_id": [bob.id, None]}
        assert e["data"]["assignee_id"] is None and e["actor_id"] == alice.id
    (removed,) = [e for e in evs if e["type"] == "member.removed"]
    assert removed["data"]["user"]["id"] == bob.id and removed["data"]["role"] == "member"

    # Leaving oneself unassigns the same way.
    assert carol.api.delete(f"/v1/projects/{p['id']}/members/{carol.id}").status_code == 204
    assert get_task(alice, t3["id"])["assignee_id"] is None
    assert get_task(alice, t5["id"])["assignee_id"] == bob.id


def test_demoting_a_member_to_viewer_unassigns_their_tasks(srv, users):
    """A viewer cannot change tasks, so keeps none (issue 15): as on removal, one commit,
    one task.updated per task, then the member.updated; only in that project; idempotent."""
    alice, bob, carol = users("alice"), users("bob"), users("carol")
    p = create_project(alice, "P")
    other = create_project(alice, "Other")
    for pid in (p["id"], other["id"]):
        add_member(alice, pid, bob)
        add_member(alice, pid, carol)
    t1 = create_task(alice, p["id"], "t1", assignee_id=bob.id)
    t2 = create_task(carol, p["id"], "t2", assignee_id=carol.id)
    t3 = create_task(alice, other["id"], "t3", assignee_id=bob.id)
    seq = project_row(srv.store, p["id"])["event_seq"]

    url = f"/v1/projects/{p['id']}/members/{bob.id}"
    r = alice.api.patch(url, json={"role": "viewer"})
    assert r.status_code == 200 and r.json()["role"] == "viewer", r.text
    now = get_task(alice, t1["id"])
    assert now["assignee_id"] is None and now["version"] == t1["version"] + 1
    assert now["title"] == t1["title"]
    assert get_task(alice, t2["id"]) == t2
    assert get_task(alice, t3["id"])["assignee_id"] == bob.id
    evs = all_events(alice, p["id"], after=seq)
    assert [(e["seq"], e["type"]) for e in evs] == [(seq + 1, "task.updated"),
                                                    (seq + 2, "member.updated")]
    assert evs[0]["data"]["id"] == t1["id"] and evs[0]["actor_id"] == alice.id
    assert evs[0]["data"]["changes"] == {"assignee_id": [bob.id, None]}
    assert evs[1]["data"]["user"]["id"] == bob.id and evs[1]["data"]["role"] == "viewer"

    # Again: nothing changes, nothing is recorded. Nor can the viewer be given a task back.
    before = snapshot(srv.store)
    assert alice.api.patch(url, json={"role": "viewer"}).status_code == 200
    r = alice.api.patch(f"/v1/tasks/{t1['id']}", json={"assignee_id": bob.id})
    assert field_errors(assert_problem(r, 422, "validation_failed")) == \
        {("assignee_id", "viewer_cannot_be_assigned")}
    assert snapshot(srv.store) == before
    # Made a member again, the tasks stay unassigned; the member may take one.
    assert alice.api.patch(url, json={"role": "member"}).status_code == 200
    assert get_task(alice, t1["id"])["assignee_id"] is None
    r = alice.api.patch(f"/v1/tasks/{t1['id']}", json={"assignee_id": bob.id})
    assert r.status_code == 200 and r.json()["assignee_id"] == bob.id


def run_together(calls):
    """Run the calls from threads released at the same moment; their responses, in order."""
    barrier = threading.Barrier(len(calls))
    out = [None] * len(calls)

    def go(i):
        barrier.wait()
        out[i] = calls[i]()

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def assert_one_owner(store, project_id):
    """Exactly one owner membership, and it is the project's owner_id; returns its id."""
    roles = member_rows(store, project_id)
    owners = [u for u, r in roles.items() if r == "owner"]
    assert len(owners) == 1, f"owners: {roles}"
    assert project_row(store, project_id)["owner_id"] == owners[0], roles
    return owners[0]


def fresh_client(user):
    """A client of its own (a requests.Session is not for sharing between threads)."""
    return user.api.with_token(user.api.token)


def test_concurrent_transfers_leave_exactly_one_owner(srv, users):
    # The owner sends several transfers at once (a double-click, two tabs). The first to
    # commit wins; the others must see that the caller is no longer the owner.
    alice = users("alice")
    heirs = [users(f"heir{i}") for i in range(5)]
    for rnd in range(8):
        p = create_project(alice, f"round {rnd}")
        for h in heirs:
            add_member(alice, p["id"], h)
        seq = project_row(srv.store, p["id"])["event_seq"]
        clients = [fresh_client(alice) for _ in heirs]
        resps = run_together([
            (lambda c=c, h=h: c.patch(f"/v1/projects/{p['id']}/members/{h.id}",
                                      json={"role": "owner"}))
            for c, h in zip(clients, heirs)])
        for c in clients:
            c.close()
        codes = [r.status_code for r in resps]
        assert codes.count(200) == 1 and set(codes) <= {200, 403, 409}, codes
        winner = heirs[codes.index(200)]
        assert assert_one_owner(srv.store, p["id"]) == winner.id
        assert member_rows(srv.store, p["id"])[alice.id] == "member"
        evs = all_events(alice, p["id"], after=seq)
        assert [e["type"] for e in evs] == ["member.updated", "member.updated"], evs


@pytest.mark.parametrize("other", ["remove", "demote", "leave"])
def test_transfer_racing_another_change_to_the_heir_keeps_one_owner(srv, users, other):
    alice, bob = users("alice"), users("bob")
    for rnd in range(20):
        p = create_project(alice, f"round {rnd}")
        add_member(alice, p["id"], bob)
        url = f"/v1/projects/{p['id']}/members/{bob.id}"
        c1, c2 = fresh_client(alice), fresh_client(bob if other == "leave" else alice)
        second = {"remove": lambda: c2.delete(url), "leave": lambda: c2.delete(url),
                  "demote": lambda: c2.patch(url, json={"role": "viewer"})}[other]
        transfer, change = run_together([lambda: c1.patch(url, json={"role": "owner"}),
                                         second])
        c1.close()
        c2.close()
        owner = assert_one_owner(srv.store, p["id"])
        roles = member_rows(srv.store, p["id"])
        if transfer.status_code == 200:
            assert owner == bob.id and roles[alice.id] == "member", (transfer.text, roles)
        else:
            assert owner == alice.id, (transfer.text, roles)
        if other != "demote" and change.status_code == 204:
            assert bob.id not in roles and transfer.status_code == 404, (transfer.text, roles)
        seqs = [e["seq"] for e in all_events(alice if owner == alice.id else bob, p["id"])]
        assert seqs == list(range(1, len(seqs) + 1))


def test_assigning_a_task_to_a_member_being_removed_leaves_no_dangling_assignee(srv, users):
    # Removal unassigns the member's tasks in the same transaction; a concurrent assignment
    # to them must either come first (and be unassigned) or fail (422: not a member).
    alice, bob, carol = users("alice"), users("bob"), users("carol")
    for rnd in range(20):
        p = create_project(alice, f"round {rnd}")
        add_member(alice, p["id"], bob)
        add_member(alice, p["id"], carol)
        t = create_task(alice, p["id"], "t")
        c1, c2 = fresh_client(alice), fresh_client(carol)
        removal, assignment = run_together([
            lambda: c1.delete(f"/v1/projects/{p['id']}/members/{bob.id}"),
            lambda: c2.patch(f"/v1/tasks/{t['id']}", json={"assignee_id": bob.id})])
        c1.close()
        c2.close()
        assert removal.status_code == 204, removal.text
        assert assignment.status_code in (200, 422), assignment.text
        assert bob.id not in member_rows(srv.store, p["id"])
        (row,) = srv.store.query(f"SELECT assignee_id FROM tasks WHERE id = '{t['id']}'")
        assert row["assignee_id"] is None, f"round {rnd}: task assigned to a non-member"


# ---------------------------------------------------------------------------------------
# events


def test_events_feed_records_every_change_in_order(srv, users):
    alice, bob, carol = users("alice"), users("bob"), users("carol")
    p = create_project(alice)
    pid = p["id"]
    add_member(alice, pid, bob, "member")
    add_member(alice, pid, carol, "viewer")
    assert alice.api.patch(f"/v1/projects/{pid}", json={"name": "Renamed"}).status_code == 200
    assert alice.api.patch(f"/v1/projects/{pid}/members/{carol.id}",
                           json={"role": "member"}).status_code == 200
    t = create_task(bob, pid, "for bob", assignee_id=bob.id)
    assert alice.api.delete(f"/v1/projects/{pid}/members/{bob.id}").status_code == 204
    assert alice.api.patch(f"/v1/projects/{pid}/members/{carol.id}",
                           json={"role": "owner"}).status_code == 200
    # Rejected requests record nothing: Alice is only a member now, and the owner cannot
    # leave before transferring.
    assert_problem(alice.api.patch(f"/v1/projects/{pid}", json={"name": "no longer mine"}),
                   403, "forbidden")
    assert_problem(carol.api.delete(f"/v1/projects/{pid}/members/{carol.id}"), 409,
                   "conflict")

    evs = all_events(carol, pid)
    assert [e["seq"] for e in evs] == list(range(1, 11))
    assert [e["type"] for e in evs[:6]] == [
        "member.added", "member.added", "member.added", "project.updated", "member.updated",
        "task.created"]
    assert sorted(e["type"] for e in evs[6:8]) == ["member.removed", "task.updated"]
    assert [e["type"] for e in evs[8:]] == ["member.updated", "member.updated"]
    assert [e["actor_id"] for e in evs] == [alice.id] * 5 + [bob.id] + [alice.id] * 4
    for e in evs:
        assert set(e) == EVENT_KEYS and e["project_id"] == pid
        assert TIMESTAMP.match(e["created_at"])
    assert [e["data"]["user"]["id"] for e in evs[:3]] == [alice.id, bob.id, carol.id]
    assert evs[3]["data"]["name"] == "Renamed"
    assert (evs[4]["data"]["user"]["id"], evs[4]["data"]["role"]) == (carol.id, "member")
    assert evs[5]["data"]["id"] == t["id"] and evs[5]["data"]["assignee_id"] == bob.id
    assert project_row(srv.store, pid)["event_seq"] == 10

    # after= and limit= page through it; next_after is the last seq shown.
    r = carol.api.get(f"/v1/projects/{pid}/events", params={"after": 4})
    assert [e["seq"] for e in r.json()["data"]] == list(range(5, 11))
    assert r.json()["next_after"] == 10 and r.json()["has_more"] is False
    r = carol.api.get(f"/v1/projects/{pid}/events", params={"after": 2, "limit": 3})
    body = r.json()
    assert [e["seq"] for e in body["data"]] == [3, 4, 5]
    assert body["next_after"] == 5 and body["has_more"] is True
    assert carol.api.get(f"/v1/projects/{pid}/events", params={"limit": 10}).json()[
        "has_more"] is False
    r = carol.api.get(f"/v1/projects/{pid}/events", params={"after": 10})
    assert r.json() == {"data": [], "next_after": 10, "has_more": False}
    r = carol.api.get(f"/v1/projects/{pid}/events", params={"after": 99})
    assert r.status_code == 200 and r.json()["data"] == [] and r.json()["has_more"] is False
    for bad in ({"after": "-1"}, {"after": "abc"}, {"after": ""}, {"limit": "0"},
                {"limit": "201"}):
        r = carol.api.get(f"/v1/projects/{pid}/events", params=bad)
        assert fields_of(assert_problem(r, 422, "validation_failed")) == set(bad), bad
    # Each project counts on its own.
    q = create_project(bob, "Bob's")
    assert [e["seq"] for e in all_events(bob, q["id"])] == [1]


def change_ops(alice, bob, carol, pid, tid):
    """{name: (request, how many events it writes)} for each kind of project change."""
    return {
        "create_task": (lambda: bob.api.post(f"/v1/projects/{pid}/tasks",
                                             json={"title": "New"}), 1),
        "patch_task": (lambda: bob.api.patch(f"/v1/tasks/{tid}",
                                             json={"title": "Renamed", "status": "done"}), 1),
        "delete_task": (lambda: bob.api.delete(f"/v1/tasks/{tid}"), 1),
        "patch_project": (lambda: alice.api.patch(f"/v1/projects/{pid}",
                                                  json={"name": "Renamed"}), 1),
        "add_member": (lambda: alice.api.post(f"/v1/projects/{pid}/members",
                                              json={"user_id": carol.id, "role": "viewer"}), 1),
        # Bob becomes a viewer: his task is unassigned, then the member.updated.
        "update_member": (lambda: alice.api.patch(f"/v1/projects/{pid}/members/{bob.id}",
                                                  json={"role": "viewer"}), 2),
        "transfer": (lambda: alice.api.patch(f"/v1/projects/{pid}/members/{bob.id}",
                                             json={"role": "owner"}), 2),
        "remove_member": (lambda: alice.api.delete(f"/v1/projects/{pid}/members/{bob.id}"), 2),
        "leave": (lambda: bob.api.delete(f"/v1/projects/{pid}/members/{bob.id}"), 2),
    }


@pytest.mark.parametrize("op, failing", [
    ("create_task", 1), ("patch_task", 1), ("delete_task", 1),
    ("patch_project", 1), ("add_member", 1),
    ("update_member", 1), ("update_member", 2),  # the task.updated, or the member.updated
    ("transfer", 1), ("transfer", 2),  # either of its two member.updated events
    ("remove_member", 1), ("remove_member", 2),  # the task.updated, or the member.removed
    ("leave", 1), ("leave", 2),
])
def test_a_change_and_its_events_commit_together(srv, users, op, failing):
    alice, bob, carol = users("alice"), users("bob"), users("carol")
    p = create_project(alice)
    add_member(alice, p["id"], bob, "member")
    # Removing Bob, or making him a viewer, unassigns it: 2 events.
    t = create_task(alice, p["id"], assignee_id=bob.id)
    request, nevents = change_ops(alice, bob, carol, p["id"], t["id"])[op]
    seq = project_row(srv.store, p["id"])["event_seq"]
    before = snapshot(srv.store)

    with failing_event_insert(srv.store, p["id"], seq + failing):
        r = request()
        body = assert_problem(r, 500, "internal")
        assert "injected" not in r.text and "INSERT" not in r.text, body
        assert snapshot(srv.store) == before
        # Read through the API too: the task is as it was.
        r = bob.api.get(f"/v1/tasks/{t['id']}")
        assert r.status_code == 200 and r.json() == t, r.text
    # The same change goes through once the database is well again, with the next seq.
    r = request()
    expected = {"add_member": 201, "create_task": 201, "remove_member": 204, "leave": 204,
                "delete_task": 204}.get(op, 200)
    assert r.status_code == expected, r.text
    evs = all_events(alice, p["id"], after=seq)
    assert [e["seq"] for e in evs] == list(range(seq + 1, seq + nevents + 1))


def test_creating_a_project_and_its_first_event_commit_together(srv, users):
    alice = users("alice")
    # Any project's first event: the trigger cannot know the new id, so fail every seq 1.
    if srv.store.backend == "postgres":
        db_exec(srv.store, """
            CREATE FUNCTION fail_event() RETURNS trigger LANGUAGE plpgsql AS $f$
            BEGIN RAISE EXCEPTION 'injected failure'; END $f$;
            CREATE TRIGGER fail_event BEFORE INSERT ON events FOR EACH ROW
            WHEN (NEW.seq = 1) EXECUTE FUNCTION fail_event();""")
    else:
        db_exec(srv.store, """CREATE TRIGGER fail_event BEFORE INSERT ON events
            WHEN NEW.seq = 1 BEGIN SELECT RAISE(ABORT, 'injected failure'); END;""")
    r = alice.api.post("/v1/projects", json={"name": "Half"})
    assert_problem(r, 500, "internal")
    assert snapshot(srv.store) == {"projects": [], "memberships": [], "tasks": [],
                                   "events": [], "idempotency_keys": []}
    assert walk(alice, "/v1/projects")[0] == []


# ---------------------------------------------------------------------------------------
# idempotency


def test_idempotent_project_create_replays_byte_for_byte(srv, users):
    alice = users("alice")
    key = {"Idempotency-Key": "create-apollo-1"}
    r1 = alice.api.post("/v1/projects", json={"name": "Apollo"}, headers=key)
    assert r1.status_code == 201, r1.text
    assert "Idempotent-Replayed" not in r1.headers
    after_first = snapshot(srv.store)

    r2 = alice.api.post("/v1/projects", json={"name": "Apollo"}, headers=key)
    assert r2.status_code == 201
    assert r2.headers.get("Idempotent-Replayed") == "true"
    assert r2.content == r1.content
    for h in ("Location", "ETag", "Content-Type"):
        assert r2.headers[h] == r1.headers[h], h
    assert r2.headers["X-Request-Id"] != r1.headers["X-Request-Id"]
    assert snapshot(srv.store) == after_first
    assert len(after_first["projects"]) == 1 and len(after_first["events"]) == 1

    # Same key, different body (or another endpoint): 422, nothing stored.
    for path, body in [("/v1/projects", {"name": "Gemini"}),
                       ("/v1/projects", {"name": "Apollo", "description": ""}),
                       (f"/v1/projects/{r1.json()['id']}/members",
                        {"username": "alice", "role": "member"})]:
        r = alice.api.post(path, json=body, headers=key)
        assert_problem(r, 422, "idempotency_key_reused")
        assert snapshot(srv.store) == after_first
    # The original is still replayed afterwards.
    r3 = alice.api.post("/v1/projects", json={"name": "Apollo"}, headers=key)
    assert r3.content == r1.content and r3.headers.get("Idempotent-Replayed") == "true"
    # A new key is a new request.
    r4 = alice.api.post("/v1/projects", json={"name": "Apollo"},
                        headers={"Idempotency-Key": "create-apollo-2"})
    assert r4.status_code == 201 and r4.json()["id"] != r1.json()["id"]
    assert "Idempotent-Replayed" not in r4.headers
    # Without a key, every POST creates.
    create_project(alice, "Apollo")
    assert len(snapshot(srv.store)["projects"]) == 3


def test_idempotency_keys_are_per_user(srv, users):
    alice, bob = users("alice"), users("bob")
    key = {"Idempotency-Key": "same-key"}
    ra = alice.api.post("/v1/projects", json={"name": "Mine"}, headers=key)
    rb = bob.api.post("/v1/projects", json={"name": "Mine"}, headers=key)
    assert ra.status_code == rb.status_code == 201
    assert "Idempotent-Replayed" not in rb.headers
    assert ra.json()["id"] != rb.json()["id"]
    assert rb.json()["owner_id"] == bob.id
    rb2 = bob.api.post("/v1/projects", json={"name": "Other"}, headers=key)
    assert_problem(rb2, 422, "idempotency_key_reused")
    ra2 = alice.api.post("/v1/projects", json={"name": "Mine"}, headers=key)
    assert ra2.content == ra.content
    assert [p["id"] for p in walk(alice, "/v1/projects")[0]] == [ra.json()["id"]]
    assert [p["id"] for p in walk(bob, "/v1/projects")[0]] == [rb.json()["id"]]


def test_idempotent_member_add_replays(srv, users):
    alice, bob, carol = users("alice"), users("bob"), users("carol")
    p = create_project(alice)
    url = f"/v1/projects/{p['id']}/members"
    key = {"Idempotency-Key": "add-bob"}
    r1 = alice.api.post(url, json={"user_id": bob.id, "role": "viewer"}, headers=key)
    assert r1.status_code == 201, r1.text
    after_first = snapshot(srv.store)
    # A retry replays the 201 rather than answering 409 "already a member".
    r2 = alice.api.post(url, json={"user_id": bob.id, "role": "viewer"}, headers=key)
    assert r2.status_code == 201 and r2.content == r1.content
    assert r2.headers.get("Idempotent-Replayed") == "true"
    assert r2.headers["Location"] == r1.headers["Location"]
    assert snapshot(srv.store) == after_first
    assert [e["type"] for e in all_events(alice, p["id"])] == ["member.added", "member.added"]
    r = alice.api.post(url, json={"user_id": carol.id, "role": "viewer"}, headers=key)
    assert_problem(r, 422, "idempotency_key_reused")
    assert snapshot(srv.store) == after_first
    # Without the key the same body is a duplicate.
    assert_problem(alice.api.post(url, json={"user_id": bob.id, "role": "viewer"}), 409,
                   "conflict")


def test_invalid_idempotency_keys_are_rejected(srv, users):
    alice = users("alice")
    for key in ("k" * 256, "tab\there", "bell\x07"):
        r = alice.api.post("/v1/projects", json={"name": "x"}, headers={"Idempotency-Key": key})
        assert_problem(r, 400, "bad_request")
    assert snapshot(srv.store)["projects"] == []
    r = alice.api.post("/v1/projects", json={"name": "x"}, headers={"Idempotency-Key": "k" * 255})
    assert r.status_code == 201
