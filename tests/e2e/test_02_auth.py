"""Issue 3 end to end: accounts and authentication, on every backend.

Every flow (register, login by email or username, refresh rotation, logout, the caller's
profile, password change, the user directory) and the attacks on it (forged, tampered and
expired access tokens, refresh-token reuse, revoked users, duplicates, invalid input).
Each rejected request is checked for its status, its problem `code`, and that nothing was
stored or changed: the database is re-read, or the old credentials are tried again.

Most servers here run with a known TANDEM_JWT_SECRET so that the tests can mint their own
tokens with PyJWT (expired ones, ones with the wrong issuer, other algorithms, ...).
"""

import base64
import hashlib
import hmac
import json
import os
import re
import select
import socket
import stat
import threading
import time
import uuid

import jwt
import pytest

from harness import assert_problem
from taskkit import db_exec

SECRET = "e2e-test-secret-0123456789abcdef-0123456789"  # 43 bytes, >= 32
PASSWORD = "correct horse battery staple"
B64URL = re.compile(r"^[A-Za-z0-9_-]+$")
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
# A user as others see it; the user themself also sees "email" and "is_admin".
USER_KEYS = {"id", "username", "display_name", "is_active", "created_at"}
SESSION_KEYS = {"user", "access_token", "refresh_token", "token_type", "expires_in"}
JSON = {"Content-Type": "application/json"}


# ---------------------------------------------------------------------------------------
# helpers


def b64url(data):
    if isinstance(data, (dict, list)):
        data = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims_of(token):
    return jwt.decode(token, options={"verify_signature": False})


def header_of(token):
    return jwt.get_unverified_header(token)


def mint(sub, ver=1, *, key=SECRET, alg="HS256", drop=(), headers=None, **override):
    """An access token the way the server would issue it, with any claim changed."""
    now = int(time.time())
    claims = {"iss": "tandem", "aud": "tandem-api", "sub": sub, "iat": now,
              "exp": now + 3600, "jti": str(uuid.uuid4()), "ver": ver}
    claims.update(override)
    for k in drop:
        claims.pop(k, None)
    return jwt.encode(claims, key, algorithm=alg, headers=headers)


def resign(claims, header):
    """A token with this header (any alg) and an HS256 signature made with the secret."""
    signing_input = f"{b64url(header)}.{b64url(claims)}".encode()
    sig = hmac.new(SECRET.encode(), signing_input, hashlib.sha256).digest()
    return f"{signing_input.decode()}.{b64url(sig)}"


def user_rows(store):
    return store.query("SELECT id, username, email, display_name, password_hash, is_active, "
                       "is_admin, token_version, version FROM users ORDER BY username")


def user_row(store, user_id):
    rows = [r for r in user_rows(store) if r["id"] == user_id]
    assert len(rows) == 1, rows
    return rows[0]


def refresh_rows(store):
    return store.query("SELECT id, user_id, family_id, token_hash, used_at, revoked_at "
                       "FROM refresh_tokens ORDER BY created_at, id")


def snapshot(store):
    """Everything an auth request could change."""
    return {"users": user_rows(store), "refresh_tokens": refresh_rows(store)}


def assert_no_store(resp):
    assert "no-store" in resp.headers.get("Cache-Control", ""), \
        f"{resp.request.method} {resp.request.url} -> {resp.status_code} lacks " \
        f"Cache-Control: no-store: {dict(resp.headers)}"


