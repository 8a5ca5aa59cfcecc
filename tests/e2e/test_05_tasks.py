"""Issue 5 end to end, on every backend: tasks one at a time.

Create, read, merge-patch and delete; who may do which (owners and members write, viewers
read, everyone else sees 404); validation exactly as API.md has it, with strict bodies;
versions, ETag, If-Match and If-None-Match; Idempotency-Key on POST; and the task.* events
that every change writes. Every rejected request is checked for its status and problem
`code`, and that nothing was stored: the tasks, the events and the projects' event counters
are re-read from the database and compared with what they were before.

Lists, filters, sorting and pagination are in test_06_task_lists.py; concurrent writers in
test_07_concurrency.py.
"""

import hashlib
import json
import uuid

import pytest

from harness import assert_problem
from taskkit import (EVENT_KEYS, RANK, TIMESTAMP, Team, check_task, db_exec, event_feed,
                     failing_event_insert, last_seq, ms, snapshot, task_row, task_rows, walk)

JSON = {"Content-Type": "application/json"}
DAY_MS = 24 * 3600 * 1000


@pytest.fixture
def team(server):
    return Team(server)


def field_errors(body):
    return sorted((e["field"], e["code"]) for e in body.get("errors", []))


def assert_row_is(store, task):
    """The database holds exactly what the server showed for `task`."""
    row = task_row(store, task["id"])
    assert row is not None, f"task {task['id']} is not stored"
    assert row["project_id"] == task["project_id"]
    assert row["title"] == task["title"] and row["description"] == task["description"]
    assert row["status"] == task["status"]
    assert row["priority_rank"] == RANK[task["priority"]]
    assert row["assignee_id"] == task["assignee_id"]
    assert row["due_date"] == (None if task["due_date"] is None else ms(task["due_date"]))
    assert row["created_by"] == task["created_by"]
    assert row["created_at"] == ms(task["created_at"])
    assert row["updated_at"] == ms(task["updated_at"])
    assert row["version"] == task["version"]


# ---------------------------------------------------------------------------------------
# create and read


def test_create_with_only_a_title_applies_the_defaults(team):
    seq = last_seq(team.owner.api, team.pid)
    r = team.owner.api.post(f"/v1/projects/{team.pid}/tasks", json={"title": "Write tests"})
    assert r.status_code == 201, r.text
    t = check_task(r.json())
    assert uuid.UUID(t["id"]).version == 7
    assert r.headers["Location"] == f"/v1/tasks/{t['id']}"
    assert r.headers["ETag"] == '"1"'
    assert t == {**t, "project_id": team.pid, "title": "Write tests", "description": "",
                 "status": "todo", "priority": "medium", "assignee_id": None, "due_date": None,
                 "created_by": team.owner.id, "version": 1}
    assert t["updated_at"] == t["created_at"]
    assert_row_is(team.store, t)

    # Readable by every member, with the same body and its ETag.
    for user in (team.owner, team.member, team.viewer):
        g = user.api.get(f"/v1/tasks/{t['id']}")
        assert g.status_code == 200, g.text
        assert g.json() == t
        assert g.headers["ETag"] == '"1"'

    # One task.created event holding the task as created.
    (ev,) = event_feed(team.owner.api, team.pid, after=seq)
    assert set(ev) == EVENT_KEYS
    assert ev["seq"] == seq + 1 and ev["type"] == "task.created"
    assert ev["project_id"] == team.pid and ev["actor_id"] == team.owner.id
    assert ev["data"] == t


def test_create_with_every_field(team):
    body = {"title": "Ship it", "description": "all of it", "status": "in_progress",
            "priority": "urgent", "assignee_id": team.owner.id,
            "due_date": "2030-06-01T09:15:00+02:00"}
    r = team.member.api.post(f"/v1/projects/{team.pid}/tasks", json=body)
    assert r.status_code == 201, r.text
    t = check_task(r.json())
    assert t == {**t, **body, "due_date": "2030-06-01T07:15:00.000Z",
                 "created_by": team.member.id, "project_id": team.pid, "version": 1}
    assert_row_is(team.store, t)
    assert team.owner.api.get(f"/v1/tasks/{t['id']}").json() == t


def test_nullable_fields_may_be_null_on_create(team):
    t = team.create(title="nulls", description=None, assignee_id=None, due_date=None)
    assert (t["description"], t["assignee_id"], t["due_date"]) == ("", None, None)
    assert_row_is(team.store, t)


def test_assignee_id_is_stored_in_canonical_form(team):
    t = team.create(assignee_id=team.member.id.upper())
    assert t["assignee_id"] == team.member.id
    assert_row_is(team.store, t)


@pytest.mark.parametrize("given, stored", [
    ("2024-01-15T14:30:00Z", "2024-01-15T14:30:00.000Z"),
    ("2024-01-15T14:30:00+02:00", "2024-01-15T12:30:00.000Z"),
    ("2024-01-15T14:30:00.5-05:30", "2024-01-15T20:00:00.500Z"),
    ("2024-12-31T23:30:00.123-01:00", "2025-01-01T00:30:00.123Z"),
    ("2024-03-01T00:30:00+01:00", "2024-02-29T23:30:00.000Z"),
    ("2024-01-15t14:30:00.987654z", "2024-01-15T14:30:00.987Z"),
])
def test_due_date_is_normalised_to_utc(team, given, stored):
    t = team.create(due_date=given)
    assert t["due_date"] == stored
    assert_row_is(team.store, t)
    # The same through PATCH, from another value.
    other = team.create(due_date="2000-01-01T00:00:00Z")
    r = team.owner.api.patch(f"/v1/tasks/{other['id']}", json={"due_date": given})
    assert r.status_code == 200, r.text
    assert r.json()["due_date"] == stored
    assert_row_is(team.store, r.json())


