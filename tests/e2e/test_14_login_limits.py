"""Issue 15 point 4 end to end: login limits that protect the account without letting
strangers lock it.

- Failed logins count per account, whichever name was typed (username or e-mail, any case);
  an unknown name counts like an account of its own. A correct password costs nothing.
- OWASP's device-cookie pattern, as JSON: a successful login returns `device_token`; a login
  that sends back a valid token of that account counts against the token's own budget
  (`login-device`), so failures made elsewhere never refuse it, while clients without one (or
  with an invalid or another account's token, which is ignored) share the account's budget
  (`login-account`). A token that fails too often locks out only itself.
- `RateLimit-Policy` states what is enforced (q = the burst, w = the seconds to refill it),
  and a 429 names the policy that refused it (the problem's `policy`, the RateLimit field).

One server per backend for the module, with slow policies (nothing refills while a test
runs); every test uses accounts and client addresses of its own (X-Forwarded-For behind a
trusted proxy), so the tests do not share a bucket. One test runs two instances on one
Redis (both backends): the account's budget, the refund of a success and the device tokens
hold across instances. Concurrent guesses: the token is taken before the password is
checked, so sixteen at once get exactly the burst of 401s (bcrypt cost 8 on this module's
server makes the checks overlap; a check-then-spend-on-failure limiter let all sixteen
through there).
"""

import itertools
import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness import BACKENDS, TandemServer, assert_problem
from test_08_ratelimit import Policy, check_allowed, check_refused, limit_headers

PASSWORD = "correct horse battery staple"
WRONG = "not the password at all"
AUTH = Policy("auth", 2, 3600, 4)  # per client address, every attempt
ACCOUNT = Policy("login-account", 2, 3600, 3)  # failed logins per account
DEVICE = Policy("login-device", 2, 3600, 3)  # failed logins per device token
SETTINGS = {"TANDEM_RATE_LIMIT": "on", "TANDEM_TRUSTED_PROXIES": "127.0.0.1",
            "TANDEM_RATE_LIMIT_AUTH": "2/h,burst=4", "TANDEM_RATE_LIMIT_LOGIN": "2/h,burst=3",
            # a password check that takes a few ms, so that concurrent guesses overlap
            "TANDEM_BCRYPT_COST": "8"}
DEVICE_TOKEN = re.compile(r"[0-9a-f-]{36}\.[A-Za-z0-9_-]{22}\.[0-9]{1,19}\.[A-Za-z0-9_-]{43}")

_ips = itertools.count(1)
_names = itertools.count(1)


def new_ip():
    n = next(_ips)
    return f"198.18.{n // 250}.{n % 250 + 1}"


@pytest.fixture(scope="module", params=BACKENDS)
def srv(request, tmp_path_factory, module_stores):
    backend = request.param
    tmp = tmp_path_factory.mktemp(f"login-limits-{backend}")
    store = module_stores(backend, tmp / "data")
    server = TandemServer(store, tmp, env=SETTINGS, name=f"login-limits-{backend}")
    server.start()
    try:
        yield server
    finally:
        assert server.stop() == 0, server.stderr_text()[-4000:]


class Account:
    """A new account, registered through `api` from an address of its own."""

    def __init__(self, api):
        n = next(_names)
        self.name, self.email = f"Lena{n}", f"lena{n}@example.com"
        r = api.post("/v1/auth/register", headers={"X-Forwarded-For": new_ip()}, json={
            "username": self.name, "email": self.email, "password": PASSWORD})
        assert r.status_code == 201, r.text
        self.id = r.json()["user"]["id"]


def login(api, name, password=WRONG, device=None, ip=None):
    body = {"login": name, "password": password}
    if device is not None:
        body["device_token"] = device
    return api.post("/v1/auth/login", json=body, headers={"X-Forwarded-For": ip or new_ip()})


def ok(resp):
    """A login that worked: a session and a new, well-formed device token."""
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert DEVICE_TOKEN.fullmatch(body["device_token"]), body["device_token"]
    return body


def failed(resp):
    assert_problem(resp, 401, "invalid_credentials")
    limit_headers(resp)  # the fields are there whichever bucket they show


def refused(resp, pol):
    """A 429 of `pol`, named in the problem and the RateLimit fields."""
    check_refused(resp, pol)
    assert resp.json()["policy"] == pol.name


def sessions(srv, account):
    return srv.store.query(f"SELECT count(*) AS n FROM refresh_tokens "
                           f"WHERE user_id = '{account.id}'")[0]["n"]


def test_the_account_is_one_bucket_and_only_failures_count(srv):
    api = srv.api()
    u = Account(api)
    # More correct logins than the burst, by username and by e-mail, any case: free.
    for name in (u.name, u.email, u.name.upper(), u.email.title(), u.name.lower()):
        ok(login(api, name, PASSWORD))
    # Failures by either name, from three addresses, fill the account's one bucket...
    for name in (u.name.upper(), u.email, u.name):
        failed(login(api, name))
    # ...and a client without a device token is refused both ways, even with the password.
    before = sessions(srv, u)
    refused(login(api, u.email.upper(), PASSWORD), ACCOUNT)
    refused(login(api, u.name, PASSWORD), ACCOUNT)
    assert sessions(srv, u) == before
    # An unknown name is counted the same way (its normalised form), so it cannot be told
    # apart from an account by its limit.
    ghost = f"ghost{next(_names)}"
    for name in (ghost, ghost.upper(), ghost.title()):
        failed(login(api, name))
    refused(login(api, ghost), ACCOUNT)
    # Another account is not affected.
    ok(login(api, Account(api).email, PASSWORD))


