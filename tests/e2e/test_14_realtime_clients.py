"""Issue 15 end to end, on every backend: live channels a browser can open.

An EventSource cannot send Authorization (nor Last-Event-ID on its first connection), and
tokens never go in URLs, so a client trades its bearer token for a stream ticket
(POST /v1/realtime/tickets -> 201 {ticket, expires_in}): short-lived, usable once, on any
instance sharing the database, and bound to the session of the token it was made with. It
opens GET /v1/projects/{id}/events/stream?ticket= and GET /v1/realtime?ticket=. The stream
resumes from ?after= like from Last-Event-ID (the header wins). WebSocket messages may carry
an `id` the server echoes; errors about a project carry its project_id; the 4001 close
reasons tell "refresh and retry" (token_expired) from "log in again" (unauthenticated).

One server per backend for the module (one Team on it); the cross-instance case has its own
pair of instances.
"""

import hashlib
import itertools
import json
import time

import jwt
import pytest

from harness import BACKENDS, TandemServer, assert_problem
from rtkit import RawWs, Sse, Ws, close_open_clients, instance_pair
from taskkit import PASSWORD, Team, create_project, db_exec, last_seq

SECRET = "e2e-realtime-clients-secret-0123456789abcd"  # >= 32 bytes: tokens can be minted
MISSING = "00000000-0000-7000-8000-000000000000"
_names = itertools.count(1)


@pytest.fixture(scope="module", params=BACKENDS)
def world(request, tmp_path_factory, module_stores):
    backend = request.param
    tmp = tmp_path_factory.mktemp(f"rtclients-{backend}")
    store = module_stores(backend, tmp / "data")
    srv = TandemServer(store, tmp, env={"TANDEM_JWT_SECRET": SECRET},
                       name=f"rtclients-{backend}")
    srv.start()
    try:
        team = Team(srv)
        team.create()  # seq 4: the project has a history to resume from
        yield team
    finally:
        assert srv.stop() == 0, srv.stderr_text()[-4000:]


@pytest.fixture(autouse=True)
def closed_after():
    """The test's clients are closed at its end (rtkit's close_clients would start a server
    of each backend per test: this module shares one)."""
    yield
    close_open_clients()


def new_ticket(client):
    r = client.post("/v1/realtime/tickets")
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"ticket", "expires_in"}, body
    return body["ticket"]


def login(team):
    """A user of its own with a session of its own: {access_token, refresh_token, user}."""
    name = f"rtc{next(_names)}"
    r = team.anon.post("/v1/auth/register", json={
        "username": name, "email": f"{name}@example.com", "password": PASSWORD})
    assert r.status_code == 201, r.text
    return r.json()


def stream(team, ticket, **query):
    return Sse(team.server, None, team.pid, query={"ticket": ticket, **query})


def stored_tickets(team, ticket):
    digest = hashlib.sha256(ticket.encode()).hexdigest()
    return team.store.query(
        "SELECT token_hash, user_id, created_at, expires_at FROM stream_tickets "
        f"WHERE token_hash = '{digest}'")


# ---------------------------------------------------------------------------------------
# tickets


def test_a_ticket_is_201_no_store_and_only_its_hash_is_stored(world):
    r = world.member.api.post("/v1/realtime/tickets")
    assert r.status_code == 201, r.text
    assert r.headers["Cache-Control"] == "no-store"
    body = r.json()
    assert set(body) == {"ticket", "expires_in"} and body["expires_in"] == 30, body
    rows = stored_tickets(world, body["ticket"])
    assert len(rows) == 1, rows
    assert rows[0]["user_id"] == world.member.id
    assert rows[0]["expires_at"] - rows[0]["created_at"] == 30_000
    # An empty object is no body too; anything else is refused and stores nothing.
    assert world.member.api.post("/v1/realtime/tickets", json={}).status_code == 201
    before = world.store.query("SELECT count(*) AS n FROM stream_tickets")[0]["n"]
    bad = world.member.api.post("/v1/realtime/tickets", json={"project_id": world.pid})
    body = assert_problem(bad, 422, "validation_failed")
    assert [e["field"] for e in body["errors"]] == ["project_id"], body
    assert_problem(world.anon.post("/v1/realtime/tickets"), 401, "unauthenticated")
    assert world.store.query("SELECT count(*) AS n FROM stream_tickets")[0]["n"] == before


