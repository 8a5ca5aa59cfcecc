"""Redis with an ACL user, end to end, on every backend: TANDEM_REDIS_URL with a user name
(redis://user:password@host:port, unix://user:password@/path) must log every Redis
connection in as that user, the rate limiter's and the event bus's alike.

The redis-server of these tests has one ACL user and its `default` user disabled, so a
connection that sends the legacy `AUTH password` (what the event bus used to send) is
refused: the bus then never subscribes, and instance B would only hear of A's changes from
its own periodic database sweep. Here B must be subscribed as the ACL user, and A's change
must be PUBLISHed on the channel (a pub/sub client of the test's own, logged in as the ACL
user, sees it) before B's WebSocket delivers it. The limiter's buckets must be shared
through that Redis (one budget over both instances), survive a SCRIPT FLUSH (NOSCRIPT:
the script is loaded again), and a bad URL must stop start-up without showing the password.
The redis_server fixture lives in conftest.py (tests/redis_server.py starts the servers).
"""

import re
from types import SimpleNamespace

import pytest

from rtkit import Ws, wait_until
from rtkit import close_clients  # noqa: F401 - autouse: closes the test's clients
from taskkit import Team, event_feed

SECRET = "redis-acl-test-secret-0123456789abcdef0123"
CHANNEL = "tandem:events"
# '@' and ':' inside the password: the userinfo ends at the last '@' (of a redis:// URL; at
# the '@/' of a unix:// one), and the user name at the first ':'.
ACL_USER = ("tandem-app", "s3cr:et@acl")
EXIT_USAGE = 2


def subscribers(redis):
    _name, n = redis.command("PUBSUB", "NUMSUB", CHANNEL)
    return int(n)


def clients(redis):
    """CLIENT LIST as one dict per connection."""
    return [dict(f.split("=", 1) for f in line.split(" ") if "=" in f)
            for line in redis.command("CLIENT", "LIST").splitlines()]


def command_calls(redis):
    stats = redis.info("commandstats")
    return {k[len("cmdstat_"):]: int(v.split(",")[0].split("=")[1])
            for k, v in stats.items() if k.startswith("cmdstat_")}


def remaining(resp):
    """The `r` (tokens left) of the RateLimit field of an allowed response."""
    assert resp.status_code == 200, resp.text
    m = re.search(r";r=(\d+)", resp.headers.get("RateLimit", ""))
    assert m, f"no RateLimit r= in {dict(resp.headers)}"
    return int(m.group(1))


def acl_env(url):
    return {"TANDEM_JWT_SECRET": SECRET, "TANDEM_REDIS_URL": url, "TANDEM_RATE_LIMIT": "on",
            "TANDEM_RATE_LIMIT_ANON": "100/h,burst=100", "TANDEM_TRUSTED_PROXIES": "127.0.0.1"}


@pytest.fixture(params=[False, True], ids=["tcp", "unix"])
def acl_pair(request, tandem_server, store, redis_server):
    """Instances a and b on one database, both on a redis-server whose only user is the ACL
    user of their URL."""
    redis = redis_server(unix=request.param, acl_user=ACL_USER)
    assert redis.url.startswith(("redis://tandem-app:s3cr:et@acl@", "unix://tandem-app:"))
    a = tandem_server(env=acl_env(redis.url), store=store)
    b = tandem_server(env=acl_env(redis.url), store=store)
    wait_until(lambda: subscribers(redis) == 2,
               what="both instances subscribing to Redis as the ACL user")
    return SimpleNamespace(a=a, b=b, redis=redis)


def test_the_bus_subscribes_as_the_acl_user(acl_pair):
    subscribed = [c for c in clients(acl_pair.redis) if c.get("sub", "0") != "0"]
    assert len(subscribed) == 2, subscribed
    assert {c["user"] for c in subscribed} == {ACL_USER[0]}, subscribed


