"""Issue 15, points 5 and 6: query strings as strict as bodies, cursors bound to the query.

- An unknown or misspelt parameter is 422 `unknown_parameter`, naming it, the name it most
  likely meant and the names the route takes; a route without parameters refuses any.
- A parameter given twice is 422 (`repeated`) unless it is a list: `status=todo&status=done`
  is `status=todo,done`.
- A bad value is named with the values allowed or the range; a timestamp whose `+` arrived
  as a space says to write `%2B`.
- A cursor is bound to its list and to every filter and the sort: "cursor was made for
  another query" / "another list"; `limit` may change between pages.

One server per backend for the whole module; every refusal is checked to leave the stored
data as it was.
"""


import pytest

from harness import BACKENDS, TandemServer, assert_problem
from taskkit import Team, create_project, last_seq, snapshot

TASKS = "/v1/projects/{pid}/tasks"


@pytest.fixture(scope="module", params=BACKENDS)
def team(request, tmp_path_factory, module_stores):
    backend = request.param
    tmp = tmp_path_factory.mktemp(f"queries-{backend}")
    store = module_stores(backend, tmp / "data")
    srv = TandemServer(store, tmp, name=f"queries-{backend}")
    srv.start()
    try:
        t = Team(srv)
        t.tasks = {}
        for status in ("todo", "in_progress", "done"):
            for i in range(2):
                t.tasks[t.create(title=f"{status} {i}", status=status)["id"]] = status
        yield t
    finally:
        assert srv.stop() == 0, srv.stderr_text()[-4000:]


def unknown(r, name, hint=None):
    """The 422 unknown_parameter for `name`; returns the problem body."""
    body = assert_problem(r, 422, "unknown_parameter")
    assert [e["field"] for e in body["errors"]] == [name], body
    assert body["errors"][0]["code"] == "unknown_parameter", body
    if hint:
        assert body["errors"][0]["message"] == \
            f"is not a parameter of this route; did you mean '{hint}'?", body
        assert f"did you mean '{hint}'?" in body["detail"], body
    return body


def field_error(r, status, code, field):
    body = assert_problem(r, status, code)
    assert [e["field"] for e in body["errors"]] == [field], body
    return body["errors"][0]


def test_unknown_parameters_are_refused_with_the_accepted_names(team):
    api, path = team.owner.api, TASKS.format(pid=team.pid)
    before = snapshot(team.store)
    # The three: a misspelling and two names other APIs use.
    for query, name, hint in (("priorty=high", "priorty", "priority"),
                              ("per_page=2", "per_page", "limit"),
                              ("order=desc", "order", "sort")):
        for p in (path, "/v1/tasks"):
            body = unknown(api.get(f"{p}?{query}"), name, hint)
            assert "accepted: status, priority, assignee_id, due_before, due_after, " \
                "updated_since, q, sort, limit, cursor" in body["detail"], body
    body = unknown(api.get("/v1/projects?limit=2&pagesize=2"), "pagesize", "limit")
    assert body["detail"].endswith("accepted: q, limit, cursor"), body
    # Several unknown: each named once, however often it is repeated.
    body = assert_problem(api.get(f"{path}?a=1&status=todo&b&a=2"), 422, "unknown_parameter")
    assert [e["field"] for e in body["errors"]] == ["a", "b"], body
    # Routes without parameters refuse any, GET and HEAD alike, with or without a body.
    for r in (api.get("/v1/users/me?verbose=1"), team.anon.get("/healthz?probe=lb"),
              api.get(f"/v1/projects/{team.pid}?fields=name")):
        body = unknown(r, r.request.url.split("?")[1].split("=")[0])
        assert body["detail"].endswith("this route takes no query parameters"), body
    # Empty segments are no parameters: a trailing '&' is harmless; a value without a name
    # is not.
    assert team.anon.get("/healthz?&").status_code == 200
    assert api.get(f"{path}?limit=1&&status=todo&").status_code == 200
    unknown(team.anon.get("/healthz?=x"), "")
    # ... also after an empty segment with the same (empty) name: found by fuzz_request, it
    # was passed as a repeat of the skipped segment and then crashed the server (NULL route
    # parameter).
    unknown(team.anon.get("/healthz?&=x"), "")
    unknown(api.get(f"{path}?&=x&status=todo"), "")
    r = api.head("/v1/users/me?verbose=1")
    assert r.status_code == 422 and r.content == b""
    r = api.post(f"{path}?notify=true", json={"title": "never stored"})
    unknown(r, "notify")
    r = api.patch(f"/v1/projects/{team.pid}?force=1", json={"name": "renamed"})
    unknown(r, "force")
    assert snapshot(team.store) == before


