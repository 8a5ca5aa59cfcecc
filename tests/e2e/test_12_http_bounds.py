"""HTTP resource bounds (issue 14): what one client can make the server hold or produce.

- A validation answer names at most 50 fields and says `truncated`: a 1 MiB body of unknown
  fields made a 10 MB problem answer, stored again under an Idempotency-Key.
- Per-IP rate limits key an IPv6 client on its /64 (and an IPv4-mapped address as IPv4).
- A request body is read only once its route exists and its caller is authenticated: a 404,
  405 or 401 is answered from the headers, and the connection closed.
- A request must arrive whole within TANDEM_REQUEST_TIMEOUT, however slowly it trickles
  (libmicrohttpd's own timeout is an idle one); parked long polls and streams are exempt.
- One client holds at most TANDEM_MAX_CONNECTIONS_PER_IP connections (default 64).
- The stored answer of an Idempotency-Key commits with the change it describes: when storing
  it fails (a trigger injects the fault), the change is undone too and a retry runs once.
- Expired idempotency keys, dead refresh tokens and expired stream tickets are purged
  (TANDEM_PURGE_INTERVAL), live ones kept.
"""
import json
import socket
import time

from harness import assert_problem
from rtkit import DEBUG_LOG, LongPoll, Sse, wait_parked
from rtkit import close_clients  # noqa: F401 - autouse: closes the test's clients
from taskkit import Team, db_exec, register


def raw(server):
    s = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    return s


