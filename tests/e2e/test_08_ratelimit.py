"""Issue 9 end to end: rate limiting (GCRA) per client IP, per user and per login name.

Most tests run on both limiter stores, in-process (`memory`) and a real redis-server started
by the test (`redis`), and, like every e2e test, on both databases: test_x[sqlite-memory] ...
test_x[postgres-redis]. They check what a client sees (status, problem, RateLimit-Policy /
RateLimit / Retry-After) and, for refused writes, what the database holds afterwards.

Policies in these tests are tiny or slow ("1/h,burst=3") so that counts are exact and no
token comes back while a test runs; the refill tests use fast ones (1/s) and sleep briefly.
No test asserts how long anything took.

The Redis-only tests: two instances on one redis-server share one budget (TCP and Unix
socket); one round trip per check; Redis stopped mid-test (reads fail open, logins fall back
to the in-process limiter, /readyz says so) and restarted (shared limiting resumes by
itself); Redis restarted while tandem is idle (no request slips through unlimited); Redis
down at start-up. The redis_server fixture lives in tests/e2e/conftest.py.

Header syntax (draft-ietf-httpapi-ratelimit-headers, -08 and later): RateLimit-Policy is a
Structured-Field list of String items with parameters q (quota) and w (window, seconds);
RateLimit carries r (remaining) and t (seconds) for the same policy name. Since issue 15 the
policy states what is enforced: q is the burst (the requests that pass at once) and w the
seconds an empty bucket takes to fill up again, so "10/min,burst=5" reads q=5;w=30, not
q=10;w=60. The per-account failed-login limit (login-account, login-device) is in
test_14_login_limits.py.
"""

import base64
import http.client
import json
import math
import os
import re
import socket
import time
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
import requests

from harness import assert_problem

PASSWORD = "correct horse battery staple"
WRONG = "not the password at all"
LIMITERS = ("memory", "redis")
EXIT_USAGE = 2


# ---------------------------------------------------------------------------------------
# policies and header checks


@dataclass(frozen=True)
class Policy:
    name: str
    count: int
    period: int  # seconds
    burst: int

    @property
    def interval(self):
        """Seconds between two tokens (the GCRA emission interval)."""
        return self.period / self.count

    @property
    def full_refill(self):
        """Whole seconds an empty bucket takes to fill up: no `t` is ever larger."""
        return math.ceil(self.burst * self.interval)


ANON_DEFAULT = Policy("anon", 120, 60, 60)
USER_DEFAULT = Policy("user", 1200, 60, 200)
AUTH_DEFAULT = Policy("auth", 10, 60, 5)
LOGIN_DEFAULT = Policy("login-account", 10, 60, 5)

SF_ITEM = re.compile(r'"([^"\\]*)"((?:;[a-z*][a-z0-9_.*-]*=-?\d+)*)')


def sf_item(text):
    """One Structured-Field list member `"name";k=1;...` -> (name, {k: int})."""
    m = SF_ITEM.fullmatch(text.strip())
    assert m, f"not a structured-field String item with integer parameters: {text!r}"
    params = {}
    for part in m.group(2).split(";")[1:]:
        k, _, v = part.partition("=")
        assert k not in params, f"parameter {k} twice in {text!r}"
        params[k] = int(v)
    return m.group(1), params


@dataclass
class Seen:
    name: str
    q: int
    w: int
    r: int
    t: int
    retry_after: int | None


def limit_headers(resp):
    """The RateLimit-Policy / RateLimit pair of `resp` (both must be there, same policy)."""
    policy = resp.headers.get("RateLimit-Policy")
    current = resp.headers.get("RateLimit")
    assert policy and current, \
        f"{resp.request.method} {resp.request.url} -> {resp.status_code} lacks the RateLimit " \
        f"fields: {dict(resp.headers)}"
    pname, p = sf_item(policy)
    cname, c = sf_item(current)
    assert pname == cname, f"RateLimit names {cname!r}, RateLimit-Policy {pname!r}"
    assert {"q", "w"} <= set(p), policy
    assert {"r", "t"} <= set(c), current
    ra = resp.headers.get("Retry-After")
    assert ra is None or re.fullmatch(r"\d+", ra), f"Retry-After: {ra!r}"
    return Seen(pname, p["q"], p["w"], c["r"], c["t"], None if ra is None else int(ra))


def check_policy(seen, pol):
    """The header states the burst (q) and the seconds a full refill takes (w)."""
    assert (seen.name, seen.q, seen.w) == (pol.name, pol.burst, pol.full_refill), \
        f"policy {seen} is not {pol}"


def check_allowed(resp, pol, remaining=None, status=None):
    """`resp` passed the limiter under `pol` with `remaining` tokens left (None: any; a set:
    one of them)."""
    assert resp.status_code != 429, f"refused: {resp.text}"
    if status is not None:
        assert resp.status_code == status, resp.text
    seen = limit_headers(resp)
    check_policy(seen, pol)
    assert seen.retry_after is None, "Retry-After on an allowed response"
    assert 0 <= seen.r < pol.burst, seen  # this request took one
    if isinstance(remaining, int):
        assert seen.r == remaining, f"RateLimit r={seen.r}, expected {remaining}"
    elif remaining is not None:
        assert seen.r in remaining, f"RateLimit r={seen.r}, expected one of {remaining}"
    assert 1 <= seen.t <= pol.full_refill, seen
    return seen