def test_a_repeated_list_is_merged_and_a_repeated_value_refused(team):
    api, path = team.owner.api, TASKS.format(pid=team.pid)
    want = {i for i, s in team.tasks.items() if s in ("todo", "done")}

    def ids(query):
        r = api.get(f"{path}?{query}")
        assert r.status_code == 200, r.text
        return {t["id"] for t in r.json()["data"]}

    assert ids("status=todo&status=done") == ids("status=todo,done") == want
    assert ids("status=done&status=todo&status=done") == want
    assert ids("priority=medium&priority=high&status=todo,in_progress&status=done") == \
        set(team.tasks)
    # sort is a list too: repeats join in order, and a key twice is still refused.
    assert ids("sort=priority&sort=-created_at") == set(team.tasks)
    e = field_error(api.get(f"{path}?sort=priority&sort=priority"), 422, "validation_failed",
                    "sort")
    assert e["message"].startswith("'priority' is given twice"), e
    # A parameter that is not a list, twice: refused naming both values, even when equal.
    for query, field, message in (
            ("limit=1&limit=2", "limit", "must be given once (it is not a list): '1', then '2'"),
            ("q=a&q=a", "q", "must be given once (it is not a list): 'a', then 'a'"),
            ("assignee_id=me&assignee_id=none", "assignee_id",
             "must be given once (it is not a list): 'me', then 'none'")):
        e = field_error(api.get(f"{path}?{query}"), 422, "validation_failed", field)
        assert (e["code"], e["message"]) == ("repeated", message), e
    e = field_error(api.get(f"/v1/projects/{team.pid}/events?after=1&after=2"), 422,
                    "validation_failed", "after")
    assert e["code"] == "repeated", e


def test_bad_values_are_named_with_what_is_allowed(team):
    api, path = team.owner.api, TASKS.format(pid=team.pid)
    cases = [
        (path, "status=open", "status", "'open' is not one of todo, in_progress, done"),
        (path, "status=todo&status=Done", "status",
         "'Done' is not one of todo, in_progress, done"),
        ("/v1/tasks", "priority=high,critical", "priority",
         "'critical' is not one of low, medium, high, urgent"),
        (path, "sort=title", "sort", "'title' is not a sort key: sort by created_at, "
         "updated_at, due_date, priority, each at most once, optionally prefixed with '-'"),
        (path, "limit=500", "limit", "'500' is not a whole number from 1 to 200"),
        ("/v1/projects", "limit=ten", "limit", "'ten' is not a whole number from 1 to 200"),
        (f"/v1/projects/{team.pid}/members", "limit=0", "limit",
         "'0' is not a whole number from 1 to 200"),
        (path, "assignee_id=bob", "assignee_id", "'bob' is not a user id (a UUID), me or none"),
        ("/v1/tasks", "project_id=tandem", "project_id",
         "'tandem' is not a project id (a UUID)"),
        (path, "updated_since=yesterday", "updated_since",
         "'yesterday' is not an RFC 3339 date-time such as 2024-01-15T14:30:00Z"),
        (f"/v1/projects/{team.pid}/events", "after=-1", "after",
         "'-1' is not an event seq (a whole number >= 0)"),
        (f"/v1/projects/{team.pid}/events", "wait=forever", "wait",
         "'forever' is not a whole number of seconds from 0 to 30"),
        (path, "q=%FF", "q", "must be UTF-8 text, percent-encoded byte by byte"),
        (path, "q=a%00b", "q", "must not contain a NUL byte (%00)"),
        # A missing required parameter is named as missing, not as too short.
        ("/v1/users", "", "q", "is required (at least 2 characters)"),
    ]
    for p, query, field, message in cases:
        e = field_error(api.get(f"{p}?{query}"), 422, "validation_failed", field)
        assert e["message"] == message, (query, e)
    assert field_error(api.get("/v1/users"), 422, "validation_failed", "q")["code"] == \
        "required"
    head = last_seq(api, team.pid)
    e = field_error(api.get(f"/v1/projects/{team.pid}/events?after={head + 5}&wait=1"), 422,
                    "validation_failed", "after")
    assert e["message"] == f"'{head + 5}' is beyond the project's last event (seq {head})", e
    # A long value is quoted cut short, never echoed whole.
    e = field_error(api.get(f"{path}?status={'x' * 5000}"), 422, "validation_failed", "status")
    assert e["message"] == f"'{'x' * 40}...' is not one of todo, in_progress, done", e