def test_due_dates_at_the_ends_of_rfc3339_round_trip(team):
    for given in ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z",
                  "0001-01-01T01:00:00+01:00", "9999-12-31T22:59:59.999-01:00"):
        t = team.create(due_date=given)
        assert ms(t["due_date"]) == ms(given)
        assert_row_is(team.store, t)
        # What the server shows, it takes back: the same instant, so no change.
        r = team.owner.api.patch(f"/v1/tasks/{t['id']}", json={"due_date": t["due_date"]})
        assert r.status_code == 200 and r.json() == t, r.text


def test_due_date_that_utc_cannot_show_is_422(team):
    """An offset can push a date out of 0001-9999 once it is in UTC; the server must not store
    an instant that it would then show as another one (or as year 0000, which it rejects)."""
    t = team.create(due_date="2030-01-01T00:00:00Z")
    before = snapshot(team.store)
    for given in ("9999-12-31T23:30:00-01:00", "0001-01-01T00:30:00+01:00"):
        r = team.owner.api.post(f"/v1/projects/{team.pid}/tasks",
                                json={"title": "x", "due_date": given})
        body = assert_problem(r, 422, "validation_failed")
        assert field_errors(body) == [("due_date", "out_of_range")], body
        r = team.owner.api.patch(f"/v1/tasks/{t['id']}", json={"due_date": given})
        body = assert_problem(r, 422, "validation_failed")
        assert field_errors(body) == [("due_date", "out_of_range")], body
        assert snapshot(team.store) == before, given


def test_unknown_task_or_project_is_404(team):
    api = team.owner.api
    t = team.create()
    before = snapshot(team.store)
    for path in (f"/v1/tasks/{uuid.uuid4()}", "/v1/tasks/not-a-uuid",
                 f"/v1/tasks/{t['id']}x", f"/v1/tasks/{team.pid}"):
        assert_problem(api.get(path), 404, "not_found")
        assert_problem(api.patch(path, json={"title": "x"}), 404, "not_found")
        assert_problem(api.delete(path), 404, "not_found")
    for pid in (str(uuid.uuid4()), "nope", t["id"]):
        assert_problem(api.post(f"/v1/projects/{pid}/tasks", json={"title": "x"}), 404,
                       "not_found")
        assert_problem(api.get(f"/v1/projects/{pid}/tasks"), 404, "not_found")
    assert snapshot(team.store) == before


# ---------------------------------------------------------------------------------------
# who may do what


def test_owner_and_member_write_each_others_tasks(team):
    mine = team.create(client=team.member.api, title="member's")
    theirs = team.create(client=team.owner.api, title="owner's")
    r = team.owner.api.patch(f"/v1/tasks/{mine['id']}", json={"status": "done"})
    assert r.status_code == 200 and r.json()["status"] == "done", r.text
    r = team.member.api.patch(f"/v1/tasks/{theirs['id']}", json={"priority": "low"})
    assert r.status_code == 200 and r.json()["priority"] == "low", r.text
    assert team.member.api.delete(f"/v1/tasks/{theirs['id']}").status_code == 204
    assert team.owner.api.delete(f"/v1/tasks/{mine['id']}").status_code == 204
    assert task_rows(team.store) == []
    types = [e["type"] for e in event_feed(team.owner.api, team.pid)]
    assert types[-6:] == ["task.created", "task.created", "task.updated", "task.updated",
                          "task.deleted", "task.deleted"]


def test_viewer_reads_but_may_not_write(team):
    t = team.create(title="look, don't touch")
    v = team.viewer.api
    before = snapshot(team.store)
    assert v.get(f"/v1/tasks/{t['id']}").json() == t
    assert [x["id"] for x in walk(v, f"/v1/projects/{team.pid}/tasks")] == [t["id"]]
    assert [x["id"] for x in walk(v, "/v1/tasks")] == [t["id"]]
    assert event_feed(v, team.pid)[-1]["data"] == t
    assert_problem(v.post(f"/v1/projects/{team.pid}/tasks", json={"title": "mine"}), 403,
                   "forbidden")
    assert_problem(v.patch(f"/v1/tasks/{t['id']}", json={"title": "changed"}), 403, "forbidden")
    assert_problem(v.patch(f"/v1/tasks/{t['id']}", json={"title": "changed"},
                           headers={"If-Match": '"1"'}), 403, "forbidden")
    assert_problem(v.delete(f"/v1/tasks/{t['id']}"), 403, "forbidden")
    assert snapshot(team.store) == before


