"""Issue 6: the API document (api/openapi.yaml) and the server agree.

- The document passes the Redocly linter (pinned in package-lock.json), no warnings allowed.
- The set of routes in src/http/routes.c equals the document's paths and methods, and each
  route's flags (public, idempotent, rate limited) match what the document says of it.
- Every operation documents the statuses the server's shared machinery can give it.
- Every constraint the document puts on a request body, a query parameter or a header is
  enforced: a request that breaks exactly that constraint is answered 422 naming the field
  (400 for a header). The cases are generated from the document, on every backend.
- The server serves the document it was built from at /openapi.json, and /docs renders it
  in headless Chromium with no network at all.

Every response of every e2e test is also checked against the document (contract.py, wired
in conftest.py); this file holds the checks that look at the document as a whole.
"""

import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest
import requests

import contract
from harness import BACKENDS, REPO, StoreTarget, TandemServer, assert_problem

SPEC = contract.load_spec()
C = contract.Contract(SPEC)
ROUTES_C = REPO / "src" / "http" / "routes.c"
REDOCLY = REPO / "node_modules" / ".bin" / "redocly"
NPM_HINT = "run `npm ci` in the repository root (scripts/deps does it)"
PASSWORD = "correct horse battery staple"
JSON = {"Content-Type": "application/json"}


def route_table():
    """{(METHOD, pattern): {flag, ...}} parsed from the route table in routes.c."""
    text = ROUTES_C.read_text()
    body = text[text.index("routes[] = {"):]
    body = body[:body.index("};")]
    body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
    routes = {}
    for m in re.finditer(r'\{\s*"([A-Z]+)"\s*,\s*"([^"]+)"\s*,\s*(\w+)\s*,\s*([^}]*?)\s*\}',
                         body):
        method, pattern, _handler, flags = m.groups()
        key = (method, pattern)
        assert key not in routes, f"{method} {pattern} is twice in routes.c"
        routes[key] = {f.strip() for f in flags.split("|") if f.strip() not in ("", "0")}
    assert routes, "no route parsed from routes.c"
    return routes


ROUTES = route_table()


def anonymous_allowed(op):
    """The operation needs no token: `security: []`, or an empty requirement among others
    (an optional token, as on the WebSocket upgrade)."""
    security = op.get("security", SPEC["security"])
    return security == [] or {} in security


# ---------------------------------------------------------------------------------------
# The document itself