def test_a_change_on_a_reaches_b_through_redis(acl_pair):
    a, b, redis = acl_pair.a, acl_pair.b, acl_pair.redis
    team = Team(a)
    ws_b = Ws(b, team.viewer.token)
    ws_b.subscribe(team.pid)
    probe = redis.subscribe(CHANNEL)  # logged in as the ACL user, like the instances
    try:
        published = command_calls(redis).get("publish", 0)
        t = team.create(title="made on A")  # through A
        channel, message = probe.message()
    finally:
        probe.close()
    assert channel == CHANNEL and team.pid in message, message
    assert command_calls(redis)["publish"] > published
    feed = event_feed(b.api(team.owner.token), team.pid)
    assert feed[-1]["data"] == t
    assert ws_b.events(1) == feed[-1:]
    assert ws_b.sync() == []


def test_the_rate_limit_budget_is_shared_through_redis(acl_pair):
    a, b, redis = acl_pair.a.api(), acl_pair.b.api(), acl_pair.redis
    h = {"X-Forwarded-For": "203.0.113.7"}
    # One budget over both instances (a fail-open answer would show r=100 again).
    assert [remaining(c.get("/v1", headers=h)) for c in (a, b, a, b)] == [99, 98, 97, 96]
    assert "tandem:rl:anon:ip:203.0.113.7" in redis.keys("tandem:rl:*")
    for c in (a, b):
        r = c.get("/readyz")
        assert r.status_code == 200 and r.json()["checks"]["redis"]["status"] == "ok", r.text


def test_a_script_flush_costs_no_limiting(acl_pair):
    a, redis = acl_pair.a.api(), acl_pair.redis
    h = {"X-Forwarded-For": "203.0.113.8"}
    assert remaining(a.get("/v1", headers=h)) == 99
    assert redis.command("SCRIPT", "FLUSH") == "OK"
    # Redis answers NOSCRIPT; the limiter loads the script and still counts in Redis.
    assert remaining(a.get("/v1", headers=h)) == 98
    before = command_calls(redis)
    assert remaining(a.get("/v1", headers=h)) == 97
    after = command_calls(redis)
    # Loaded again for every thread: the next check is one EVALSHA, no EVAL, no LOAD.
    assert after.get("evalsha", 0) - before.get("evalsha", 0) == 1, (before, after)
    assert after.get("eval", 0) == before.get("eval", 0), (before, after)
    assert after.get("script|load", 0) == before.get("script|load", 0), (before, after)


def test_a_wrong_acl_password_is_logged_without_the_password(tandem_server, redis_server):  # noqa: E501
    redis = redis_server(acl_user=ACL_USER)
    wrong = "not-the-acl-password-42"
    srv = tandem_server(env=acl_env(redis.url_with(ACL_USER[0], wrong)))
    r = srv.api().get("/readyz")
    assert r.status_code == 503 and r.json()["checks"]["redis"]["status"] == "failing", r.text
    e = srv.wait_for_log(lambda e: e.get("msg") == "redis unavailable" and e.get("op") == "auth")
    assert "WRONGPASS" in e.get("detail", ""), e
    assert subscribers(redis) == 0
    assert wrong not in srv.stderr_text()


BAD_URLS = [
    ("redis://tandem-app:hunter2-XYZ@localhost:notaport", "bad port"),
    ("redis://tandem-app:hunter2-XYZ@", "no host"),
    ("redis://tandem-app:hunter2-XYZ@localhost/x", "database"),
    ("rediss://tandem-app:hunter2-XYZ@localhost", "expected redis://"),
    ("unix://tandem-app:hunter2-XYZ@/tmp/redis.sock?db=x", "?db=N"),
    ("redis://tandem-app:@localhost", "without a password"),
]


@pytest.mark.parametrize("url, reason", BAD_URLS, ids=[r for _, r in BAD_URLS])
def test_a_bad_url_stops_start_up_without_showing_the_password(tandem_cli, store, url, reason):
    p = tandem_cli("serve", store=store, timeout=30,
                   env={"TANDEM_LISTEN": "127.0.0.1:0", "TANDEM_REDIS_URL": url})
    assert p.returncode == EXIT_USAGE, p.stderr
    lines = p.stderr.splitlines()
    assert len(lines) == 1, f"expected exactly one line, got:\n{p.stderr}"
    assert lines[0].startswith("tandem: ") and "TANDEM_REDIS_URL" in lines[0], lines[0]
    assert reason in lines[0], lines[0]
    assert "hunter2-XYZ" not in p.stderr
    if "hunter2-XYZ" in url:
        assert url.replace("hunter2-XYZ", "***") in lines[0], lines[0]