def test_non_members_see_nothing(team):
    t = team.create(title="secret")
    o = team.outsider.api
    before = snapshot(team.store)
    assert_problem(o.get(f"/v1/tasks/{t['id']}"), 404, "not_found")
    assert_problem(o.get(f"/v1/tasks/{t['id']}", headers={"If-None-Match": '"1"'}), 404,
                   "not_found")
    assert_problem(o.patch(f"/v1/tasks/{t['id']}", json={"title": "mine now"}), 404,
                   "not_found")
    assert_problem(o.delete(f"/v1/tasks/{t['id']}"), 404, "not_found")
    assert_problem(o.delete(f"/v1/tasks/{t['id']}", headers={"If-Match": '"1"'}), 404,
                   "not_found")
    assert_problem(o.post(f"/v1/projects/{team.pid}/tasks", json={"title": "x"}), 404,
                   "not_found")
    assert_problem(o.get(f"/v1/projects/{team.pid}/tasks"), 404, "not_found")
    assert_problem(o.get(f"/v1/projects/{team.pid}/events"), 404, "not_found")
    assert walk(o, "/v1/tasks") == []
    assert walk(o, "/v1/tasks", {"project_id": team.pid}) == []
    # A non-member's answers are those for a project or task that does not exist.
    ghost = o.get(f"/v1/tasks/{uuid.uuid4()}").json()
    real = o.get(f"/v1/tasks/{t['id']}").json()
    assert {k: v for k, v in real.items() if k != "instance"} == \
        {k: v for k, v in ghost.items() if k != "instance"}
    assert snapshot(team.store) == before


def test_unauthenticated_requests_are_401(team):
    t = team.create()
    anon = team.anon
    before = snapshot(team.store)
    for method, path, body in [("GET", f"/v1/tasks/{t['id']}", None),
                               ("PATCH", f"/v1/tasks/{t['id']}", {"title": "x"}),
                               ("DELETE", f"/v1/tasks/{t['id']}", None),
                               ("POST", f"/v1/projects/{team.pid}/tasks", {"title": "x"}),
                               ("GET", f"/v1/projects/{team.pid}/tasks", None),
                               ("GET", "/v1/tasks", None)]:
        assert_problem(anon.request(method, path, json=body), 401, "unauthenticated")
    assert snapshot(team.store) == before


# ---------------------------------------------------------------------------------------
# assignees


def test_assignee_may_be_a_member_or_the_owner(team):
    for user in (team.owner, team.member):
        t = team.create(assignee_id=user.id)
        assert t["assignee_id"] == user.id
        assert_row_is(team.store, t)


def test_viewer_cannot_be_assigned(team):
    """A viewer could not change the task they were given (issue 15): 422, nothing stored."""
    t = team.create(assignee_id=team.member.id)
    before = snapshot(team.store)
    r = team.owner.api.post(f"/v1/projects/{team.pid}/tasks",
                            json={"title": "x", "assignee_id": team.viewer.id})
    body = assert_problem(r, 422, "validation_failed")
    assert field_errors(body) == [("assignee_id", "viewer_cannot_be_assigned")], body
    assert "member or the owner" in body["errors"][0]["message"], body
    r = team.member.api.patch(f"/v1/tasks/{t['id']}",
                              json={"title": "y", "assignee_id": team.viewer.id})
    body = assert_problem(r, 422, "validation_failed")
    assert field_errors(body) == [("assignee_id", "viewer_cannot_be_assigned")], body
    assert snapshot(team.store) == before


def test_assignee_outside_the_project_is_422(team):
    t = team.create(assignee_id=team.member.id)
    before = snapshot(team.store)
    cases = [(team.outsider.id, "not_a_member"), (str(uuid.uuid4()), "not_a_member"),
             ("not-a-uuid", "invalid"), (team.pid, "not_a_member")]
    for assignee, code in cases:
        r = team.owner.api.post(f"/v1/projects/{team.pid}/tasks",
                                json={"title": "x", "assignee_id": assignee})
        body = assert_problem(r, 422, "validation_failed")
        assert field_errors(body) == [("assignee_id", code)], body
        r = team.owner.api.patch(f"/v1/tasks/{t['id']}", json={"assignee_id": assignee})
        body = assert_problem(r, 422, "validation_failed")
        assert field_errors(body) == [("assignee_id", code)], body
        if code == "not_a_member":  # the same words as for a viewer
            assert "member or the owner" in body["errors"][0]["message"], body
        assert snapshot(team.store) == before, assignee


def test_assignee_of_another_project_is_not_a_member_here(team):
    other = team.outsider.api.post("/v1/projects", json={"name": "elsewhere"}).json()["id"]
    before = snapshot(team.store)
    r = team.owner.api.post(f"/v1/projects/{team.pid}/tasks",
                            json={"title": "x", "assignee_id": team.outsider.id})
    assert field_errors(assert_problem(r, 422, "validation_failed")) == \
        [("assignee_id", "not_a_member")]
    assert snapshot(team.store) == before
    # ... while in their own project they are a fine assignee.
    r = team.outsider.api.post(f"/v1/projects/{other}/tasks",
                               json={"title": "x", "assignee_id": team.outsider.id})
    assert r.status_code == 201, r.text


# Removing a member unassigns their tasks: tested once, in test_03_projects.py
# (test_removing_a_member_unassigns_their_tasks), with the membership tests.


# ---------------------------------------------------------------------------------------
# strict input


