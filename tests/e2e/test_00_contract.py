"""Issue 6: the API document (api/openapi.yaml) and the server agree.

- The document passes the Redocly linter (pinned in package-lock.json), no warnings allowed.
- The set of routes in src/http/routes.c equals the document's paths and methods, and each
  route's flags (public, idempotent, rate limited) match what the document says of it.
- Every operation documents the statuses the server's shared machinery can give it, and the
  query parameters the route table (route_queries in routes.c) makes it accept.
- Every constraint the document puts on a request body, a query parameter or a header is
  enforced: a request that breaks exactly that constraint is answered 422 naming the field
  (400 for a header). The cases are generated from the document, on every backend.
- The server serves the document it was built from at /openapi.json, and /docs renders it
  in headless Chromium with no network at all.

Every response of every e2e test is also checked against the document (contract.py, wired
in conftest.py); this file holds the checks that look at the document as a whole.
"""

import json
import os
import re
import shutil
import subprocess
import tempfile
from urllib.parse import urljoin, urlsplit

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


def route_queries():
    """{(METHOD, pattern): {name: is_list}} parsed from route_queries in routes.c: the query
    parameters each route accepts (a route not there takes none)."""
    text = re.sub(r"/\*.*?\*/", "", ROUTES_C.read_text(), flags=re.S)
    text = text.replace("\\\n", " ")
    macros = dict(re.findall(r"#define (\w+)\s+(.*)", text))
    tables = {}
    for m in re.finditer(r"static const struct route_param (\w+)\[\] = \{(.*?)\};", text,
                         re.S):
        body = m.group(2)
        for name, value in macros.items():
            body = re.sub(rf"\b{name}\b", value, body)
        tables[m.group(1)] = {n: "PARAM_LIST" in f for n, f in
                              re.findall(r'\{\s*"(\w+)"\s*,\s*([\w|\s]+)\}', body)}
    body = text[text.index("route_queries[] = {"):]
    body = body[:body.index("};")]
    out = {}
    for m in re.finditer(r'\{\s*"([A-Z]+)"\s*,\s*"([^"]+)"\s*,\s*(\w+)\s*\}', body):
        out[(m.group(1), m.group(2))] = tables[m.group(3)]
    assert out, "no route_queries parsed from routes.c"
    return out


ROUTE_QUERIES = route_queries()


def anonymous_allowed(op):
    """The operation needs no token: `security: []`, or an empty requirement among others
    (an optional token, as on the WebSocket upgrade)."""
    security = op.get("security", SPEC["security"])
    return security == [] or {} in security


METHOD_NAMES = ("GET", "POST", "PUT", "PATCH", "DELETE")


def readme_routes():
    """{(METHOD, pattern)} of the README's route table ("| area | routes |" under "The
    API"). Its shorthand: `GET`/`PATCH /path` gives both methods the path; `/login` after
    `POST /v1/auth/register` is `POST /v1/auth/login`; queries and notes are dropped."""
    text = (REPO / "README.md").read_text()
    table = text[text.index("| area | routes |"):]
    table = table[:table.index("\n\n")]
    routes = set()
    for row in table.splitlines()[2:]:
        pending, methods, last = [], [], None
        for token in re.findall(r"`([^`]+)`", row.split("|")[2]):
            token = token.split("?")[0].strip()
            words = token.split()
            if len(words) == 1 and words[0] in METHOD_NAMES:
                pending.append(words[0])
                continue
            if len(words) == 2 and words[0] in METHOD_NAMES and words[1].startswith("/"):
                methods, last, pending = pending + [words[0]], words[1], []
            elif len(words) == 1 and token.startswith("/") and last and methods:
                last = last.rsplit("/", 1)[0] + token  # a sibling of the previous path
            else:
                continue  # a message name or a header, not a route
            routes.update((m, last) for m in methods)
    return routes


def test_readme_lists_every_route():
    """The README's route table names exactly the routes of routes.c."""
    listed = readme_routes()
    assert set(ROUTES) - listed == set(), "routes the README does not list"
    assert listed - set(ROUTES) == set(), "routes the README lists that routes.c lacks"


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


@pytest.mark.parametrize("method,template", sorted(ROUTES), ids=lambda v: str(v))
def test_route_query_parameters_match_the_document(method, template):
    """The query parameters the server accepts (routes.c) are the ones documented, and the
    lists (repeats merged) are the documented arrays with explode: true."""
    accepted = ROUTE_QUERIES.get((method, template), {})
    op = C.paths[template][method]
    documented = {}
    for p in op.get("parameters", []):
        p = C.resolve(p)
        if p["in"] == "query":
            schema = C.resolve(p.get("schema", {}))
            documented[p["name"]] = schema.get("type") == "array"
            if documented[p["name"]]:
                assert p.get("style", "form") == "form" and p.get("explode", True), \
                    f"list ?{p['name']} must be documented style: form, explode: true"
    assert set(documented) <= set(accepted), \
        f"documented but refused as unknown: {sorted(set(documented) - set(accepted))}"
    assert set(accepted) <= set(documented), \
        f"accepted but not documented: {sorted(set(accepted) - set(documented))}"
    for name, is_list in documented.items():
        assert accepted[name] == is_list, f"?{name}: PARAM_LIST is {accepted[name]}, " \
            f"the document says list={is_list}"


@pytest.mark.parametrize("method,template", sorted((m, t) for m, t, _ in C.operations()),
                         ids=lambda v: str(v))
def test_operation_documents_what_the_shared_machinery_answers(method, template):
    """Statuses every route of a kind can give, whatever its handler does: the server
    checks the body size before routing (413), may fail (500), authenticates (401), checks
    the query string (422 unknown_parameter, on every route), parses JSON bodies (400, 415,
    422) and finds path ids (404)."""
    op = C.paths[template][method]
    have = set(op["responses"])
    want = {"413", "422", "500"}
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
def world(request, tmp_path_factory, module_stores):
    backend = request.param
    tmp = tmp_path_factory.mktemp(f"contract-{backend}")
    store = module_stores(backend, tmp / "data")
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


def test_served_document_points_at_the_server_that_serves_it(docs_server):
    """`servers` is relative (OpenAPI 3.1 4.8.5: resolved against where the document was
    fetched), so a client reading /openapi.json from any host or port calls that server,
    not a hard-coded 127.0.0.1:8080; and no Host header decides it."""
    api = docs_server.api()
    doc_url = docs_server.base_url + "/openapi.json"
    r = api.get("/openapi.json", headers={"Host": "attacker.example"})
    assert r.status_code == 200
    servers = r.json()["servers"]
    assert servers and all(not urlsplit(s["url"]).netloc for s in servers), servers
    base = urljoin(doc_url, servers[0]["url"])
    assert base.rstrip("/") == docs_server.base_url, base
    health = requests.get(urljoin(base, "healthz"), timeout=10)
    assert health.status_code == 200, health.text


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
