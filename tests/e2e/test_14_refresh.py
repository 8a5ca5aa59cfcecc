"""Issue 15 point 3: refreshing that survives two tabs, on every backend.

Two instances on one database get the same refresh token at the same instant: both answer
200 with the same new pair (the grace window, TANDEM_REFRESH_GRACE), which keeps working on
either instance. Past a (short) window the rotated token is reuse: the family is revoked and
the answer says so with its own code, `session_revoked`. The other refresh and logout cases
(the rotation itself, reuse, logout without a body) live in test_02_auth.py and
test_12_sessions_security.py; the grace rules in detail are unit-tested (test_sessions.c).
"""

import threading
import time

from harness import assert_problem

SECRET = "refresh-test-secret-0123456789abcdef-01234"
PASSWORD = "correct horse battery staple"


def register(api, name):
    r = api.post("/v1/auth/register", json={
        "username": name, "email": f"{name}@example.com", "password": PASSWORD})
    assert r.status_code == 201, r.text
    return r.json()


def refresh(api, token):
    return api.post("/v1/auth/refresh", json={"refresh_token": token})


def me(api, token):
    return api.get("/v1/users/me", headers={"Authorization": f"Bearer {token}"})


def pair(resp):
    assert resp.status_code == 200, resp.text
    body = resp.json()
    return body["refresh_token"], body["access_token"]


def family_rows(store):
    return store.query("SELECT id, family_id, used_at, revoked_at FROM refresh_tokens "
                       "ORDER BY created_at, id")


def test_two_instances_refreshing_one_token_at_once_get_one_pair(tandem_server, store):
    env = {"TANDEM_JWT_SECRET": SECRET}
    a = tandem_server(env=env, store=store)
    b = tandem_server(env=env, store=store)
    clients = [a.api(), b.api()]
    s0 = register(clients[0], "tess")
    for c in clients:  # connected beforehand, so both requests leave together
        assert c.get("/healthz").status_code == 200
    barrier = threading.Barrier(2)
    answers = [None, None]

    def go(i):
        barrier.wait()
        answers[i] = refresh(clients[i], s0["refresh_token"])

    threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pairs = [pair(r) for r in answers]
    assert pairs[0] == pairs[1], [(r.status_code, r.text) for r in answers]
    new_refresh, new_access = pairs[0]
    # One successor, the only live token of the family.
    rows = family_rows(store)
    assert len(rows) == 2, rows
    assert [r["used_at"] is None and r["revoked_at"] is None for r in rows] == [False, True]
    # The pair works on both instances: the access token, then the refresh token.
    for c in clients:
        assert me(c, new_access).status_code == 200
    assert pair(refresh(clients[1], new_refresh))[0] != new_refresh
    for c in clients:
        c.close()


def test_reuse_after_a_short_grace_window_ends_the_session(tandem_server):
    srv = tandem_server(env={"TANDEM_JWT_SECRET": SECRET, "TANDEM_REFRESH_GRACE": "1"})
    api = srv.api()
    s0 = register(api, "uma")
    s1 = pair(refresh(api, s0["refresh_token"]))
    # Wait on the server's clock: the rotation's time as the database keeps it.
    (row,) = [r for r in srv.store.query("SELECT used_at FROM refresh_tokens")
              if r["used_at"] is not None]
    while time.time() * 1000 <= row["used_at"] + 1000 + 50:
        time.sleep(0.05)
    r = refresh(api, s0["refresh_token"])
    body = assert_problem(r, 401, "session_revoked")
    assert "log in again" in body["detail"], body
    assert "no-store" in r.headers.get("Cache-Control", "")
    # The whole family ended: the newest refresh token and its access token too.
    assert_problem(refresh(api, s1[0]), 401, "session_revoked")
    assert_problem(me(api, s1[1]), 401, "unauthenticated")
    rows = family_rows(srv.store)
    assert len(rows) == 2 and all(r["revoked_at"] is not None for r in rows), rows
    # A token nobody issued keeps its own answer.
    assert_problem(refresh(api, "A" * 43), 401, "unauthenticated")
    # No body and no Content-Type at all (a client that forgot it): the answer names the
    # missing refresh_token, as logout's does, not a Content-Type the client never set.
    r = api.post("/v1/auth/refresh")
    body = assert_problem(r, 422, "validation_failed")
    assert [(e["field"], e["code"]) for e in body["errors"]] == [
        ("refresh_token", "required")], body
    assert "no-store" in r.headers.get("Cache-Control", "")
    api.close()