CREATE_CASES = [
    # (body, [(field, code)])
    ({}, [("title", "required")]),
    ({"description": "no title"}, [("title", "required")]),
    ({"title": ""}, [("title", "required")]),
    ({"title": None}, [("title", "not_nullable")]),
    ({"title": 5}, [("title", "type")]),
    ({"title": ["a"]}, [("title", "type")]),
    ({"title": "x" * 201}, [("title", "too_long")]),
    ({"title": "é" * 201}, [("title", "too_long")]),
    ({"title": "x", "description": "d" * 10001}, [("description", "too_long")]),
    ({"title": "x", "description": 1}, [("description", "type")]),
    ({"title": "x", "status": "bogus"}, [("status", "invalid_choice")]),
    ({"title": "x", "status": "TODO"}, [("status", "invalid_choice")]),
    ({"title": "x", "status": None}, [("status", "not_nullable")]),
    ({"title": "x", "priority": "x"}, [("priority", "invalid_choice")]),
    ({"title": "x", "priority": 3}, [("priority", "type")]),
    ({"title": "x", "priority": None}, [("priority", "not_nullable")]),
    ({"title": "x", "assignee_id": "nobody"}, [("assignee_id", "invalid")]),
    ({"title": "x", "assignee_id": 7}, [("assignee_id", "type")]),
    ({"title": "x", "due_date": "tomorrow"}, [("due_date", "invalid")]),
    ({"title": "x", "due_date": "2024-01-15"}, [("due_date", "invalid")]),
    ({"title": "x", "due_date": "2024-02-30T10:00:00Z"}, [("due_date", "invalid")]),
    ({"title": "x", "due_date": "2024-01-15T25:00:00Z"}, [("due_date", "invalid")]),
    ({"title": "x", "due_date": "2024-01-15T10:00:00"}, [("due_date", "invalid")]),
    ({"title": "x", "due_date": 1705312800000}, [("due_date", "type")]),
    ({"title": "x", "colour": "red"}, [("colour", "unknown_field")]),
    ({"title": "x", "Title": "y"}, [("Title", "unknown_field")]),
    ({"title": "x", "id": str(uuid.uuid4())}, [("id", "read_only")]),
    ({"title": "x", "project_id": str(uuid.uuid4())}, [("project_id", "read_only")]),
    ({"title": "x", "created_by": str(uuid.uuid4())}, [("created_by", "read_only")]),
    ({"title": "x", "created_at": "2024-01-15T10:00:00Z"}, [("created_at", "read_only")]),
    ({"title": "x", "updated_at": "2024-01-15T10:00:00Z"}, [("updated_at", "read_only")]),
    ({"title": "x", "version": 7}, [("version", "read_only")]),
    # One entry per field, all of them at once.
    ({"title": "", "status": "nope", "priority": "meh", "due_date": "soon", "id": "x",
      "extra": True},
     [("due_date", "invalid"), ("extra", "unknown_field"), ("id", "read_only"),
      ("priority", "invalid_choice"), ("status", "invalid_choice"), ("title", "required")]),
]


def test_invalid_create_bodies_are_422_per_field_and_store_nothing(team):
    before = snapshot(team.store)
    for body, expected in CREATE_CASES:
        r = team.member.api.post(f"/v1/projects/{team.pid}/tasks", json=body)
        problem = assert_problem(r, 422, "validation_failed")
        assert field_errors(problem) == sorted(expected), (body, problem)
        for e in problem["errors"]:
            assert isinstance(e["message"], str) and e["message"], problem
        assert snapshot(team.store) == before, f"{body} stored something"


def test_invalid_patch_bodies_are_422_per_field_and_change_nothing(team):
    t = team.create(title="stays", description="as is", assignee_id=team.member.id,
                    due_date="2030-01-01T00:00:00Z")
    before = snapshot(team.store)
    cases = [(b, e) for b, e in CREATE_CASES if b and "title" in b and b != {"title": ""}]
    cases += [({"title": ""}, [("title", "required")]),
              ({"title": None}, [("title", "not_nullable")])]
    for body, expected in cases:
        for headers in ({}, {"If-Match": '"1"'}):
            r = team.member.api.patch(f"/v1/tasks/{t['id']}", json=body, headers=headers)
            problem = assert_problem(r, 422, "validation_failed")
            assert field_errors(problem) == sorted(expected), (body, problem)
            assert snapshot(team.store) == before, f"{body} changed something"
    assert team.owner.api.get(f"/v1/tasks/{t['id']}").json() == t


def test_length_limits_count_characters_not_bytes(team):
    before = snapshot(team.store)
    ok = [{"title": "x" * 200}, {"title": "é" * 200}, {"title": "\U0001F600" * 200},
          {"title": "t", "description": "d" * 10000},
          {"title": "t", "description": "\u00e9" * 10000}]
    for body in ok:
        t = team.create(**body)
        assert t["title"] == body["title"]
        assert t["description"] == body.get("description", "")
        assert_row_is(team.store, t)
    assert len(task_rows(team.store)) == len(before["tasks"]) + len(ok)
    t = team.create(title="short")
    for body, field in [({"title": "\U0001F600" * 201}, "title"),
                        ({"description": "\u00e9" * 10001}, "description")]:
        mark = snapshot(team.store)
        r = team.owner.api.patch(f"/v1/tasks/{t['id']}", json=body)
        assert field_errors(assert_problem(r, 422, "validation_failed")) == \
            [(field, "too_long")]
        assert snapshot(team.store) == mark


