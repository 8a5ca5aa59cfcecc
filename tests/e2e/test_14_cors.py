"""Issue 15 point 1: CORS, off by default, on with TANDEM_CORS_ORIGINS.

What a browser sees, spoken as plain HTTP (test_14_browser.py drives a real one):
- a preflight (OPTIONS with Origin and Access-Control-Request-Method) on every documented path
  is answered 204 before authentication and rate limits, with the path's own methods, the
  asked request headers among those the API reads, a max-age and Vary; an origin not listed,
  a method the path lacks or a request header the API does not read gets no grant;
- plain OPTIONS is 204 with Allow; an unknown path stays 404;
- actual answers to a listed origin (successes, problems, 429, the event stream, /docs and
  /openapi.json) carry Access-Control-Allow-Origin and Access-Control-Expose-Headers;
- `*` grants every origin and never credentials; with CORS off nothing changes but OPTIONS;
- with CORS on, a WebSocket upgrade from an origin not listed is refused 403;
- a setting that is not a list of origins stops `tandem serve` with a clear message.

One server per backend for most of the module (module scope); the `*`/429 and CORS-off cases
start one more each. The module closes its own WebSockets and streams (rtkit's autouse
close_clients would tie every test to the per-test backend parameter as well).
"""


import pytest

import contract
from harness import BACKENDS, TandemServer, assert_problem
from rtkit import RawWs, Sse
from taskkit import create_project, register

ORIGIN = "http://127.0.0.1:5173"
OTHER_LISTED = "https://app.example.com"
EVIL = "https://evil.example.com"
SETTING = f"{ORIGIN}, {OTHER_LISTED}"
EXPOSED = {"ETag", "Location", "Link", "RateLimit", "RateLimit-Policy", "Retry-After",
           "X-Request-Id", "Idempotent-Replayed"}
CLIENT_HEADERS = ("Authorization", "Content-Type", "If-Match", "If-None-Match",
                  "Idempotency-Key", "Last-Event-ID")
C = contract.contract()


def names(value):
    """A comma-separated header value as a set of its items."""
    return {v.strip() for v in (value or "").split(",") if v.strip()}


def no_cors(r):
    """No Access-Control-* header at all."""
    found = [k for k in r.headers if k.lower().startswith("access-control-")]
    assert not found, f"unexpected {found} on {r.request.method} {r.request.url}"


def granted(r, origin):
    """An actual answer a script of `origin` may read, exposed headers included."""
    assert r.headers.get("Access-Control-Allow-Origin") == origin, dict(r.headers)
    assert EXPOSED <= names(r.headers.get("Access-Control-Expose-Headers")), dict(r.headers)
    assert "Origin" in names(r.headers.get("Vary"))
    assert "Access-Control-Allow-Credentials" not in r.headers


def preflight(api, path, method, origin=ORIGIN, headers=None):
    h = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers is not None:
        h["Access-Control-Request-Headers"] = headers
    return api.request("OPTIONS", path, headers=h)


def concrete(template, ids):
    path = template.replace("{user_id}", ids["user"])
    return path.replace("{id}", ids["task"] if template.startswith("/v1/tasks/") else ids["pid"])


class World:
    def __init__(self, srv):
        self.srv = srv
        self.anon = srv.api()
        self.owner = register(self.anon, "corsowner")
        self.pid = create_project(self.owner.api, "cors")
        r = self.owner.api.post(f"/v1/projects/{self.pid}/tasks", json={"title": "t"})
        assert r.status_code == 201, r.text
        self.ids = {"pid": self.pid, "task": r.json()["id"], "user": self.owner.id}


@pytest.fixture(scope="module", params=BACKENDS)
def world(request, tmp_path_factory, module_stores):
    backend = request.param
    tmp = tmp_path_factory.mktemp(f"cors-{backend}")
    store = module_stores(backend, tmp / "data")
    env = {"TANDEM_CORS_ORIGINS": SETTING, "TANDEM_MAX_BODY_BYTES": "1024"}
    srv = TandemServer(store, tmp, env=env, name=f"cors-{backend}")
    srv.start()
    try:
        yield World(srv)
    finally:
        assert srv.stop() == 0, srv.stderr_text()[-4000:]


# ---------------------------------------------------------------------------------------
# preflight


def test_preflight_on_every_path_grants_its_own_methods(world):
    """Every documented path, asked by a listed origin for each of its methods, with no
    token: 204, the path's methods exactly as the route table has them, the headers asked,
    max-age, Vary, never credentials, no body."""
    for template, ops in C.paths.items():
        path = concrete(template, world.ids)
        want = {m.upper() for m in ops}
        for method in sorted(want):
            r = preflight(world.anon, path, method, headers="authorization,content-type")
            assert r.status_code == 204, (template, method, r.status_code, r.text)
            assert r.content == b""
            assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
            assert names(r.headers["Access-Control-Allow-Methods"]) == want, (template,
                                                                             dict(r.headers))
            assert names(r.headers["Access-Control-Allow-Headers"]) == \
                {"Authorization", "Content-Type"}
            assert r.headers["Access-Control-Max-Age"] == "600"
            assert {"Origin", "Access-Control-Request-Method",
                    "Access-Control-Request-Headers"} <= names(r.headers["Vary"])
            assert "Access-Control-Allow-Credentials" not in r.headers
            allow = names(r.headers["Allow"])
            assert allow == want | {"OPTIONS"} | ({"HEAD"} if "GET" in want else set())