def read_answer(sock):
    """Everything the server sends until it closes the connection: (status, headers, body)."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def test_a_body_of_many_unknown_fields_gets_a_small_truncated_answer(server):
    api = server.api()
    owner = register(api, "vera")
    body = {"name": "p"}
    body.update({f"unknown_field_{i:06d}": i for i in range(32000)})  # about 1 MiB
    raw = json.dumps(body)
    assert 900_000 < len(raw) < 1_048_576
    r = owner.api.post("/v1/projects", data=raw,
                       headers={"Content-Type": "application/json", "Idempotency-Key": "k1"})
    p = assert_problem(r, 422, "validation_failed")
    assert len(r.content) < 16_384, len(r.content)
    assert len(p["errors"]) == 50 and p["truncated"] is True
    assert p["detail"] == "32000 fields are invalid"
    assert p["errors"][0]["field"] == "unknown_field_000000"
    # A field name of 100 KiB is not echoed whole either.
    r = owner.api.post("/v1/projects", json={"name": "p", "x" * 100_000: 1})
    p = assert_problem(r, 422, "validation_failed")
    assert len(r.content) < 4096 and "truncated" not in p
    assert p["errors"][0]["field"] == "x" * 64
    assert server.store.query("SELECT count(*) AS n FROM projects")[0]["n"] == 0


def test_rate_limits_key_ipv6_clients_on_their_slash_64(tandem_server):
    srv = tandem_server(env={"TANDEM_RATE_LIMIT": "on", "TANDEM_TRUSTED_PROXIES": "127.0.0.1",
                             "TANDEM_RATE_LIMIT_ANON": "1/h,burst=3"})
    api = srv.api()

    def get(client):
        return api.get("/v1", headers={"X-Forwarded-For": client})

    # Three addresses of one /64 spend one budget of three; the fourth is refused.
    for client in ("2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3"):
        assert get(client).status_code == 200
    assert_problem(get("2001:db8:1:2::4"), 429, "rate_limited")
    # The next /64 is another client.
    assert get("2001:db8:1:3::1").status_code == 200
    # An IPv4-mapped IPv6 address is the IPv4 client.
    for client in ("198.51.100.7", "::ffff:198.51.100.7", "198.51.100.7"):
        assert get(client).status_code == 200
    assert_problem(get("::ffff:198.51.100.7"), 429, "rate_limited")


def announce_body(sock, method, path, token=None):
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                 f"{auth}Content-Length: 1000000\r\n\r\n".encode())


def test_no_route_or_no_right_is_answered_before_the_body_is_read(server):
    owner = register(server.api(), "olga")
    for method, path, token, status, code in (
            ("POST", "/v1/no-such-thing", owner.token, 404, "not_found"),
            ("PUT", "/v1/projects", owner.token, 405, "method_not_allowed"),
            ("POST", "/v1/projects", None, 401, "unauthenticated"),
            ("POST", "/v1/projects", "not-a-token", 401, "unauthenticated")):
        with raw(server) as s:
            # 1 MB announced, not one byte of it sent: the answer comes anyway, then the end.
            announce_body(s, method, path, token)
            got, headers, body = read_answer(s)
            assert got == status, (method, path, got, body)
            assert headers["content-type"] == "application/problem+json"
            assert json.loads(body)["code"] == code
            assert headers.get("connection", "").lower() == "close"
    # A route the caller may use still reads its body (and keeps the connection).
    r = owner.api.post("/v1/projects", json={"name": "kept"})
    assert r.status_code == 201, r.text


def test_a_trickled_request_ends_at_the_request_deadline(tandem_server):
    srv = tandem_server(env={"TANDEM_REQUEST_TIMEOUT": "2"})
    body = json.dumps({"login": "nobody", "password": "x" * 40}).encode()
    with raw(srv) as s:
        s.sendall(b"POST /v1/auth/login HTTP/1.1\r\nHost: t\r\n"
                  b"Content-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body))
        # One byte every quarter second: never idle long enough for the idle timeout
        # (30 s), and the whole body would take about 16 s.
        sent = 0
        try:
            for byte in body:
                s.sendall(bytes([byte]))
                sent += 1
                time.sleep(0.25)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert sent < len(body), "the server read the whole trickled body"
        try:
            got, _, answer = read_answer(s)
        except ConnectionResetError:
            got = None
        if got is not None:  # 408, or just closed (the peer may reset after our last byte)
            assert got == 408 and json.loads(answer)["code"] == "request_timeout"
    assert srv.api().get("/healthz").status_code == 200


def test_parked_polls_and_streams_outlive_the_request_deadline(tandem_server):
    team = Team(tandem_server(env={"TANDEM_REQUEST_TIMEOUT": "1", **DEBUG_LOG}))
    stream = Sse(team.server, team.viewer.token, team.pid, last_event_id=3)
    assert stream.status == 200
    poll = LongPoll(team.member.client(), team.pid, after=3, wait=3)
    wait_parked(team.server, team.pid)
    r = poll.result()
    assert r.status_code == 200 and r.json()["data"] == [], r.text  # the whole wait, not cut
    task = team.create(title="after the deadline")
    _, kind, ev = stream.event()
    assert kind == "task.created" and ev["data"]["id"] == task["id"]


def test_one_client_holds_at_most_its_connection_limit(tandem_server):
    srv = tandem_server(env={"TANDEM_MAX_CONNECTIONS_PER_IP": "3"})
    held = []
    for _ in range(3):
        # Served, and kept open. A 429 here can only count a connection that is already
        # closed on our side (the harness's readiness probe) but not yet seen closed by a
        # loaded server: try again once it has (fresh-check saw this once).
        for _ in range(100):
            s = raw(srv)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            got = s.recv(65536)
            if not got.startswith(b"HTTP/1.1 429"):
                break
            s.close()
            time.sleep(0.05)
        assert got.startswith(b"HTTP/1.1 200"), got
        held.append(s)
    with raw(srv) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        got, headers, body = read_answer(s)
        assert got == 429 and json.loads(body)["code"] == "rate_limited"
        assert json.loads(body)["policy"] == "connections", body  # named (issue 15)
        assert headers["connection"].lower() == "close"
    held.pop().close()
    # Once the server has seen that one close, a new connection is served again.
    for _ in range(100):
        r = None
        with raw(srv) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            r = read_answer(s)
        if r[0] == 200:
            break
        time.sleep(0.05)
    assert r[0] == 200, r
    for s in held:
        s.close()


def test_a_trusted_proxy_is_not_held_to_one_client_s_connection_limit(tandem_server):
    # Behind a load balancer every connection comes from it: the per-client limit counts
    # clients, not the proxy, or the whole service would stop at the limit.
    srv = tandem_server(env={"TANDEM_MAX_CONNECTIONS_PER_IP": "2",
                             "TANDEM_TRUSTED_PROXIES": "127.0.0.1"})
    held = []
    for _ in range(4):
        s = raw(srv)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 192.0.2.9\r\n\r\n")
        got = s.recv(65536)
        assert got.startswith(b"HTTP/1.1 200"), got  # served, and kept open
        held.append(s)
    for s in held:
        s.close()


def test_live_channel_caps_key_on_the_forwarded_client_with_rate_limiting_off(tandem_server):
    srv = tandem_server(env={"TANDEM_RATE_LIMIT": "off", "TANDEM_TRUSTED_PROXIES": "127.0.0.1",
                             "TANDEM_MAX_STREAMS_PER_IP": "1"})
    team = Team(srv)
    one = Sse(srv, team.owner.token, team.pid, headers={"X-Forwarded-For": "192.0.2.1"})
    assert one.status == 200
    other = Sse(srv, team.member.token, team.pid, headers={"X-Forwarded-For": "192.0.2.2"})
    assert other.status == 200  # another client behind the same proxy
    again = Sse(srv, team.member.token, team.pid, headers={"X-Forwarded-For": "192.0.2.2"})
    assert again.status == 429
    body = again.json()
    assert body["code"] == "rate_limited" and body["policy"] == "live-channels", body


def fail_storing_answers(store):
    if store.backend == "postgres":
        db_exec(store, """CREATE FUNCTION fail_update() RETURNS trigger LANGUAGE plpgsql AS $f$
                      BEGIN RAISE EXCEPTION 'injected failure'; END $f$;
                      CREATE TRIGGER fail_update BEFORE UPDATE ON idempotency_keys
                      FOR EACH ROW EXECUTE FUNCTION fail_update();""")
    else:
        db_exec(store, """CREATE TRIGGER fail_update BEFORE UPDATE ON idempotency_keys
                      BEGIN SELECT RAISE(ABORT, 'injected failure'); END;""")


def test_a_change_and_its_idempotent_answer_commit_together(server):
    owner = register(server.api(), "ida")
    store = server.store
    fail_storing_answers(store)
    post = {"json": {"name": "once"}, "headers": {"Idempotency-Key": "create-once"}}
    r = owner.api.post("/v1/projects", **post)
    # The answer could not be stored, so the project was not created either.
    assert r.status_code >= 500, r.text
    assert "Location" not in r.headers
    assert store.query("SELECT count(*) AS n FROM projects")[0]["n"] == 0
    assert store.query("SELECT count(*) AS n FROM idempotency_keys")[0]["n"] == 0
    db_exec(store, "DROP TRIGGER fail_update" + (" ON idempotency_keys" if store.backend ==
                                              "postgres" else ""))
    # The retry runs (the key was not left claimed), once; its repeat is a replay.
    first = owner.api.post("/v1/projects", **post)
    assert first.status_code == 201, first.text
    again = owner.api.post("/v1/projects", **post)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    rows = store.query("SELECT id FROM projects")
    assert [row["id"] for row in rows] == [first.json()["id"]]
    stored = store.query("SELECT status FROM idempotency_keys")
    assert [row["status"] for row in stored] == [201]


LIVE = "00000000-0000-7000-8000-00000000000a"
REVOKED = "00000000-0000-7000-8000-00000000000b"
FAMILY = "00000000-0000-7000-8000-00000000000"


def test_expired_keys_and_dead_refresh_tokens_are_purged(tandem_server):
    srv = tandem_server(env={"TANDEM_PURGE_INTERVAL": "1", "TANDEM_IDEMPOTENCY_TTL": "1",
                             "TANDEM_REFRESH_TOKEN_TTL": "1", "TANDEM_ACCESS_TOKEN_TTL": "3"})
    store = srv.store
    owner = register(srv.api(), "pia")
    r = owner.api.post("/v1/projects", json={"name": "p"}, headers={"Idempotency-Key": "old"})
    assert r.status_code == 201, r.text
    now = int(time.time() * 1000)
    far = now + 3600_000
    uid = owner.id
    # Rows that must stay: a live stored answer and a live refresh token; and one that must
    # go although it has not expired: a refresh token revoked long ago.
    db_exec(store, f"""
        INSERT INTO idempotency_keys (user_id, key, method, path, request_hash, status,
            response_headers, response_body, created_at, expires_at)
        VALUES ('{uid}', 'live', 'POST', '/v1/projects', 'h', 201, '{{}}', '', {now}, {far});
        INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, created_at, expires_at)
        VALUES ('{LIVE}', '{uid}', '{FAMILY}1', 'live-hash', {now}, {far});
        INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, created_at, expires_at,
            revoked_at)
        VALUES ('{REVOKED}', '{uid}', '{FAMILY}2', 'revoked-hash', 1000, {far}, 1000);
        INSERT INTO stream_tickets (token_hash, user_id, session_id, token_version,
            access_expires_at, created_at, expires_at)
        VALUES ('ticket-live', '{uid}', '{FAMILY}1', 1, {far}, {now}, {far}),
               ('ticket-expired', '{uid}', '{FAMILY}1', 1, {far}, 1000, 2000);""")
    assert len(store.query("SELECT key FROM idempotency_keys")) == 2
    assert len(store.query("SELECT id FROM refresh_tokens")) == 3

    def left():
        return (sorted(r["key"] for r in store.query("SELECT key FROM idempotency_keys")),
                sorted(r["id"] for r in store.query("SELECT id FROM refresh_tokens")),
                [r["token_hash"] for r in store.query("SELECT token_hash FROM stream_tickets")])

    for _ in range(600):  # the purge runs every second; expiry plus grace is 4 s
        if left() == (["live"], [LIVE], ["ticket-live"]):
            break
        time.sleep(0.1)
    assert left() == (["live"], [LIVE], ["ticket-live"])