def test_a_plus_that_arrived_as_a_space_is_explained(team):
    api, path = team.owner.api, TASKS.format(pid=team.pid)
    due = team.create(title="due at nine in Paris", due_date="2026-01-15T08:00:00Z")["id"]
    try:
        # Unencoded, as a client that builds the URL by hand sends it.
        for name in ("due_before", "due_after", "updated_since"):
            e = field_error(api.get(f"{path}?{name}=2026-01-15T09:00:00+01:00"), 422,
                            "validation_failed", name)
            assert e["message"] == ("'2026-01-15T09:00:00 01:00' is not an RFC 3339 date-time: "
                                    "a '+' in a query string means a space: write it as %2B"), e
        # Encoded, it is the instant meant: 08:00Z is not before 09:00+01:00, but is before
        # 09:00:01+01:00.
        r = api.get(f"{path}?due_before=2026-01-15T09:00:00%2B01:00")
        assert r.status_code == 200 and due not in {t["id"] for t in r.json()["data"]}
        r = api.get(f"{path}?due_before=2026-01-15T09:00:01%2B01:00")
        assert r.status_code == 200 and [t["id"] for t in r.json()["data"]] == [due]
    finally:
        assert team.owner.api.delete(f"/v1/tasks/{due}").status_code == 204


def page(api, url):
    r = api.get(url)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_cursor_is_bound_to_every_filter_and_the_sort(team):
    api, path = team.owner.api, TASKS.format(pid=team.pid)
    first = page(api, f"{path}?status=todo&status=done&sort=priority&limit=1")
    cursor = first["next_cursor"]
    assert cursor
    before = snapshot(team.store)
    # Changing a filter or the sort between pages: refused, saying why.
    for query in ("status=todo", "status=todo,done,in_progress", "sort=priority",
                  "status=todo,done", "status=todo,done&sort=-priority",
                  "status=todo,done&sort=priority&q=todo", "status=todo,done&sort=priority"
                  "&assignee_id=none", "status=todo,done&sort=priority&due_after=2020-01-01T"
                  "00:00:00Z"):
        for p in (path, "/v1/tasks"):
            r = api.get(f"{p}?{query}&cursor={cursor}&limit=1")
            body = assert_problem(r, 400, "bad_request")
            want = "another query" if p == path else "another list"
            assert body["detail"].startswith(f"cursor was made for {want}"), (p, query, body)
    assert snapshot(team.store) == before
    # The same query written another way is the same query; limit may change.
    seen = {t["id"] for t in first["data"]}
    url = f"{path}?status=done,todo&sort=priority&cursor={cursor}&limit=2"
    while url:
        body = page(api, url)
        seen |= {t["id"] for t in body["data"]}
        url = body["next_cursor"] and \
            f"{path}?sort=priority&status=todo&status=done&limit=3&cursor={body['next_cursor']}"
    assert seen == {i for i, s in team.tasks.items() if s in ("todo", "done")}


def test_a_cursor_from_another_list_says_so(team):
    api = team.owner.api
    other = create_project(api, "other list")
    team.create(pid=other, title="o1")
    team.create(pid=other, title="o2")
    made = {
        "project tasks": (TASKS.format(pid=team.pid), "limit=1"),
        "all tasks": ("/v1/tasks", "limit=1"),
        "members": (f"/v1/projects/{team.pid}/members", "limit=1"),
        "projects": ("/v1/projects", "limit=1"),
    }
    cursors = {k: page(api, f"{p}?{q}")["next_cursor"] for k, (p, q) in made.items()}
    assert all(cursors.values()), cursors
    targets = dict(made, **{"other project tasks": (TASKS.format(pid=other), "limit=1")})
    for made_on, cursor in cursors.items():
        for used_on, (p, q) in targets.items():
            if used_on == made_on:
                continue
            body = assert_problem(api.get(f"{p}?{q}&cursor={cursor}"), 400, "bad_request")
            assert body["detail"] == "cursor was made for another list", (made_on, used_on)
    # Another user's cursor of "the same" cross-project list is another list too.
    body = assert_problem(team.member.api.get(f"/v1/tasks?limit=1&cursor={cursors['all tasks']}"),
                          400, "bad_request")
    assert body["detail"] == "cursor was made for another list"