def test_bodies_that_are_not_json_objects(team):
    t = team.create()
    before = snapshot(team.store)
    api = team.owner.api
    post = f"/v1/projects/{team.pid}/tasks"
    patch = f"/v1/tasks/{t['id']}"
    for method, path in (("POST", post), ("PATCH", patch)):
        r = api.request(method, path, data='{"title": "x"}',
                        headers={"Content-Type": "text/plain"})
        assert_problem(r, 415, "unsupported_media_type")
        r = api.request(method, path, data='{"title": "x"}')  # no Content-Type at all
        assert_problem(r, 415, "unsupported_media_type")
        for raw in ('{"title": ', "{'title': 'x'}", '{"title": "x"} trailing',
                    '{"title": "a", "title": "b"}', ""):
            r = api.request(method, path, data=raw.encode(), headers=JSON)
            assert_problem(r, 400, "malformed_json")
        r = api.request(method, path, data='["title"]', headers=JSON)
        assert_problem(r, 422, "validation_failed")
        for raw in ('"title"', "42", "null"):
            # Valid JSON but no object: 422 with one error for the whole body (field "").
            r = api.request(method, path, data=raw, headers=JSON)
            body = assert_problem(r, 422, "validation_failed")
            assert [e["field"] for e in body["errors"]] == [""], (raw, body)
        assert snapshot(team.store) == before


# ---------------------------------------------------------------------------------------
# merge-patch


def test_patch_changes_only_the_fields_given(team):
    t = team.create(title="orig", description="desc", status="todo", priority="low",
                    assignee_id=team.member.id, due_date="2030-01-01T00:00:00Z")
    steps = [
        ({"title": "renamed"}, {"title": "renamed"}),
        ({"status": "in_progress", "priority": "high"},
         {"status": "in_progress", "priority": "high"}),
        ({"due_date": "2031-02-03T04:05:06.007+01:00"}, {"due_date": "2031-02-03T03:05:06.007Z"}),
        ({"assignee_id": team.owner.id}, {"assignee_id": team.owner.id}),
        ({"description": None}, {"description": ""}),
        ({"assignee_id": None, "due_date": None}, {"assignee_id": None, "due_date": None}),
        ({"description": "back", "status": "done"}, {"description": "back", "status": "done"}),
    ]
    expected = dict(t)
    for i, (body, change) in enumerate(steps, start=2):
        r = team.member.api.patch(f"/v1/tasks/{t['id']}", json=body)
        assert r.status_code == 200, r.text
        got = check_task(r.json())
        expected.update(change, version=i, updated_at=got["updated_at"])
        assert got == expected, body
        assert r.headers["ETag"] == f'"{i}"'
        assert team.viewer.api.get(f"/v1/tasks/{t['id']}").json() == got
        assert_row_is(team.store, got)
    # Never changed by a PATCH: who created it, when, in which project.
    assert (got["created_by"], got["created_at"], got["project_id"]) == \
        (t["created_by"], t["created_at"], t["project_id"])


def test_patch_that_changes_nothing_keeps_the_version_and_writes_no_event(team):
    t = team.create(title="same", priority="high", due_date="2030-01-01T01:00:00+01:00")
    before = snapshot(team.store)
    for body in ({}, {"title": "same"}, {"priority": "high", "description": None},
                 {"due_date": "2030-01-01T00:00:00.000Z"}, {"assignee_id": None}):
        r = team.owner.api.patch(f"/v1/tasks/{t['id']}", json=body)
        assert r.status_code == 200, r.text
        assert r.json() == t and r.headers["ETag"] == '"1"'
        assert snapshot(team.store) == before, body


# ---------------------------------------------------------------------------------------
# delete


def test_delete_removes_the_task_and_records_it(team):
    t = team.create(title="doomed")
    r = team.owner.api.patch(f"/v1/tasks/{t['id']}", json={"status": "done"})
    last = r.json()
    seq = last_seq(team.owner.api, team.pid)
    r = team.member.api.delete(f"/v1/tasks/{t['id']}")
    assert r.status_code == 204 and r.content == b""
    assert task_row(team.store, t["id"]) is None
    assert_problem(team.owner.api.get(f"/v1/tasks/{t['id']}"), 404, "not_found")
    assert walk(team.owner.api, f"/v1/projects/{team.pid}/tasks") == []
    (ev,) = event_feed(team.owner.api, team.pid, after=seq)
    assert ev["type"] == "task.deleted" and ev["actor_id"] == team.member.id
    assert ev["data"] == last
    # Gone for good: every later request is a 404 and writes nothing.
    before = snapshot(team.store)
    assert_problem(team.owner.api.patch(f"/v1/tasks/{t['id']}", json={"title": "x"}), 404,
                   "not_found")
    assert_problem(team.owner.api.delete(f"/v1/tasks/{t['id']}"), 404, "not_found")
    assert snapshot(team.store) == before


# ---------------------------------------------------------------------------------------
# versions, ETag, If-Match, If-None-Match


def test_etag_is_the_version(team):
    t = team.create()
    for v in range(1, 5):
        g = team.owner.api.get(f"/v1/tasks/{t['id']}")
        assert g.headers["ETag"] == f'"{v}"' and g.json()["version"] == v
        r = team.owner.api.patch(f"/v1/tasks/{t['id']}", json={"title": f"v{v + 1}"})
        assert r.headers["ETag"] == f'"{v + 1}"' and r.json()["version"] == v + 1


@pytest.mark.parametrize("header", ['"2"', 'W/"2"', '"1", "2"', '"9" ,W/"2"', "*"])
def test_if_none_match_current_is_304(team, header):
    t = team.create()
    team.owner.api.patch(f"/v1/tasks/{t['id']}", json={"title": "two"})
    r = team.viewer.api.get(f"/v1/tasks/{t['id']}", headers={"If-None-Match": header})
    assert r.status_code == 304, r.text
    assert r.content == b""
    assert r.headers["ETag"] == '"2"'