def test_preflight_for_the_second_listed_origin_and_a_project_path(world):
    r = preflight(world.anon, f"/v1/projects/{world.pid}", "PATCH", origin=OTHER_LISTED,
                  headers="if-match,content-type,authorization")
    assert r.status_code == 204
    assert r.headers["Access-Control-Allow-Origin"] == OTHER_LISTED
    assert r.headers["Access-Control-Allow-Methods"] == "GET, PATCH, DELETE"
    assert names(r.headers["Access-Control-Allow-Headers"]) == \
        {"If-Match", "Content-Type", "Authorization"}


def test_preflight_grants_every_header_clients_send(world):
    asked = ",".join(h.lower() for h in CLIENT_HEADERS)
    r = preflight(world.anon, f"/v1/projects/{world.pid}/events/stream", "GET", headers=asked)
    assert r.status_code == 204
    assert names(r.headers["Access-Control-Allow-Headers"]) == set(CLIENT_HEADERS)
    # nothing asked: no Allow-Headers, still a grant
    r = preflight(world.anon, "/v1/projects", "POST")
    assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Access-Control-Allow-Headers" not in r.headers


def test_preflight_refuses_an_unknown_header_a_foreign_method_and_an_unlisted_origin(world):
    path = f"/v1/projects/{world.pid}"
    refusals = [
        preflight(world.anon, path, "PATCH", headers="authorization,x-custom"),
        preflight(world.anon, path, "PATCH", headers="cookie"),
        preflight(world.anon, path, "PUT"),   # the path has no PUT
        preflight(world.anon, path, "patch"),  # methods are case-sensitive
        preflight(world.anon, path, "PATCH", origin=EVIL),
        preflight(world.anon, path, "PATCH", origin=ORIGIN + "0"),
        preflight(world.anon, path, "PATCH", origin=ORIGIN + "/"),
        preflight(world.anon, path, "PATCH", origin="null"),
    ]
    for r in refusals:
        # An answer, but no grant: the browser refuses the call itself.
        assert r.status_code == 204, r.text
        assert names(r.headers["Allow"]) == {"GET", "HEAD", "PATCH", "DELETE", "OPTIONS"}
        assert "Origin" in names(r.headers["Vary"])
        no_cors(r)


def test_plain_options_answers_allow_and_unknown_paths_stay_404(world):
    r = world.anon.request("OPTIONS", f"/v1/tasks/{world.ids['task']}")
    assert r.status_code == 204 and r.content == b""
    assert names(r.headers["Allow"]) == {"GET", "HEAD", "PATCH", "DELETE", "OPTIONS"}
    no_cors(r)
    r = world.anon.request("OPTIONS", "/v1/auth/login")
    assert names(r.headers["Allow"]) == {"POST", "OPTIONS"}
    r = preflight(world.anon, "/v1/nowhere", "GET")
    assert_problem(r, 404, "not_found")
    granted(r, ORIGIN)  # an actual (error) answer: the script may read why
    r = world.anon.request("OPTIONS", "/nowhere")
    assert_problem(r, 404, "not_found")


def test_405_lists_options_in_allow(world):
    r = world.anon.request("PUT", "/v1/projects", headers={"Origin": ORIGIN})
    assert_problem(r, 405, "method_not_allowed")
    assert names(r.headers["Allow"]) == {"GET", "HEAD", "POST", "OPTIONS"}
    granted(r, ORIGIN)


# ---------------------------------------------------------------------------------------
# actual answers


def test_actual_answers_to_a_listed_origin_are_readable(world):
    api = world.owner.api
    h = {"Origin": ORIGIN}
    r = api.post("/v1/projects", json={"name": "from a page"},
                 headers={**h, "Idempotency-Key": "cors-1"})
    assert r.status_code == 201
    granted(r, ORIGIN)
    again = api.post("/v1/projects", json={"name": "from a page"},
                     headers={**h, "Idempotency-Key": "cors-1"})
    assert again.headers["Idempotent-Replayed"] == "true"
    granted(again, ORIGIN)
    pid = r.json()["id"]
    r = api.patch(f"/v1/projects/{pid}", json={"name": "renamed"},
                  headers={**h, "If-Match": r.headers["ETag"]})
    assert r.status_code == 200
    granted(r, ORIGIN)
    r = api.patch(f"/v1/projects/{pid}", json={"name": "stale"}, headers={**h, "If-Match": '"1"'})
    assert_problem(r, 412, "precondition_failed")
    granted(r, ORIGIN)
    r = api.post("/v1/projects", json={"name": ""}, headers=h)
    assert_problem(r, 422, "validation_failed")
    granted(r, ORIGIN)
    r = world.anon.get("/v1/projects", headers=h)
    assert_problem(r, 401, "unauthenticated")
    granted(r, ORIGIN)
    r = api.get("/v1/projects/01890000-0000-7000-8000-000000000000", headers=h)
    assert_problem(r, 404, "not_found")
    granted(r, ORIGIN)
    # refused from the headers alone, before routing (the early answer path)
    r = api.post("/v1/projects", data=b"{" + b" " * 2048 + b"}",
                 headers={**h, "Content-Type": "application/json"})
    assert_problem(r, 413, "payload_too_large")
    granted(r, ORIGIN)
    for path in ("/openapi.json", "/docs", "/healthz", "/v1"):
        r = world.anon.get(path, headers={"Origin": OTHER_LISTED})
        assert r.status_code == 200, path
        granted(r, OTHER_LISTED)