def test_strangers_failures_do_not_refuse_a_client_with_a_device_token(srv):
    api = srv.api()
    u, other = Account(api), Account(api)
    mine = ok(login(api, u.name, PASSWORD))["device_token"]
    theirs = ok(login(api, other.name, PASSWORD))["device_token"]
    for _ in range(3):  # a stranger guessing from three addresses
        failed(login(api, u.email))
    # Unknown clients share the account's spent budget: no token, another account's token, an
    # altered one (ignored, not an error).
    altered = mine[:-1] + ("A" if mine[-1] != "A" else "B")
    for device in (None, theirs, altered, "not a device token"):
        refused(login(api, u.name, PASSWORD, device=device), ACCOUNT)
    # The client that logged in before is let in, by either name, and gets a new token.
    again = ok(login(api, u.email, PASSWORD, device=mine))["device_token"]
    assert again != mine
    ok(login(api, u.name.upper(), PASSWORD, device=again))
    # A device_token that is not a string is a bad request body, and costs no bucket.
    r = login(api, u.name, PASSWORD, device=123)
    body = assert_problem(r, 422, "validation_failed")
    assert "device_token" in {e["field"] for e in body["errors"]}, body


def test_a_failing_device_token_locks_out_only_itself(srv):
    api = srv.api()
    u = Account(api)
    d1 = ok(login(api, u.name, PASSWORD))["device_token"]
    d2 = ok(login(api, u.name, PASSWORD))["device_token"]
    for _ in range(3):
        failed(login(api, u.name, device=d1))
    refused(login(api, u.name, PASSWORD, device=d1), DEVICE)
    # Its failures were its own: the other device and unknown clients go on.
    ok(login(api, u.name, PASSWORD, device=d2))
    ok(login(api, u.email, PASSWORD))


def test_concurrent_guesses_never_outnumber_the_burst(srv):
    """The token is taken before the password is checked: guesses sent all at once (from as
    many addresses) cannot all pass a check that looked before any of them had failed."""
    api = srv.api()
    u = Account(api)
    ips = [new_ip() for _ in range(16)]
    with ThreadPoolExecutor(len(ips)) as pool:
        answers = list(pool.map(lambda ip: login(srv.api(), u.name, ip=ip), ips))
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [401] * ACCOUNT.burst + [429] * (len(ips) - ACCOUNT.burst), statuses
    refused(login(api, u.name, PASSWORD), ACCOUNT)


def test_the_headers_state_the_burst_that_is_enforced(srv):
    api = srv.api()
    # Per address: every attempt on an auth route counts (a refresh with a bad token: no
    # account bucket is involved).
    ip = new_ip()
    answers = []
    for _ in range(50):
        answers.append(api.post("/v1/auth/refresh", json={"refresh_token": "not-a-token"},
                                headers={"X-Forwarded-For": ip}))
        if answers[-1].status_code == 429:
            break
    let_through = len(answers) - 1
    seen = limit_headers(answers[0])
    assert (seen.name, seen.q, seen.w) == ("auth", let_through, AUTH.full_refill), seen
    assert seen.r == seen.q - 1, seen
    refused(answers[-1], AUTH)
    # Per account: failures from new addresses until the account refuses; the first failure
    # shows the account's bucket (the more constrained one).
    u = Account(api)
    answers.clear()
    for _ in range(50):
        r = login(api, u.name)
        answers.append(r)
        if r.status_code == 429:
            break
    let_through = len(answers) - 1
    seen = check_allowed(answers[0], ACCOUNT, ACCOUNT.burst - 1, status=401)
    assert seen.q == let_through == 3 and seen.w == 5400, seen
    refused(answers[-1], ACCOUNT)


def test_two_instances_share_the_account_budget_and_accept_each_others_device_tokens(
        tandem_server, store, redis_server):
    redis = redis_server()
    env = {**SETTINGS, "TANDEM_REDIS_URL": redis.url, "TANDEM_RATE_LIMIT_LOGIN": "2/h,burst=2",
           "TANDEM_JWT_SECRET": "a shared secret of at least thirty-two bytes, for both"}
    a = tandem_server(env=env, store=store).api()
    b = tandem_server(env=env, store=store).api()
    account, device = Policy("login-account", 2, 3600, 2), Policy("login-device", 2, 3600, 2)
    u = Account(a)
    # Successes give their token back in Redis too: more than the burst, over both.
    for c in (a, b, a, b):
        ok(login(c, u.name, PASSWORD))
    mine = ok(login(a, u.email, PASSWORD))["device_token"]
    failed(login(a, u.name))
    failed(login(b, u.email))
    refused(login(a, u.name, PASSWORD), account)
    refused(login(b, u.name, PASSWORD), account)
    # The token a issued lets the client in on b; its own budget is shared as well.
    ok(login(b, u.name, PASSWORD, device=mine))
    failed(login(b, u.name, device=mine))
    failed(login(a, u.name, device=mine))
    refused(login(b, u.name, PASSWORD, device=mine), device)
    keys = redis.keys("tandem:rl:login-*")
    assert f"tandem:rl:login-account:user:{u.id}" in keys, keys
    assert [k for k in keys if k.startswith("tandem:rl:login-device:device:")], keys
    for k in keys:
        assert redis.command("PTTL", k) > 0, f"{k} never expires"