def register(api, username, email=None, password=PASSWORD, **extra):
    body = {"username": username, "email": email or f"{username}@example.com",
            "password": password, **extra}
    r = api.post("/v1/auth/register", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def login(api, login_name, password=PASSWORD):
    return api.post("/v1/auth/login", json={"login": login_name, "password": password})


def me(api, token):
    return api.get("/v1/users/me", headers={"Authorization": f"Bearer {token}"})


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def field_errors(body):
    return {(e["field"], e["code"]) for e in body.get("errors", [])}


def assert_invalid_credentials(resp):
    body = assert_problem(resp, 401, "invalid_credentials")
    assert_no_store(resp)
    return body


def assert_session(resp, status, username):
    assert resp.status_code == status, resp.text
    assert_no_store(resp)
    body = resp.json()
    # A login also returns a device token (issue 15; test_14_login_limits).
    login = resp.request.url.endswith("/v1/auth/login")
    assert set(body) == SESSION_KEYS | ({"device_token"} if login else set()), body
    assert body["token_type"] == "Bearer"
    assert body["user"]["username"] == username
    assert "email" in body["user"]  # the caller's own user object
    # Refresh tokens: opaque, at least 256 bits of base64url.
    assert B64URL.match(body["refresh_token"]) and len(body["refresh_token"]) >= 43, body
    assert body["access_token"].count(".") == 2
    return body


@pytest.fixture
def srv(tandem_server):
    """A server whose JWT secret the test knows."""
    return tandem_server(env={"TANDEM_JWT_SECRET": SECRET})


@pytest.fixture
def client(srv):
    c = srv.api()
    yield c
    c.close()


# ---------------------------------------------------------------------------------------
# register


def test_register_creates_user_and_session(srv, client):
    r = client.post("/v1/auth/register", json={
        "username": "Alice_01", "email": "Alice.Smith@Example.COM", "password": PASSWORD,
        "display_name": "Alice Smith"})
    body = assert_session(r, 201, "alice_01")
    assert r.headers.get("Location") == "/v1/users/me"
    user = body["user"]
    assert set(user) == USER_KEYS | {"email", "is_admin"}
    assert user["email"] == "alice.smith@example.com"  # stored lower-case
    assert user["display_name"] == "Alice Smith"
    assert user["is_active"] is True and user["is_admin"] is False
    assert TIMESTAMP.match(user["created_at"]), user["created_at"]
    assert uuid.UUID(user["id"]).version == 7
    assert body["expires_in"] == 86400  # default access lifetime: 24 h

    # The access token: HS256 with every claim API.md promises.
    assert header_of(body["access_token"])["alg"] == "HS256"
    c = claims_of(body["access_token"])
    assert c["iss"] == "tandem" and c["aud"] == "tandem-api"
    assert c["sub"] == user["id"]
    assert isinstance(c["iat"], int) and isinstance(c["exp"], int)
    assert c["exp"] - c["iat"] == 86400
    assert isinstance(c["jti"], str) and c["jti"]
    assert c["ver"] == 1
    # The server's own secret verifies it (so the forged tokens below are realistic).
    jwt.decode(body["access_token"], SECRET, algorithms=["HS256"], audience="tandem-api",
               issuer="tandem")

    # Stored: lower-case email and username, a bcrypt hash (not the password), and only a
    # hash of the refresh token.
    (row,) = user_rows(srv.store)
    assert row["id"] == user["id"]
    assert row["username"] == "alice_01" and row["email"] == "alice.smith@example.com"
    assert row["password_hash"].startswith("$2b$04$") and PASSWORD not in row["password_hash"]
    assert bool(row["is_active"]) and not bool(row["is_admin"])
    (tok,) = refresh_rows(srv.store)
    assert tok["user_id"] == user["id"]
    assert body["refresh_token"] not in json.dumps(tok)
    assert tok["used_at"] is None and tok["revoked_at"] is None

    # The token works, and GET /users/me shows the same user.
    r = me(client, body["access_token"])
    assert r.status_code == 200 and r.json() == user
    assert_no_store(r)

    # Each session gets a fresh access token id and refresh token.
    other = login(client, "alice_01").json()
    assert claims_of(other["access_token"])["jti"] != c["jti"]
    assert other["refresh_token"] != body["refresh_token"]


def test_register_display_name_is_optional_and_nullable(client):
    a = register(client, "nodisplay")
    assert a["user"]["display_name"] == ""
    b = register(client, "nulldisplay", display_name=None)
    assert b["user"]["display_name"] == ""


def test_register_duplicates_differing_only_in_case_conflict(srv, client):
    register(client, "carol", "carol@example.com")
    before = snapshot(srv.store)
    cases = [
        ({"username": "CAROL", "email": "other@example.com"}, {"username"}),
        ({"username": "carol2", "email": "Carol@EXAMPLE.com"}, {"email"}),
        ({"username": "Carol", "email": "CAROL@example.com"}, {"username", "email"}),
    ]
    for fields, expect in cases:
        r = client.post("/v1/auth/register", json={**fields, "password": PASSWORD})
        body = assert_problem(r, 409, "conflict")
        assert_no_store(r)
        assert {e["field"] for e in body["errors"]} == expect, body
        assert snapshot(srv.store) == before, f"{fields} changed the database"


INVALID_EMAILS = [
    "plainaddress", "@example.com", "user@", "user@@example.com", "user@example",
    "user name@example.com", "user@exa mple.com", ".user@example.com", "user.@example.com",
    "us..er@example.com", "user@-example.com", "user@example..com", "user@example.com.",
    "a" * 65 + "@example.com", "user@" + "a" * 64 + ".com", "<user>@example.com",
    "user@ex_ample.com", "user@example.com\n", "",
]


def test_register_rejects_invalid_email(srv, client):
    for email in INVALID_EMAILS:
        r = client.post("/v1/auth/register",
                        json={"username": "dave", "email": email, "password": PASSWORD})
        body = assert_problem(r, 422, "validation_failed")
        assert_no_store(r)
        assert {e["field"] for e in body["errors"]} == {"email"}, (email, body)
    assert user_rows(srv.store) == []
    register(client, "dave", "Dave.O-Brien+tag@mail.example.co.uk")


def test_register_rejects_invalid_usernames(srv, client):
    for name, code in [("ab", "too_short"), ("a" * 33, "too_long"),
                       ("bad name", "invalid"), ("bad@name", "invalid"),
                       ("émile", "invalid"), ("bad/name", "invalid")]:
        r = client.post("/v1/auth/register",
                        json={"username": name, "email": "e@example.com", "password": PASSWORD})
        body = assert_problem(r, 422, "validation_failed")
        assert field_errors(body) == {("username", code)}, (name, body)
    assert user_rows(srv.store) == []
    # The limits themselves are fine.
    register(client, "abc")
    register(client, "a" * 32)
    register(client, "x_y.z-0")


def test_register_password_length_limits(srv, client):
    for pw, code in [("", "too_short"), ("1234567", "too_short"), ("p" * 129, "too_long"),
                     ("é" * 129, "too_long")]:
        r = client.post("/v1/auth/register",
                        json={"username": "erin", "email": "erin@example.com", "password": pw})
        body = assert_problem(r, 422, "validation_failed")
        assert field_errors(body) == {("password", code)}, body
        assert user_rows(srv.store) == []
    # 8 and 128 characters are accepted (128 two-byte characters, 256 bytes, too).
    for name, pw in [("short8", "12345678"), ("long128", "p" * 128), ("multi128", "é" * 128)]:
        register(client, name, password=pw)
        assert login(client, name, pw).status_code == 200
        assert_invalid_credentials(login(client, name, pw[:-1]))


def test_passwords_differing_after_byte_72_are_different(srv, client):
    # bcrypt reads only 72 bytes; the server must not treat these two as the same password.
    base = "A" * 72
    pw1, pw2 = base + "-first", base + "-second"
    register(client, "frank", password=pw1)
    assert_invalid_credentials(login(client, "frank", pw2))
    assert_invalid_credentials(login(client, "frank", base))
    assert login(client, "frank", pw1).status_code == 200
    # The same with multi-byte characters straddling byte 72 (36 x 2 bytes).
    mb = "é" * 36
    register(client, "grace", password=mb + "ü1")
    assert_invalid_credentials(login(client, "grace", mb + "ü2"))
    assert login(client, "grace", mb + "ü1").status_code == 200

    # And through a password change as well.
    s = login(client, "frank", pw1).json()
    r = client.put("/v1/users/me/password", headers=bearer(s["access_token"]),
                   json={"current_password": pw1, "new_password": base + "-third"})
    assert r.status_code == 204, r.text
    assert_invalid_credentials(login(client, "frank", base + "-fourth"))
    assert login(client, "frank", base + "-third").status_code == 200


def test_register_rejects_nul_in_password(srv, client):
    r = client.post("/v1/auth/register", json={"username": "nul", "email": "nul@example.com",
                                               "password": "abcdefgh\u0000ijkl"})
    # A C string would end at the NUL, making "abcdefgh" the password: it must be refused.
    # (The JSON parser refuses \u0000 outright, as malformed; a field error would do too.)
    if r.status_code == 400:
        assert_problem(r, 400, "malformed_json")
    else:
        body = assert_problem(r, 422, "validation_failed")
        assert {e["field"] for e in body["errors"]} == {"password"}
    assert user_rows(srv.store) == []
    register(client, "nul", password="abcdefgh")
    r = login(client, "nul", "abcdefgh\u0000ijkl")
    if r.status_code == 400:
        assert_problem(r, 400, "malformed_json")
    else:
        assert_invalid_credentials(r)


def test_register_rejects_unknown_read_only_and_mistyped_fields(srv, client):
    good = {"username": "heidi", "email": "heidi@example.com", "password": PASSWORD}
    cases = [
        ({"is_admin": True}, {("is_admin", "read_only")}),
        ({"is_active": False}, {("is_active", "read_only")}),
        ({"id": str(uuid.uuid4())}, {("id", "read_only")}),
        ({"created_at": "2024-01-15T14:30:00.000Z"}, {("created_at", "read_only")}),
        ({"role": "admin"}, {("role", "unknown_field")}),
        ({"role": "admin", "is_admin": True, "token_version": 9},
         {("role", "unknown_field"), ("is_admin", "read_only"),
          ("token_version", "unknown_field")}),
        ({"password": 12345678}, {("password", "type")}),
        ({"username": ["heidi"]}, {("username", "type")}),
        ({"display_name": 5}, {("display_name", "type")}),
        ({"email": None}, {("email", "not_nullable")}),
    ]
    for extra, expect in cases:
        r = client.post("/v1/auth/register", json={**good, **extra})
        body = assert_problem(r, 422, "validation_failed")
        assert_no_store(r)
        assert field_errors(body) == expect, (extra, body)
        assert snapshot(srv.store) == {"users": [], "refresh_tokens": []}
    for missing in good:
        body = dict(good)
        del body[missing]
        r = client.post("/v1/auth/register", json=body)
        assert field_errors(assert_problem(r, 422, "validation_failed")) == \
            {(missing, "required")}
    assert user_rows(srv.store) == []
    register(client, "heidi")  # the good body itself is fine


def test_auth_endpoints_reject_bad_bodies(srv, client):
    """Malformed JSON, non-objects, wrong or missing content types and huge bodies, on
    every /v1/auth endpoint: right status and code, no-store, and nothing changed."""
    s = register(client, "ivan")
    before = snapshot(srv.store)
    huge = json.dumps({"username": "ivan2", "email": "ivan2@example.com",
                       "password": PASSWORD, "display_name": "x" * (2 << 20)})
    good = json.dumps({"username": "ivan2", "email": "ivan2@example.com",
                       "password": PASSWORD})
    for path in ("register", "login", "refresh", "logout"):
        url = f"/v1/auth/{path}"
        cases = [
            ('{"username": "ivan2",', JSON, 400, "malformed_json"),
            ("{'username': 'ivan2'}", JSON, 400, "malformed_json"),
            ('{"a": 1} trailing', JSON, 400, "malformed_json"),
            ('{"login": "a", "login": "b"}', JSON, 400, "malformed_json"),
            ("", JSON, 400, "malformed_json"),
            (good, {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
            (good, {"Content-Type": "application/x-www-form-urlencoded"}, 415,
             "unsupported_media_type"),
            (good, {"Content-Type": "application/json; charset=latin1"}, 415,
             "unsupported_media_type"),
            (good, {}, 415, "unsupported_media_type"),
        ]
        for data, headers, status, code in cases:
            r = client.post(url, data=data.encode(), headers=headers)
            assert_problem(r, status, code)
            assert_no_store(r)
        r = client.post(url, data=huge.encode(), headers=JSON)
        assert_problem(r, 413, "payload_too_large")
        assert snapshot(srv.store) == before, f"{url} changed the database"
    # The session is untouched.
    assert me(client, s["access_token"]).status_code == 200
    assert client.post("/v1/auth/refresh",
                       json={"refresh_token": s["refresh_token"]}).status_code == 200


def test_json_bodies_that_are_not_objects_are_422(srv, client):
    """Well-formed JSON of the wrong type is a wrong type (422, like an array), not
    malformed JSON (400)."""
    s = register(client, "olive")
    tok = s["access_token"]
    before = snapshot(srv.store)
    targets = [("POST", f"/v1/auth/{p}", {}) for p in ("register", "login", "refresh",
                                                        "logout")]
    targets += [("PATCH", "/v1/users/me", bearer(tok)),
                ("PUT", "/v1/users/me/password", bearer(tok))]
    for method, path, auth in targets:
        for data in ("[]", '["login"]', '"a string"', "42", "true", "null"):
            r = client.request(method, path, data=data.encode(), headers={**JSON, **auth})
            try:
                assert_problem(r, 422, "validation_failed")
            except AssertionError as e:
                raise AssertionError(f"{method} {path} with body {data}: {e}") from None
        assert snapshot(srv.store) == before, path
    assert me(client, tok).json() == s["user"]


def post_chunked(server, path, total, chunk=65536):
    """POST a JSON body of `total` bytes with Transfer-Encoding: chunked (no Content-Length)
    over a raw socket; stop sending as soon as the server answers. Returns (status, headers,
    body) of the answer."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    data = b""
    try:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                     "\r\n".encode())
        piece = b"%x\r\n" % chunk + b" " * chunk + b"\r\n"
        sent = 0
        try:
            while sent < total:
                if select.select([sock], [], [], 0)[0]:
                    break  # the server has answered (or closed): stop sending
                sock.sendall(piece)
                sent += chunk
            else:
                sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server stopped reading; its answer may still be there
        try:
            while b"\r\n\r\n" not in data or len(data) < _content_end(data):
                more = sock.recv(65536)
                if not more:
                    break
                data += more
        except OSError:
            pass
    finally:
        sock.close()
    assert data, f"the server closed the connection without an answer to {path}"
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip()
               for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def _content_end(data):
    head, sep, _ = data.partition(b"\r\n\r\n")
    m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
    return len(head) + len(sep) + int(m.group(1)) if m else len(data) + 1


def test_huge_chunked_body_gets_413(srv, client):
    """A body over the limit sent without a Content-Length is refused with a 413 problem
    too, not with a dropped connection."""
    s = register(client, "ivan")
    before = snapshot(srv.store)
    for path in ("/v1/auth/register", "/v1/auth/login"):
        status, headers, body = post_chunked(srv, path, 4 << 20)
        assert status == 413, (path, status, headers, body)
        assert headers.get("content-type", "").startswith("application/problem+json")
        assert json.loads(body)["code"] == "payload_too_large"
        assert "no-store" in headers.get("cache-control", ""), headers
    assert snapshot(srv.store) == before
    assert me(client, s["access_token"]).status_code == 200


def test_every_auth_answer_is_no_store(srv, client):
    """Cache-Control: no-store on everything under /v1/auth, even answers given before a
    handler runs (body too large, wrong method, no such route)."""
    huge = json.dumps({"login": "x" * (2 << 20), "password": PASSWORD}).encode()
    r = client.post("/v1/auth/login", data=huge, headers=JSON)
    assert_problem(r, 413, "payload_too_large")
    assert_no_store(r)
    r = client.get("/v1/auth/login")
    assert_problem(r, 405, "method_not_allowed")
    assert_no_store(r)
    r = client.post("/v1/auth/no-such-thing", json={})
    assert_problem(r, 404, "not_found")
    assert_no_store(r)


# ---------------------------------------------------------------------------------------
# login


def test_login_by_username_or_email_in_any_case(srv, client):
    reg = register(client, "judy", "Judy@Example.com", display_name="Judy")
    for name in ("judy", "JUDY", "judy@example.com", "JUDY@EXAMPLE.COM"):
        r = login(client, name)
        body = assert_session(r, 200, "judy")
        assert body["user"] == reg["user"]
        assert body["expires_in"] == 86400
        assert me(client, body["access_token"]).json() == reg["user"]
    # Each login is its own refresh-token family.
    rows = refresh_rows(srv.store)
    assert len(rows) == 5 and len({t["family_id"] for t in rows}) == 5


def test_login_failures_are_indistinguishable(srv, client):
    reg = register(client, "mallory")
    register(client, "trent")
    db_exec(srv.store, f"UPDATE users SET is_active = false WHERE id = '{reg['user']['id']}'")
    register(client, "victor")
    before = snapshot(srv.store)
    answers = []
    for name, pw in [("nobody", PASSWORD), ("nobody@example.com", PASSWORD),
                     ("trent", PASSWORD + "x"), ("trent@example.com", "wrong-password"),
                     ("mallory", PASSWORD), ("mallory@example.com", PASSWORD)]:
        body = assert_invalid_credentials(login(client, name, pw))
        answers.append({k: v for k, v in body.items() if k != "instance"})
    assert all(a == answers[0] for a in answers), answers
    assert snapshot(srv.store) == before  # no session was created
    assert login(client, "trent").status_code == 200


def test_login_validation(srv, client):
    register(client, "kate")
    before = snapshot(srv.store)
    cases = [
        ({"login": "kate"}, {("password", "required")}),
        ({"password": PASSWORD}, {("login", "required")}),
        ({"login": "kate", "password": PASSWORD, "remember": True},
         {("remember", "unknown_field")}),
        ({"login": "kate", "password": 123}, {("password", "type")}),
        ({"login": None, "password": PASSWORD}, {("login", "not_nullable")}),
    ]
    for body, expect in cases:
        r = client.post("/v1/auth/login", json=body)
        assert field_errors(assert_problem(r, 422, "validation_failed")) == expect, body
        assert_no_store(r)
    assert snapshot(srv.store) == before


def test_login_rehashes_when_bcrypt_cost_rises(tandem_server):
    first = tandem_server(env={"TANDEM_JWT_SECRET": SECRET})
    api = first.api()
    uid = register(api, "leo")["user"]["id"]
    old_hash = user_row(first.store, uid)["password_hash"]
    assert old_hash.startswith("$2b$04$")
    assert first.stop() == 0

    second = tandem_server(env={"TANDEM_JWT_SECRET": SECRET, "TANDEM_BCRYPT_COST": "5"},
                           store=first.store)
    api = second.api()
    # A failed login changes nothing.
    assert_invalid_credentials(login(api, "leo", "not-the-password"))
    assert user_row(second.store, uid)["password_hash"] == old_hash
    # A successful one upgrades the stored hash to the configured cost...
    assert login(api, "leo").status_code == 200
    row = user_row(second.store, uid)
    assert row["password_hash"].startswith("$2b$05$"), row["password_hash"]
    assert row["token_version"] == 1  # ...without logging anybody out
    # ...and the password still works, the wrong one still does not.
    assert login(api, "leo@example.com").status_code == 200
    assert_invalid_credentials(login(api, "leo", "not-the-password"))
    assert user_row(second.store, uid)["password_hash"] == row["password_hash"]


# ---------------------------------------------------------------------------------------
# refresh and logout


def refresh(api, token):
    return api.post("/v1/auth/refresh", json={"refresh_token": token})


def test_refresh_rotates_the_pair(srv, client):
    s0 = register(client, "mike")
    r = refresh(client, s0["refresh_token"])
    s1 = assert_session(r, 200, "mike")
    assert s1["refresh_token"] != s0["refresh_token"]
    assert claims_of(s1["access_token"])["jti"] != claims_of(s0["access_token"])["jti"]
    assert s1["user"] == s0["user"]
    assert me(client, s1["access_token"]).status_code == 200
    rows = refresh_rows(srv.store)
    assert len(rows) == 2 and rows[0]["family_id"] == rows[1]["family_id"]
    assert rows[0]["used_at"] is not None and rows[1]["used_at"] is None
    # Rotation chain continues.
    s2 = assert_session(refresh(client, s1["refresh_token"]), 200, "mike")
    s3 = assert_session(refresh(client, s2["refresh_token"]), 200, "mike")
    assert len({s["refresh_token"] for s in (s0, s1, s2, s3)}) == 4


def age_rotations(store, ms=11_000):
    """Move every rotation `ms` into the past on the server's clock (the database): past
    the default 10 s grace window, a rotated token shown again is reuse."""
    db_exec(store, f"UPDATE refresh_tokens SET used_at = used_at - {ms} "
                   "WHERE used_at IS NOT NULL")


def test_refresh_reuse_revokes_the_whole_family(srv, client):
    s0 = register(client, "nina")
    other = login(client, "nina").json()  # a second device: its own family
    s1 = refresh(client, s0["refresh_token"]).json()
    s2 = refresh(client, s1["refresh_token"]).json()
    age_rotations(srv.store)

    # The thief replays an already rotated token after the grace window: refused, and the
    # family is revoked...
    r = refresh(client, s0["refresh_token"])
    body = assert_problem(r, 401, "session_revoked")
    assert "log in again" in body["detail"], body
    assert_no_store(r)
    # ...so the legitimate newest token dies too...
    assert_problem(refresh(client, s2["refresh_token"]), 401, "session_revoked")
    assert_problem(refresh(client, s1["refresh_token"]), 401, "session_revoked")
    rows = refresh_rows(srv.store)
    first_family = rows[0]["family_id"]  # the register session's
    family = [t for t in rows if t["family_id"] == first_family]
    assert len(family) == 3 and all(t["revoked_at"] is not None for t in family), family
    others = [t for t in rows if t["family_id"] != first_family]
    assert len(others) == 1 and others[0]["revoked_at"] is None, others
    # ...while the other device's family lives on.
    assert_session(refresh(client, other["refresh_token"]), 200, "nina")


def test_two_refreshes_at_once_with_one_token(srv, client):
    """Two clients (two tabs) present the same refresh token at the same moment. Rotation
    claims the token once; the other presentation falls in the grace window and gets the
    very same pair, so both tabs stay logged in. Never two live tokens from one: the family
    holds the token presented and one live successor, which works afterwards."""
    s0 = register(client, "quinn")
    token = s0["refresh_token"]
    clients = [srv.api(), srv.api()]
    for rnd in range(5):
        for c in clients:  # connected beforehand, so both requests leave together
            assert c.get("/healthz").status_code == 200
        known = {t["id"] for t in refresh_rows(srv.store)}
        barrier = threading.Barrier(2)
        answers = [None, None]

        def go(i):
            barrier.wait()
            answers[i] = refresh(clients[i], token)

        threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        pairs = [assert_session(r, 200, "quinn") for r in answers]
        # The same refresh AND access token (expires_in counts down: it may differ by 1).
        assert [(p["refresh_token"], p["access_token"], p["user"]) for p in pairs[1:]] == \
            [(p["refresh_token"], p["access_token"], p["user"]) for p in pairs[:1]], (rnd, pairs)
        new = pairs[0]
        rows = refresh_rows(srv.store)
        added = [t for t in rows if t["id"] not in known]
        assert len(added) == 1, (rnd, added)  # one successor, and no other
        family = [t for t in rows if t["family_id"] == added[0]["family_id"]]
        live = [t for t in family if t["used_at"] is None and t["revoked_at"] is None]
        assert [t["id"] for t in live] == [added[0]["id"]], (rnd, family)
        assert me(client, new["access_token"]).status_code == 200
        token = assert_session(refresh(client, new["refresh_token"]), 200,
                               "quinn")["refresh_token"]  # the pair lives on
    for c in clients:
        c.close()


def test_refresh_rejects_unknown_tokens(srv, client):
    s = register(client, "oscar")
    before = snapshot(srv.store)
    for tok in ("x", s["refresh_token"] + "x", s["refresh_token"][:-1],
                b64url(os.urandom(32)), s["access_token"][:512]):
        r = refresh(client, tok)
        assert_problem(r, 401, "unauthenticated")
        assert_no_store(r)
    for body in ({}, {"refresh_token": ""}, {"refresh_token": None},
                 {"refresh_token": 5}, {"refresh_token": s["refresh_token"], "extra": 1}):
        assert_problem(client.post("/v1/auth/refresh", json=body), 422, "validation_failed")
    assert snapshot(srv.store) == before
    assert refresh(client, s["refresh_token"]).status_code == 200


def test_logout_revokes_the_family(srv, client):
    s0 = register(client, "peggy")
    other = login(client, "peggy").json()
    s1 = refresh(client, s0["refresh_token"]).json()
    r = client.post("/v1/auth/logout", json={"refresh_token": s1["refresh_token"]})
    assert r.status_code == 204 and r.content == b""
    assert_no_store(r)
    assert_problem(refresh(client, s1["refresh_token"]), 401, "session_revoked")
    assert_problem(refresh(client, s0["refresh_token"]), 401, "session_revoked")
    # Logging out again, or with a token that was never issued, is a quiet no-op.
    before = snapshot(srv.store)
    for tok in (s1["refresh_token"], b64url(os.urandom(32))):
        r = client.post("/v1/auth/logout", json={"refresh_token": tok})
        assert r.status_code == 204
    assert snapshot(srv.store) == before
    assert_problem(client.post("/v1/auth/logout", json={}), 422, "validation_failed")
    # Only a bearer header, no body at all: the answer names what is missing.
    r = client.post("/v1/auth/logout", headers=bearer(other["access_token"]))
    body = assert_problem(r, 422, "validation_failed")
    assert field_errors(body) == {("refresh_token", "required")}, body
    assert_no_store(r)
    assert snapshot(srv.store) == before
    # Other sessions are not touched.
    assert_session(refresh(client, other["refresh_token"]), 200, "peggy")


def test_token_lifetimes_are_configurable(tandem_server):
    srv = tandem_server(env={"TANDEM_JWT_SECRET": SECRET, "TANDEM_ACCESS_TOKEN_TTL": "120"})
    api = srv.api()
    s = register(api, "quinn")
    assert s["expires_in"] == 120
    c = claims_of(s["access_token"])
    assert c["exp"] - c["iat"] == 120
    assert refresh(api, s["refresh_token"]).json()["expires_in"] == 120

    short = tandem_server(env={"TANDEM_JWT_SECRET": SECRET, "TANDEM_ACCESS_TOKEN_TTL": "1",
                               "TANDEM_REFRESH_TOKEN_TTL": "1"})
    api = short.api()
    s = register(api, "rita")
    assert s["expires_in"] == 1
    time.sleep(2.1)
    r = me(api, s["access_token"])
    assert_problem(r, 401, "token_expired")
    assert "invalid_token" in r.headers.get("WWW-Authenticate", "")
    before = snapshot(short.store)
    assert_problem(refresh(api, s["refresh_token"]), 401, "unauthenticated")
    assert snapshot(short.store) == before
    # Logging in again gives a fresh pair.
    assert login(api, "rita").status_code == 200


# ---------------------------------------------------------------------------------------
# bearer tokens: the attacks


def test_forged_and_tampered_access_tokens_are_refused(srv, client):
    victim = register(client, "sybil", display_name="Sybil")
    attacker = register(client, "eve", display_name="Eve")
    uid = victim["user"]["id"]
    sid = claims_of(victim["access_token"])["sid"]  # the victim's live session
    good = mint(uid, sid=sid)
    # The minting works: a token made the way the server makes them is accepted.
    assert me(client, good).json()["id"] == uid
    assert me(client, mint(uid, sid=sid, alg="HS256", headers={"typ": "JWT"})).status_code == 200

    h, p, sig = victim["access_token"].split(".")
    claims = claims_of(victim["access_token"])
    att_claims = claims_of(attacker["access_token"])
    none_payload = b64url({**claims, "exp": int(time.time()) + 3600})
    forged = {
        "alg none": f"{b64url({'alg': 'none', 'typ': 'JWT'})}.{none_payload}.",
        "alg None": f"{b64url({'alg': 'None', 'typ': 'JWT'})}.{none_payload}.",
        "alg none with sig": f"{b64url({'alg': 'none'})}.{none_payload}.{sig}",
        "no alg": f"{b64url({'typ': 'JWT'})}.{p}.{sig}",
        "HS384": mint(uid, sid=sid, alg="HS384"),
        "HS512": mint(uid, sid=sid, alg="HS512"),
        # algorithm confusion: an RS256 header with an HMAC signature by the secret
        "RS256 header": resign(claims, {"alg": "RS256", "typ": "JWT"}),
        "ES256 header": resign(claims, {"alg": "ES256", "typ": "JWT"}),
        "crit header": resign(claims, {"alg": "HS256", "typ": "JWT", "crit": ["exp"]}),
        "wrong secret": mint(uid, sid=sid, key="another-secret-0123456789abcdef-0123456789"),
        "empty secret": mint(uid, sid=sid, key=""),
        "tampered sub": f"{h}.{b64url({**claims, 'sub': att_claims['sub']})}.{sig}",
        "tampered payload": f"{h}.{b64url({**claims, 'ver': 2})}.{sig}",
        "attacker's sig": f"{h}.{p}.{attacker['access_token'].split('.')[2]}",
        "no signature": f"{h}.{p}.",
        "two parts": f"{h}.{p}",
        "four parts": f"{h}.{p}.{sig}.{sig}",
        "garbage": "not-a-token",
        "wrong iss": mint(uid, sid=sid, iss="someone-else"),
        "wrong aud": mint(uid, sid=sid, aud="another-api"),
        "aud list without us": mint(uid, sid=sid, aud=["another-api"]),
        "no iss": mint(uid, sid=sid, drop=["iss"]),
        "no aud": mint(uid, sid=sid, drop=["aud"]),
        "no sub": mint(uid, sid=sid, drop=["sub"]),
        "no exp": mint(uid, sid=sid, drop=["exp"]),
        "no iat": mint(uid, sid=sid, drop=["iat"]),
        "no jti": mint(uid, sid=sid, drop=["jti"]),
        "no ver": mint(uid, sid=sid, drop=["ver"]),
        "exp as string": mint(uid, sid=sid, exp=str(int(time.time()) + 3600)),
        "exp as real": mint(uid, sid=sid, exp=time.time() + 3600),
        "exp as boolean": mint(uid, sid=sid, exp=True),
        "iat as string": mint(uid, sid=sid, iat="yesterday"),
        "ver as string": mint(uid, sid=sid, ver="1"),
        "ver as real": mint(uid, sid=sid, ver=1.0),
        "stale ver": mint(uid, sid=sid, ver=0),
        "future ver": mint(uid, sid=sid, ver=2),
        "unknown sub": mint(str(uuid.uuid4()), sid=sid),
        "sub not a uuid": mint("sybil", sid=sid),
        "no sid": mint(uid),
        "sid not a uuid": mint(uid, sid="session"),
        "unknown sid": mint(uid, sid=str(uuid.uuid4())),
        "sid of another user's session": mint(uid, sid=claims_of(attacker["access_token"])["sid"]),
    }
    for name, token in forged.items():
        for headers in (bearer(token), {"Authorization": f"bearer {token}"}):
            r = client.patch("/v1/users/me", json={"display_name": "pwned"}, headers=headers)
            try:
                assert_problem(r, 401, "unauthenticated")
            except AssertionError as e:
                raise AssertionError(f"forged token '{name}' was not refused: {e}") from None
            assert r.headers.get("WWW-Authenticate", "").startswith("Bearer"), name
        assert me(client, token).status_code == 401, name
    # Expired tokens (correctly signed) say so.
    for exp in (int(time.time()) - 10, int(time.time()) - 86400 * 365):
        r = me(client, mint(uid, sid=sid, exp=exp, iat=exp - 60))
        assert_problem(r, 401, "token_expired")
        assert "invalid_token" in r.headers.get("WWW-Authenticate", "")
    # Nothing was changed by any of them.
    for rec in (victim, attacker):
        assert user_row(srv.store, rec["user"]["id"])["display_name"] == \
            rec["user"]["display_name"]
        assert me(client, rec["access_token"]).status_code == 200


def test_bearer_token_only_in_the_authorization_header(srv, client):
    s = register(client, "trudy")
    tok = s["access_token"]
    for path in (f"/v1/users/me?access_token={tok}", f"/v1/users/me?token={tok}",
                 f"/v1/users?q=tr&access_token={tok}"):
        r = client.get(path)
        assert_problem(r, 401, "unauthenticated")
        assert r.headers.get("WWW-Authenticate", "").startswith("Bearer")
    for headers in ({}, {"Authorization": ""}, {"Authorization": f"Basic {tok}"},
                    {"Authorization": tok}, {"Authorization": "Bearer"},
                    {"Authorization": "Bearer "}, {"Cookie": f"access_token={tok}"}):
        assert_problem(client.get("/v1/users/me", headers=headers), 401, "unauthenticated")
    assert me(client, tok).status_code == 200


def test_deactivated_user_is_locked_out_at_once(srv, client):
    s = register(client, "ursula")
    uid = s["user"]["id"]
    assert me(client, s["access_token"]).status_code == 200
    db_exec(srv.store, f"UPDATE users SET is_active = false WHERE id = '{uid}'")
    before = snapshot(srv.store)
    # The access token is refused at once, on every authenticated route.
    assert_problem(me(client, s["access_token"]), 401, "unauthenticated")
    r = client.patch("/v1/users/me", headers=bearer(s["access_token"]),
                     json={"display_name": "still here"})
    assert_problem(r, 401, "unauthenticated")
    r = client.put("/v1/users/me/password", headers=bearer(s["access_token"]),
                   json={"current_password": PASSWORD, "new_password": "new-password-1"})
    assert_problem(r, 401, "unauthenticated")
    # So are its refresh token and its password, with the usual indistinguishable 401.
    assert_problem(refresh(client, s["refresh_token"]), 401, "unauthenticated")
    assert_invalid_credentials(login(client, "ursula"))
    assert_invalid_credentials(login(client, "ursula@example.com"))
    assert snapshot(srv.store) == before
    # Reactivated (the token version is unchanged), the account works again.
    db_exec(srv.store, f"UPDATE users SET is_active = true WHERE id = '{uid}'")
    assert login(client, "ursula").status_code == 200


# ---------------------------------------------------------------------------------------
# the caller's own account


def test_get_me_requires_a_token(client):
    r = client.get("/v1/users/me")
    assert_problem(r, 401, "unauthenticated")
    assert r.headers.get("WWW-Authenticate", "").startswith("Bearer")


def test_patch_me_updates_the_profile(srv, client):
    s = register(client, "victoria", display_name="Vic")
    tok = s["access_token"]
    r = client.patch("/v1/users/me", headers=bearer(tok), json={"display_name": "Victoria V."})
    assert r.status_code == 200, r.text
    assert_no_store(r)
    assert r.json() == {**s["user"], "display_name": "Victoria V."}
    r = client.patch("/v1/users/me", headers=bearer(tok),
                     json={"username": "Vicky", "email": "Vicky@Example.org"})
    assert r.status_code == 200, r.text
    after = r.json()
    assert after["username"] == "vicky" and after["email"] == "vicky@example.org"
    assert after["id"] == s["user"]["id"] and after["created_at"] == s["user"]["created_at"]
    assert me(client, tok).json() == after  # re-read: it was stored
    row = user_row(srv.store, s["user"]["id"])
    assert (row["username"], row["email"], row["display_name"]) == \
        ("vicky", "vicky@example.org", "Victoria V.")
    # Login follows the new name and address; the old ones are gone.
    assert login(client, "vicky").status_code == 200
    assert login(client, "vicky@example.org").status_code == 200
    assert_invalid_credentials(login(client, "victoria"))
    assert_invalid_credentials(login(client, "victoria@example.com"))
    # Absent = unchanged; null clears display_name; an empty patch changes nothing visible.
    r = client.patch("/v1/users/me", headers=bearer(tok), json={"display_name": None})
    assert r.status_code == 200 and r.json() == {**after, "display_name": ""}
    r = client.patch("/v1/users/me", headers=bearer(tok), json={})
    assert r.status_code == 200 and r.json() == {**after, "display_name": ""}
    # Changing one's own email to itself in another case is not a conflict.
    r = client.patch("/v1/users/me", headers=bearer(tok), json={"email": "VICKY@example.org",
                                                                 "username": "VICKY"})
    assert r.status_code == 200, r.text
    # The name and address freed by the rename can be taken by someone else.
    register(client, "victoria")


def test_patch_me_rejections_change_nothing(srv, client):
    s = register(client, "walter", display_name="Walt")
    register(client, "xena", "Xena@Example.com")
    tok = s["access_token"]
    before_me = me(client, tok).json()
    before_db = snapshot(srv.store)
    long_name = "x" * 101
    cases = [
        ({"username": "XENA"}, 409, "conflict", {"username"}),
        ({"email": "XENA@example.COM"}, 409, "conflict", {"email"}),
        ({"username": "Xena", "email": "xena@example.com"}, 409, "conflict",
         {"username", "email"}),
        ({"display_name": "ok", "username": "xena"}, 409, "conflict", {"username"}),
        ({"email": "not-an-email"}, 422, "validation_failed", {"email"}),
        ({"username": "no spaces"}, 422, "validation_failed", {"username"}),
        ({"username": "ab"}, 422, "validation_failed", {"username"}),
        ({"username": None}, 422, "validation_failed", {"username"}),
        ({"email": None}, 422, "validation_failed", {"email"}),
        ({"display_name": long_name}, 422, "validation_failed", {"display_name"}),
        ({"display_name": 7}, 422, "validation_failed", {"display_name"}),
        ({"id": str(uuid.uuid4())}, 422, "validation_failed", {"id"}),
        ({"is_admin": True}, 422, "validation_failed", {"is_admin"}),
        ({"is_active": False}, 422, "validation_failed", {"is_active"}),
        ({"created_at": "2020-01-01T00:00:00.000Z"}, 422, "validation_failed", {"created_at"}),
        ({"password": "new-password-1"}, 422, "validation_failed", {"password"}),
        ({"display_name": "ok", "is_admin": True, "nickname": "w"}, 422,
         "validation_failed", {"is_admin", "nickname"}),
        ({"token_version": 9}, 422, "validation_failed", {"token_version"}),
    ]
    for body, status, code, fields in cases:
        r = client.patch("/v1/users/me", headers=bearer(tok), json=body)
        problem = assert_problem(r, status, code)
        assert_no_store(r)
        assert {e["field"] for e in problem["errors"]} == fields, (body, problem)
        assert me(client, tok).json() == before_me, f"{body} changed the user"
        assert snapshot(srv.store) == before_db, f"{body} changed the database"
    raw = [
        (b'{"display_name": "x"', JSON, 400, "malformed_json"),
        (b"", JSON, 400, "malformed_json"),
        (b'{"display_name": "x"}', {"Content-Type": "text/plain"}, 415,
         "unsupported_media_type"),
        (json.dumps({"display_name": "x" * (2 << 20)}).encode(), JSON, 413,
         "payload_too_large"),
    ]
    for data, headers, status, code in raw:
        r = client.patch("/v1/users/me", data=data, headers={**headers, **bearer(tok)})
        assert_problem(r, status, code)
        assert me(client, tok).json() == before_me
        assert snapshot(srv.store) == before_db


# ---------------------------------------------------------------------------------------
# password change


def change_password(api, token, current, new):
    return api.put("/v1/users/me/password", headers=bearer(token),
                   json={"current_password": current, "new_password": new})


def test_password_change_kills_every_earlier_token(srv, client):
    s = register(client, "yara")
    second = login(client, "yara@example.com").json()
    uid = s["user"]["id"]
    new_pw = "a brand new passphrase"
    r = change_password(client, s["access_token"], PASSWORD, new_pw)
    assert r.status_code == 204 and r.content == b""
    assert_no_store(r)
    # Every access token issued before (this one and the other device's) is dead at once.
    for tok in (s["access_token"], second["access_token"]):
        assert_problem(me(client, tok), 401, "unauthenticated")
    # As is every refresh token: its session was ended (log in again).
    for tok in (s["refresh_token"], second["refresh_token"]):
        assert_problem(refresh(client, tok), 401, "session_revoked")
    assert all(t["revoked_at"] is not None for t in refresh_rows(srv.store))
    row = user_row(srv.store, uid)
    assert row["token_version"] == 2
    # The old password no longer works; the new one does, with a token of the new version.
    assert_invalid_credentials(login(client, "yara"))
    n = assert_session(login(client, "yara", new_pw), 200, "yara")
    assert claims_of(n["access_token"])["ver"] == 2
    assert me(client, n["access_token"]).status_code == 200
    # A token minted with the old version stays dead even with a valid signature.
    sid = claims_of(n["access_token"])["sid"]
    assert_problem(me(client, mint(uid, ver=1, sid=sid)), 401, "unauthenticated")
    assert me(client, mint(uid, ver=2, sid=sid)).status_code == 200
    # So does one in a session the change ended, at any version.
    old_sid = claims_of(s["access_token"])["sid"]
    assert_problem(me(client, mint(uid, ver=2, sid=old_sid)), 401, "unauthenticated")


def test_password_change_rejections_change_nothing(srv, client):
    s = register(client, "zack")
    tok = s["access_token"]
    before = snapshot(srv.store)
    cases = [
        ({"current_password": "wrong-password", "new_password": "new-password-1"},
         {("current_password", "incorrect")}),
        ({"current_password": PASSWORD[:-1], "new_password": "new-password-1"},
         {("current_password", "incorrect")}),
        ({"current_password": PASSWORD, "new_password": "short"},
         {("new_password", "too_short")}),
        ({"current_password": PASSWORD, "new_password": "n" * 129},
         {("new_password", "too_long")}),
        ({"current_password": PASSWORD}, {("new_password", "required")}),
        ({"new_password": "new-password-1"}, {("current_password", "required")}),
        ({"current_password": PASSWORD, "new_password": 12345678},
         {("new_password", "type")}),
        ({"current_password": PASSWORD, "new_password": "new-password-1", "logout": True},
         {("logout", "unknown_field")}),
        ({"current_password": PASSWORD, "new_password": "new-password-1",
          "password": "new-password-1"}, {("password", "unknown_field")}),
    ]
    for body, expect in cases:
        r = client.put("/v1/users/me/password", headers=bearer(tok), json=body)
        problem = assert_problem(r, 422, "validation_failed")
        assert_no_store(r)
        assert field_errors(problem) == expect, (body, problem)
        if ("current_password", "incorrect") in expect:
            assert problem["errors"][0]["field"] == "current_password"
        assert snapshot(srv.store) == before, f"{body} changed the database"
    for data, headers, status, code in [
            (b'{"current_password": ', JSON, 400, "malformed_json"),
            (json.dumps({"current_password": PASSWORD,
                         "new_password": "new-password-1"}).encode(),
             {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
            (json.dumps({"current_password": PASSWORD,
                         "new_password": "n" * (2 << 20)}).encode(), JSON, 413,
             "payload_too_large")]:
        r = client.put("/v1/users/me/password", data=data, headers={**headers, **bearer(tok)})
        assert_problem(r, status, code)
        assert snapshot(srv.store) == before
    # Without a token nothing happens either.
    r = client.put("/v1/users/me/password",
                   json={"current_password": PASSWORD, "new_password": "new-password-1"})
    assert_problem(r, 401, "unauthenticated")
    assert snapshot(srv.store) == before
    # The old password, access token and refresh token all still work.
    assert me(client, tok).status_code == 200
    assert refresh(client, s["refresh_token"]).status_code == 200
    assert login(client, "zack").status_code == 200


# ---------------------------------------------------------------------------------------
# the user directory


def search(api, token, q, **kw):
    return api.get("/v1/users", params={"q": q, **kw}, headers=bearer(token))


def test_user_search_by_prefix_shows_email_only_to_self(srv, client):
    me_ = register(client, "alice", display_name="Alice A")
    register(client, "alicia", display_name="Someone")
    register(client, "bob", display_name="Alibaba Bob")
    register(client, "carl", display_name="Carl")
    gone = register(client, "alien")
    db_exec(srv.store, f"UPDATE users SET is_active = false WHERE id = '{gone['user']['id']}'")
    tok = me_["access_token"]

    r = search(client, tok, "ALI")
    assert r.status_code == 200, r.text
    assert_no_store(r)
    body = r.json()
    assert body["has_more"] is False and body["next_cursor"] is None
    got = {u["username"]: u for u in body["data"]}
    # username prefix (any case) or display-name prefix; deactivated users are not listed
    assert set(got) == {"alice", "alicia", "bob"}, got
    assert got["alice"]["email"] == "alice@example.com"  # the caller themself
    for name in ("alicia", "bob"):
        assert "email" not in got[name], got[name]
        assert set(got[name]) == USER_KEYS
    # A prefix, not a substring.
    assert [u["username"] for u in search(client, tok, "lic").json()["data"]] == []
    assert [u["username"] for u in search(client, tok, "car").json()["data"]] == ["carl"]
    # LIKE wildcards are taken literally.
    register(client, "ab_cd")
    register(client, "abxcd")
    assert [u["username"] for u in search(client, tok, "ab_").json()["data"]] == ["ab_cd"]
    assert search(client, tok, "a%").json()["data"] == []
    assert search(client, tok, "%%").json()["data"] == []


def test_user_search_limits_and_validation(srv, client):
    s = register(client, "searcher")
    for i in range(22):
        register(client, f"member{i:02d}", password="12345678")
    tok = s["access_token"]
    body = search(client, tok, "member").json()
    assert len(body["data"]) == 20  # at most 20
    assert all("email" not in u for u in body["data"])
    for q in ("", "m", "é"):
        r = search(client, tok, q)
        assert field_errors(assert_problem(r, 422, "validation_failed")) == \
            {("q", "too_short")}, q
    r = client.get("/v1/users", headers=bearer(tok))
    assert_problem(r, 422, "validation_failed")
    assert_problem(client.get("/v1/users", params={"q": "member"}), 401, "unauthenticated")


def test_admins_see_emails_in_search(srv, client, tandem_cli):
    register(client, "olga", display_name="Olga")
    p = tandem_cli("user", "create", "--username", "Root", "--email", "Root@Example.com",
                   "--admin", store=srv.store, input="admin-password-1\n")
    assert p.returncode == 0, p.stderr
    s = assert_session(login(client, "root", "admin-password-1"), 200, "root")
    assert s["user"]["is_admin"] is True
    assert s["user"]["email"] == "root@example.com"
    got = {u["username"]: u for u in search(client, s["access_token"], "ol").json()["data"]}
    assert got["olga"]["email"] == "olga@example.com"


# ---------------------------------------------------------------------------------------
# start-up, the secret and the command line


def test_short_jwt_secret_stops_start_up(tandem_server):
    srv = tandem_server(env={"TANDEM_JWT_SECRET": "x" * 31}, start=False)
    srv.start(wait=False)
    assert srv.wait() == 2
    lines = [l for l in srv.stderr_text().splitlines() if l.strip()]
    assert len(lines) == 1, lines
    assert "TANDEM_JWT_SECRET" in lines[0] and "32" in lines[0]
    assert "x" * 31 not in lines[0]  # the secret is not echoed
    # 32 bytes are enough.
    ok = tandem_server(env={"TANDEM_JWT_SECRET": "x" * 32})
    assert ok.running


def test_generated_secret_file_survives_restarts(tandem_server):
    first = tandem_server()
    path = first.store.data_dir / "jwt.secret"
    assert path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secret = path.read_bytes()
    assert len(secret.strip()) >= 32
    api = first.api()
    s = register(api, "persist")
    assert first.stop() == 0

    second = tandem_server(store=first.store)
    assert path.read_bytes() == secret  # reused, not regenerated
    api = second.api()
    # A token issued before the restart still works after it.
    r = me(api, s["access_token"])
    assert r.status_code == 200, r.text
    assert r.json()["username"] == "persist"
    assert refresh(api, s["refresh_token"]).status_code == 200
    # The token was signed with the file's contents.
    jwt.decode(s["access_token"], secret.strip(), algorithms=["HS256"], audience="tandem-api")

    # Another data directory has another secret; the same claims signed with it are refused
    # here, while signed with this server's secret they are accepted.
    other = tandem_server()
    other_secret = (other.store.data_dir / "jwt.secret").read_bytes()
    assert other_secret != secret
    claims = {**claims_of(s["access_token"]), "exp": int(time.time()) + 600}
    r = me(api, jwt.encode(claims, other_secret.strip(), algorithm="HS256"))
    assert_problem(r, 401, "unauthenticated")
    assert me(api, jwt.encode(claims, secret.strip(), algorithm="HS256")).status_code == 200


def test_cli_user_create(srv, client, tandem_cli):
    p = tandem_cli("user", "create", "--username", "Clive", "--email", "Clive@Example.com",
                   store=srv.store, input="cli-password-1\n")
    assert p.returncode == 0, p.stderr
    s = assert_session(login(client, "clive@example.com", "cli-password-1"), 200, "clive")
    assert s["user"]["is_admin"] is False and s["user"]["is_active"] is True
    assert me(client, s["access_token"]).json()["email"] == "clive@example.com"

    p = tandem_cli("user", "create", "--username", "boss", "--email", "boss@example.com",
                   "--admin", store=srv.store, input="boss-password-1\n")
    assert p.returncode == 0, p.stderr
    assert login(client, "boss", "boss-password-1").json()["user"]["is_admin"] is True

    # The same rules as register: nothing is created on a rejected request.
    before = user_rows(srv.store)
    for args, pw in [(["--username", "CLIVE", "--email", "new@example.com"], "password-123"),
                     (["--username", "newbie", "--email", "CLIVE@example.com"], "password-123"),
                     (["--username", "newbie", "--email", "not-an-email"], "password-123"),
                     (["--username", "newbie", "--email", "newbie@example.com"], "short")]:
        p = tandem_cli("user", "create", *args, store=srv.store, input=pw + "\n")
        assert p.returncode != 0, (args, p.stdout)
        assert p.stderr.strip()
        assert user_rows(srv.store) == before, args
    p = tandem_cli("user", "create", "--username", "newbie", "--email", "newbie@example.com",
                   store=srv.store, input="")
    assert p.returncode != 0
    assert user_rows(srv.store) == before