def test_the_event_stream_is_readable_from_a_listed_origin(world):
    sse = Sse(world.srv, world.owner.token, world.pid, headers={"Origin": ORIGIN})
    assert sse.status == 200
    assert sse.resp.getheader("Access-Control-Allow-Origin") == ORIGIN
    assert "Origin" in names(sse.resp.getheader("Vary"))
    sse.close()


def test_an_unlisted_origin_gets_answers_without_a_grant(world):
    r = world.owner.api.get(f"/v1/projects/{world.pid}", headers={"Origin": EVIL})
    assert r.status_code == 200  # served (not a browser's business here), but unreadable
    no_cors(r)
    assert "Origin" in names(r.headers["Vary"])  # a cache must not reuse it for ORIGIN
    r = world.owner.api.get(f"/v1/projects/{world.pid}")
    no_cors(r)


def test_websocket_from_an_unlisted_origin_is_refused(world):
    ws = RawWs(world.srv, headers={"Origin": EVIL})
    assert ws.status == 403, (ws.status, ws.body)
    assert b'"code":"forbidden"' in ws.body
    ws.close()
    for headers in ({"Origin": ORIGIN}, {"Origin": OTHER_LISTED}, None):
        ws = RawWs(world.srv, headers=headers)
        assert ws.status == 101, (headers, ws.status, ws.body)
        ws.close()


# ---------------------------------------------------------------------------------------
# `*`, rate limits, CORS off, bad settings


def test_star_grants_every_origin_even_on_429_and_never_credentials(tandem_server):
    srv = tandem_server(env={"TANDEM_CORS_ORIGINS": "*", "TANDEM_RATE_LIMIT": "on",
                             "TANDEM_RATE_LIMIT_ANON": "1/min,burst=2"})
    api = srv.api()
    h = {"Origin": "https://anywhere.example"}
    ws = RawWs(srv, headers=h)
    assert ws.status == 101, (ws.status, ws.body)  # any origin may open a WebSocket
    ws.close()
    first = api.get("/v1", headers=h)
    assert first.status_code == 200
    granted(first, "*")
    assert "RateLimit" in first.headers
    r = api.get("/v1", headers=h)
    assert_problem(r, 429, "rate_limited")
    granted(r, "*")
    assert "Retry-After" in r.headers
    # The budget is spent, yet preflights are answered: they come before limits.
    p = preflight(api, "/v1/projects", "POST", origin="https://anywhere.example",
                  headers="authorization,content-type,idempotency-key")
    assert p.status_code == 204
    assert p.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in p.headers
    assert "RateLimit" not in p.headers


def test_cors_off_by_default(server):
    api = server.api()
    r = preflight(api, "/v1/projects", "POST", headers="authorization,content-type")
    assert r.status_code == 204  # OPTIONS is answered with Allow, but grants nothing
    assert names(r.headers["Allow"]) == {"GET", "HEAD", "POST", "OPTIONS"}
    no_cors(r)
    assert "Vary" not in r.headers
    r = api.get("/v1", headers={"Origin": ORIGIN})
    assert r.status_code == 200
    no_cors(r)
    ws = RawWs(server, headers={"Origin": EVIL})  # today's behaviour: origins not checked
    assert ws.status == 101
    ws.close()


BAD_SETTINGS = [
    ("http://127.0.0.1:5173/", "no path"),
    ("https://app.example.com/app", "no path"),
    ("app.example.com", "scheme://host"),
    ("*, http://127.0.0.1:5173", "must be the only value"),
    ("http://127.0.0.1:5173,,https://app.example.com", "empty item"),
    ("http://app.example.com:80", "default port"),
    ("null", "sandboxed"),
]


def test_a_bad_setting_stops_serve_with_a_clear_message(tandem_cli):
    for value, says in BAD_SETTINGS:
        p = tandem_cli("serve", env={"TANDEM_CORS_ORIGINS": value})
        assert p.returncode == 2, (value, p.stderr)
        assert "TANDEM_CORS_ORIGINS" in p.stderr and says in p.stderr, (value, p.stderr)