@pytest.mark.parametrize("header", ['"1"', 'W/"1"', '"3", "1"', '"02"x', "garbage"])
def test_if_none_match_stale_is_200(team, header):
    t = team.create()
    team.owner.api.patch(f"/v1/tasks/{t['id']}", json={"title": "two"})
    r = team.viewer.api.get(f"/v1/tasks/{t['id']}", headers={"If-None-Match": header})
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 2 and r.headers["ETag"] == '"2"'


def test_stale_if_match_is_412_with_the_current_etag_and_changes_nothing(team):
    t = team.create(title="v1")
    team.owner.api.patch(f"/v1/tasks/{t['id']}", json={"title": "v2"})
    before = snapshot(team.store)
    # Stale, or weak (If-Match compares strongly, RFC 9110 13.1.1: W/"2" never matches, not
    # even the current version), or a list without the current version.
    for tag in ('"1"', 'W/"1"', '"3"', '"999"', 'W/"2"', '"1", "3"', 'W/"2", "1"', '"02"'):
        r = team.member.api.patch(f"/v1/tasks/{t['id']}", json={"title": "lost"},
                                  headers={"If-Match": tag})
        assert_problem(r, 412, "precondition_failed")
        assert r.headers["ETag"] == '"2"', (tag, r.headers)  # so the client can re-read
        r = team.member.api.delete(f"/v1/tasks/{t['id']}", headers={"If-Match": tag})
        assert_problem(r, 412, "precondition_failed")
        assert r.headers["ETag"] == '"2"', (tag, r.headers)
        assert snapshot(team.store) == before, tag
    r = team.member.api.patch(f"/v1/tasks/{t['id']}", json={"title": "lost"},
                              headers={"If-Match": 'W/"2"'})
    assert "weak" in r.json()["detail"], r.json()
    # A malformed If-Match can never match, so it never writes either: 412 like a stale one
    # (openapi.yaml, parameter If-Match: "a value that cannot be a version of ours is 412").
    for tag in ("2", "abc", '"two"', '""', '"-1"', 'W/2', '"1", *', ""):
        r = team.member.api.patch(f"/v1/tasks/{t['id']}", json={"title": "lost"},
                                  headers={"If-Match": tag})
        assert_problem(r, 412, "precondition_failed")
        assert r.headers["ETag"] == '"2"', (tag, r.headers)
        r = team.member.api.delete(f"/v1/tasks/{t['id']}", headers={"If-Match": tag})
        assert_problem(r, 412, "precondition_failed")
        assert snapshot(team.store) == before, tag


def test_current_if_match_succeeds_strong_in_a_list_or_star(team):
    t = team.create(title="v1")
    for version, tag in ((1, '"1"'), (2, '"1", "2"'), (3, 'W/"3", "3"'), (4, "*"),
                         (5, '"9" ,, "5"')):
        r = team.member.api.patch(f"/v1/tasks/{t['id']}", json={"title": f"v{version + 1}"},
                                  headers={"If-Match": tag})
        assert r.status_code == 200, (tag, r.text)
        assert r.json()["version"] == version + 1 and r.json()["title"] == f"v{version + 1}"
        assert r.headers["ETag"] == f'"{version + 1}"'
    r = team.member.api.delete(f"/v1/tasks/{t['id']}", headers={"If-Match": '"4", "6"'})
    assert r.status_code == 204, r.text
    assert task_row(team.store, t["id"]) is None


# ---------------------------------------------------------------------------------------
# Idempotency-Key


def test_idempotent_create_is_replayed_byte_for_byte(team):
    path = f"/v1/projects/{team.pid}/tasks"
    body = {"title": "once", "priority": "high", "due_date": "2030-01-01T12:00:00+03:00"}
    key = {"Idempotency-Key": "create-once-1"}
    first = team.member.api.post(path, json=body, headers=key)
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    t = first.json()
    after_first = snapshot(team.store)

    for _ in range(3):
        again = team.member.api.post(path, json=body, headers=key)
        assert again.status_code == 201
        assert again.headers.get("Idempotent-Replayed") == "true"
        assert again.content == first.content
        for h in ("Location", "ETag", "Content-Type"):
            assert again.headers.get(h) == first.headers.get(h), h
        assert again.headers["X-Request-Id"] != first.headers["X-Request-Id"]
        assert snapshot(team.store) == after_first

    # The replay is the first answer, even after the task has moved on.
    team.owner.api.patch(f"/v1/tasks/{t['id']}", json={"title": "changed"})
    again = team.member.api.post(path, json=body, headers=key)
    assert again.status_code == 201 and again.content == first.content
    assert [r["id"] for r in task_rows(team.store)] == [t["id"]]
    created = [e for e in event_feed(team.owner.api, team.pid) if e["type"] == "task.created"]
    assert len(created) == 1


def test_idempotency_key_reused_for_another_request_is_422(team):
    path = f"/v1/projects/{team.pid}/tasks"
    key = {"Idempotency-Key": "k-reuse"}
    first = team.owner.api.post(path, json={"title": "first"}, headers=key)
    assert first.status_code == 201
    before = snapshot(team.store)
    other = team.owner.api.post("/v1/projects", json={"name": "other"}).json()["id"]
    mark = snapshot(team.store)
    for p, b in [(path, {"title": "second"}), (path, {"title": "first", "status": "todo"}),
                 (f"/v1/projects/{other}/tasks", {"title": "first"})]:
        r = team.owner.api.post(p, json=b, headers=key)
        assert_problem(r, 422, "idempotency_key_reused")
        assert "Idempotent-Replayed" not in r.headers
        assert snapshot(team.store) == mark, (p, b)
    assert len(task_rows(team.store)) == len(before["tasks"])
    # Keys belong to one user: another user's same key is a new request.
    r = team.member.api.post(path, json={"title": "second"}, headers=key)
    assert r.status_code == 201 and "Idempotent-Replayed" not in r.headers
    assert r.json()["title"] == "second"