def test_a_ticket_opens_one_event_stream_once(world):
    ticket = new_ticket(world.member.api)
    sse = stream(world, ticket, after=0)
    assert sse.status == 200
    assert [e["seq"] for e in sse.events_through(4)] == [1, 2, 3, 4]
    assert stored_tickets(world, ticket) == []  # spent
    again = stream(world, ticket)
    assert again.status == 401
    assert again.resp.getheader("WWW-Authenticate").startswith("Bearer")
    body = again.json()
    assert body["code"] == "ticket_invalid" and "POST /v1/realtime/tickets" in body["detail"]
    # The stream goes on; the ticket never reached a log line.
    world.create(title="after the refusal")
    _id, kind, ev = sse.event()
    assert kind == "task.created" and ev["data"]["title"] == "after the refusal"
    assert ticket not in world.server.stderr_text()


def test_an_expired_or_unknown_ticket_is_refused(world):
    ticket = new_ticket(world.member.api)
    digest = hashlib.sha256(ticket.encode()).hexdigest()
    db_exec(world.store, "UPDATE stream_tickets SET expires_at = created_at - 1 "
                         f"WHERE token_hash = '{digest}'")
    for t in (ticket, "not-a-ticket", ""):
        sse = stream(world, t)
        assert sse.status == 401, t
        assert sse.json()["code"] == "ticket_invalid"


def test_a_ticket_and_a_bearer_header_at_once_are_400(world):
    ticket = new_ticket(world.member.api)
    sse = Sse(world.server, world.member.token, world.pid, query={"ticket": ticket})
    assert sse.status == 400 and sse.json()["code"] == "bad_request"
    raw = RawWs(world.server, world.member.token, target=f"/v1/realtime?ticket={ticket}")
    assert raw.status == 400 and json.loads(raw.body)["code"] == "bad_request"
    assert len(stored_tickets(world, ticket)) == 1  # not spent


def test_logout_voids_the_sessions_tickets_and_ends_its_ticket_streams(world):
    s = login(world)
    api = world.server.api(s["access_token"])
    pid = create_project(api, "own")
    used, unused = new_ticket(api), new_ticket(api)
    sse = Sse(world.server, None, pid, query={"ticket": used})
    assert sse.status == 200
    sse.record()  # the opening comment: attached
    r = world.anon.post("/v1/auth/logout", json={"refresh_token": s["refresh_token"]})
    assert r.status_code == 204, r.text
    while True:  # the stream ends with an unsubscribed record, like a bearer stream
        rec = sse.record()
        assert rec is not None, "the stream ended without saying why"
        if rec.get("event") == "unsubscribed":
            break
    assert json.loads(rec["data"])["reason"] == "unauthenticated"
    late = Sse(world.server, None, pid, query={"ticket": unused})
    assert late.status == 401 and late.json()["code"] == "ticket_invalid"


def test_a_ticket_made_on_one_instance_opens_a_stream_on_another(tandem_server, store,
                                                                 redis_server):
    pair = instance_pair(tandem_server, store, redis_server)
    team = pair.team
    ticket = new_ticket(team.member.api)  # on a
    sse = Sse(pair.b, None, team.pid, query={"ticket": ticket})
    assert sse.status == 200
    sse.record()
    team.create(title="made on a")
    _id, kind, ev = sse.event()
    assert kind == "task.created" and ev["data"]["title"] == "made on a"
    again = Sse(pair.a, None, team.pid, query={"ticket": ticket})
    assert again.status == 401 and again.json()["code"] == "ticket_invalid"


# ---------------------------------------------------------------------------------------
# ?after= on the event stream


def test_after_resumes_the_stream_like_last_event_id(world):
    head = last_seq(world.owner.api, world.pid)
    sse = Sse(world.server, world.viewer.token, world.pid, query={"after": 2})
    assert sse.status == 200
    # Both: Last-Event-ID (the browser's reconnection) wins.
    both = Sse(world.server, world.viewer.token, world.pid, last_event_id=head - 1,
               query={"after": 0})
    assert both.status == 200
    world.create(title="resumed")  # a stream that ignored its resume point starts here
    assert [e["seq"] for e in sse.events_through(head + 1)] == list(range(3, head + 2))
    assert [e["seq"] for e in both.events_through(head + 1)] == [head, head + 1]


@pytest.mark.parametrize("after,code", [("beyond", "out_of_range"), ("x", "invalid"),
                                        ("-1", "invalid"), ("1.5", "invalid")])
def test_a_bad_after_is_422_naming_it(world, after, code):
    if after == "beyond":
        after = str(last_seq(world.owner.api, world.pid) + 1)
    sse = Sse(world.server, world.viewer.token, world.pid, query={"after": after})
    assert sse.status == 422
    body = sse.json()
    assert body["code"] == "validation_failed"
    assert [(e["field"], e["code"]) for e in body["errors"]] == [("after", code)], body
    # The message names the bad value, as the long poll's and every other query value's do.
    assert f"'{after}'" in body["errors"][0]["message"], body