def check_refused(resp, pol):
    """`resp` is the 429 of `pol`: problem rate_limited naming the policy, r=0, a sane
    Retry-After."""
    body = assert_problem(resp, 429, "rate_limited")
    assert body.get("policy") == pol.name, body
    seen = limit_headers(resp)
    check_policy(seen, pol)
    assert seen.r == 0, seen
    assert seen.retry_after is not None, "429 without Retry-After"
    # The bucket was short of one token: it is back within one emission interval.
    assert 1 <= seen.retry_after <= math.ceil(pol.interval), seen
    # `t` is when more quota is available (draft -10) or when it is all back (-09): never
    # before Retry-After, never after a full refill.
    assert seen.retry_after <= seen.t <= pol.full_refill, seen
    return seen


def assert_unlimited(resp):
    assert resp.status_code != 429, resp.text
    for h in ("RateLimit-Policy", "RateLimit", "Retry-After"):
        assert h not in resp.headers, f"{h} on {resp.request.url}: {resp.headers[h]}"


# ---------------------------------------------------------------------------------------
# clients


def xff(ip):
    return {"X-Forwarded-For": ip}


def register(api, username, headers=None):
    return api.post("/v1/auth/register", headers=headers, json={
        "username": username, "email": f"{username}@example.com", "password": PASSWORD})


def register_ok(api, username, headers=None):
    r = register(api, username, headers)
    assert r.status_code == 201, r.text
    return api.with_token(r.json()["access_token"])


def login(api, name, password=WRONG, ip=None):
    return api.post("/v1/auth/login", json={"login": name, "password": password},
                    headers=xff(ip) if ip else None)


def assert_login_refused(resp, pol=None):
    return check_refused(resp, pol or AUTH_DEFAULT)


def assert_login_failed(resp, pol, *others):
    """A wrong password that the limiter let through: 401 invalid_credentials, the headers
    showing `pol` (or one of `others`: the per-address and the per-account bucket, whichever
    is more constrained)."""
    assert resp.status_code == 401, resp.text
    assert resp.json()["code"] == "invalid_credentials"
    shown = limit_headers(resp).name
    match = [p for p in (pol, *others) if p.name == shown]
    assert match, f"headers show {shown}, not one of {[p.name for p in (pol, *others)]}"
    check_allowed(resp, match[0], status=401)


class Raw:
    """The answer to raw_get(), shaped like a requests.Response for the checks above."""

    def __init__(self, path, status, headers, body):
        self.status_code = status
        self.headers = requests.structures.CaseInsensitiveDict(headers)
        self.text = body.decode(errors="replace")
        self.request = SimpleNamespace(method="GET", url=path)

    def json(self):
        return json.loads(self.text)


def raw_get(srv, path, header_lines):
    """GET with these header lines, exactly as given (requests cannot repeat a header)."""
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    try:
        c.putrequest("GET", path)
        for name, value in header_lines:
            c.putheader(name, value)
        c.endheaders()
        r = c.getresponse()
        return Raw(path, r.status, r.getheaders(), r.read())
    finally:
        c.close()


# ---------------------------------------------------------------------------------------
# fixtures


class Limiter:
    def __init__(self, kind, redis=None):
        self.kind = kind
        self.redis = redis

    def env(self):
        return {"TANDEM_REDIS_URL": self.redis.url} if self.redis else {}


@pytest.fixture(params=LIMITERS)
def limiter(request, redis_server):
    """Where the buckets live: in-process, or in a redis-server of this test's own."""
    if request.param == "redis":
        return Limiter("redis", redis_server())
    return Limiter("memory")


SETTINGS = {"anon": "TANDEM_RATE_LIMIT_ANON", "user": "TANDEM_RATE_LIMIT_USER",
            "auth": "TANDEM_RATE_LIMIT_AUTH", "login": "TANDEM_RATE_LIMIT_LOGIN",
            "proxies": "TANDEM_TRUSTED_PROXIES",
            "max_keys": "TANDEM_RATE_LIMIT_MAX_KEYS", "redis": "TANDEM_REDIS_URL"}


def limited_env(**settings):
    env = {"TANDEM_RATE_LIMIT": "on"}
    for k, v in settings.items():
        env[SETTINGS[k]] = v
    return env


@pytest.fixture
def rl_server(tandem_server, limiter):
    """Factory: rl_server(anon=..., user=..., auth=..., proxies=..., store=None) -> a started
    server with rate limiting on, on this test's limiter store."""

    def make(store=None, **settings):
        env = {**limited_env(**settings), **limiter.env()}
        return tandem_server(env=env, store=store)

    return make


# ---------------------------------------------------------------------------------------
# counts, headers, refill