def test_idempotency_key_syntax(team):
    path = f"/v1/projects/{team.pid}/tasks"
    ok = "k" * 255
    r = team.owner.api.post(path, json={"title": "x"}, headers={"Idempotency-Key": ok})
    assert r.status_code == 201, r.text
    before = snapshot(team.store)
    for bad in ("k" * 256, "", "caf\u00e9".encode().decode("latin-1")):
        r = team.owner.api.post(path, json={"title": "y"}, headers={"Idempotency-Key": bad})
        assert_problem(r, 400, "bad_request")
        assert snapshot(team.store) == before


def test_idempotency_key_expires_24_hours_after_it_was_stored(team):
    path = f"/v1/projects/{team.pid}/tasks"
    key = {"Idempotency-Key": "expiring"}
    first = team.owner.api.post(path, json={"title": "day one"}, headers=key)
    assert first.status_code == 201
    (row,) = team.store.query("SELECT user_id, key, status, created_at, expires_at "
                              "FROM idempotency_keys")
    assert (row["user_id"], row["key"], row["status"]) == (team.owner.id, "expiring", 201)
    assert row["expires_at"] - row["created_at"] == DAY_MS

    # Within the 24 h: replayed. Once expired (moved into the past, since nobody can wait a
    # day), the key is free again: even another body is a new request, not a 422.
    assert team.owner.api.post(path, json={"title": "day one"},
                               headers=key).headers.get("Idempotent-Replayed") == "true"
    db_exec(team.store, f"UPDATE idempotency_keys SET created_at = created_at - {DAY_MS}, "
                        f"expires_at = expires_at - {DAY_MS}")
    r = team.owner.api.post(path, json={"title": "day two"}, headers=key)
    assert r.status_code == 201, r.text
    assert "Idempotent-Replayed" not in r.headers
    assert r.json()["id"] != first.json()["id"]
    assert sorted(t["title"] for t in task_rows(team.store)) == ["day one", "day two"]
    (row,) = team.store.query("SELECT created_at, expires_at FROM idempotency_keys")
    assert row["expires_at"] - row["created_at"] == DAY_MS


def test_a_keyed_request_that_fails_frees_its_key_for_the_retry(team):
    """A 4xx or 5xx answer is not kept under its Idempotency-Key: the client fixes what was
    wrong (the body, its role, its membership, a database that failed) and retries with the
    same key, and that retry is executed, not refused as a reuse nor replayed as the error."""
    path = f"/v1/projects/{team.pid}/tasks"

    def failed_then_retried(client, key, first, retry, status, code, fix=lambda: None):
        hdr = {"Idempotency-Key": key}
        before = snapshot(team.store)
        assert_problem(client.post(path, json=first, headers=hdr), status, code)
        assert snapshot(team.store) == before, key  # no task, no event, no key kept
        fix()
        r = client.post(path, json=retry, headers=hdr)
        assert r.status_code == 201, (key, r.text)
        assert "Idempotent-Replayed" not in r.headers
        assert r.json()["title"] == retry["title"]
        again = client.post(path, json=retry, headers=hdr)  # now the key holds the 201
        assert again.status_code == 201 and again.content == r.content
        assert again.headers.get("Idempotent-Replayed") == "true"
        (row,) = [k for k in snapshot(team.store)["idempotency_keys"] if k["key"] == key]
        assert row["status"] == 201 and row["response_body"] == r.text
        return r.json()

    # 422: a corrected body under the same key.
    failed_then_retried(team.member.api, "after-422", {"title": ""}, {"title": "fixed"},
                        422, "validation_failed")
    # 403: the viewer becomes a member, then the same request goes through.
    failed_then_retried(
        team.viewer.api, "after-403", {"title": "by vera"}, {"title": "by vera"}, 403,
        "forbidden", lambda: team.owner.api.patch(
            f"/v1/projects/{team.pid}/members/{team.viewer.id}", json={"role": "member"}))
    # 404: the outsider is added to the project.
    failed_then_retried(
        team.outsider.api, "after-404", {"title": "by oscar"}, {"title": "by oscar"}, 404,
        "not_found", lambda: team.owner.api.post(
            f"/v1/projects/{team.pid}/members",
            json={"user_id": team.outsider.id, "role": "member"}))
    # 500: the database failed to store the event; it is well again for the retry.
    seq = last_seq(team.owner.api, team.pid)
    with failing_event_insert(team.store, team.pid, seq + 1):
        hdr = {"Idempotency-Key": "after-500"}
        before = snapshot(team.store)
        r = team.member.api.post(path, json={"title": "durable"}, headers=hdr)
        assert_problem(r, 500, "internal")
        assert snapshot(team.store) == before
    r = team.member.api.post(path, json={"title": "durable"}, headers=hdr)
    assert r.status_code == 201 and "Idempotent-Replayed" not in r.headers, r.text
    assert sorted(t["title"] for t in task_rows(team.store)) == \
        ["by oscar", "by vera", "durable", "fixed"]