def test_document_passes_the_linter():
    if not REDOCLY.exists():
        pytest.fail(f"{REDOCLY} is missing: {NPM_HINT}")
    env = dict(os.environ, REDOCLY_TELEMETRY="off", REDOCLY_SUPPRESS_UPDATE_NOTICE="true",
               NO_COLOR="1")
    p = subprocess.run([str(REDOCLY), "lint", "--format=stylish"], cwd=REPO, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert p.returncode == 0, f"redocly lint (redocly.yaml) failed:\n{p.stdout[-8000:]}"


def test_document_is_openapi_3_1_with_bearer_security():
    assert SPEC["openapi"].startswith("3.1.")
    scheme = SPEC["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    assert SPEC["security"] == [{"bearerAuth": []}]


def test_route_table_and_document_list_the_same_operations():
    documented = {(m, t) for m, t, _ in C.operations()}
    in_router = set(ROUTES)
    missing = sorted(in_router - documented)
    extra = sorted(documented - in_router)
    assert not missing, f"routes in src/http/routes.c missing from api/openapi.yaml: {missing}"
    assert not extra, f"operations in api/openapi.yaml that src/http/routes.c lacks: {extra}"


@pytest.mark.parametrize("method,template", sorted(ROUTES), ids=lambda v: str(v))
def test_route_flags_match_the_document(method, template):
    flags = ROUTES[(method, template)]
    op = C.paths.get(template, {}).get(method)
    if op is None:
        pytest.fail(f"{method} {template} is not documented")
    public = anonymous_allowed(op)
    assert public == ("ROUTE_PUBLIC" in flags), \
        f"ROUTE_PUBLIC is {'ROUTE_PUBLIC' in flags}, the document says public={public}"
    headers = {C.resolve(p)["name"] for p in op["parameters"] if C.resolve(p)["in"] == "header"}
    assert ("Idempotency-Key" in headers) == ("ROUTE_IDEMPOTENT" in flags), \
        "Idempotency-Key must be documented exactly on ROUTE_IDEMPOTENT routes"
    limited = "ROUTE_UNLIMITED" not in flags
    assert ("429" in op["responses"]) == limited, \
        "429 must be documented exactly on the routes that are rate limited"


@pytest.mark.parametrize("method,template", sorted((m, t) for m, t, _ in C.operations()),
                         ids=lambda v: str(v))
def test_operation_documents_what_the_shared_machinery_answers(method, template):
    """Statuses every route of a kind can give, whatever its handler does: the server
    checks the body size before routing (413), may fail (500), authenticates (401),
    parses JSON bodies (400, 415, 422) and finds path ids (404)."""
    op = C.paths[template][method]
    have = set(op["responses"])
    want = {"413", "500"}
    if not anonymous_allowed(op):
        want |= {"401", "503"}
    if "requestBody" in op:
        want |= {"400", "415", "422"}
    if "{" in template:
        want.add("404")
    assert not want - have, f"{method} {template} does not document {sorted(want - have)}"
    assert any(s.startswith(("2", "101")) for s in have), "no success status documented"
    for status, resp in op["responses"].items():
        resp = C.resolve(resp)
        headers = resp.get("headers", {})
        assert "X-Request-Id" in headers, f"{status}: X-Request-Id is not documented"
        readiness = template == "/readyz" and status == "503"  # says which check failed
        if status.startswith(("4", "5")) and not readiness:
            assert list(resp.get("content", {})) == ["application/problem+json"], \
                f"{status} must be a problem+json answer"
        # A stream ticket (issue 15) is created but has no URL of its own: it is spent once,
        # in a live channel's URL; every other 201 says where the new thing is.
        if status == "201" and template != "/v1/realtime/tickets":
            assert "Location" in headers, "201 without Location"


def test_request_body_examples_follow_their_schemas():
    for method, template, op in C.operations():
        if "requestBody" not in op:
            continue
        media = C.resolve(op["requestBody"])["content"]["application/json"]
        assert "example" in media, f"{method} {template}: request body without an example"
        assert C.errors(media["schema"], media["example"]) == [], (method, template)


# ---------------------------------------------------------------------------------------
# Documented constraints are enforced (cases generated from the document)


def _cases():
    out = []
    for method, template, op in C.operations():
        if "requestBody" in op:
            media = C.resolve(op["requestBody"])["content"]["application/json"]
            for label, body, field in contract.body_cases(C, media["schema"], media["example"]):
                out.append(pytest.param(method, template, "body", body, None, field,
                                        id=f"{method} {template} body {label}"))
        for p in op["parameters"]:
            p = C.resolve(p)
            if p["in"] == "query":
                for label, text in contract.query_cases(C, p):
                    out.append(pytest.param(method, template, "query", p["name"], text,
                                            p["name"],
                                            id=f"{method} {template} ?{p['name']} {label}"))
            elif p["in"] == "header":
                for label, text in contract.header_cases(C, p):
                    out.append(pytest.param(method, template, "header", p["name"], text,
                                            p["name"],
                                            id=f"{method} {template} {p['name']}: {label}"))
    return out


CASES = _cases()
_db_counter = itertools.count(1)


class World:
    """One server with an owner, a member, a project and a task: every path of the document
    can be filled with ids that exist, so a 422 is about the request, not a missing thing."""

    def __init__(self, srv):
        self.srv = srv
        api = srv.api()
        self.owner = self.register(api, "owner")
        self.member = self.register(api, "member")
        owner = srv.api(self.owner["access_token"])
        r = owner.post("/v1/projects", json={"name": "Contract"})
        assert r.status_code == 201, r.text
        self.project = r.json()
        r = owner.post(f"/v1/projects/{self.project['id']}/members",
                       json={"user_id": self.member["user"]["id"], "role": "member"})
        assert r.status_code == 201, r.text
        r = owner.post(f"/v1/projects/{self.project['id']}/tasks", json={"title": "Contract"})
        assert r.status_code == 201, r.text
        self.task = r.json()

    @staticmethod
    def register(api, name):
        r = api.post("/v1/auth/register", json={"email": f"{name}@example.com",
                                                "username": name, "password": PASSWORD})
        assert r.status_code == 201, r.text
        return r.json()

    def url(self, template):
        ids = {"{user_id}": self.member["user"]["id"],
               "{id}": self.task["id"] if template.startswith("/v1/tasks/")
               else self.project["id"]}
        for k, v in ids.items():
            template = template.replace(k, v)
        return template


@pytest.fixture(scope="module", params=BACKENDS)
def world(request, tmp_path_factory):
    backend = request.param
    tmp = tmp_path_factory.mktemp(f"contract-{backend}")
    if backend == "postgres":
        cluster = request.getfixturevalue("pg_cluster")
        dbname = f"contract{os.getpid()}_{next(_db_counter)}"
        cluster.create_database(dbname)
        store = StoreTarget(backend, tmp / "data", cluster, dbname)
    else:
        store = StoreTarget(backend, tmp / "data")
    srv = TandemServer(store, tmp, name=f"contract-{backend}")
    srv.start()
    try:
        yield World(srv)
    finally:
        assert srv.stop() == 0, srv.stderr_text()[-4000:]


@pytest.mark.parametrize("method,template,where,what,value,field", CASES)
def test_documented_constraint_is_enforced(world, method, template, where, what, value, field):
    op = C.paths[template][method]
    api = world.srv.api(None if anonymous_allowed(op) else world.owner["access_token"])
    url = world.url(template)
    kw = {}
    if where == "body":
        kw["json"] = what
    elif where == "query":
        if value is not None:
            url += "?" + requests.compat.urlencode({what: value})
    else:
        kw["headers"] = {what: value}
        media = C.resolve(op["requestBody"])["content"]["application/json"]
        kw["json"] = media["example"]
    r = api.request(method, url, **kw)
    if where == "header":
        # A malformed header is not a field of the request: 400 (API.md's bad_request).
        assert_problem(r, 400, "bad_request")
        return
    body = assert_problem(r, 422, "validation_failed")
    named = {e["field"] for e in body.get("errors", [])}
    wanted = field if isinstance(field, set) else {field}
    assert named & wanted, f"422 names {sorted(named)}, not {sorted(wanted)}: {body}"


# ---------------------------------------------------------------------------------------
# The served document and its rendered reference


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory):
    """A server for the static documents; they do not touch the store, so one backend is
    enough."""
    tmp = tmp_path_factory.mktemp("docs")
    srv = TandemServer(StoreTarget("sqlite", tmp / "data"), tmp, name="docs")
    srv.start()
    try:
        yield srv
    finally:
        assert srv.stop() == 0, srv.stderr_text()[-4000:]


def test_openapi_json_is_the_document_the_binary_was_built_from(docs_server):
    api = docs_server.api()
    r = api.get("/openapi.json")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    assert r.json() == SPEC, "build/ embeds an older api/openapi.yaml: rebuild (ninja -C build)"
    assert r.headers["Cache-Control"] == "public, max-age=300"
    etag = r.headers["ETag"]
    again = api.get("/openapi.json", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["ETag"] == etag
    weak = api.get("/openapi.json", headers={"If-None-Match": f'"other", W/{etag}'})
    assert weak.status_code == 304
    stale = api.get("/openapi.json", headers={"If-None-Match": '"0123456789abcdef"'})
    assert stale.status_code == 200 and stale.json() == SPEC


def test_docs_page_is_self_contained(docs_server):
    r = docs_server.api().get("/docs")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    csp = r.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    html = r.text
    # Nothing is fetched from elsewhere: no external script, style sheet, font or image.
    assert not re.search(r"""<(script|link|img|iframe)[^>]+(src|href)\s*=\s*["']?(https?:)?//""",
                         html, re.I)
    assert "fonts.googleapis.com" not in html
    embedded = re.search(r'<script id="openapi" type="application/json">(.*?)</script>',
                         html, re.S)
    assert embedded and json.loads(embedded.group(1)) == SPEC
    assert "Redoc.init" in html
    etag = r.headers["ETag"]
    assert docs_server.api().get("/docs", headers={"If-None-Match": etag}).status_code == 304


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_docs_render_in_a_browser_without_network(docs_server, tmp_path):
    """Headless Chromium, every host name but 127.0.0.1 made unresolvable: the page must
    still render every operation of the document."""
    assert CHROMIUM, "chromium is missing: scripts/deps test installs it"
    profile = tempfile.mkdtemp(dir=tmp_path)
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-quic", "--disable-extensions", f"--user-data-dir={profile}",
           "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
           "--virtual-time-budget=20000", "--window-size=1400,1000", "--dump-dom",
           docs_server.base_url + "/docs"]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=180)
    dom = p.stdout
    assert p.returncode == 0 and "</html>" in dom, p.stderr[-4000:]
    missing = [f"{m} {t}: {op['summary']}" for m, t, op in C.operations()
               if op["summary"] not in dom]
    assert not missing, f"/docs did not render: {missing}"
    for tag in SPEC["tags"]:
        assert tag["name"] in dom