def test_default_policies_show_in_the_headers(rl_server):
    srv = rl_server()
    api = srv.api()
    check_allowed(api.get("/v1"), ANON_DEFAULT, 59, status=200)
    check_allowed(api.get("/v1"), ANON_DEFAULT, 58, status=200)
    # The auth endpoints: per IP and per login name, the most constrained bucket shown.
    assert_login_failed(login(api, "nobody"), AUTH_DEFAULT)
    check_allowed(register(api, "alice"), AUTH_DEFAULT, 3, status=201)
    r = login(api, "alice", PASSWORD)
    check_allowed(r, AUTH_DEFAULT, 2, status=200)
    user = api.with_token(r.json()["access_token"])
    check_allowed(user.get("/v1/users/me"), USER_DEFAULT, 199, status=200)
    check_allowed(user.get("/v1/projects"), USER_DEFAULT, 198, status=200)
    # Exactly the draft's syntax, byte for byte: 120/min with bursts of 60 is 60 at once,
    # all back after 30 s.
    r = api.get("/v1")
    assert r.headers["RateLimit-Policy"] == '"anon";q=60;w=30'
    assert re.fullmatch(r'"anon";r=57;t=\d+', r.headers["RateLimit"]), r.headers["RateLimit"]


def test_anonymous_limit_hits_at_the_burst(rl_server):
    srv = rl_server(anon="6/min,burst=3")
    pol = Policy("anon", 6, 60, 3)
    api = srv.api()
    for left in (2, 1, 0):
        check_allowed(api.get("/v1"), pol, left, status=200)
    first = check_refused(api.get("/v1"), pol)
    # The same client on another route, and an unauthenticated call of a protected route:
    # one bucket per client IP.
    check_refused(api.get("/v1/users/me"), pol)
    second = check_refused(api.get("/v1"), pol)
    # Refusals consume nothing: the bucket does not drift further into debt.
    assert second.t <= first.t
    assert second.retry_after <= first.retry_after


def next_allowed(request, pol):
    """Repeat `request` while it is refused (a refusal takes no token) and return the first
    answer that was let through: the moment a token came back, met as the server sees it
    rather than guessed with a sleep. The deadline only guards against a bucket that never
    refills."""
    deadline = time.monotonic() + 30 * pol.full_refill
    while True:
        r = request()
        if r.status_code != 429:
            return r
        check_refused(r, pol)
        assert time.monotonic() < deadline, "no token came back"
        time.sleep(0.02)


def test_bucket_refills_over_time(rl_server):
    # One token every 2 s: the checks below hold as long as a request and its successor
    # are less than about 2 s apart, whatever the machine's speed.
    srv = rl_server(anon="30/min,burst=2")
    pol = Policy("anon", 30, 60, 2)
    api = srv.api()
    check_allowed(api.get("/v1"), pol, 1)
    check_allowed(api.get("/v1"), pol, 0)
    check_refused(api.get("/v1"), pol)
    # The first request let through again took the one token that came back...
    check_allowed(next_allowed(lambda: api.get("/v1"), pol), pol, 0)
    # ...and the next one is a whole emission interval away (2 s: the refusal comes less
    # than a second after the token was taken).
    seen = check_refused(api.get("/v1"), pol)
    assert seen.retry_after == pol.interval, seen
    time.sleep(seen.retry_after)  # Retry-After is enough
    check_allowed(api.get("/v1"), pol, {0, 1})