# ---------------------------------------------------------------------------------------
# WebSocket: ?ticket=, ids, project_id, close reasons


def test_a_ticket_authenticates_a_websocket_at_once_and_once(world):
    ticket = new_ticket(world.member.api)
    ws = Ws(world.server, ticket=ticket)
    ws.send({"type": "subscribe", "project_id": world.pid, "id": "first"})
    msg = ws.expect("subscribed")
    assert msg["id"] == "first" and msg["project_id"] == world.pid
    t = world.create(title="to the ticket socket")
    assert ws.events(1)[0]["data"] == t
    again = Ws(world.server, ticket=ticket)
    code, msgs = again.close_code()
    assert code == 4001 and again.close_reason == "unauthenticated"
    assert [m["code"] for m in msgs] == ["ticket_invalid"], msgs


def test_message_ids_are_echoed_and_errors_name_their_project(world):
    ws = Ws(world.server)
    ws.send({"type": "auth", "token": world.member.token, "id": 1})
    assert ws.expect("authenticated")["id"] == 1
    ws.send({"type": "subscribe", "project_id": world.pid, "after": None, "id": "s-1"})
    msg = ws.expect("subscribed")
    assert (msg["id"], msg["project_id"]) == ("s-1", world.pid)
    long_id = "é" * 64  # 64 characters, 128 bytes
    ws.send({"type": "ping", "id": long_id})
    assert ws.recv() == {"type": "pong", "id": long_id}
    cases = [
        ({"type": "subscribe", "project_id": MISSING, "id": 2}, "not_found", MISSING),
        ({"type": "subscribe", "project_id": world.pid, "after": 10**6, "id": 3},
         "validation_failed", world.pid),
        ({"type": "subscribe", "project_id": "nope", "id": 4}, "validation_failed", "nope"),
        ({"type": "unsubscribe", "project_id": MISSING, "id": "u"}, "not_found", MISSING),
        ({"type": "frobnicate", "id": 5}, "unknown_type", None),
    ]
    for message, code, pid in cases:
        ws.send(message)
        err = ws.expect("error")
        assert err["code"] == code and err["id"] == message["id"], (message, err)
        assert err.get("project_id") == pid, (message, err)
    ws.send({"type": "unsubscribe", "project_id": world.pid, "id": 6})
    msg = ws.expect("unsubscribed")
    assert (msg["id"], msg["project_id"], msg["reason"]) == (6, world.pid, "requested")
    for bad in ("x" * 65, {"a": 1}, [1], 1.5, True):
        ws.send({"type": "ping", "id": bad})
        err = ws.expect("error")
        assert err["code"] == "validation_failed" and "id" not in err, err
        assert "id" in err["message"]
    ws.send({"type": "ping"})
    assert ws.recv() == {"type": "pong"}  # no id, none echoed


def expired_token_of(token):
    claims = jwt.decode(token, options={"verify_signature": False})
    now = int(time.time())
    claims.update(iat=now - 120, exp=now - 60)
    return jwt.encode(claims, SECRET, algorithm="HS256")


@pytest.mark.parametrize("kind,reason", [
    ("expired", "token_expired"),  # refresh, then authenticate again
    ("forged", "unauthenticated"),  # log in again
    ("not auth", "unauthenticated"),
])
def test_4001_says_why(world, kind, reason):
    token = world.member.token
    message = {
        "expired": {"type": "auth", "token": expired_token_of(token)},
        "forged": {"type": "auth", "token": token[:-4] + ("AAAA" if token[-4:] != "AAAA"
                                                          else "BBBB")},
        "not auth": {"type": "ping", "id": 1},
    }[kind]
    ws = Ws(world.server)
    ws.send(message)
    code, msgs = ws.close_code()
    assert (code, ws.close_reason, msgs) == (4001, reason, [])


# ---------------------------------------------------------------------------------------
# logs


def test_a_client_leaving_an_event_stream_is_no_warning(world):
    sse = Sse(world.server, world.member.token, world.pid,
              headers={"X-Request-Id": "rtclients-leaver"})
    assert sse.status == 200
    sse.record()
    sse.close()

    def ended():
        return any(e.get("request_id") == "rtclients-leaver"
                   for e in world.server.access_log())

    # The server notices at a write (the first may still be taken by the kernel): events
    # until the stream's access line says it ended.
    for _ in range(50):
        world.create(title="written to a closed stream")
        if ended():
            break
    world.server.access_entry("rtclients-leaver")
    warnings = [e for e in world.server.logs()
                if e.get("level") == "warn" and "events/stream" in e.get("msg", "")]
    assert warnings == []