def test_key_still_claimed_by_a_running_request_is_409(team):
    """A claim without an answer yet is a request still running (here written straight into
    the table; test_07 races real requests). The duplicate gets 409 and creates nothing."""
    path = f"/v1/projects/{team.pid}/tasks"
    raw = json.dumps({"title": "in flight"}).encode()
    digest = hashlib.sha256(b"POST\0" + path.encode() + b"\0" + raw).hexdigest()
    now = team.store.query("SELECT max(created_at) AS m FROM projects")[0]["m"]
    db_exec(team.store, "INSERT INTO idempotency_keys (user_id, key, method, path, "
                        f"request_hash, created_at, expires_at) VALUES ('{team.owner.id}', "
                        f"'busy', 'POST', '{path}', '{digest}', {now}, {now + DAY_MS})")
    before = snapshot(team.store)
    r = team.owner.api.post(path, data=raw, headers={**JSON, "Idempotency-Key": "busy"})
    assert_problem(r, 409, "conflict")
    assert snapshot(team.store) == before
    # The same key with another body is still a reuse, running or not.
    r = team.owner.api.post(path, json={"title": "other"}, headers={"Idempotency-Key": "busy"})
    assert_problem(r, 422, "idempotency_key_reused")
    assert snapshot(team.store) == before


# ---------------------------------------------------------------------------------------
# events


def test_every_change_writes_one_event_with_its_changes(team):
    api = team.member.api
    seq = last_seq(api, team.pid)
    t = team.create(client=api, title="evented", description="d", priority="low")
    expect = [("task.created", team.member.id, t, None)]
    patches = [
        (team.owner, {"title": "renamed", "priority": "urgent"},
         {"title": ["evented", "renamed"], "priority": ["low", "urgent"]}),
        (team.member, {"due_date": "2030-05-05T05:05:05+05:00", "assignee_id": team.owner.id},
         {"due_date": [None, "2030-05-05T00:05:05.000Z"], "assignee_id": [None, team.owner.id]}),
        (team.owner, {"description": None, "status": "done", "title": "renamed"},
         {"description": ["d", ""], "status": ["todo", "done"]}),
        (team.member, {"due_date": None, "assignee_id": None},
         {"due_date": ["2030-05-05T00:05:05.000Z", None], "assignee_id": [team.owner.id, None]}),
    ]
    for user, body, changes in patches:
        r = user.api.patch(f"/v1/tasks/{t['id']}", json=body)
        assert r.status_code == 200, r.text
        expect.append(("task.updated", user.id, r.json(), changes))
        last = r.json()
    assert team.owner.api.delete(f"/v1/tasks/{t['id']}").status_code == 204
    expect.append(("task.deleted", team.owner.id, last, None))

    events = event_feed(team.viewer.api, team.pid, after=seq)
    assert [e["seq"] for e in events] == list(range(seq + 1, seq + 1 + len(expect)))
    for ev, (typ, actor, data, changes) in zip(events, expect):
        assert set(ev) == EVENT_KEYS and TIMESTAMP.match(ev["created_at"]), ev
        assert (ev["type"], ev["actor_id"], ev["project_id"]) == (typ, actor, team.pid)
        got = dict(ev["data"])
        if changes is not None:
            assert got.pop("changes") == changes, ev
        assert got == data, ev
    assert [r["seq"] for r in team.store.query(
        f"SELECT seq FROM events WHERE project_id = '{team.pid}' ORDER BY seq")] == \
        list(range(1, seq + 1 + len(expect)))


def test_event_feed_pages_with_after(team):
    tasks = [team.create(title=f"t{i}") for i in range(7)]
    every = event_feed(team.owner.api, team.pid)
    n = every[-1]["seq"]
    assert [e["seq"] for e in every] == list(range(1, n + 1))
    assert [e["data"]["id"] for e in every if e["type"] == "task.created"] == \
        [t["id"] for t in tasks]
    # Pages of 3 from the start and from the middle give the same events.
    assert event_feed(team.viewer.api, team.pid, limit=3) == every
    assert event_feed(team.viewer.api, team.pid, after=4, limit=2) == every[4:]
    r = team.owner.api.get(f"/v1/projects/{team.pid}/events", params={"after": 2, "limit": 3})
    body = r.json()
    assert [e["seq"] for e in body["data"]] == [3, 4, 5]
    assert body["next_after"] == 5 and body["has_more"] is True
    # After the last one: an empty page that says where to continue from.
    r = team.owner.api.get(f"/v1/projects/{team.pid}/events", params={"after": n})
    assert r.json() == {"data": [], "next_after": n, "has_more": False}
    r = team.owner.api.get(f"/v1/projects/{team.pid}/events", params={"after": n + 100})
    assert r.json()["data"] == []


@pytest.mark.parametrize("params, field", [
    ({"after": "bogus"}, "after"), ({"after": "-1"}, "after"), ({"after": "1.5"}, "after"),
    ({"limit": "0"}, "limit"), ({"limit": "201"}, "limit"), ({"limit": "x"}, "limit"),
])
def test_event_feed_rejects_bad_parameters(team, params, field):
    r = team.owner.api.get(f"/v1/projects/{team.pid}/events", params=params)
    body = assert_problem(r, 422, "validation_failed")
    assert [e["field"] for e in body["errors"]] == [field], body