def raw_request(srv, head_lines):
    """Send a request head as given; the answer's head (and body, unless it is a 101) as a
    Raw. For the WebSocket upgrade, whose 101 requests cannot read."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as s:
        s.sendall(("\r\n".join(head_lines) + "\r\n\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            assert chunk, f"connection closed before the answer: {buf!r}"
            buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = [tuple(x.strip() for x in line.split(":", 1)) for line in lines[1:]]
        status = int(lines[0].split()[1])
        n = 0 if status == 101 else int(dict((k.lower(), v) for k, v in headers).get(
            "content-length", "0"))
        while len(body) < n:
            chunk = s.recv(65536)
            assert chunk, "connection closed mid-body"
            body += chunk
        return Raw(head_lines[0].split()[1], status, headers, body)


def upgrade(srv, token):
    key = base64.b64encode(os.urandom(16)).decode()
    return raw_request(srv, ["GET /v1/realtime HTTP/1.1", "Host: 127.0.0.1",
                             "Upgrade: websocket", "Connection: Upgrade",
                             f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13",
                             f"Authorization: Bearer {token}"])


def event_stream(srv, token, pid):
    """The answer to an SSE request: only the head when the stream opened (it is closed at
    once), the whole answer when it was refused."""
    r = requests.get(f"{srv.base_url}/v1/projects/{pid}/events/stream", stream=True,
                     timeout=30, headers={"Accept": "text/event-stream",
                                          "Authorization": f"Bearer {token}"})
    if r.status_code != 200:
        r.content  # noqa: B018 - reads the body before the connection goes
    r.close()
    return r


def test_every_limited_route_class_carries_the_headers(rl_server):
    """Tasks, the documentation, an SSE stream and a WebSocket upgrade are counted like any
    route: their answers (the stream's head, the 101) carry the RateLimit fields, each takes
    one token, and once the budget is spent the stream and the upgrade are refused with 429.
    The upgrade route is public (the token may come in the first message instead), so it is
    counted per address even with a bearer header."""
    srv = rl_server(anon="1/h,burst=4", user="1/h,burst=9")
    anon_pol, pol = Policy("anon", 1, 3600, 4), Policy("user", 1, 3600, 9)
    anon = srv.api()
    check_allowed(anon.get("/docs"), anon_pol, 3, status=200)
    check_allowed(anon.get("/openapi.json"), anon_pol, 2, status=200)
    r = register(anon, "alice")
    assert r.status_code == 201, r.text
    token = r.json()["access_token"]
    alice = anon.with_token(token)
    r = alice.post("/v1/projects", json={"name": "p"})
    check_allowed(r, pol, 8, status=201)
    pid = r.json()["id"]
    r = alice.post(f"/v1/projects/{pid}/tasks", json={"title": "t"})
    check_allowed(r, pol, 7, status=201)
    tid = r.json()["id"]
    check_allowed(alice.get(f"/v1/projects/{pid}/tasks"), pol, 6, status=200)
    check_allowed(alice.get("/v1/tasks"), pol, 5, status=200)
    check_allowed(alice.get(f"/v1/tasks/{tid}"), pol, 4, status=200)
    check_allowed(alice.patch(f"/v1/tasks/{tid}", json={"title": "u"}), pol, 3, status=200)
    check_allowed(alice.delete(f"/v1/tasks/{tid}"), pol, 2, status=204)
    r = event_stream(srv, token, pid)
    assert r.headers["Content-Type"].startswith("text/event-stream"), r.headers
    check_allowed(r, pol, 1, status=200)
    check_allowed(alice.get(f"/v1/projects/{pid}/events"), pol, 0, status=200)
    check_allowed(upgrade(srv, token), anon_pol, 1, status=101)
    check_allowed(upgrade(srv, token), anon_pol, 0, status=101)
    # Spent: the stream and the upgrade are refused like the rest, with the fields.
    check_refused(event_stream(srv, token, pid), pol)
    check_refused(alice.post(f"/v1/projects/{pid}/tasks", json={"title": "t2"}), pol)
    check_refused(upgrade(srv, token), anon_pol)
    check_refused(anon.get("/docs"), anon_pol)
    assert srv.store.query("SELECT title FROM tasks") == []


def test_per_user_limit_and_refused_writes_store_nothing(rl_server):
    srv = rl_server(user="1/h,burst=3")
    pol = Policy("user", 1, 3600, 3)
    anon = srv.api()
    alice = register_ok(anon, "alice")
    bob = register_ok(anon, "bob")
    for i, left in enumerate((2, 1, 0)):
        check_allowed(alice.post("/v1/projects", json={"name": f"p{i}"}), pol, left,
                      status=201)
    check_refused(alice.post("/v1/projects", json={"name": "refused"},
                             headers={"Idempotency-Key": "refused-1"}), pol)
    check_refused(alice.get("/v1/projects"), pol)  # reads and writes share the bucket
    check_refused(alice.get("/v1/users/me"), pol)
    # Per user, not per address: bob and anonymous callers from the same IP go on.
    check_allowed(bob.get("/v1/projects"), pol, 2, status=200)
    check_allowed(anon.get("/v1"), ANON_DEFAULT, status=200)
    # Nothing of the refused POST exists: no project, no membership, no idempotency record.
    names = [r["name"] for r in srv.store.query("SELECT name FROM projects ORDER BY name")]
    assert names == ["p0", "p1", "p2"]
    assert len(srv.store.query("SELECT 1 AS x FROM memberships")) == 3
    assert srv.store.query("SELECT key FROM idempotency_keys") == []


def test_refused_register_stores_no_user(rl_server):
    srv = rl_server(auth="1/h,burst=2")
    pol = Policy("auth", 1, 3600, 2)
    api = srv.api()
    check_allowed(register(api, "alice"), pol, 1, status=201)
    check_allowed(register(api, "bob"), pol, 0, status=201)
    check_refused(register(api, "carol"), pol)
    users = srv.store.query("SELECT username FROM users ORDER BY username")
    assert [u["username"] for u in users] == ["alice", "bob"]
    assert len(srv.store.query("SELECT id FROM refresh_tokens")) == 2


def test_per_login_limit_holds_across_client_ips(rl_server):
    """Password guessing spread over many addresses (behind a trusted proxy) against one
    account is stopped by the per-account limit (login-account since issue 15)."""
    srv = rl_server(auth="1/h,burst=3", login="1/h,burst=3", proxies="127.0.0.1")
    pol, ip_pol = Policy("login-account", 1, 3600, 3), Policy("auth", 1, 3600, 3)
    api = srv.api()
    register_ok(api, "victim", headers=xff("192.0.2.1"))
    tokens_before = len(srv.store.query("SELECT id FROM refresh_tokens"))
    # Three guesses, each "from" another address; the login name in any case.
    for i, name in enumerate(("victim", "VICTIM", "Victim")):
        assert_login_failed(login(api, name, ip=f"198.51.100.{i + 1}"), pol, ip_pol)
    # Every address has tokens left; the login name has none, even with the right password.
    check_refused(login(api, "victim", ip="198.51.100.9"), pol)
    check_refused(login(api, "vIcTiM", PASSWORD, ip="198.51.100.10"), pol)
    assert len(srv.store.query("SELECT id FROM refresh_tokens")) == tokens_before
    # Other accounts, and those addresses, are not affected.
    assert_login_failed(login(api, "someone-else", ip="198.51.100.1"), pol, ip_pol)
    assert_login_failed(login(api, "someone-else", ip="198.51.100.11"), pol, ip_pol)


def test_refused_auth_attempt_costs_the_login_name_nothing(rl_server):
    """Refused by the per-IP bucket, the attempt takes nothing from the account's bucket (the
    login is never looked at)."""
    srv = rl_server(auth="1/h,burst=3", login="1/h,burst=3", proxies="127.0.0.1")
    pol, acct = Policy("auth", 1, 3600, 3), Policy("login-account", 1, 3600, 3)
    api = srv.api()
    for name in ("a1", "a2", "a3"):
        assert_login_failed(login(api, name, ip="192.0.2.50"), pol, acct)
    for _ in range(3):
        check_refused(login(api, "victim", ip="192.0.2.50"), pol)
    for i in range(3):
        assert_login_failed(login(api, "victim", ip=f"198.51.100.{i + 1}"), pol, acct)
    check_refused(login(api, "victim", ip="198.51.100.50"), acct)


def test_per_ip_limit_holds_when_the_login_bucket_is_on_its_last_token(rl_server):
    """An address that spent its budget stays refused even when the login name it tries has
    exactly one token left (the per-login bucket looking fuller must not win)."""
    srv = rl_server(auth="6/min,burst=3", login="6/min,burst=3", proxies="127.0.0.1")
    pol, acct = Policy("auth", 6, 60, 3), Policy("login-account", 6, 60, 3)
    api = srv.api()
    for name in ("a1", "a2", "a3"):
        assert_login_failed(login(api, name, ip="192.0.2.50"), pol, acct)
    # Let more than a second pass, so the two buckets' reset times differ in whole seconds:
    # watched on the address's Retry-After (refused attempts take nothing), which has then
    # gone down twice.
    first = check_refused(login(api, "probe", ip="192.0.2.50"), pol).retry_after
    assert first >= 3, first
    while check_refused(login(api, "probe", ip="192.0.2.50"), pol).retry_after > first - 2:
        time.sleep(0.05)
    for ip in ("198.51.100.1", "198.51.100.2"):
        assert_login_failed(login(api, "victim", ip=ip), pol, acct)
    # 192.0.2.50 is still out of tokens (one comes back every 10 s).
    check_refused(login(api, "victim", ip="192.0.2.50"), pol)
    # And the refusal left victim's last token alone.
    assert_login_failed(login(api, "victim", ip="198.51.100.3"), pol, acct)
    check_refused(login(api, "victim", ip="198.51.100.4"), acct)


# ---------------------------------------------------------------------------------------
# client address


@pytest.mark.parametrize("proxies", [None, "10.0.0.0/8, 192.0.2.1"],
                         ids=["no-proxies", "peer-not-trusted"])
def test_forwarded_for_from_an_untrusted_peer_is_ignored(rl_server, proxies):
    settings = {"anon": "1/h,burst=3", "auth": "1/h,burst=3"}
    if proxies:
        settings["proxies"] = proxies
    srv = rl_server(**settings)
    anon, auth = Policy("anon", 1, 3600, 3), Policy("auth", 1, 3600, 3)
    api = srv.api()
    for i, left in enumerate((2, 1, 0)):
        check_allowed(api.get("/v1", headers=xff(f"203.0.113.{i + 1}")), anon, left)
    check_refused(api.get("/v1", headers=xff("203.0.113.99")), anon)
    check_refused(api.get("/v1", headers=xff("10.1.2.3")), anon)
    for i in range(3):
        assert_login_failed(login(api, f"name{i}", ip=f"203.0.113.{i + 1}"), auth)
    check_refused(login(api, "name9", ip="203.0.113.9"), auth)


def test_client_is_the_rightmost_untrusted_forwarded_for_entry(rl_server):
    srv = rl_server(anon="1/h,burst=2", proxies="127.0.0.1, 10.0.0.0/8")
    pol = Policy("anon", 1, 3600, 2)
    api = srv.api()
    # Whatever the client wrote on the left, the address our proxies saw is the client.
    check_allowed(api.get("/v1", headers=xff("1.1.1.1, 203.0.113.7, 10.1.2.3")), pol, 1)
    check_allowed(api.get("/v1", headers=xff("2.2.2.2, 203.0.113.7, 10.1.2.3")), pol, 0)
    check_refused(api.get("/v1", headers=xff("3.3.3.3,203.0.113.7,10.9.9.9")), pol)
    check_refused(api.get("/v1", headers=xff("203.0.113.7")), pol)
    # Another client behind the same proxies has its own bucket; so has the proxy itself.
    check_allowed(api.get("/v1", headers=xff("203.0.113.7, 203.0.113.8, 10.1.2.3")), pol, 1)
    check_allowed(api.get("/v1"), pol, 1)


def test_forwarded_for_split_over_several_header_lines(rl_server):
    """A proxy that adds its own X-Forwarded-For line (HAProxy's option forwardfor) after the
    client's: the field is the lines joined in order (RFC 9110 5.3), so the client's own line
    cannot pick its address."""
    srv = rl_server(anon="1/h,burst=2", proxies="127.0.0.1")
    pol = Policy("anon", 1, 3600, 2)

    def get(spoof):
        return raw_get(srv, "/v1", [("X-Forwarded-For", spoof),
                                    ("X-Forwarded-For", "203.0.113.7")])

    check_allowed(get("198.18.0.1"), pol, 1)
    check_allowed(get("198.18.0.2"), pol, 0)
    check_refused(get("198.18.0.3"), pol)


# ---------------------------------------------------------------------------------------
# exemptions, off, settings


def test_health_probes_are_never_limited(rl_server):
    srv = rl_server(anon="1/h,burst=1")
    pol = Policy("anon", 1, 3600, 1)
    api = srv.api()
    check_allowed(api.get("/v1"), pol, 0)
    check_refused(api.get("/v1"), pol)
    for _ in range(10):
        r = api.get("/healthz")
        assert r.status_code == 200
        assert_unlimited(r)
    r = api.get("/readyz")
    assert r.status_code == 200, r.text
    assert_unlimited(r)
    check_refused(api.get("/v1"), pol)


def test_rate_limit_off_means_no_headers_and_no_429(tandem_server):
    tiny = "1/h,burst=1"
    srv = tandem_server(env={"TANDEM_RATE_LIMIT": "off", "TANDEM_RATE_LIMIT_ANON": tiny,
                             "TANDEM_RATE_LIMIT_USER": tiny, "TANDEM_RATE_LIMIT_AUTH": tiny})
    api = srv.api()
    for _ in range(4):
        r = api.get("/v1")
        assert r.status_code == 200
        assert_unlimited(r)
    for _ in range(4):
        r = login(api, "nobody")
        assert r.status_code == 401
        assert_unlimited(r)
    r = register(api, "alice")
    assert r.status_code == 201
    assert_unlimited(r)
    user = api.with_token(r.json()["access_token"])
    for i in range(4):
        r = user.post("/v1/projects", json={"name": f"p{i}"})
        assert r.status_code == 201
        assert_unlimited(r)


BAD_SETTINGS = [
    ("TANDEM_RATE_LIMIT_AUTH", "banana"),
    ("TANDEM_RATE_LIMIT_AUTH", "10/fortnight"),
    ("TANDEM_RATE_LIMIT_AUTH", "0/min"),
    ("TANDEM_RATE_LIMIT_AUTH", "10/min,burst=0"),
    ("TANDEM_RATE_LIMIT_AUTH", "10/min,burst=99999999999999999"),
    ("TANDEM_RATE_LIMIT_LOGIN", "banana"),
    ("TANDEM_RATE_LIMIT_ANON", "-5/min"),
    ("TANDEM_RATE_LIMIT_ANON", "120/min,burst=60,extra"),
    ("TANDEM_RATE_LIMIT_USER", "1200"),
    ("TANDEM_TRUSTED_PROXIES", "not-an-ip"),
    ("TANDEM_TRUSTED_PROXIES", "10.0.0.0/33"),
    ("TANDEM_RATE_LIMIT", "sometimes"),
    ("TANDEM_REDIS_URL", "http://localhost:6379"),
]


def serve_with(tandem_cli, store, name, value):
    return tandem_cli("serve", store=store, timeout=30,
                      env={"TANDEM_LISTEN": "127.0.0.1:0", "TANDEM_RATE_LIMIT": "on", name: value})


@pytest.mark.parametrize("name, value", BAD_SETTINGS,
                         ids=[f"{n[7:].lower()}={v}" for n, v in BAD_SETTINGS])
def test_invalid_setting_stops_start_up(tandem_cli, store, name, value):
    p = serve_with(tandem_cli, store, name, value)
    assert p.returncode == EXIT_USAGE, p.stderr
    assert p.stdout == ""
    message = [line for line in p.stderr.splitlines() if not line.startswith("{")]
    assert len(message) == 1, f"expected one message line, got:\n{p.stderr}"
    assert message[0].startswith("tandem: ") and name in message[0], message[0]
    assert value in message[0], message[0]


EARLY = [("TANDEM_RATE_LIMIT_AUTH", "banana"), ("TANDEM_TRUSTED_PROXIES", "not-an-ip"),
         ("TANDEM_REDIS_URL", "http://localhost:6379"), ("TANDEM_RATE_LIMIT", "sometimes")]


@pytest.mark.parametrize("name, value", EARLY, ids=[f"{n[7:].lower()}" for n, _ in EARLY])
def test_invalid_setting_is_found_before_anything_is_touched(tandem_cli, store, backend, name,
                                                             value):
    """Like every other setting (test_01_service): the one line is all there is, and no
    database was created or migrated, no secret generated."""
    p = serve_with(tandem_cli, store, name, value)
    assert p.returncode == EXIT_USAGE, p.stderr
    lines = p.stderr.splitlines()
    assert len(lines) == 1, f"expected exactly one line, got:\n{p.stderr}"
    assert name in lines[0], lines[0]
    assert not (store.data_dir / "jwt.secret").exists()
    if backend == "sqlite":
        assert not store.sqlite_path.exists()
    else:
        assert store.query("SELECT table_name FROM information_schema.tables "
                           "WHERE table_name = 'schema_migrations'") == []


# ---------------------------------------------------------------------------------------
# in-process store


def test_full_in_process_table_never_means_unlimited_guessing(tandem_server):
    """The in-process tables are bounded (TANDEM_RATE_LIMIT_MAX_KEYS). Filled with live
    buckets, a new key must still be limited, never waved through untracked."""
    srv = tandem_server(env=limited_env(anon="1/h,burst=5", auth="1/h,burst=3",
                                        login="1/h,burst=3", proxies="127.0.0.1",
                                        max_keys="16"))
    pol, ip_pol = Policy("login-account", 1, 3600, 3), Policy("auth", 1, 3600, 3)
    api = srv.api()
    for i in range(200):  # far more live buckets than the table holds
        assert api.get("/v1", headers=xff(f"198.18.{i // 250}.{i % 250 + 1}")).status_code == 200
    for i in range(3):
        assert_login_failed(login(api, "victim", ip=f"198.51.100.{i + 1}"), pol, ip_pol)
    for i in range(3):
        check_refused(login(api, "victim", ip=f"198.51.100.{i + 10}"), pol)
    r = api.get("/healthz")
    assert r.status_code == 200


# ---------------------------------------------------------------------------------------
# Redis: shared budget, outage, recovery


def redis_env(redis, **settings):
    return limited_env(redis=redis.url, **settings)


def shared_budget_holds(a, b, ip, pol):
    """Spend `ip`'s anon burst half on a, half on b; then both must refuse. True when they
    did (requests allowed by a fail-open answer make this False)."""
    h = xff(ip)
    for i in range(pol.burst):
        r = (a if i % 2 == 0 else b).get("/v1", headers=h)
        if r.status_code != 200 or limit_headers(r).r != pol.burst - 1 - i:
            return False
    return all(c.get("/v1", headers=h).status_code == 429 for c in (a, b))


def wait_ready(api, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        r = api.get("/readyz")
        if r.status_code == 200:
            return r.json()
        assert time.monotonic() < deadline, f"/readyz still {r.status_code}: {r.text}"
        time.sleep(0.1)


@pytest.mark.parametrize("unix", [False, True], ids=["tcp", "unix"])
def test_two_instances_share_one_redis_budget(tandem_server, store, redis_server, unix):
    redis = redis_server(unix=unix)
    env = redis_env(redis, anon="1/h,burst=4", auth="1/h,burst=4", login="1/h,burst=4",
                    proxies="127.0.0.1")
    a = tandem_server(env=env, store=store).api()
    b = tandem_server(env=env, store=store).api()
    anon, auth = Policy("anon", 1, 3600, 4), Policy("auth", 1, 3600, 4)
    acct = Policy("login-account", 1, 3600, 4)
    # The per-IP anonymous budget: half spent on a, half on b, then refused on both.
    check_allowed(a.get("/v1"), anon, 3)
    check_allowed(b.get("/v1"), anon, 2)
    check_allowed(a.get("/v1"), anon, 1)
    check_allowed(b.get("/v1"), anon, 0)
    check_refused(a.get("/v1"), anon)
    check_refused(b.get("/v1"), anon)
    # The per-account budget of failed logins, from four addresses over two instances.
    for i in range(4):
        assert_login_failed(login(a if i % 2 else b, "victim", ip=f"198.51.100.{i + 1}"), acct,
                            auth)
    check_refused(login(a, "victim", ip="198.51.100.20"), acct)
    check_refused(login(b, "victim", ip="198.51.100.21"), acct)
    # The buckets are in Redis, and every one of them expires (idle keys go away). An
    # unknown name is kept as a hash: Redis never holds what was typed.
    keys = redis.keys("tandem:rl:*")
    assert "tandem:rl:anon:ip:127.0.0.1" in keys, keys
    assert [k for k in keys if k.startswith("tandem:rl:login-account:name:")], keys
    assert not [k for k in keys if "victim" in k], keys
    for k in keys:
        assert redis.command("PTTL", k) > 0, f"{k} never expires"


def command_calls(redis):
    stats = redis.info("commandstats")
    return {k[len("cmdstat_"):]: int(v.split(",")[0].split("=")[1])
            for k, v in stats.items() if k.startswith("cmdstat_")}


def test_one_redis_round_trip_per_check(tandem_server, redis_server):
    redis = redis_server()
    api = tandem_server(env=redis_env(redis)).api()
    assert api.get("/v1").status_code == 200  # loads the script
    before = command_calls(redis)
    for _ in range(5):
        assert api.get("/v1").status_code == 200
    after = command_calls(redis)
    delta = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    delta.pop("info", None)
    # Five EVALSHA round trips and nothing else from the client; Redis also counts the
    # script's own TIME, GET and SET (one key per anonymous check).
    assert delta == {"evalsha": 5, "time": 5, "get": 5, "set": 5}, delta


@pytest.mark.parametrize("unix", [False, True], ids=["tcp", "unix"])
def test_redis_outage_fails_open_but_keeps_logins_limited(tandem_server, store, redis_server, unix):
    redis = redis_server(unix=unix)
    env = redis_env(redis, anon="1/h,burst=4", user="1/h,burst=3", auth="1/h,burst=3",
                    proxies="127.0.0.1")
    srv_a = tandem_server(env=env, store=store)
    a = srv_a.api()
    b = tandem_server(env=env, store=store).api()
    anon, auth = Policy("anon", 1, 3600, 4), Policy("auth", 1, 3600, 3)
    user = register_ok(a, "alice")  # one of 127.0.0.1's three auth tokens, in Redis
    assert shared_budget_holds(a, b, "203.0.113.1", anon)
    assert wait_ready(a)["checks"]["redis"]["status"] == "ok"

    redis.stop()
    # Ordinary traffic is served (fail open): anonymous reads past the burst, and a user's
    # reads past theirs.
    for _ in range(2 * anon.burst):
        assert a.get("/v1").status_code == 200
        assert b.get("/v1").status_code == 200
    for _ in range(6):
        r = user.get("/v1/users/me")
        assert r.status_code == 200, r.text
    # Logins fall back to the in-process limiter: never unlimited guessing.
    for _ in range(3):
        assert_login_failed(login(a, "alice"), auth)
    check_refused(login(a, "alice", PASSWORD), auth)
    check_refused(login(a, "alice"), auth)
    # Not ready, and it says why; the outage is logged.
    r = a.get("/readyz")
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["checks"]["redis"]["status"] == "failing", body
    assert body["checks"]["database"]["status"] == "ok", body
    srv_a.wait_for_log(lambda e: e.get("level") == "warn" and "redis" in e.get("msg", ""))

    redis.start()  # same port, empty
    assert wait_ready(a)["checks"]["redis"]["status"] == "ok"
    assert wait_ready(b)["checks"]["redis"]["status"] == "ok"
    # The clients reconnect by themselves (after a short back-off): shared limiting again.
    deadline = time.monotonic() + 20
    n = 0
    while not shared_budget_holds(a, b, f"203.0.113.{n + 10}", anon):
        n += 1
        assert time.monotonic() < deadline, "shared limiting did not resume after Redis came back"
        time.sleep(0.3)
    assert f"tandem:rl:anon:ip:203.0.113.{n + 10}" in redis.keys("tandem:rl:*")


@pytest.mark.parametrize("unix", [False, True], ids=["tcp", "unix"])
def test_redis_restart_between_requests_costs_no_limiting(tandem_server, store, redis_server,
                                                          unix):
    """Redis restarts while tandem is idle: the next requests, on whichever worker thread
    they land, are limited through Redis again, not waved through while each thread finds
    its connection dead and backs off."""
    redis = redis_server(unix=unix)
    env = redis_env(redis, anon="1/h,burst=4", proxies="127.0.0.1")
    servers = [tandem_server(env=env, store=store) for _ in range(2)]
    anon = Policy("anon", 1, 3600, 4)
    for i in range(40):  # a connection per request, so that many worker threads use Redis
        for srv in servers:
            c = srv.api()
            assert c.get("/v1", headers=xff(f"192.0.2.{i + 1}")).status_code == 200
            c.close()
    redis.restart()
    for n in range(5):
        a, b = (srv.api() for srv in servers)
        assert shared_budget_holds(a, b, f"203.0.113.{n + 1}", anon), \
            f"attempt {n + 1} after the restart was not limited through Redis"
        a.close()
        b.close()


def test_redis_down_at_start_up(tandem_server, redis_server):
    # A socket path: nobody else can take it while nothing listens there (a free TCP port
    # can be taken by any process on the machine).
    redis = redis_server(unix=True)
    redis.stop()  # the URL points at nothing yet
    srv = tandem_server(env=redis_env(redis, auth="1/h,burst=2"))
    api = srv.api()
    auth = Policy("auth", 1, 3600, 2)
    r = api.get("/readyz")
    assert r.status_code == 503 and r.json()["checks"]["redis"]["status"] == "failing", r.text
    for _ in range(3):
        assert api.get("/v1").status_code == 200
    for _ in range(2):
        assert_login_failed(login(api, "nobody"), auth)
    check_refused(login(api, "nobody"), auth)

    redis.start()
    wait_ready(api)
    deadline = time.monotonic() + 20
    while not any(k.startswith("tandem:rl:anon:") for k in redis.keys("tandem:rl:*")):
        assert time.monotonic() < deadline, "tandem never used Redis once it was up"
        assert api.get("/v1").status_code == 200
        time.sleep(0.2)
